"""The engine's main job: a video in, a motion file out.

Two streaming passes over the clip keep memory independent of its length: the first decodes a
downscaled copy and finds the person (BlazePose, every ``detect_every``-th frame); the boxes are
then cleaned into a track (short gaps filled and flagged, outliers dropped, smoothed); the second
pass decodes full frames, cuts crops, runs the backbone in batches and streams the features through
whole-clip STAF, one contiguous run of frames with the person at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from core.assets import resolve_assets_dir
from core.camera import CROP_SCALE, default_focal
from core.cancel import cancellable
from core.crops import crop_person, normalise
from core.detection import PoseDetector
from core.errors import BadInput, NoPersonFound, OutputError
from core.model.geometry import rotmat_to_axis_angle
from core.model.load import PRECISION_DTYPES, STAF_FILE, StafModels, autocast_for, load_models
from core.motion import build_person, make_meta, motion_from_people, write_motion
from core.motion_format import Motion
from core.progress import Progress, ProgressMode
from core.smpl import load_smpl_data, smpl_file_candidates
from core.standins import STANDIN_MARKER
from core.people.smoothing import Track, build_track
from core.video import VideoInfo, iter_frames, probe_video

__all__ = ["ReconstructOptions", "parse_time", "reconstruct"]

@dataclass(frozen=True)
class ReconstructOptions:
    """Everything ``reconstruct`` can be told (the CLI flags of ``python -m core reconstruct``).

    start/end: a frame number ("120") or a time in seconds ("4s", "2.5s"); end is exclusive.
    max_gap and smooth are in seconds; focal in pixels (default: the image diagonal).
    """

    assets: str | None = None
    device: str = "auto"
    start: str | None = None
    end: str | None = None
    person: int = 0
    batch_size: int | None = None  # None: 16 on CPU, 128 on CUDA
    precision: str = "fp32"
    detect_every: int = 2
    detect_max_side: int = 640
    max_gap: float = 0.5
    smooth: float = 0.05
    focal: float | None = None
    crop_scale: float = CROP_SCALE
    overwrite: bool = False
    progress: ProgressMode = "auto"
    preview: str | None = None


def parse_time(value: str | None, fps: float, name: str) -> int | None:
    """A frame number ("120") or seconds ("4s", "2.5s") -> frame number; None stays None."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*s", text)
    if match:
        return round(float(match.group(1)) * fps)
    raise BadInput(f"--{name} '{value}': give a frame number (e.g. 120) or seconds (e.g. 4s or 2.5s)")


def _check_output(output: Path, overwrite: bool) -> None:
    if output.suffix.lower() != ".npz":
        raise OutputError(f"{output}: the motion file must end in .npz")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name ending in .npz")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: already exists; pass --overwrite to replace it")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{output}: the folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".staf-write-test.", dir=parent)
    except OSError as err:
        raise OutputError(f"{output}: cannot write in {parent} ({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _detect(info: VideoInfo, start: int, end: int | None, opts: ReconstructOptions,
            progress: Progress) -> tuple[np.ndarray, np.ndarray, Track]:
    """Pass 1: frame numbers, times and the person's track over [start, end)."""
    expected = (end if end is not None else info.frame_count) - start
    progress.stage("detect", max(expected, 0))
    indices, times, boxes, ran = [], [], [], []
    with PoseDetector() as detector:
        for frame in iter_frames(info, start=start, end=end, max_side=opts.detect_max_side):
            k = frame.index - start
            run = k % opts.detect_every == 0
            det = detector(frame.rgb) if run else None
            scale = info.width / frame.rgb.shape[1]
            indices.append(frame.index)
            times.append(frame.time)
            boxes.append(None if det is None else det.box * scale)
            ran.append(run)
            progress.advance()
    if not indices:
        where = f"from frame {start}" if start else "in this clip"
        raise BadInput(f"{info.path}: no frames {where} (the clip has {info.frame_count}); check --start/--end")
    fps = float(info.fps)
    track = build_track(boxes, np.array(ran), max_gap=max(0, round(opts.max_gap * fps)),
                        smooth_sigma=opts.smooth * fps)
    return np.array(indices, np.int64), np.array(times, np.float64), track


def _run_segments(models: StafModels, info: VideoInfo, start: int, track: Track, opts: ReconstructOptions,
                  progress: Progress, rotmat: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor) -> None:
    """Pass 2: fill rotmat (N, 24, 3, 3), betas (N, 10), cam (N, 3) for the frames with the person,
    one segment at a time."""
    n_frames = rotmat.shape[0]
    frames = iter_frames(info, start=start, end=start + n_frames)
    runner = models.runner(windows_per_batch=opts.batch_size, keep_vertices=False)
    progress.stage("reconstruct", n_frames)
    done = 0

    def chunks(first: int, last: int) -> Iterator[torch.Tensor]:
        # Runs inside the runner's inference mode and the caller's autocast.
        nonlocal done
        batch: list[np.ndarray] = []
        for frame in frames:
            k = frame.index - start
            progress.advance(k + 1 - done)
            done = k + 1
            if k < first:
                continue
            batch.append(crop_person(frame.rgb, track.box[k], crop_scale=opts.crop_scale))
            if len(batch) == opts.batch_size or k == last - 1:
                yield models.features(normalise(np.stack(batch)))
                batch = []
            if k == last - 1:
                return

    with autocast_for(models.device, opts.precision):
        for first, last in track.segments:
            for part in runner.stream(chunks(first, last)):
                rows = slice(first + part.start, first + part.start + len(part))
                rotmat[rows], betas[rows], cam[rows] = (t.float().cpu() for t in (part.rotmat, part.betas, part.cam))
    if n_frames > done:
        progress.advance(n_frames - done)


