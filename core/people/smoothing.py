"""From per-frame detections to a clean box track: gaps, interpolation, outliers, smoothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from core.motion_format import FLAG_DETECTED, FLAG_INTERPOLATED, FLAG_NOT_ANALYSED

__all__ = ["Track", "build_track", "runs"]


@dataclass(frozen=True)
class Track:
    """A person's boxes over a clip of N frames.

    box (N, 4) (cx, cy, w, h) pixels, NaN where absent; flags (N,) uint8 (0 = absent, else FLAG_*);
    segments: the runs [start, end) of consecutive present frames.
    """

    box: np.ndarray
    flags: np.ndarray
    segments: tuple[tuple[int, int], ...]

    @property
    def present(self) -> np.ndarray:
        return self.flags != 0


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of the runs of True in a boolean vector."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def build_track(boxes: list[np.ndarray | None], ran: np.ndarray, *, max_gap: int, smooth_sigma: float) -> Track:
    """Turn raw detections into a track.

    Args:
        boxes: per frame, the detected box (cx, cy, w, h) or None (nobody found, or not analysed).
        ran: (N,) bool, whether detection ran on the frame (it may run on every k-th frame only).
        max_gap: longest run of frames without a detection (where detection ran and found nobody)
            that is filled by interpolation and flagged; longer runs stay absent, never invented.
        smooth_sigma: Gaussian smoothing of centre and log-size along time, in frames (0: none).

    Between a detection and the next analysed frame the person keeps the detected box. Every rule
    reaches only a bounded number of frames, so the boxes of a frame are settled once the frames
    around it are known (``core.people.settled``).
    """
    n = len(boxes)
    ran = np.asarray(ran, bool)
    found = np.array([b is not None for b in boxes]) & ran
    box = np.full((n, 4), np.nan)
    flags = np.zeros(n, np.uint8)
    hits = np.flatnonzero(found)
    if hits.size == 0:
        return Track(box, flags, ())
    # Work in (cx, cy, log w, log h): sizes interpolate and smooth multiplicatively.
    raw = np.array([boxes[i] for i in hits], np.float64)
    raw[:, 2:] = np.log(np.maximum(raw[:, 2:], 1.0))
    box[hits] = raw
    flags[hits] = FLAG_DETECTED

    def hold_after(hit: int) -> None:
        # Until the next analysed frame, a person is where they were last seen.
        i = hit + 1
        while i < n and not ran[i]:
            box[i], flags[i] = box[hit], FLAG_NOT_ANALYSED
            i += 1

    for a, b in itertools.pairwise(hits.tolist()):
        if b - a <= 1:
            continue
        missed = bool((ran[a + 1:b]).any())  # detection ran in between and found nobody
        if missed and b - a - 1 > max_gap:
            hold_after(a)
            continue
        t = (np.arange(a + 1, b) - a) / (b - a)
        box[a + 1:b] = box[a] + t[:, None] * (box[b] - box[a])
        # Frames the detector skipped say so; frames where it ran and found nobody are a filled gap.
        flags[a + 1:b] = np.where(ran[a + 1:b], 0, FLAG_NOT_ANALYSED) | (FLAG_INTERPOLATED if missed else 0)
    hold_after(hits[-1])

    segments = runs(flags != 0)
    for s, e in segments:
        seg = box[s:e]
        if e - s >= 5:
            seg = median_filter(seg, size=(5, 1), mode="nearest")  # drops single-frame jumps
        if smooth_sigma > 0 and e - s > 1:
            seg = gaussian_filter1d(seg, smooth_sigma, axis=0, mode="nearest")
        box[s:e] = seg
    present = flags != 0
    box[present, 2:] = np.exp(box[present, 2:])
    return Track(box, flags, tuple(segments))
