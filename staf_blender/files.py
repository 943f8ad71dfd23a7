"""Output files (no bpy): checks before any work, and atomic writes (temporary name, then rename)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import EXIT_OUTPUT, AddonError

__all__ = ["check_all_writable", "check_writable", "existing_split_files", "publish", "split_targets",
           "temp_beside", "write_staged"]


def check_writable(path: str | Path, *, suffix: str | tuple[str, ...], overwrite: bool = True) -> Path:
    """The absolute path to write, after checking its name (``suffix``: one, or a tuple of
    choices), folder and permission (nothing is created); raises AddonError naming the problem."""
    path = Path(path).expanduser().absolute()
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    if path.is_dir():
        raise AddonError(f"{path} is a folder, not a file name")
    if path.suffix.lower() not in suffixes:
        raise AddonError(f"{path}: the file name must end in {' or '.join(suffixes)}")
    if path.exists() and not overwrite:
        raise AddonError(f"{path} exists: pass --overwrite to replace it", EXIT_OUTPUT)
    if not path.parent.is_dir():
        raise AddonError(f"cannot write {path}: the folder {path.parent} does not exist", EXIT_OUTPUT)
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise AddonError(f"cannot write {path}: permission denied", EXIT_OUTPUT)
    return path


def temp_beside(target: Path, *, create: bool = True) -> Path:
    """A fresh hidden name in ``target``'s folder with its suffix (the file exists if ``create``)."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    except OSError as err:
        raise AddonError(f"cannot write {target}: {err.strerror or err}", EXIT_OUTPUT) from None
    os.close(fd)
    if not create:  # for writers that keep a backup of any file they overwrite (Blender's .blend1)
        os.unlink(name)
    return Path(name)


def publish(tmp: Path, target: Path) -> Path:
    """Give ``tmp`` the permissions a plain ``open()`` would and rename it over ``target``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)
    return Path(target)


def split_targets(path: str | Path, person_ids: Iterable[int]) -> dict[int, Path]:
    """One file per person beside ``path``: ``OUT.fbx`` -> ``{0: OUT_p0.fbx, 2: OUT_p2.fbx}``.

    Raises AddonError if two characters share a person id (their files would have one name)."""
    path = Path(path)
    ids = [int(i) for i in person_ids]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise AddonError(f"several characters have person id {', '.join(map(str, twice))}: one file per person "
                         "needs characters of one import (select them)")
    return {i: path.with_name(f"{path.stem}_p{i}{path.suffix}") for i in ids}


def existing_split_files(path: str | Path) -> list[Path]:
    """Files already beside ``path`` that :func:`split_targets` could write (``OUT_p<digits>.fbx``)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(path.stem)}_p\d+{re.escape(path.suffix)}")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def write_staged(writers: Iterable[Callable[[list[tuple[Path, Path]]], object]]) -> list[Path]:
    """Run each writer, which writes under temporary names and appends ``(temporary, target)``
    pairs to the list it is given as it creates them; once all succeeded, rename every file into
    place (in order) and return the targets. On any failure every temporary file is deleted and
    no target has been touched."""
    staged: list[tuple[Path, Path]] = []
    try:
        for write in writers:
            write(staged)
        for tmp, target in staged:
            publish(tmp, target)
        done = [target for _, target in staged]
        staged.clear()
        return done
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def check_all_writable(paths: Iterable[str | Path], *, suffix: str | tuple[str, ...],
                       overwrite: bool = True) -> list[Path]:
    """:func:`check_writable` for every path before any is written (the first problem is raised)."""
    return [check_writable(p, suffix=suffix, overwrite=overwrite) for p in paths]
