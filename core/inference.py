"""Pass 2 of a run: crops -> backbone features -> whole-clip STAF, for every chosen person at once.

The clip is decoded once for everybody. Each frame's crops of all people present go into shared
backbone batches; each person's contiguous runs of frames stream through their own STAF segment
(:class:`core.model.sequence.SegmentStream`), so a person's windows never cross that person's gaps
and memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.allocator import off_heap_array
from core.crops import crop_person, normalise
from core.model.load import StafModels, autocast_for
from core.model.sequence import FrameResults, SegmentStream
from core.people.smoothing import Track, runs
from core.people.stage import PeopleResult, PersonTrack
from core.progress import Progress
from core.video import VideoInfo, iter_frames

__all__ = ["BodyResults", "StreamedPeople", "run_staf_for_people", "run_staf_streaming"]


@dataclass(frozen=True)
class BodyResults:
    """STAF's output for one person over the rows of their track (``PersonTrack.track.box``): rotmat
    (L, 24, 3, 3), betas (L, 10), cam (L, 3); rows without the person stay zero."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor

    def put(self, row: int, part: FrameResults) -> None:
        rows = slice(row, row + len(part))
        self.rotmat[rows], self.betas[rows], self.cam[rows] = (
            t.float().cpu() for t in (part.rotmat, part.betas, part.cam))


def _features_by_key(models: StafModels, pending: list) -> list:
    """One backbone batch over the pending (key, crop) pairs, emptied; the features per key, each
    key's rows in frame order (one feed per run)."""
    if not pending:
        return []
    feats = models.features(normalise(np.stack([c for _, c in pending])))
    rows: dict = {}
    for i, (key, _) in enumerate(pending):
        rows.setdefault(key, []).append(i)
    pending.clear()
    return [(key, feats[idx]) for key, idx in rows.items()]


def run_staf_for_people(models: StafModels, info: VideoInfo, start: int, n_frames: int, people: list[PersonTrack],
                        *, batch_size: int, precision: str, crop_scale: float,
                        progress: Progress) -> dict[int, BodyResults]:
    """Results per person id over frames [start, start + n_frames) of the clip."""
    out = {p.person_id: BodyResults(torch.zeros(len(p.track.box), 24, 3, 3), torch.zeros(len(p.track.box), 10),
                                    torch.zeros(len(p.track.box), 3)) for p in people}
    # Each person's runs of frames [start, end), range-local, in order of start.
    runs = sorted(((s, e, p) for p in people for s, e in p.segments), key=lambda r: (r[0], r[2].person_id))
    last = max((e for _, e, _ in runs), default=0)
    runner = models.runner(windows_per_batch=batch_size, keep_vertices=False)
    open_runs: dict[tuple[int, int], tuple[PersonTrack, SegmentStream, int]] = {}  # key: (person id, start)
    pending: list[tuple[tuple[int, int], np.ndarray]] = []  # (run key, crop), in frame order
    progress.stage("reconstruct", n_frames)

    def place(key: tuple[int, int], parts: list[FrameResults]) -> None:
        person = open_runs[key][0]
        for part in parts:
            out[person.person_id].put(key[1] - person.first + part.start, part)

    def flush() -> None:
        for key, feats in _features_by_key(models, pending):
            place(key, open_runs[key][1].feed(feats))

    done = 0
    upcoming = 0  # runs[upcoming:] have not started yet
    with torch.inference_mode(), autocast_for(models.device, precision):
        for frame in iter_frames(info, start=start, end=start + min(n_frames, last)):
            k = frame.index - start
            while upcoming < len(runs) and runs[upcoming][0] <= k:
                s, e, person = runs[upcoming]
                open_runs[(person.person_id, s)] = (person, runner.segment(), e)
                upcoming += 1
            for key, (person, _, _) in open_runs.items():
                box = person.track.box[k - person.first]
                pending.append((key, crop_person(frame.rgb, box, crop_scale=crop_scale)))
            ending = [key for key, (_, _, e) in open_runs.items() if e == k + 1]
            if len(pending) >= batch_size or ending:
                flush()
            for key in ending:
                place(key, open_runs[key][1].finish())
                del open_runs[key]
            progress.advance(k + 1 - done)
            done = k + 1
    if n_frames > done:
        progress.advance(n_frames - done)
    return out


@dataclass(frozen=True)
class StreamedPeople:
    """What the one-pass pipeline gives: the people stage's result (its tracks made to agree with the
    boxes the crops were cut from) and STAF's output per person id."""

    found: PeopleResult
    bodies: dict[int, BodyResults]


# One frame of one tracker identity in the one-pass pipeline: its settled box and flag, STAF's output.
_FRAME = np.dtype([("box", "f8", (4,)), ("rotmat", "f4", (24, 3, 3)), ("betas", "f4", (10,)), ("cam", "f4", (3,)),
                   ("flag", "u1"), ("seen", "?"), ("done", "?")])


