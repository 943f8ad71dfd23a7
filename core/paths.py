"""Paths as the operating system will take them: checked when the command line is read.

A name too long for the file system, a path too long for the system, text the file system's
encoding cannot hold or a NUL byte reached a traceback deep inside a command (an ``OSError``
from ``stat``) or, worse, after work had been done. Every path option of every command is
parsed with :func:`path_arg`, so such a path is one usage line before anything runs; manifests
and other files that list paths use :func:`path_problem`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["PATH_MAX", "path_arg", "path_problem"]

PATH_MAX = 4096  # bytes, with the terminating NUL (Linux); Windows' own limit is lower and said by the OS
_NAME_MAX = 255  # bytes per name where the file system does not say (ext4, APFS, NTFS in UTF-16 units)


def _name_max(path: Path) -> int:
    """The longest name the file system holding ``path`` (or its nearest existing parent) allows."""
    for folder in (path.parent, *path.parent.parents):
        try:
            if folder.is_dir():
                return int(os.pathconf(folder, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or it cannot tell
            break
    return _NAME_MAX


def path_problem(text: str) -> str | None:
    """Why the operating system would refuse ``text`` as a path, or None when it is usable."""
    if not text:
        return "an empty path"
    if "\x00" in text:
        return "a path with a NUL character"
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        return "a path the file system's encoding cannot hold"
    if len(raw) >= PATH_MAX:
        return f"a path of {len(raw)} bytes, longer than the {PATH_MAX - 1} the system allows"
    path = Path(text)
    limit = _name_max(path.absolute())
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 24 else part[:21] + "..."
            return f"a path whose name '{shown}' has {size} bytes, more than the {limit} the file system allows"
    return None


def path_arg(text: str) -> str:
    """argparse ``type=`` for path options: the text unchanged, or a usage error naming the problem."""
    problem = path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{problem}: use a shorter name or another place")
    return text
