"""What runs inside a worker process (local pool or Ray): one clip's reconstruction, or one Blender
conversion. Both return a :class:`Outcome` and never raise for a bad clip, so one bad clip cannot
stop the others; only a worker that dies (killed, crashed) ends a task without an outcome.

Models stay loaded between clips of the same worker process (``load_models`` is cached per process).
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from core.cancel import Cancelled
from core.errors import EXIT_CANCELLED, EXIT_INTERNAL, StafError
from core.reconstruct import ReconstructOptions

__all__ = ["TEST_KILL_ENV", "ClipTask", "ConvertTask", "Outcome", "convert_clip", "init_worker", "run_clip",
           "set_threads"]

#: Test-only: "CLIP_NAME,SECONDS,MARKER_FILE" makes the worker running the clip whose output stem is
#: CLIP_NAME kill itself (SIGKILL) SECONDS after it starts, once (MARKER_FILE records that it did).
TEST_KILL_ENV = "STAF_BATCH_TEST_KILL"


@dataclass(frozen=True)
class ClipTask:
    """One reconstruction: ``started`` (local pool only) is a file the worker creates first, so the
    pool can tell which clips were running when a worker died; ``threads``: torch threads."""

    index: int
    source: str
    output: str
    options: ReconstructOptions
    threads: int
    started: str | None = None
    test_kill: str | None = None


@dataclass(frozen=True)
class ConvertTask:
    """One Blender conversion of a motion file: ``command`` is the full command line to run."""

    index: int
    command: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What a task reports: "done" or "failed" (``error``: one line, ``exit_code`` from core.errors)."""

    index: int
    status: str
    seconds: float
    frames: int | None = None
    people: int | None = None
    error: str = ""
    exit_code: int = 0


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch in this process (workers share the machine's cores)."""
    import torch

    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def init_worker(threads: int) -> None:
    """Local pool initializer: thread count; Ctrl-C left to the parent (which stops the workers); a
    process group of its own, so that the pool can end whatever a dead worker left running (the
    engine's decoding process, a Blender) by killing the group."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgid(0, 0)
    set_threads(threads)


def _test_kill(task: ClipTask) -> None:
    """Test-only hook (see TEST_KILL_ENV): a timer that kills this process mid-clip, the first time."""
    name, seconds, marker = task.test_kill.split(",", 2)
    if Path(task.output).stem != name or Path(marker).exists():
        return
    Path(marker).write_text(str(os.getpid()))
    timer = threading.Timer(float(seconds), os.kill, (os.getpid(), signal.SIGKILL))
    timer.daemon = True
    timer.start()


def run_clip(task: ClipTask) -> Outcome:
    """Reconstruct one clip in this worker process (atomic output); a bad clip becomes a "failed"
    outcome. Asked to stop (SIGTERM), the process exits: run it only in a worker."""
    if task.started:
        Path(task.started).write_text(str(os.getpid()))
    start = time.perf_counter()
    cancelled = False
    try:
        set_threads(task.threads)
        if task.test_kill:
            _test_kill(task)
        from core.reconstruct import reconstruct

        motion = reconstruct(task.source, task.output, replace(task.options, progress="none", preview=None))
    except Cancelled:
        cancelled = True
    except StafError as err:
        return Outcome(task.index, "failed", time.perf_counter() - start, error=str(err), exit_code=err.exit_code)
    except Exception as err:  # an engine bug must not stop the other clips: report it on this clip's row
        line = " ".join(f"{type(err).__name__}: {err}".split())
        return Outcome(task.index, "failed", time.perf_counter() - start, error=f"internal error: {line}",
                       exit_code=EXIT_INTERNAL)
    if cancelled:
        # SIGTERM: the pool is stopping this worker (a neighbour died, or the run is cancelled); its
        # temporary file is gone, and with the exception gone, so are reconstruct's decoding process
        # and queues. Leave now: a worker that returned would take the next queued clip.
        gc.collect()
        os._exit(EXIT_CANCELLED)
    return Outcome(task.index, "done", time.perf_counter() - start, frames=len(motion.frame_index),
                   people=len(motion.people))


def convert_clip(task: ConvertTask) -> Outcome:
    """Run the Blender batch script on one motion file; its last ``error:`` line becomes the error."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(task.command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        return Outcome(task.index, "failed", time.perf_counter() - start,
                       error=f"blender: cannot run {task.command[0]} ({err.strerror or err})", exit_code=EXIT_INTERNAL)
    seconds = time.perf_counter() - start
    missing = [o for o in task.outputs if not Path(o).is_file()]
    if proc.returncode == 0 and not missing:
        return Outcome(task.index, "done", seconds)
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    why = (errors or lines or [f"exit code {proc.returncode}"])[-1]
    if proc.returncode == 0:
        why = f"it wrote no {', '.join(missing)}"
    return Outcome(task.index, "failed", seconds, error=f"blender conversion failed: {why}", exit_code=EXIT_INTERNAL)
