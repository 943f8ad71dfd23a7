"""Running the engine as a subprocess (no bpy): command line, interpreter checks, a pollable job.

The add-on never imports torch. It runs ``[python, "-m", "core", "reconstruct", VIDEO, "-o", OUT,
"--progress", "json", ...]`` with a Python interpreter that has the engine installed, reads the
progress lines while it runs, and can cancel it (SIGINT to its process group, SIGKILL if it has
not stopped after a grace period). :class:`EngineJob` never blocks, so a modal operator can poll
it from a timer; :func:`run_engine` blocks, for batch mode and scripts.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_CANCELLED, EXIT_FAILED, EXIT_MISSING, AddonError
from .people import PEOPLE_HELP, people_spec
from .progress import Progress, engine_failure_message, parse_progress_line

__all__ = [
    "DEVICE_CHOICES",
    "PRECISION_CHOICES",
    "EngineJob",
    "EngineOptions",
    "EngineResult",
    "check_interpreter",
    "reconstruct_command",
    "resolve_interpreter",
    "run_engine",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("fp32", "fp16", "bf16")
ENGINE_MODULE = "core"
_PROBE = """
import importlib.util, sys
def found(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
missing = [label for label, name in (("core", "core.cli"), ("torch", "torch")) if not found(name)]
print(" ".join(missing))
sys.exit(1 if missing else 0)
"""


@dataclass(frozen=True)
class EngineOptions:
    """Options passed to ``python -m core reconstruct``; empty/None values leave the engine's default.

    assets: asset folder; device: auto, cpu, cuda or cuda:N; start/end: frame range (clip frames,
    end exclusive); people: track ids to reconstruct (None: all; ids are ordered by prominence,
    0 = the most on screen), passed as ``--person all|0,2``; max_people: keep at most this many
    of the most prominent tracks (None: no limit, the flag is left out); batch_size: frames per
    batch; precision: fp32, fp16 or bf16 (CUDA).
    """

    assets: str = ""
    device: str = "auto"
    start: int | None = None
    end: int | None = None
    people: tuple[int, ...] | None = None
    max_people: int | None = None
    batch_size: int | None = None
    precision: str = ""

    def __post_init__(self) -> None:
        device = self.device.split(":", 1)
        if device[0] not in DEVICE_CHOICES or (len(device) == 2 and (device[0] != "cuda" or not device[1].isdigit())):
            raise AddonError(f"unknown device '{self.device}': use auto, cpu, cuda or cuda:N")
        if self.precision and self.precision not in PRECISION_CHOICES:
            raise AddonError(f"unknown precision '{self.precision}': use one of {', '.join(PRECISION_CHOICES)}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise AddonError(f"empty frame range: end {self.end} is not after start {self.start}")
        if self.people is not None and (not self.people or any(int(p) < 0 for p in self.people)):
            raise AddonError(f"{PEOPLE_HELP}, not '{people_spec(self.people)}'")
        if self.max_people is not None and self.max_people < 1:
            raise AddonError(f"max people must be at least 1 (or no limit), got {self.max_people}")
        if self.batch_size is not None and self.batch_size < 1:
            raise AddonError(f"batch size must be at least 1, got {self.batch_size}")


def reconstruct_command(python: str, video: str | Path, output: str | Path, options: EngineOptions) -> list[str]:
    """The engine's command line for ``video`` -> motion file ``output``, with JSON progress."""
    cmd = [python, "-m", ENGINE_MODULE, "reconstruct", str(video), "-o", str(output), "--progress", "json",
           "--device", options.device]
    if options.assets:
        cmd += ["--assets", options.assets]
    if options.start is not None:
        cmd += ["--start", str(options.start)]
    if options.end is not None:
        cmd += ["--end", str(options.end)]
    cmd += ["--person", people_spec(options.people)]
    if options.max_people is not None:
        cmd += ["--max-people", str(options.max_people)]
    if options.batch_size is not None:
        cmd += ["--batch-size", str(options.batch_size)]
    if options.precision:
        cmd += ["--precision", options.precision]
    # The output lies in a folder of our own; a stale file there is ours to replace.
    cmd.append("--overwrite")
    return cmd


def check_interpreter(python: str, *, env: Mapping[str, str] | None = None, timeout: float = 60.0) -> str:
    """Check that ``python`` exists and can import the engine; returns its full path.

    Raises AddonError (exit code 3) saying what is missing. Only looks the modules up (no torch
    import), so it takes a fraction of a second.
    """
    if not python:
        raise AddonError("no Python interpreter is set for the engine", EXIT_MISSING)
    path = shutil.which(python) if os.sep not in python else (python if os.path.isfile(python) else None)
    if path is None:
        raise AddonError(f"the engine's interpreter {python} does not exist", EXIT_MISSING)
    if not os.access(path, os.X_OK):
        raise AddonError(f"the engine's interpreter {python} is not executable", EXIT_MISSING)
    try:
        # Run where the engine will run (a neutral folder), so a 'core' folder in the cwd cannot fool it.
        proc = subprocess.run([path, "-c", _PROBE], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=None if env is None else dict(env), cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AddonError(f"the engine's interpreter {python} does not run ({err})", EXIT_MISSING) from None
    if proc.returncode != 0:
        missing = proc.stdout.strip() or "its modules"
        raise AddonError(f"the interpreter {python} cannot run the engine (missing: {missing}): install "
                         "staf-mocap in that environment or choose another interpreter", EXIT_MISSING)
    return path


def resolve_interpreter(configured: str, candidates: Sequence[str], *,
                        env: Mapping[str, str] | None = None) -> str:
    """The engine's interpreter: ``configured`` when set (and it must work), else the first of
    ``candidates`` (e.g. Blender's own Python) that can import the engine."""
    if configured:
        return check_interpreter(configured, env=env)
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            return check_interpreter(candidate, env=env)
        except AddonError:
            tried.append(candidate)
    where = f" (tried {', '.join(tried)})" if tried else ""
    raise AddonError(f"no Python interpreter with the engine{where}: set the path of an environment where "
                     "staf-mocap is installed", EXIT_MISSING)


@dataclass(frozen=True)
class EngineResult:
    """How a run ended: ``ok`` with the motion file at ``output``, or ``message`` saying why not."""

    ok: bool
    returncode: int
    cancelled: bool
    message: str
    output: Path


def _pump(stream, sink: Callable[[str], None]) -> None:
    with contextlib.closing(stream):
        for line in stream:
            sink(line)


class EngineJob:
    """The engine running in the background. Poll it; never blocks unless asked to ``wait``."""

    def __init__(self, command: Sequence[str], output: str | Path, *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None, grace: float = 3.0) -> None:
        self.command = list(command)
        self.output = Path(output)
        self.grace = grace
        self.latest: Progress | None = None
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stderr: deque[str] = deque(maxlen=200)
        self._cancel_at: float | None = None
        run_env = dict(os.environ if env is None else env)
        run_env.setdefault("PYTHONUNBUFFERED", "1")
        group = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        try:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                          bufsize=1, env=run_env, cwd=None if cwd is None else str(cwd), **group)
        except OSError as err:
            reason = err.strerror or str(err)
            raise AddonError(f"cannot start the engine ({self.command[0]}): {reason}", EXIT_MISSING) from None
        self._threads = [
            threading.Thread(target=_pump, args=(self._proc.stdout, self._lines.put), daemon=True),
            threading.Thread(target=_pump, args=(self._proc.stderr, self._stderr.append), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        """The engine's process id (also its process group on POSIX)."""
        return self._proc.pid

    @property
    def cancelling(self) -> bool:
        """Whether cancel() was called."""
        return self._cancel_at is not None

    def poll(self) -> Progress | None:
        """Read what the engine printed since the last call; returns the newest progress, if any.

        Also kills the engine if it ignored a cancel for longer than the grace period.
        """
        newest = None
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            progress = parse_progress_line(line)
            if progress is not None:
                newest = progress
        if newest is not None:
            self.latest = newest
        overdue = self._cancel_at is not None and time.monotonic() - self._cancel_at > self.grace
        if overdue and self._proc.poll() is None:
            self._signal(signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
        return newest

    def done(self) -> bool:
        """Whether the process has exited and all its output has been read."""
        return self._proc.poll() is not None and not any(t.is_alive() for t in self._threads)

    def cancel(self) -> None:
        """Ask the engine to stop (SIGINT to its process group; it exits with 130 within 2 s)."""
        if self._cancel_at is None:
            self._cancel_at = time.monotonic()
        if self._proc.poll() is None:
            self._signal(signal.SIGINT if os.name == "posix" else signal.CTRL_BREAK_EVENT)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited: nothing to stop
            if os.name == "posix":
                os.killpg(self._proc.pid, sig)
            else:
                self._proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (or ``timeout`` seconds); returns whether it is done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self.poll()
            time.sleep(0.02)
        self.poll()
        return True

    def result(self) -> EngineResult:
        """The outcome; only valid once :meth:`done` is true."""
        rc = self._proc.poll()
        if rc is None:
            raise RuntimeError("the engine is still running")
        for t in self._threads:
            t.join()
        self.poll()
        cancelled = self._cancel_at is not None or rc == EXIT_CANCELLED
        if rc == 0 and not cancelled:
            if self.output.is_file():
                return EngineResult(True, 0, False, "", self.output)
            return EngineResult(False, EXIT_FAILED, False, f"the engine finished but wrote no motion file at "
                                f"{self.output}", self.output)
        message = "cancelled" if cancelled else engine_failure_message(rc, list(self._stderr), self.command[0])
        return EngineResult(False, rc if rc > 0 else EXIT_FAILED, cancelled, message, self.output)

    def close(self) -> None:
        """Stop the engine if it still runs (kill after the grace period) and release the pipes."""
        if self._proc.poll() is None:
            self.cancel()
            if not self.wait(self.grace):
                self._signal(signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
                self._proc.wait()
        for t in self._threads:
            t.join(timeout=1.0)


def run_engine(command: Sequence[str], output: str | Path, *, on_progress: Callable[[Progress], None] | None = None,
               env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
               poll_interval: float = 0.1) -> Path:
    """Run the engine to the end (Ctrl+C cancels it); returns the motion file or raises AddonError
    carrying the engine's exit code and message."""
    job = EngineJob(command, output, env=env, cwd=cwd)
    try:
        while not job.done():
            progress = job.poll()
            if progress is not None and on_progress is not None:
                on_progress(progress)
            time.sleep(poll_interval)
        progress = job.poll()  # the lines printed just before it exited
        if progress is not None and on_progress is not None:
            on_progress(progress)
    except KeyboardInterrupt:
        job.cancel()
        job.wait(job.grace + 1.0)
        job.close()
        raise AddonError("cancelled", EXIT_CANCELLED) from None
    finally:
        if not job.done():
            job.close()
    result = job.result()
    if not result.ok:
        raise AddonError(result.message, EXIT_CANCELLED if result.cancelled else result.returncode)
    return result.output
