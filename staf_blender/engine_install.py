"""Installing the engine into a managed virtual environment (no bpy).

Layout of the managed folder (the add-on's user folder, or any root given): one folder per
installed engine, ``engine-<pid>-<random>/`` (a virtual environment), and the pointer file
``engine.current`` naming the one in use. An install builds a NEW folder (venv, pip install of the
engine and torch, then ``python -m core doctor --json`` must run), and only then replaces the
pointer atomically (temporary file, rename) and removes the previous folder. Whatever fails or is
cancelled, the pointer still names the previous engine and the new folder is deleted. The engine
is always run as ``<env>/bin/python -m core``, so no script inside the folder needs its path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .engine import check_interpreter
from .errors import EXIT_CANCELLED, EXIT_MISSING, EXIT_OUTPUT, AddonError
from .pip_progress import (
    PYPI_PACKAGE,
    TORCH_INDEXES,
    InstallProgress,
    PipProgress,
    needs_network,
    package_spec,
    pip_command,
)

__all__ = [
    "PYPI_PACKAGE",
    "TORCH_INDEXES",
    "InstallJob",
    "InstallOptions",
    "InstallProgress",
    "InstallResult",
    "PipProgress",
    "current_engine",
    "detect_torch_build",
    "managed_python",
    "needs_network",
    "package_spec",
    "pip_command",
    "remove_leftovers",
    "run_install",
    "venv_python",
]

POINTER = "engine.current"
PREFIX = "engine-"
TORCH_CHOICES = ("auto", "cpu", "cuda", "none")


def venv_python(env: Path) -> Path:
    """The interpreter of the virtual environment ``env``."""
    return Path(env) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def current_engine(root: Path) -> Path | None:
    """The engine folder ``engine.current`` names under ``root``, if it is there with its interpreter."""
    try:
        name = (Path(root) / POINTER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        return None
    if not name.startswith(PREFIX) or "/" in name or "\\" in name:
        return None
    env = Path(root) / name
    return env if venv_python(env).is_file() else None


def managed_python(root: Path) -> str | None:
    """The managed engine's interpreter under ``root`` (None when none is installed)."""
    env = current_engine(root)
    return str(venv_python(env)) if env is not None else None


def detect_torch_build(which: Callable[[str], str | None] = shutil.which) -> str:
    """"cuda" when the machine has an NVIDIA driver (nvidia-smi on the PATH), else "cpu"."""
    return "cuda" if which("nvidia-smi") else "cpu"


@dataclass(frozen=True)
class InstallOptions:
    """package: a wheel, a source folder, or "" for PyPI's staf-mocap; torch: auto | cpu | cuda |
    none (none: no torch index, pip's defaults); pip_options: extra pip arguments (tests:
    ``--no-index --find-links DIR``); base_python: the interpreter that creates the environment ("":
    the one running now, Blender's); extra_site: folders the new environment sees too (a .pth file);
    assets: the asset folder the final doctor check reads ("": the engine's default)."""

    package: str = ""
    torch: str = "auto"
    pip_options: tuple[str, ...] = ()
    base_python: str = ""
    extra_site: tuple[str, ...] = ()
    assets: str = ""

    def __post_init__(self) -> None:
        if self.torch not in TORCH_CHOICES:
            raise AddonError(f"unknown torch build '{self.torch}': use {', '.join(TORCH_CHOICES)}")


# --------------------------------------------------------------------------------------------
# The install


@dataclass(frozen=True)
class InstallResult:
    """How an install ended: ``ok`` with the new interpreter ``python``, or ``message`` saying why not."""

    ok: bool
    cancelled: bool
    message: str
    python: str = ""


class _Stop(Exception):
    """A step failed (the message is the one line to show) or the user cancelled."""

    def __init__(self, message: str, code: int = EXIT_MISSING) -> None:
        super().__init__(message)
        self.code = code


