"""Scoring a tracker against a composed clip's ground truth (tests/people_clips.py): matches by IoU,
recall per person and MOT's identity switches."""

from __future__ import annotations

import numpy as np
from people_clips import PeopleClip

__all__ = ["iou", "match_tracks"]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (A, 4) and (B, 4) (cx, cy, w, h) boxes: (A, B)."""
    a0, a1 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b0, b1 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter = np.prod(np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None), axis=-1)
    union = np.prod(a[:, None, 2:], axis=-1) + np.prod(b[None, :, 2:], axis=-1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_tracks(clip: PeopleClip, track_boxes: dict[int, np.ndarray], *, min_iou: float = 0.3) -> dict:
    """Score a tracker's boxes against the clip's ground truth.

    ``track_boxes``: track id -> (N, 4) (cx, cy, w, h) boxes, NaN rows where the track has no box.
    Per frame, the ground-truth people with a box (in the frame, even if hidden) and the tracks with a box are
    assigned one-to-one by maximum total IoU (Hungarian, scipy's linear_sum_assignment); an assigned pair with
    IoU >= ``min_iou`` is a match. Returned, keyed by the person's name unless said otherwise:

    - ``recall``: matched frames / frames where the person's visible fraction is >= 0.5, counted over those
      frames only (NaN if there are none);
    - ``id_switches``: the number of the person's matched frames whose track id differs from the track id of
      the person's previous matched frame (frames without a match in between are skipped: MOT's IDSW);
    - ``majority_track``: the track id matched to the person in most frames (ties: the smaller id), None if
      never matched;
    - ``matched_frames``: frames in which the person was matched (any visibility);
    - ``total_id_switches`` (int), ``mean_recall`` (float, over people with eligible frames),
      ``unmatched_track_boxes`` (int: track boxes matched to nobody, i.e. false positives at this IoU).
    """
    from scipy.optimize import linear_sum_assignment

    n_people, n_frames = clip.visible.shape
    ids = sorted(track_boxes)
    tb = np.stack([np.asarray(track_boxes[i], dtype=np.float64) for i in ids]) if ids else np.zeros((0, n_frames, 4))
    if tb.shape[1:] != (n_frames, 4):
        raise ValueError(f"track boxes must be ({n_frames}, 4) per track, got {tb.shape[1:]}")
    matched = np.full((n_people, n_frames), -1, dtype=np.int64)  # index into ids, -1 for none
    unmatched = 0
    for n in range(n_frames):
        gt = np.flatnonzero(np.isfinite(clip.boxes[:, n]).all(axis=1))
        tr = np.flatnonzero(np.isfinite(tb[:, n]).all(axis=1))
        if len(tr) == 0:
            continue
        pairs = 0
        if len(gt):
            overlap = iou(clip.boxes[gt, n], tb[tr, n])
            rows, cols = linear_sum_assignment(-overlap)
            for r, c in zip(rows, cols, strict=True):
                if overlap[r, c] >= min_iou:
                    matched[gt[r], n] = tr[c]
                    pairs += 1
        unmatched += len(tr) - pairs
    recall, switches, majority, frames_matched = {}, {}, {}, {}
    for p, name in enumerate(clip.names):
        eligible = clip.visible[p] >= 0.5
        recall[name] = float((matched[p, eligible] >= 0).mean()) if eligible.any() else float("nan")
        seq = matched[p][matched[p] >= 0]
        switches[name] = int(np.count_nonzero(seq[1:] != seq[:-1]))
        if len(seq):
            counts = np.bincount(seq, minlength=len(ids))
            majority[name] = ids[int(np.argmax(counts))]
        else:
            majority[name] = None
        frames_matched[name] = len(seq)
    finite = [r for r in recall.values() if np.isfinite(r)]
    return {"recall": recall, "id_switches": switches, "majority_track": majority, "matched_frames": frames_matched,
            "total_id_switches": sum(switches.values()),
            "mean_recall": float(np.mean(finite)) if finite else float("nan"), "unmatched_track_boxes": unmatched}
