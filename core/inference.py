"""Pass 2 of a run: crops -> backbone features -> whole-clip STAF, for every chosen person at once.

The clip is decoded once for everybody. Each frame's crops of all people present go into shared
backbone batches; each person's contiguous runs of frames stream through their own STAF segment
(:class:`core.model.sequence.SegmentStream`), so a person's windows never cross that person's gaps
and memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.crops import crop_person, normalise
from core.model.load import StafModels, autocast_for
from core.model.sequence import FrameResults, SegmentStream
from core.people.stage import PersonTrack
from core.progress import Progress
from core.video import VideoInfo, iter_frames

__all__ = ["BodyResults", "run_staf_for_people"]


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
        if not pending:
            return
        feats = models.features(normalise(np.stack([c for _, c in pending])))
        rows: dict[tuple[int, int], list[int]] = {}
        for i, (key, _) in enumerate(pending):
            rows.setdefault(key, []).append(i)
        for key, idx in rows.items():  # each run's frames in order, one feed per run
            place(key, open_runs[key][1].feed(feats[idx]))
        pending.clear()

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
