"""Headless batch mode: video (or motion file) -> rigged character -> FBX, BVH, glTF and/or .blend.

    blender -b -P scripts/batch.py -- VIDEO --fbx OUT.fbx [--blend OUT.blend] [--preset unity|unreal|generic]
    python scripts/batch.py VIDEO --fbx OUT.fbx ...              (where the bpy module is installed)
    python scripts/batch.py --motion FILE.npz --fbx OUT.fbx ...  (an existing motion file, no engine)
    python scripts/batch.py VIDEO --bvh OUT.bvh --gltf OUT.glb   (BVH: one skeleton per file; glTF: .glb or .gltf)
    python scripts/batch.py VIDEO --retarget HERO.fbx --fbx OUT.fbx [--mapping mixamo|FILE.json]  (your character)

Every person of the clip (``--person``/``--max-people`` choose whom the engine reconstructs,
``--people`` whom to import) becomes a character; the FBX holds them all, or with ``--split`` one
file per person (``OUT_p<ID>.fbx``). Given a folder, every clip in it (``--motion DIR``: every
.npz) is processed and reported; the outputs are then folders. It never prompts, blocks on the
engine while printing its progress, and on any failure prints one ``error:`` line on stderr and
exits non-zero (the first failure's code).
Outputs are written atomically at the end of each clip: a failed clip writes nothing.

Argument handling and checks need no bpy; :func:`run` imports the Blender side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .batch_outputs import check_outputs_absent
from .batch_retarget import RetargetOptions, add_retarget_args, retarget_options
from .engine import DEVICE_CHOICES, PRECISION_CHOICES, EngineOptions, resolve_interpreter
from .errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_OUTPUT, EXIT_USAGE, AddonError
from .fbx_presets import PRESET_NAMES
from .files import check_writable, publish
from .people import parse_people
from .plan import ROOT_MOTION_CHOICES, ImportOptions
from .progress import Progress

__all__ = [
    "VIDEO_SUFFIXES",
    "BatchJob",
    "BatchPlan",
    "build_parser",
    "interpreter_candidates",
    "main",
    "plan_batch",
    "run",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def build_parser(prog: str = "scripts/batch.py") -> argparse.ArgumentParser:
    """The batch command line."""
    p = _Parser(prog=prog, description="Video or motion file -> rigged, animated character -> FBX / .blend.")
    p.add_argument("input", nargs="?", type=Path, help="a video, or a folder of videos")
    p.add_argument("--motion", type=Path, help="a motion file (.npz) or a folder of them, instead of a video")
    p.add_argument("--fbx", type=Path, help="FBX to write (a folder when the input is a folder)")
    p.add_argument("--blend", type=Path, help=".blend to write (a folder when the input is a folder)")
    p.add_argument("--bvh", type=Path, help="BVH to write, one skeleton per file: OUT_p<ID>.bvh beside it for each "
                   "of several people (a folder when the input is a folder)")
    p.add_argument("--gltf", type=Path, help="glTF to write: OUT.glb, or OUT.gltf with OUT.bin; every character, one "
                   "animation each (a folder of .glb when the input is a folder)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="unity", help="FBX preset (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--split", action="store_true", help="one FBX (glTF, BVH) per person, OUT_p<ID>.fbx beside --fbx "
                   "OUT.fbx (default: every character in one FBX or glTF)")
    p.add_argument("--max-influences", type=_influences_arg, metavar="N", help="bone influences per vertex the FBX "
                   "keeps, the strongest (0: all; default: the preset's, 4 for unity and unreal)")
    g = p.add_argument_group("character")
    g.add_argument("--root", choices=ROOT_MOTION_CHOICES, default="auto", help="root motion (default: %(default)s: "
                   "world where the motion file has a ground plane, else camera)")
    g.add_argument("--no-foot-lock", action="store_true", help="key the pose as estimated, not the motion file's "
                   "foot-locked pose")
    g.add_argument("--no-ground-plane", action="store_true", help="no plane at z = 0 for a file with a ground plane")
    g.add_argument("--people", default="all", type=_people_arg,
                   help="person ids to import from the motion file, e.g. '0,2' (default: all)")
    g.add_argument("--shape-keys", action="store_true", help="one shape key per body-shape coefficient")
    g.add_argument("--no-camera", action="store_true", help="do not add the clip's camera to the .blend")
    g.add_argument("--name", default="", help="base name of the new objects (default: the clip's name)")
    g = p.add_argument_group("engine (video input)")
    g.add_argument("--python", default="", help="Python with the engine installed (default: $STAF_PYTHON, this "
                   "Python, or the checkout's .venv)")
    g.add_argument("--assets", default="", help="asset folder (default: the engine's)")
    g.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)")
    g.add_argument("--start", type=int, help="first frame")
    g.add_argument("--end", type=int, help="frame after the last one")
    g.add_argument("--person", default=None, type=_people_arg,
                   help="which tracks the engine reconstructs: 'all' or ids such as '0,2' (ids by prominence, "
                   "0 = the most on screen; default: all)")
    g.add_argument("--max-people", type=_max_people_arg, help="keep at most the N most prominent tracks "
                   "(default: no limit)")
    g.add_argument("--batch-size", type=int, help="frames per batch")
    g.add_argument("--precision", default="", choices=("", *PRECISION_CHOICES),
                   help="fp32, fp16 (CUDA) or bf16; default: the engine's auto")
    g.add_argument("--keep-motion", type=Path, help="also keep the motion file here (a folder for a folder input)")
    add_retarget_args(p)
    return p


@dataclass(frozen=True)
class BatchJob:
    """One clip: its input and where each output goes (None: not written)."""

    source: Path
    is_video: bool
    fbx: Path | None
    blend: Path | None
    keep_motion: Path | None
    bvh: Path | None = None
    gltf: Path | None = None


@dataclass(frozen=True)
class BatchPlan:
    """Every clip to process, with the shared options."""

    jobs: tuple[BatchJob, ...]
    import_options: ImportOptions
    engine: EngineOptions
    preset: str
    overwrite: bool
    python: str = ""
    folder_outputs: tuple[Path, ...] = field(default_factory=tuple)
    split: bool = False
    max_influences: int | None = None  # None: the preset's
    retarget: RetargetOptions | None = None  # onto the user's character


def _people_arg(text: str) -> tuple[int, ...] | None:
    """argparse type: 'all' -> None, '0,2' -> (0, 2); anything else is a one-line usage error."""
    try:
        return parse_people(text)
    except AddonError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _max_people_arg(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"max people must be a whole number of at least 1, not '{text}'")
    return int(text)


def _influences_arg(text: str) -> int:
    """argparse type: a whole number, 0 meaning all."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"max influences must be a whole number (0: all), not '{text}'")
    return int(text)


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise AddonError(f"{folder} is a file: with a folder as input, outputs are folders", EXIT_OUTPUT)
    existing = folder if folder.exists() else next((p for p in folder.parents if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK | os.X_OK):
        raise AddonError(f"cannot write into {folder}: permission denied", EXIT_OUTPUT)


def plan_batch(args: argparse.Namespace) -> BatchPlan:
    """Check the arguments and list the clips; raises AddonError (nothing has been written)."""
    if (args.input is None) == (args.motion is None):
        raise AddonError("give either a video (or folder of videos) or --motion FILE_OR_FOLDER", EXIT_USAGE)
    if all(target is None for target in (args.fbx, args.blend, args.bvh, args.gltf)):
        raise AddonError("nothing to write: give --fbx, --bvh, --gltf and/or --blend", EXIT_USAGE)
    is_video = args.motion is None
    source = Path(args.input if is_video else args.motion).expanduser().absolute()
    camera = not args.no_camera and args.root in ("auto", "camera", "world")  # where the overlay camera fits
    options = ImportOptions(root_motion=args.root, people=args.people, shape_keys=args.shape_keys,
                            camera=camera, match_scene=True, name=args.name, foot_lock=not args.no_foot_lock,
                            ground_plane=not args.no_ground_plane)
    engine = EngineOptions(assets=args.assets, device=args.device, start=args.start, end=args.end,
                           people=args.person, max_people=args.max_people, batch_size=args.batch_size,
                           precision=args.precision)
    if args.split and args.fbx is None and args.bvh is None and args.gltf is None:
        raise AddonError("--split needs --fbx, --bvh or --gltf", EXIT_USAGE)
    outputs = {"fbx": args.fbx, "blend": args.blend, "keep_motion": args.keep_motion, "bvh": args.bvh,
               "gltf": args.gltf}
    outputs = {k: None if v is None else Path(v).expanduser().absolute() for k, v in outputs.items()}
    suffixes = {"fbx": ".fbx", "blend": ".blend", "keep_motion": ".npz", "bvh": ".bvh", "gltf": ".glb"}
    if args.keep_motion is not None and not is_video:
        raise AddonError("--keep-motion only applies to a video input", EXIT_USAGE)
    retarget = retarget_options(args)

    if source.is_dir():
        if args.name:
            raise AddonError("--name applies to a single clip, not a folder", EXIT_USAGE)
        wanted = VIDEO_SUFFIXES if is_video else (".npz",)
        clips = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in wanted)
        if not clips:
            raise AddonError(f"{source}: no {'videos' if is_video else 'motion files (.npz)'} in this folder")
        for folder in (p for p in outputs.values() if p is not None):
            _check_folder(folder)
        jobs = []
        for clip in clips:
            targets = {k: None if v is None else v / f"{clip.stem}{suffixes[k]}" for k, v in outputs.items()}
            for key, target in targets.items():
                if target is not None and not args.overwrite:
                    check_outputs_absent(key, target, args, is_video)
            jobs.append(BatchJob(clip, is_video, targets["fbx"], targets["blend"], targets["keep_motion"],
                                 targets["bvh"], targets["gltf"]))
        folders = tuple(p for p in outputs.values() if p is not None)
    else:
        if not source.is_file():
            raise AddonError(f"{source}: no such file or folder")
        for key, target in outputs.items():
            if target is not None:
                check_writable(target, suffix=(".glb", ".gltf") if key == "gltf" else suffixes[key])
                if key == "gltf" and target.suffix.lower() == ".gltf":
                    check_writable(target.with_suffix(".bin"), suffix=".bin")
                if not args.overwrite:
                    check_outputs_absent(key, target, args, is_video)
        jobs = [BatchJob(source, is_video, outputs["fbx"], outputs["blend"], outputs["keep_motion"], outputs["bvh"],
                         outputs["gltf"])]
        folders = ()
    return BatchPlan(tuple(jobs), options, engine, args.preset, args.overwrite, args.python, folders, args.split,
                     args.max_influences, retarget)


