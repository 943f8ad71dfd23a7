"""A batch run: check everything, plan the clips, run them on a local pool or a Ray cluster, write
the summary. Nothing starts until every option, the output folder and (locally) the assets and the
device have been checked; a refused run raises a StafError and writes nothing."""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.batch.inputs import expand_inputs
from core.batch.plan import Clip, check_out_dir, plan_clips
from core.batch.summary import ClipProgress, Row, exit_code, write_summary
from core.batch.worker import TEST_KILL_ENV, ClipTask, ConvertTask, Outcome
from core.errors import EXIT_CANCELLED, EXIT_INTERNAL, BadInput
from core.progress import ProgressMode
from core.reconstruct import ReconstructOptions, validate_options

__all__ = ["BatchConfig", "Book", "default_workers", "report", "run_batch"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "batch.py"


GIB_PER_WORKER = 2  # a CPU worker peaks near 1 GiB with the models, its decoding process adds ~0.5 GiB


def default_workers() -> int:
    """Local workers when --workers is not given: one per core (one torch thread each; on 2 cores two
    such workers did 2.0x the clips per hour of one with two threads, scripts/bench_batch.py), fewer
    when the memory would not hold them (GIB_PER_WORKER each), at least one."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): count cores only
        return cores
    return max(1, min(cores, int(memory // GIB_PER_WORKER)))


@dataclass(frozen=True)
class BatchConfig:
    """Everything ``python -m core batch`` is told. ``ray``: None for the local pool, "" for Ray with
    ``ray.init()``'s own choice (a running local cluster, else a new one), else a cluster address.
    ``options``: the reconstruct options every clip starts from (a manifest row overrides some)."""

    inputs: tuple[str, ...]
    out: Path
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    recursive: bool = False
    overwrite: bool = False
    workers: int | None = None
    ray: str | None = None
    cpus_per_clip: float = 1.0
    gpus_per_clip: float = 1.0
    fbx: bool = False
    blend: bool = False
    blender: str | None = None
    preset: str = "unity"
    progress: ProgressMode = "auto"


class Book:
    """The run's bookkeeping, shared by both backends: rows, which conversion follows which clip,
    the progress display. Backends call ``clip_done``/``convert_done``/``lost`` as outcomes arrive."""

    def __init__(self, clips: list[Clip], config: BatchConfig, blender: tuple[str, ...]) -> None:
        self.clips = clips
        self.config = config
        self.rows = [Row.planned(c) for c in clips]
        self._blender = blender
        self._open = {c.index for c in clips if c.status == "todo"}
        self.progress = ClipProgress(len(clips), config.progress)
        self.initial_conversions: list[ConvertTask] = []
        for c in clips:
            if c.status == "skipped":
                task = self._conversion(c, redo=config.overwrite)
                if task is None:
                    self.progress.finished(self.rows[c.index])
                else:
                    self._open.add(c.index)
                    self.initial_conversions.append(task)
            elif c.status == "failed":
                self.progress.finished(self.rows[c.index])

    def clip_tasks(self, threads: int, test_kill: str | None = None) -> list[ClipTask]:
        """A reconstruction task for every clip still to do."""
        return [ClipTask(c.index, str(c.source), str(c.output), replace(c.options, overwrite=c.redo), threads,
                         test_kill=test_kill) for c in self.clips if c.status == "todo"]

    def _conversion(self, clip: Clip, *, redo: bool) -> ConvertTask | None:
        targets = [("--fbx", clip.fbx), ("--blend", clip.blend)]
        targets = [(flag, p) for flag, p in targets if p is not None]
        if not targets or (not redo and all(p.is_file() for _, p in targets)):
            return None
        args = ["--motion", str(clip.output), *(a for flag, p in targets for a in (flag, str(p))),
                "--preset", self.config.preset, "--overwrite"]
        exe = self._blender[0]
        if Path(exe).name.lower().startswith("blender"):
            command = (*self._blender, "-b", "--factory-startup", "-P", str(SCRIPT), "--", *args)
        else:
            command = (*self._blender, str(SCRIPT), *args)
        return ConvertTask(clip.index, command, tuple(str(p) for _, p in targets))

    def _finish(self, index: int) -> None:
        self._open.discard(index)
        self.progress.finished(self.rows[index])

    def clip_done(self, outcome: Outcome, attempts: int | None = 1) -> ConvertTask | None:
        """Record a reconstruction's outcome; returns the conversion to run next, if any."""
        row = self.rows[outcome.index]
        row.status, row.seconds, row.attempts = outcome.status, row.seconds + outcome.seconds, attempts
        row.frames, row.people, row.error, row.exit_code = outcome.frames, outcome.people, outcome.error, \
            outcome.exit_code
        task = self._conversion(self.clips[outcome.index], redo=True) if outcome.status == "done" else None
        if task is None:
            self._finish(outcome.index)
        return task

    def convert_done(self, outcome: Outcome) -> None:
        """Record a conversion's outcome (a failed conversion fails the clip's row)."""
        row = self.rows[outcome.index]
        row.seconds += outcome.seconds
        if outcome.status == "failed":
            row.status, row.error, row.exit_code = "failed", outcome.error, outcome.exit_code
        self._finish(outcome.index)

    def lost(self, index: int, attempts: int | None, why: str, code: int = EXIT_INTERNAL) -> None:
        """A task that ended without an outcome (its worker died, or the run was cancelled)."""
        row = self.rows[index]
        row.status, row.error, row.exit_code, row.attempts = "failed", why, code, attempts
        self._finish(index)

    def cancel_open(self) -> None:
        """Mark every clip not finished yet as failed: cancelled (its output was not written)."""
        for index in sorted(self._open):
            self.lost(index, self.rows[index].attempts, "cancelled before this clip finished; nothing written",
                      EXIT_CANCELLED)


def _blender_command(config: BatchConfig) -> tuple[str, ...]:
    """The Blender (or bpy Python) to convert with; () when no conversion is asked."""
    if not (config.fbx or config.blend):
        return ()
    if not SCRIPT.is_file():
        raise BadInput(f"--fbx/--blend need the checkout's {SCRIPT.name} (not found at {SCRIPT})")
    choice = config.blender or os.environ.get("STAF_BLENDER", "")
    if not choice:
        root = SCRIPT.parents[1]
        found = [str(p) for p in (root / ".venv-bpy50/bin/python", root / ".venv-bpy45/bin/python") if p.is_file()]
        choice = found[0] if found else (shutil.which("blender") or "")
        if not choice:
            raise BadInput("--fbx/--blend: no Blender found; give --blender PATH (a Blender executable or a Python "
                           "with the bpy module, e.g. .venv-bpy50/bin/python from 'make blender-venvs')")
    path = shutil.which(choice) or (choice if os.access(choice, os.X_OK) and Path(choice).is_file() else None)
    if path is None:
        raise BadInput(f"--blender {choice}: not an executable file")
    return (str(Path(path).absolute()),)


def _check_local(config: BatchConfig) -> None:
    """The checks a local run can make before starting: assets present, device usable."""
    from core.assets import require_assets, resolve_assets_dir
    from core.model.load import BACKBONE_FILE, STAF_FILE, resolve_device

    require_assets(resolve_assets_dir(config.options.assets), [STAF_FILE, "SMPL_NEUTRAL.pkl", BACKBONE_FILE],
                   validate=False)
    device = resolve_device(config.options.device)
    if config.options.precision == "fp16" and device.type != "cuda":
        raise BadInput("--precision fp16 needs a CUDA device; on CPU use fp32 (or bf16 where the CPU supports it)")


def _check_config(config: BatchConfig) -> None:
    if not config.inputs:
        raise BadInput("give at least one video, folder, glob or manifest (.csv)")
    if config.workers is not None and config.workers < 1:
        raise BadInput(f"--workers {config.workers}: give at least 1")
    if not config.cpus_per_clip > 0 or not config.gpus_per_clip > 0:
        raise BadInput("--cpus-per-clip and --gpus-per-clip must be above 0")
    validate_options(config.options)


def _refuse_if_nothing_usable(clips: list[Clip]) -> None:
    """When no input leads to a clip that can run (a mistyped glob, a manifest of bad rows), the run
    is refused with one line before --out is created: a summary of failures alone would be noise.
    With at least one usable clip, the bad ones get their own rows and the rest run."""
    if any(c.status != "failed" for c in clips):
        return
    if not clips:
        raise BadInput("no inputs: give videos, folders, globs or CSV manifests")
    more = f" (and {len(clips) - 1} more clips that cannot run)" if len(clips) > 1 else ""
    err = BadInput(f"{clips[0].error}{more}; nothing was run")
    err.exit_code = clips[0].exit_code or err.exit_code
    raise err


def run_batch(config: BatchConfig) -> tuple[list[Row], int]:
    """Run every clip of ``config``; returns the summary rows and the exit code (0: none failed).

    Raises StafError before anything runs when the run is refused: a bad option, an output folder
    that cannot be written, missing assets, an unusable device or a Ray cluster that does not answer.
    """
    from core.cancel import cancellable, cancelled_behind, writes_after_cancel

    _check_config(config)
    if config.options.assets:  # workers (Ray's above all) may run in another folder: absolute paths
        config = replace(config, options=replace(config.options,
                                                 assets=str(Path(config.options.assets).expanduser().absolute())))
    blender = _blender_command(config)
    if config.ray is not None:
        from core.batch.ray_runner import check_address

        check_address(config.ray)  # an address that does not answer: refused before --out is created
    out = Path(config.out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        check_out_dir(out)  # says so
    entries = expand_inputs(config.inputs, recursive=config.recursive)
    clips = plan_clips(entries, out, config.options, overwrite=config.overwrite, fbx=config.fbx, blend=config.blend)
    _refuse_if_nothing_usable(clips)
    out = check_out_dir(out)
    todo = [c for c in clips if c.status == "todo"]
    cluster = None
    if config.ray is not None and (todo or config.fbx or config.blend):
        from core.batch.ray_runner import connect

        cluster = connect(config)  # raises (one line) before anything runs
    elif todo:
        _check_local(config)
    test_kill = os.environ.get(TEST_KILL_ENV) or None
    started = time.time()
    book = Book(clips, config, blender)
    meta = {"backend": "ray" if cluster else "local", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "out": str(out), "overwrite": config.overwrite,
            "options": {k: v for k, v in vars(config.options).items() if k not in ("progress", "overwrite")}}
    try:
        with cancellable():
            if cluster is not None:
                from core.batch.ray_runner import run_on_ray

                meta |= run_on_ray(book, cluster, test_kill)
            elif todo or book.initial_conversions:
                from core.batch.local import run_local

                workers = config.workers or default_workers()
                meta |= run_local(book, workers, test_kill)
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt) and cancelled_behind(err) is None:
            raise
        book.cancel_open()
        book.progress.close()
        with writes_after_cancel():
            write_summary(out, book.rows, meta | {"seconds": round(time.time() - started, 2), "cancelled": True})
        raise
    finally:
        if cluster is not None:
            cluster.close()
    book.progress.close()
    meta["seconds"] = round(time.time() - started, 2)
    write_summary(out, book.rows, meta)
    return book.rows, exit_code(book.rows)


def report(rows: list[Row], out: Path) -> None:
    """A few lines for the terminal: counts, and each failed clip's error."""
    failed = [r for r in rows if r.status == "failed"]
    counts = {s: sum(r.status == s for r in rows) for s in ("done", "skipped", "failed")}
    print(f"{len(rows)} clips: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
          f"summary in {out / 'batch_summary.csv'} and .json")
    for r in failed:
        named = Path(r.clip).name in r.error  # most errors name the file already
        print(f"failed: {r.error if named else f'{r.clip}: {r.error}'}", file=sys.stderr)
