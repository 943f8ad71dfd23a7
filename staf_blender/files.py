"""Output files (no bpy): checks before any work, and atomic writes (temporary name, then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import AddonError

__all__ = ["check_writable", "publish", "temp_beside"]


def check_writable(path: str | Path, *, suffix: str, overwrite: bool = True) -> Path:
    """The absolute path to write, after checking its name, folder and permission (nothing is
    created); raises AddonError naming the problem."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise AddonError(f"{path} is a folder, not a file name")
    if path.suffix.lower() != suffix:
        raise AddonError(f"{path}: the file name must end in {suffix}")
    if path.exists() and not overwrite:
        raise AddonError(f"{path} exists: pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise AddonError(f"cannot write {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise AddonError(f"cannot write {path}: permission denied")
    return path


def temp_beside(target: Path, *, create: bool = True) -> Path:
    """A fresh hidden name in ``target``'s folder with its suffix (the file exists if ``create``)."""
    target = Path(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    except OSError as err:
        raise AddonError(f"cannot write {target}: {err.strerror or err}") from None
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