def _resolve_precision(opts: ReconstructOptions, device: torch.device) -> None:
    if opts.precision not in PRECISION_DTYPES:
        raise BadInput(f"--precision '{opts.precision}': use fp32, fp16 or bf16")
    if opts.precision == "fp16" and device.type != "cuda":
        raise BadInput("--precision fp16 needs a CUDA device; on CPU use fp32 (or bf16 where the CPU supports it)")


def _assemble(models: StafModels, info: VideoInfo, frame_index: np.ndarray, frame_time: np.ndarray, track: Track,
              start: int, assets: Path, smpl_path: Path, opts: ReconstructOptions, progress: Progress) -> Motion:
    """Run pass 2 and put the motion file's contents together."""
    smpl = load_smpl_data(smpl_path)
    n = len(frame_index)
    rotmat, betas, cam = torch.zeros(n, 24, 3, 3), torch.zeros(n, 10), torch.zeros(n, 3)
    _run_segments(models, info, start, track, opts, progress, rotmat, betas, cam)
    present = track.present
    focal = opts.focal or default_focal(info.width, info.height)
    person = build_person(
        0, frame=frame_index[present], time=frame_time[present],
        pose=rotmat_to_axis_angle(rotmat[present]).numpy(), betas=betas[present].numpy(),
        cam_crop=cam[present].numpy(), box=track.box[present], flags=track.flags[present], smpl=smpl,
        width=info.width, height=info.height, focal=focal, crop_scale=opts.crop_scale)
    kind = "stand-in" if (assets / STANDIN_MARKER).is_file() else "real"
    meta = make_meta(
        source={**info.as_meta(), "frame_count": max(info.frame_count, int(frame_index[-1]) + 1)},
        frame_range=(start, int(frame_index[-1]) + 1),
        assets={"kind": kind, "checkpoint_sha256": _file_sha256(assets / STAF_FILE), "smpl": smpl_path.name},
        focal=focal, crop_scale=opts.crop_scale, focal_rule="given" if opts.focal else "image diagonal",
        options={k: v for k, v in asdict(opts).items() if k not in ("progress", "overwrite", "assets")}
        | {"device": str(models.device)},
    )
    return motion_from_people(meta, frame_index, frame_time, smpl, [person])


def reconstruct(video: str | Path, output: str | Path, options: ReconstructOptions | None = None) -> Motion:
    """Turn ``video`` into the motion file ``output``; returns what was written.

    Raises StafError subclasses with one-line messages (bad input, missing assets, nobody found,
    output problems, Cancelled on SIGINT/SIGTERM); ``output`` is then left untouched.
    """
    opts = options or ReconstructOptions()
    video, output = Path(video), Path(output)
    if (opts.batch_size is not None and opts.batch_size < 1) or opts.detect_every < 1:
        raise BadInput("--batch-size and --detect-every must be at least 1")
    if opts.person != 0:
        raise BadInput(f"--person {opts.person}: this version tracks one person (0, the most prominent)")
    _check_output(output, opts.overwrite)
    with cancellable():
        info = probe_video(video)
        fps = float(info.fps)
        start = parse_time(opts.start, fps, "start") or 0
        end = parse_time(opts.end, fps, "end")
        if end is not None and end <= start:
            raise BadInput(f"--end ({end}) must come after --start ({start})")
        if info.frame_count and start >= info.frame_count:
            raise BadInput(f"--start {start} is past the clip's end ({info.frame_count} frames)")
        assets = resolve_assets_dir(opts.assets)
        models = load_models(assets, device=opts.device)
        _resolve_precision(opts, models.device)
        if opts.batch_size is None:  # GPUs need large batches to be busy; CPUs gain nothing from them
            opts = replace(opts, batch_size=128 if models.device.type == "cuda" else 16)
        smpl_path = next(p for p in smpl_file_candidates(assets) if p.is_file())
        progress = Progress(opts.progress)
        try:
            frame_index, frame_time, track = _detect(info, start, end, opts, progress)
            if not track.segments:
                where = "the clip" if end is None and not start else "the chosen range"
                raise NoPersonFound(f"{video}: nobody was found in {where}; the person must be visible at a "
                                    "reasonable size")
            motion = _assemble(models, info, frame_index, frame_time, track, start, assets, smpl_path, opts,
                               progress)
            _check_output(output, opts.overwrite)
            write_motion(output, motion)
        finally:
            progress.close()
        progress.message(stage="done", output=str(output.resolve()), frames=len(frame_index),
                         person_frames=len(motion.people[0]))
    if opts.preview:
        from core.preview import write_preview

        write_preview(Path(opts.preview), motion, info, overwrite=opts.overwrite)
    return motion