def _publish_pointer(root: Path, name: str) -> None:
    """Point ``engine.current`` at ``name`` atomically (temporary file beside it, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{POINTER}.", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, root / POINTER)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_leftovers(root: Path) -> None:
    """Delete engine folders that are not current and whose installer is gone (a crash, a kill)."""
    current = current_engine(root)
    for entry in Path(root).glob(f"{PREFIX}*"):
        pid = entry.name[len(PREFIX):].split("-", 1)[0]
        if entry.is_dir() and entry != current and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


class InstallJob:
    """An install running in a background thread. Poll it; never blocks unless asked to ``wait``."""

    def __init__(self, root: str | Path, options: InstallOptions, *, env: Mapping[str, str] | None = None,
                 grace: float = 3.0, step_timeout: float = 600.0) -> None:
        self.root = Path(root)
        self.options = options
        self.grace = grace
        self.step_timeout = step_timeout
        self.latest = InstallProgress(0.0, "starting")
        self._fresh: InstallProgress | None = None
        self._env = dict(os.environ if env is None else env)
        self._env.setdefault("PYTHONUNBUFFERED", "1")
        self._env.pop("PYTHONPATH", None)  # the new environment must stand on its own
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self._result: InstallResult | None = None
        self.torch_build = options.torch if options.torch != "auto" else detect_torch_build()
        package_spec(options.package)  # a wrong path is said now, not from the thread
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    # -- for the caller ---------------------------------------------------------------------

    def poll(self) -> InstallProgress | None:
        """The newest progress since the last call (None if nothing new)."""
        with self._lock:
            fresh, self._fresh = self._fresh, None
        return fresh

    def done(self) -> bool:
        """Whether the install has ended (successfully or not)."""
        return not self._thread.is_alive()

    @property
    def cancelling(self) -> bool:
        """Whether cancel() was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop the install: the running step's process group is terminated (killed after the grace period)."""
        self._cancelled = True
        self._signal(signal.SIGTERM)
        last = signal.SIGKILL if os.name == "posix" else signal.SIGTERM
        kill = threading.Timer(self.grace, self._signal, args=(last,))
        kill.daemon = True
        kill.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (or ``timeout`` seconds); returns whether it is done."""
        self._thread.join(timeout)
        return self.done()

    def result(self) -> InstallResult:
        """The outcome; only once :meth:`done`."""
        if self._result is None:
            raise RuntimeError("the install is still running")
        return self._result

    def close(self) -> None:
        """Cancel if still running and wait for the clean-up."""
        if not self.done():
            self.cancel()
            self.wait(self.grace + 5.0)

    # -- the steps ----------------------------------------------------------------------------

    def _report(self, fraction: float, text: str) -> None:
        with self._lock:
            self.latest = self._fresh = InstallProgress(max(self.latest.fraction, fraction), text)

    def _signal(self, sig: int) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.name == "posix":
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    def _exec(self, cmd: Sequence[str], on_line: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
        """Run one step in its own process group; returns its exit code and last lines of output."""
        if self._cancelled:
            raise _Stop("cancelled", EXIT_CANCELLED)
        tail: deque[str] = deque(maxlen=60)
        group = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        try:
            self._proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                                          env=self._env, cwd=tempfile.gettempdir(), **group)
        except OSError as err:
            raise _Stop(f"cannot run {cmd[0]}: {err.strerror or err}") from None
        timer = threading.Timer(self.step_timeout, self._signal, args=(signal.SIGTERM,))
        timer.daemon = True
        timer.start()
        try:
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                tail.append(line)
                if on_line is not None:
                    on_line(line)
            code = self._proc.wait()
        finally:
            timer.cancel()
        if self._cancelled:
            raise _Stop("cancelled", EXIT_CANCELLED)
        return code, list(tail)

    def _main(self) -> None:
        previous = current_engine(self.root)
        keep = "the previous engine is unchanged" if previous else "no engine was installed"
        new: Path | None = None
        try:
            new = self._prepare()
            python = self._build(new)
            summary = self._verify(python)
            self._report(0.98, "switching to the new engine")
            _publish_pointer(self.root, new.name)
            new = None  # it is the current engine now
            if previous is not None:
                shutil.rmtree(previous, ignore_errors=True)
            self._report(1.0, "done")
            build = {"cpu": "CPU torch", "cuda": "CUDA torch"}.get(self.torch_build, "torch as pip chose")
            self._result = InstallResult(True, False, f"Engine installed ({build}) with {python}; {summary}", python)
        except _Stop as stop:
            cancelled = stop.code == EXIT_CANCELLED
            self._result = InstallResult(False, cancelled, "cancelled; " + keep if cancelled else f"{stop}; {keep}")
        except OSError as err:
            self._result = InstallResult(False, False, f"cannot install the engine into {self.root}: "
                                         f"{err.strerror or err}; {keep}")
        except Exception as err:  # the thread must always end with one line, never a traceback alone
            self._result = InstallResult(False, False, f"the install failed ({type(err).__name__}: {err}); {keep}")
        finally:
            if new is not None:
                shutil.rmtree(new, ignore_errors=True)

    def _prepare(self) -> Path:
        self._report(0.0, "preparing the engine folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            remove_leftovers(self.root)
            new = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.root))
        except OSError as err:
            raise _Stop(f"cannot install the engine into {self.root}: {err.strerror or err}", EXIT_OUTPUT) from None
        with contextlib.suppress(OSError):
            umask = os.umask(0)
            os.umask(umask)
            new.chmod(0o777 & ~umask)
        return new

    def _build(self, new: Path) -> str:
        base = self.options.base_python or sys.executable
        self._report(0.02, "creating the environment")
        code, tail = self._exec([base, "-m", "venv", str(new)])
        python = venv_python(new)
        if code != 0 or not python.is_file():
            last = next((t.strip() for t in reversed(tail) if t.strip()), f"exit code {code}")
            raise _Stop(f"cannot create a virtual environment with {base}: {last}")
        if self.options.extra_site:
            code, tail = self._exec([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
            site = Path(tail[-1].strip()) if code == 0 and tail else None
            if site is None or not site.is_dir():
                raise _Stop(f"the new environment {new} has no site-packages folder")
            (site / "_staf_extra_site.pth").write_text("".join(f"{p}\n" for p in self.options.extra_site))
        code, tail = self._exec([str(python), "-m", "pip", "--version"])
        found = re.search(r"pip (\d+)\.(\d+)", "".join(tail))
        raw = bool(found) and (int(found[1]), int(found[2])) >= (24, 1)
        self._report(PipProgress.START, "installing the engine")
        parser = PipProgress()

        def on_line(line: str) -> None:
            progress = parser.feed(line)
            if progress is not None:
                self._report(progress.fraction, progress.text)

        code, tail = self._exec(pip_command(str(python), self.options, self.torch_build, raw_progress=raw), on_line)
        if code != 0:
            raise _Stop(parser.failure(code, tail))
        return str(python)

    def _verify(self, python: str) -> str:
        """The new engine must import (core, torch) and run its doctor; returns the assets' state."""
        self._report(0.92, "checking the new engine")
        try:
            check_interpreter(python, env=self._env)
        except AddonError as err:
            raise _Stop(f"the installed engine does not run: {err}") from None
        cmd = [python, "-m", "core", "doctor", "--json"] + (["--assets", self.options.assets]
                                                             if self.options.assets else [])
        code, tail = self._exec(cmd)
        report = _json_object(tail)
        if report is None or code not in (0, 3, 4):
            last = next((t.strip() for t in reversed(tail) if t.strip()), f"exit code {code}")
            raise _Stop(f"the installed engine does not run its doctor: {last}")
        missing = sum(1 for a in report.get("assets", ()) if a.get("state") != "found" and a.get("required"))
        return "assets ready" if report.get("ready") else f"assets: {missing} required file(s) not found or invalid"


def _json_object(lines: Sequence[str]) -> dict | None:
    """The last line of ``lines`` that is a JSON object, or None."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{"):
            with contextlib.suppress(ValueError):
                data = json.loads(text)
                if isinstance(data, dict):
                    return data
    return None


def run_install(root: str | Path, options: InstallOptions, *, on_progress: Callable[[InstallProgress], None]
                | None = None, env: Mapping[str, str] | None = None, poll_interval: float = 0.1) -> InstallResult:
    """Install to the end (Ctrl+C cancels): for scripts, background mode and the tests."""
    job = InstallJob(root, options, env=env)
    try:
        while not job.done():
            progress = job.poll()
            if progress is not None and on_progress is not None:
                on_progress(progress)
            time.sleep(poll_interval)
    except KeyboardInterrupt:
        job.cancel()
    job.wait()
    return job.result()