def interpreter_candidates() -> list[str]:
    """Interpreters tried for the engine when --python is not given, in order."""
    found = [os.environ.get("STAF_PYTHON", ""), _installed_engine(), sys.executable]
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "core").is_dir():
        found.append(str(checkout / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")))
    return [c for c in found if c]


def _installed_engine() -> str:
    """The engine the add-on's Install Engine made, where this Python has bpy ("" otherwise)."""
    try:
        from .preferences import interpreter_candidates as installed
    except ImportError:  # no bpy: planning or testing without Blender
        return ""
    return next(iter(installed()[:-1]), "")


class _Printer:
    """Progress lines for one clip, at most one a second unless the stage changes."""

    def __init__(self, label: str, out: Callable[[str], None]) -> None:
        self.label, self.out, self.stage, self.last = label, out, "", 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.stage != self.stage or now - self.last >= 1.0 or progress.done == progress.total:
            self.out(f"{self.label}: {progress.describe()}")
            self.stage, self.last = progress.stage, now


def _reconstruct(job: BatchJob, plan: BatchPlan, python: str, out: Callable[[str], None]):
    """Run the engine on one video; returns the open Reconstruction (its motion file inside)."""
    from .session import Reconstruction, ReconstructRequest

    run = Reconstruction(ReconstructRequest(job.source, python, plan.engine, job.keep_motion))
    printer = _Printer(job.source.name, out)
    try:
        while not run.done():
            progress = run.poll()
            if progress is not None:
                printer(progress)
            time.sleep(0.1)
        progress = run.poll()
        if progress is not None:
            printer(progress)
    except KeyboardInterrupt:
        run.cancel()
        run.job.wait(run.job.grace + 1.0)
        run.close()
        raise AddonError("cancelled", EXIT_CANCELLED) from None
    result = run.result()
    if not result.ok:
        run.close()
        raise AddonError(result.message, EXIT_CANCELLED if result.cancelled else result.returncode)
    return run


def _process(job: BatchJob, plan: BatchPlan, python: str, out: Callable[[str], None]) -> str:
    import bpy

    from .batch_outputs import stage_outputs
    from .rig import import_motion_file

    run = _reconstruct(job, plan, python, out) if job.is_video else None
    staged: list[tuple[Path, Path]] = []  # (temporary file, target)
    try:
        motion = run.job.output if run is not None else job.source
        options = plan.import_options
        if not options.name:
            options = replace(options, name=job.source.stem)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        result = import_motion_file(bpy.context, motion, options)
        for note in result.notes:
            out(f"note   {job.source.name}: {note}")
        out(f"root   {job.source.name}: root motion {result.root_motion}"
            + (f"; {result.world}" if result.world else ""))
        rigs = list(result.armatures)
        if plan.retarget is not None:
            from .batch_retarget import retarget_characters
            rigs = retarget_characters(bpy.context, rigs, plan.retarget, out=lambda line: out(f"retgt  {line}"))
        stage_outputs(bpy.context, job, plan, rigs, staged, out)
        kept = None
        if run is not None and job.keep_motion is not None:
            job.keep_motion.parent.mkdir(parents=True, exist_ok=True)
            kept = run.keep()
        for tmp, target in staged:
            publish(tmp, target)
        written = [str(target) for _, target in staged] + ([str(kept)] if kept is not None else [])
        staged.clear()
        people = len(result.armatures)
        return f"{people} character{'s' if people != 1 else ''} -> {', '.join(written)}"
    except RuntimeError as err:  # a Blender operator that failed (saving the .blend)
        raise AddonError(f"Blender failed: {' '.join(str(err).split())}", EXIT_FAILED) from None
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if run is not None:
            run.close()


def run(plan: BatchPlan, *, out: Callable[[str], None] = print,
        err: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> int:
    """Process every clip of ``plan`` (needs bpy); returns the exit code."""
    python = ""
    if any(job.is_video for job in plan.jobs):
        try:
            python = resolve_interpreter(plan.python, interpreter_candidates())
        except AddonError as error:
            err(f"error: {error}")
            return error.exit_code
    results: list[tuple[BatchJob, int, str, float]] = []
    for job in plan.jobs:
        start = time.monotonic()
        try:
            message = _process(job, plan, python, out)
            results.append((job, 0, message, time.monotonic() - start))
        except AddonError as error:
            results.append((job, error.exit_code, str(error), time.monotonic() - start))
            err(f"error: {job.source.name}: {error}")
            if error.exit_code == EXIT_CANCELLED:
                break
    for job, code, message, seconds in results:
        out(f"{'ok' if code == 0 else 'FAILED':<7}{job.source.name}: {message} ({seconds:.1f} s)")
    failed = [code for _, code, _, _ in results if code != 0]
    if len(results) > 1:
        out(f"{len(results) - len(failed)} of {len(plan.jobs)} clips done")
    return failed[0] if failed else 0


def main(argv: Sequence[str] | None = None, prog: str = "scripts/batch.py") -> int:
    """Parse, check, run; every failure is one ``error:`` line on stderr and a non-zero exit code."""
    args = build_parser(prog).parse_args(argv)
    try:
        plan = plan_batch(args)
    except AddonError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return run(plan)
