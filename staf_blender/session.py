"""One "Reconstruct from video" run (no bpy): the engine in a private temporary folder.

The modal operator, its blocking ``execute`` and batch mode share this: check the inputs, start the
engine writing to a temporary folder, poll it, and afterwards either keep the motion file (copied
atomically where the user asked) or throw everything away. Nothing the user owns is written
before the character has been imported.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .engine import EngineJob, EngineOptions, EngineResult, reconstruct_command
from .errors import EXIT_OUTPUT, AddonError
from .files import publish, temp_beside
from .progress import Progress

__all__ = ["ReconstructRequest", "Reconstruction", "cache_last_motion", "clear_last_motion", "keep_file"]

_LAST_RUN: Path | None = None  # this session's folder for the last run's motion file (see cache_last_motion)


@dataclass(frozen=True)
class ReconstructRequest:
    """What to reconstruct: the video, the engine's interpreter (already checked) and options;
    keep_motion: where to keep the motion file afterwards (None: it is deleted)."""

    video: Path
    python: str
    engine: EngineOptions
    keep_motion: Path | None = None


def keep_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically (temporary file beside it, then rename)."""
    target = Path(target)
    if not target.parent.is_dir():
        raise AddonError(f"cannot write {target}: the folder {target.parent} does not exist", EXIT_OUTPUT)
    tmp = temp_beside(target)
    try:
        shutil.copyfile(source, tmp)
        return publish(tmp, target)
    except OSError as err:
        raise AddonError(f"cannot write {target}: {err.strerror or err}", EXIT_OUTPUT) from None
    finally:
        tmp.unlink(missing_ok=True)


def cache_last_motion(source: Path, name: str) -> Path:
    """Keep a copy of the last run's motion file (for re-imports from the panel's people list) in a
    private temporary folder of this session, replacing the previous run's; returns the copy.

    Used when the user did not ask to keep the motion file; :func:`clear_last_motion` (at
    unregister, and at exit) deletes it."""
    global _LAST_RUN
    if _LAST_RUN is None or not _LAST_RUN.is_dir():
        _LAST_RUN = Path(tempfile.mkdtemp(prefix="staf-last-run-"))
        atexit.register(shutil.rmtree, _LAST_RUN, True)
    for old in _LAST_RUN.iterdir():
        with contextlib.suppress(OSError):
            old.unlink()
    return keep_file(source, _LAST_RUN / f"{name or 'motion'}.npz")


def clear_last_motion() -> None:
    """Delete the copy kept by :func:`cache_last_motion` (the panel then says it is gone)."""
    global _LAST_RUN
    if _LAST_RUN is not None:
        shutil.rmtree(_LAST_RUN, ignore_errors=True)
        _LAST_RUN = None


class Reconstruction:
    """The engine running on ``request.video``; poll until :meth:`done`, then read :meth:`result`."""

    def __init__(self, request: ReconstructRequest, *, env: Mapping[str, str] | None = None) -> None:
        video = Path(request.video)
        if not video.is_file():
            raise AddonError(f"{video}: no such video file")
        if request.keep_motion is not None:
            keep = Path(request.keep_motion)
            if keep.suffix.lower() != ".npz":
                raise AddonError(f"{keep}: a motion file name must end in .npz")
            if not keep.parent.is_dir():
                raise AddonError(f"cannot write {keep}: the folder {keep.parent} does not exist", EXIT_OUTPUT)
        self.request = request
        self._tmp = Path(tempfile.mkdtemp(prefix="staf-"))
        output = self._tmp / "motion.npz"
        try:
            self.job = EngineJob(reconstruct_command(request.python, video.absolute(), output, request.engine),
                                 output, env=env, cwd=self._tmp)  # a cwd with a 'core' folder must not shadow it
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def poll(self) -> Progress | None:
        """The newest progress since the last poll (None if none)."""
        return self.job.poll()

    def done(self) -> bool:
        """Whether the engine has exited."""
        return self.job.done()

    def cancel(self) -> None:
        """Ask the engine to stop; poll on until done."""
        self.job.cancel()

    def result(self) -> EngineResult:
        """How the engine ended (only once done)."""
        return self.job.result()

    def keep(self) -> Path | None:
        """Copy the motion file where the request asked (call after a successful import)."""
        if self.request.keep_motion is None:
            return None
        return keep_file(self.job.output, Path(self.request.keep_motion))

    def close(self) -> None:
        """Stop the engine if needed and delete the temporary folder."""
        try:
            self.job.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self._tmp)
