"""The engine's main job: a video in, a motion file out.

Everything streams, so memory does not depend on the clip's length. For everybody (the default)
the clip is decoded once: a worker process decodes, finds and follows people and cuts the crops of
frames whose boxes have settled (``core.pipeline``), while this process runs the backbone and
whole-clip STAF on them (``core.inference``). When ``--person``/``--max-people`` choose some
people, the people stage runs first (``core.people``) and a second decoding cuts only their crops.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from core.allocator import bound_primitive_caches, tune_allocator
from core.assets import STAF_FILE, folder_missing_message, resolve_assets_dir
from core.camera import CROP_SCALE, default_focal
from core.cancel import cancellable
from core.cleanup.stage import FILTERS, CleanupOptions, clean_up
from core.errors import AssetMissing, BadInput, OutputError
from core.motion_format import Motion
from core.paths import path_problem
from core.people.stage import PeopleOptions, parse_person_spec
from core.pipeline import DecodingWorker, detector_threads, iter_crops, network_threads
from core.progress import Progress, ProgressMode
from core.video import VideoInfo, probe_video

__all__ = ["ReconstructOptions", "check_output", "parse_time", "people_options", "reconstruct", "resolve_range",
           "validate_options"]

@dataclass(frozen=True)
class ReconstructOptions:
    """Everything ``reconstruct`` can be told (the CLI flags of ``python -m core reconstruct``).

    start/end: a frame number ("120") or a time in seconds ("4s", "2.5s"); end is exclusive.
    person: "all", one id ("0") or ids ("0,2"), ids ordered by prominence (0: the most on screen);
    max_people: keep at most this many of the most prominent. max_gap, smooth and min_track (tracks
    shorter than this are dropped) are in seconds; focal in pixels (default: the image diagonal).
    pipeline: "one-pass" decodes once, with decoding and detection in a worker process beside the
    networks, and reconstructs everybody; "two-pass" finds people first, then decodes again for the
    chosen ones only; "in-process" is one-pass without the worker; "auto": one-pass when everybody
    is wanted, two-pass when --person or --max-people choose some. world: the clean-up stage's
    ground plane, world frame and camera motion; foot_lock: planted feet kept fixed (with the world
    frame); filter: "none", "one-euro" or "savgol" on pose and translation (core/cleanup). solver:
    "staf", "landmarks" (BlazePose's landmarks fitted, no licensed weights needed) or "auto" (STAF
    when its weights are in the asset folder, else landmarks).
    """

    assets: str | None = None
    device: str = "auto"
    start: str | None = None
    end: str | None = None
    person: str = "all"
    max_people: int | None = None
    batch_size: int | None = None  # None: 16 on CPU, 128 on CUDA
    precision: str = "auto"
    detect_every: int = 2
    detect_max_side: int = 640
    max_gap: float = 0.5
    smooth: float = 0.05
    min_track: float = 1.0
    focal: float | None = None
    crop_scale: float = CROP_SCALE
    overwrite: bool = False
    progress: ProgressMode = "auto"
    preview: str | None = None
    pipeline: str = "auto"
    world: bool = True
    foot_lock: bool = True
    filter: str = "none"
    solver: str = "auto"


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


def resolve_range(info: VideoInfo, start_text: str | None, end_text: str | None) -> tuple[int, int | None]:
    """``--start``/``--end`` as frame numbers [start, end) of the clip (end None: to the clip's end)."""
    fps = float(info.fps)
    start = parse_time(start_text, fps, "start") or 0
    end = parse_time(end_text, fps, "end")
    if end is not None and end <= start:
        raise BadInput(f"--end ({end}) must come after --start ({start})")
    if info.frame_count and start >= info.frame_count:
        raise BadInput(f"--start {start} is past the clip's end ({info.frame_count} frames)")
    return start, end


def check_output(output: Path, overwrite: bool, suffix: str = ".npz", what: str = "the motion file") -> None:
    """Refuse an output that cannot be written (wrong suffix, a folder, exists without --overwrite,
    missing or unwritable folder) before any work starts."""
    if output.suffix.lower() != suffix:
        raise OutputError(f"{output}: {what} must end in {suffix}")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; give a file name ending in {suffix}")
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


def _check_not_input(output: Path, source: Path, what: str) -> None:
    """Refuse to write ``what`` over the clip being read (with --overwrite it would be replaced)."""
    same = output.resolve() == source.resolve()
    if not same and output.exists() and source.exists():
        try:
            same = os.path.samefile(output, source)
        except OSError:
            same = False
    if same:
        raise OutputError(f"{output}: is the input video; write {what} to another file")


def people_options(opts: ReconstructOptions, info: VideoInfo | None = None) -> PeopleOptions:
    """The people stage's settings within a run's options (with ``info``, and the world frame on,
    it also measures the camera's motion)."""
    focal = None if info is None or not opts.world else opts.focal or default_focal(info.width, info.height)
    return PeopleOptions(detect_every=opts.detect_every, detect_max_side=opts.detect_max_side,
                         max_gap=opts.max_gap, smooth=opts.smooth, min_track=opts.min_track, camera_focal=focal)


PRECISIONS = ("fp32", "fp16", "bf16")  # core.model.load.PRECISION_DTYPES's names, without torch
PIPELINES = ("auto", "one-pass", "two-pass", "in-process")
SOLVERS = ("auto", "staf", "landmarks")


def _pipeline_for(opts: ReconstructOptions, wanted: list[int] | None) -> str:
    if opts.pipeline != "auto":
        return opts.pipeline
    return "one-pass" if wanted is None and opts.max_people is None else "two-pass"


#: Numeric options: (flag, attribute, smallest, largest, unit). Whole numbers are ints; None may be
#: given for the optional ones. Ranges are what a run can use, not only what does not crash.
_NUMERIC = (
    ("--batch-size", "batch_size", 1, 4096, ""),
    ("--detect-every", "detect_every", 1, 300, " frames"),
    ("--max-people", "max_people", 1, 1000, ""),
    ("--max-gap", "max_gap", 0.0, 60.0, " s"),
    ("--smooth", "smooth", 0.0, 10.0, " s"),
    ("--min-track", "min_track", 0.0, 3600.0, " s"),
    ("--focal", "focal", 1.0, 1e6, " px"),
    ("crop_scale", "crop_scale", 1.0, 3.0, ""),
    ("detect_max_side", "detect_max_side", 64, 4096, " px"),
)


def validate_options(opts: ReconstructOptions) -> list[int] | None:
    """Check the options that need no file before any work starts; returns the wanted person ids
    (None: everybody)."""
    for flag, name, low, high, unit in _NUMERIC:
        value = getattr(opts, name)
        if value is None and name in ("batch_size", "max_people", "focal"):
            continue
        whole = isinstance(low, int)
        ok = isinstance(value, int) if whole else isinstance(value, int | float)
        if not ok or isinstance(value, bool) or not (low <= value <= high):  # also refuses NaN
            kind = "a whole number" if whole else "a number"
            raise BadInput(f"{flag} {value}: give {kind} from {low} to {high:g}{unit}")
    if opts.precision != "auto" and opts.precision not in PRECISIONS:
        raise BadInput(f"--precision '{opts.precision}': use auto, fp32, fp16 or bf16")
    if opts.pipeline not in PIPELINES:
        raise BadInput(f"--pipeline '{opts.pipeline}': use {', '.join(PIPELINES)}")
    if opts.solver not in SOLVERS:
        raise BadInput(f"--solver '{opts.solver}': use {', '.join(SOLVERS)}")
    if opts.filter not in FILTERS:
        raise BadInput(f"--filter '{opts.filter}': use {', '.join(FILTERS)}")
    return parse_person_spec(opts.person)


def reconstruct(video: str | Path, output: str | Path, options: ReconstructOptions | None = None) -> Motion:
    """Turn ``video`` into the motion file ``output``; returns what was written.

    Raises StafError subclasses with one-line messages (bad input, missing assets, nobody found,
    output problems, Cancelled on SIGINT/SIGTERM); ``output`` is then left untouched.
    """
    opts = options or ReconstructOptions()
    for what, value in (("the clip", video), ("the motion file", output), ("the preview", opts.preview),
                        ("the asset folder", opts.assets)):
        problem = None if value is None else path_problem(str(value))
        if problem:
            raise BadInput(f"{what} is {problem}: use a shorter name or another place")
    video, output = Path(video), Path(output)
    wanted = validate_options(opts)
    check_output(output, opts.overwrite)
    _check_not_input(output, video, "the motion file")
    if opts.preview:  # checked now: a refusal after the run would come with the motion file written
        preview = Path(opts.preview)
        if preview.suffix.lower() not in (".mp4", ".png"):
            raise OutputError(f"{preview}: a preview is an .mp4 video or a .png contact sheet")
        check_output(preview, opts.overwrite, preview.suffix.lower(), "the preview")
        _check_not_input(preview, video, "the preview")
        if preview.resolve() == output.resolve():
            raise OutputError(f"{preview}: the preview and the motion file must be different files")
    tune_allocator()  # big per-batch arrays reuse heap pages instead of faulting in new ones
    bound_primitive_caches()  # each new batch shape would otherwise keep its primitives (~27 MB at bf16)
    with cancellable(), contextlib.ExitStack() as running:
        info = probe_video(video)
        start, end = resolve_range(info, opts.start, opts.end)
        assets = resolve_assets_dir(opts.assets)
        solver, solver_rule = _solver_for(opts, assets)
        where = "the clip" if end is None and not start else "the chosen range"
        nobody = (f"{video}: nobody was found in {where}; people must be visible at a reasonable size "
                  "(at least about 1/8 of the frame's height)")
        if solver == "landmarks":
            motion = _landmark_run(info, start, end, wanted, opts, assets, output, where, nobody, solver_rule)
        else:
            pipeline, items = _crop_source(info, start, end, wanted, opts, running)
            from core.staf_run import staf_run  # torch loads (~2 s) while the worker decodes

            motion = staf_run(info, start, end, wanted, opts, assets, output, where, nobody, solver_rule,
                              pipeline, items)
    if opts.preview:
        from core.preview import write_preview

        write_preview(Path(opts.preview), motion, info, overwrite=opts.overwrite)
    return motion


def _crop_source(info: VideoInfo, start: int, end: int | None, wanted: list[int] | None, opts: ReconstructOptions,
                 running: contextlib.ExitStack) -> tuple[str, Iterable | None]:
    """The run's pipeline and, for the one-pass ones, where its crops come from. The decoding worker
    starts here, before torch and the weights load, so that the seconds those take go into decoding
    and finding people (the first crops come about two seconds of video behind)."""
    pipeline = _pipeline_for(opts, wanted)
    if pipeline == "one-pass":
        # Its detector threads follow this process's share of the cores (a batch worker's is a part).
        return pipeline, running.enter_context(DecodingWorker(info, start, end, people_options(opts, info),
                                                              crop_scale=opts.crop_scale,
                                                              threads=detector_threads(network_threads())))
    if pipeline == "in-process":
        return pipeline, iter_crops(info, start, end, people_options(opts, info), crop_scale=opts.crop_scale)
    return pipeline, None


def _solver_for(opts: ReconstructOptions, assets: Path) -> tuple[str, str]:
    """Which solver runs, and why (recorded in the motion file and said in the run's output). An
    asset folder named with --assets must exist (a typo must not silently switch solvers)."""
    if opts.assets and not assets.is_dir():
        raise AssetMissing(folder_missing_message(assets) + ".")
    if opts.solver != "auto":
        return opts.solver, f"--solver {opts.solver}"
    if (assets / STAF_FILE).is_file():
        return "staf", f"auto: STAF weights found in {assets}"
    return "landmarks", (f"auto: no STAF weights in {assets}, so the landmark solver ran (real motion from "
                         "BlazePose's landmarks; install the STAF weights for STAF's accuracy)")


def write_result(motion: Motion, camera, opts: ReconstructOptions, output: Path, extra: dict) -> Motion:
    """Clean up, record what ran, and write the motion file atomically."""
    from core.motion import write_motion  # with torch: only once a solver has run

    motion, cleanup = clean_up(motion, camera, CleanupOptions(opts.world, opts.foot_lock, opts.filter))
    motion.meta["world"] = cleanup.meta()
    motion.meta["options"].update(extra)
    check_output(output, opts.overwrite)
    write_motion(output, motion)
    return motion


def _landmark_run(info: VideoInfo, start: int, end: int | None, wanted: list[int] | None, opts: ReconstructOptions,
                  assets: Path, output: Path, where: str, nobody: str, solver_rule: str) -> Motion:
    from core.landmark_run import reconstruct_with_landmarks

    focal = opts.focal or default_focal(info.width, info.height)
    meta_options = {k: v for k, v in asdict(opts).items() if k not in ("progress", "overwrite", "assets")}
    progress = Progress(opts.progress)
    try:
        motion, camera = reconstruct_with_landmarks(
            info, start, end, people_options(opts, info), wanted, opts.max_people, focal, opts.crop_scale, assets,
            meta_options | {"device": "cpu", "precision": "fp32"}, progress, nobody, where,
            "given" if opts.focal else "image diagonal")
        motion = write_result(motion, camera, opts, output, {"solver": "landmarks", "solver_rule": solver_rule,
                                                       "precision_rule": "the landmark solver runs in fp32",
                                                       "pipeline": "two-pass"})
    finally:
        progress.close()
    progress.message(stage="done", output=str(output.resolve()), frames=len(motion.frame_index), solver="landmarks",
                     solver_rule=solver_rule, people=[{"id": p.person_id, "frames": len(p)} for p in motion.people])
    return motion