class _KeyResults:
    """One tracker identity's emitted frames from range-local frame ``first`` on: boxes, flags and
    STAF output, room for ``capacity`` frames (it grows if more arrive). Off the heap, and not as
    tensors per frame: kept for the whole run, those pinned the heap (``off_heap_array``)."""

    def __init__(self, first: int, capacity: int) -> None:
        self.first = first
        self.rows = off_heap_array(capacity, _FRAME)

    def _room(self, last: int) -> None:
        if last - self.first >= len(self.rows):
            grown = off_heap_array(max(2 * len(self.rows), last - self.first + 1), _FRAME)
            grown[:len(self.rows)] = self.rows
            self.rows = grown

    def mark(self, k: int, box: np.ndarray, flag: int) -> None:
        """Frame ``k``'s settled box and flag (its crop went to the networks)."""
        self._room(k)
        row = self.rows[k - self.first]
        row["box"], row["flag"], row["seen"] = box, flag, True

    def put(self, first: int, part: FrameResults) -> None:
        """STAF's output for ``part`` of the run that began at range-local frame ``first``."""
        lo = first + part.start - self.first
        self._room(self.first + lo + len(part) - 1)
        rows = self.rows[lo:lo + len(part)]
        for name, t in (("rotmat", part.rotmat), ("betas", part.betas), ("cam", part.cam)):
            rows[name] = t.float().cpu().numpy()
        rows["done"] = True


def _agree(person: PersonTrack, got: _KeyResults | None) -> tuple[PersonTrack, BodyResults] | None:
    """The person's track restricted to (and boxed as) the frames their crops were cut from, and the
    STAF results over its rows; None if none remain. (The settled boxes equal the whole-clip clean-up
    by construction; this keeps the motion file consistent with the crops even if they did not.)"""
    if got is None:
        return None
    n = len(person.track.box)
    local = person.first + np.arange(n) - got.first
    ok = (local >= 0) & (local < len(got.rows))
    rec = got.rows[np.where(ok, local, 0)]
    ok &= rec["seen"] & rec["done"] & (person.track.flags != 0)
    if not ok.any():
        return None
    box = np.full((n, 4), np.nan)
    flags = np.zeros(n, np.uint8)
    rotmat, betas, cam = (np.zeros((n, *shape), np.float32) for shape in ((24, 3, 3), (10,), (3,)))
    for out, name in ((box, "box"), (flags, "flag"), (rotmat, "rotmat"), (betas, "betas"), (cam, "cam")):
        out[ok] = rec[name][ok]
    body = BodyResults(torch.from_numpy(rotmat), torch.from_numpy(betas), torch.from_numpy(cam))
    return replace(person, track=Track(box, flags, tuple(runs(flags != 0)))), body


def run_staf_streaming(models: StafModels, items: Iterable, n_frames: int, *, batch_size: int, precision: str,
                       progress: Progress) -> StreamedPeople:
    """Backbone and whole-clip STAF over the crops of the one-pass pipeline (``core.pipeline``), for
    every identity the people stage follows; the people stage's result comes last."""
    runner = models.runner(windows_per_batch=batch_size, keep_vertices=False)
    got: dict[int, _KeyResults] = {}
    open_runs: dict[int, tuple[int, SegmentStream, int]] = {}  # key -> (run start, stream, last frame fed)
    pending: list[tuple[int, np.ndarray]] = []  # (key, crop) in frame order
    found: PeopleResult | None = None
    progress.stage("reconstruct", n_frames)

    def flush() -> None:
        for key, feats in _features_by_key(models, pending):
            first, stream, _ = open_runs[key]
            for part in stream.feed(feats):
                got[key].put(first, part)

    def close(keys: list[int]) -> None:
        flush()
        for key in keys:
            first, stream, _ = open_runs.pop(key)
            for part in stream.finish():
                got[key].put(first, part)

    done = 0
    with torch.inference_mode(), autocast_for(models.device, precision):
        for item in items:
            if isinstance(item, PeopleResult):
                found = item
                continue
            present = set(item.keys)
            ended = [key for key, (_, _, last) in open_runs.items() if key not in present or last != item.k - 1]
            if ended:
                close(ended)
            for key, box, flag, crop in zip(item.keys, item.boxes, item.flags, item.crops, strict=True):
                if key not in open_runs:
                    open_runs[key] = (item.k, runner.segment(), item.k)
                first, stream, _ = open_runs[key]
                open_runs[key] = (first, stream, item.k)
                if key not in got:
                    got[key] = _KeyResults(item.k, n_frames - item.k)
                got[key].mark(item.k, box, int(flag))
                pending.append((key, crop))
            if len(pending) >= batch_size:
                flush()
            progress.advance(item.k + 1 - done)
            done = item.k + 1
        close(list(open_runs))
    if found is None:
        raise RuntimeError("the people stage's result did not arrive")
    if n_frames > done:
        progress.advance(n_frames - done)
    people, bodies = [], {}
    for person in found.people:
        agreed = _agree(person, got.get(person.key))
        if agreed is not None:
            people.append(replace(agreed[0], person_id=len(people)))
            bodies[len(people) - 1] = agreed[1]
    return StreamedPeople(replace(found, people=people), bodies)
