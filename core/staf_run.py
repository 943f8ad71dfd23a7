"""The STAF solver's part of a run: the networks over the people's crops (from the one-pass
pipeline's worker, or the two passes) and the motion file put together from their output. Imported
by ``core.reconstruct`` only when STAF runs, so that validating a run, and starting its decoding
worker, need no torch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from core.assets import STAF_FILE
from core.camera import default_focal
from core.errors import BadInput, NoPersonFound
from core.inference import BodyResults, run_staf_for_people, run_staf_streaming
from core.model.geometry import rotmat_to_axis_angle
from core.model.load import StafModels, load_models_cached
from core.model.precision import choose_precision
from core.motion import build_person, make_meta, motion_from_people
from core.motion_format import Motion
from core.people.stage import PeopleResult, PersonTrack, choose_people, find_people
from core.progress import Progress
from core.reconstruct import ReconstructOptions, people_options, write_result
from core.smpl import load_smpl_data, smpl_file_candidates
from core.standins import STANDIN_MARKER
from core.video import VideoInfo

__all__ = ["staf_run"]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()



def _resolve_precision(opts: ReconstructOptions, device: torch.device) -> None:
    if opts.precision == "fp16" and device.type != "cuda":
        raise BadInput("--precision fp16 needs a CUDA device; on CPU use fp32 (or bf16 where the CPU supports it)")



def _run_people_and_staf(models: StafModels, info: VideoInfo, start: int, end: int | None, wanted: list[int] | None,
                         opts: ReconstructOptions, progress: Progress, where: str, nobody: str,
                         items: Iterable | None) -> tuple[PeopleResult, list[PersonTrack], dict[int, BodyResults]]:
    """People and STAF's output for each chosen one: from the one-pass pipeline's ``items``, or
    (None) by the two passes."""
    if items is None:
        found = find_people(info, start, end, people_options(opts, info), progress)
        if not found.people:
            raise NoPersonFound(nobody)
        people = choose_people(found.people, wanted, opts.max_people, where)
        bodies = run_staf_for_people(models, info, start, len(found.frame_index), people,
                                     batch_size=opts.batch_size, precision=opts.precision,
                                     crop_scale=opts.crop_scale, progress=progress)
        return found, people, bodies
    expected = (end if end is not None else info.frame_count) - start
    streamed = run_staf_streaming(models, items, max(expected, 0), batch_size=opts.batch_size,
                                  precision=opts.precision, progress=progress)
    found = streamed.found
    if not found.people:
        raise NoPersonFound(nobody)
    people = choose_people(found.people, wanted, opts.max_people, where)
    return found, people, streamed.bodies



def _assemble(models: StafModels, info: VideoInfo, found: PeopleResult, people: list[PersonTrack],
              bodies: dict[int, BodyResults], start: int, assets: Path, smpl_path: Path,
              opts: ReconstructOptions) -> Motion:
    """Put the motion file's contents together."""
    smpl = load_smpl_data(smpl_path)
    frame_index, frame_time = found.frame_index, found.frame_time
    focal = opts.focal or default_focal(info.width, info.height)
    motions = []
    for p in people:
        present = p.track.present
        rows = p.first + np.flatnonzero(present)
        body = bodies[p.person_id]
        motions.append(build_person(
            p.person_id, frame=frame_index[rows], time=frame_time[rows],
            pose=rotmat_to_axis_angle(body.rotmat[present]).numpy(), betas=body.betas[present].numpy(),
            cam_crop=body.cam[present].numpy(), box=p.track.box[present], flags=p.track.flags[present], smpl=smpl,
            width=info.width, height=info.height, focal=focal, crop_scale=opts.crop_scale,
            score=p.score[present], landmarks=p.landmarks[present]))
    kind = "stand-in" if (assets / STANDIN_MARKER).is_file() else "real"
    meta = make_meta(
        source={**info.as_meta(), "frame_count": max(info.frame_count, int(frame_index[-1]) + 1)},
        frame_range=(start, int(frame_index[-1]) + 1),
        assets={"kind": kind, "checkpoint_sha256": _file_sha256(assets / STAF_FILE), "smpl": smpl_path.name},
        focal=focal, crop_scale=opts.crop_scale, focal_rule="given" if opts.focal else "image diagonal",
        options={k: v for k, v in asdict(opts).items() if k not in ("progress", "overwrite", "assets")}
        | {"device": str(models.device)},
    )
    meta["people_found"] = len(found.people)
    return motion_from_people(meta, frame_index, frame_time, smpl, motions)


def staf_run(info: VideoInfo, start: int, end: int | None, wanted: list[int] | None, opts: ReconstructOptions,
             assets: Path, output: Path, where: str, nobody: str, solver_rule: str, pipeline: str,
             items: Iterable | None) -> Motion:
    """A run with STAF: the networks over the crops of ``items`` (the one-pass pipelines', already
    started) or, for None, of the two passes; the motion file written atomically."""
    models = load_models_cached(assets, device=opts.device)
    _resolve_precision(opts, models.device)
    chosen = choose_precision(models, opts.precision, assets)
    opts = replace(opts, precision=chosen.precision)
    if opts.batch_size is None:  # GPUs need large batches to be busy; CPUs gain nothing from them
        opts = replace(opts, batch_size=128 if models.device.type == "cuda" else 16)
    smpl_path = next(p for p in smpl_file_candidates(assets) if p.is_file())
    progress = Progress(opts.progress)
    try:
        found, people, bodies = _run_people_and_staf(models, info, start, end, wanted, opts, progress,
                                                      where, nobody, items)
        motion = _assemble(models, info, found, people, bodies, start, assets, smpl_path, opts)
        motion = write_result(motion, found.camera, opts, output, {"precision_rule": chosen.reason,
                                                                   "pipeline": pipeline, "solver": "staf",
                                                                   "solver_rule": solver_rule})
    finally:
        progress.close()
    progress.message(stage="done", output=str(output.resolve()), frames=len(motion.frame_index),
                     precision=chosen.precision, precision_rule=chosen.reason, solver="staf",
                     people=[{"id": p.person_id, "frames": len(p)} for p in motion.people])
    return motion
