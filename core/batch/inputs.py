"""What a batch run is given, turned into clips: files, folders, globs and CSV manifests.

Every input becomes one or more :class:`Entry` rows. A file, folder or glob that leads to no
video, and a manifest row whose video is missing or unreadable or whose options are wrong, is an
entry with an ``error``: it is reported on its own row of the summary and the rest still run. A
manifest that cannot be read at all, or that has a column this module does not know, refuses the
whole run (``BadInput``): it is the run's configuration, not one clip.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import EXIT_BAD_INPUT, BadInput
from core.paths import path_problem

__all__ = ["MANIFEST_COLUMNS", "MANIFEST_SUFFIX", "VIDEO_SUFFIXES", "Entry", "expand_inputs", "read_manifest"]

#: File name endings taken as videos when a folder or a glob is expanded (case-insensitive).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
MANIFEST_SUFFIX = ".csv"

#: Manifest columns beside ``video`` and ``output``: reconstruct options and their types.
MANIFEST_COLUMNS: dict[str, type] = {
    "start": str, "end": str, "person": str, "max_people": int, "detect_every": int, "batch_size": int,
    "precision": str, "max_gap": float, "smooth": float, "min_track": float, "focal": float, "filter": str,
}


@dataclass(frozen=True)
class Entry:
    """One clip as given. ``label``: what the summary calls it; ``source``: the file to open (None
    when nothing could be found); ``overrides``: a manifest row's options (typed); ``output``: a
    manifest row's output name (relative names are in --out); ``error``: why it cannot run."""

    label: str
    source: Path | None
    overrides: dict[str, object] = field(default_factory=dict)
    output: str | None = None
    error: str | None = None
    exit_code: int = 0


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _failed(label: str, message: str, code: int = EXIT_BAD_INPUT) -> Entry:
    return Entry(label, None, error=message, exit_code=code)


def _readable(path: Path, label: str) -> Entry:
    """An entry for a file that should exist and be readable (its contents are checked by the worker)."""
    problem = path_problem(str(path))
    if problem:
        return _failed(label, f"{label[:60] + '...' if len(label) > 60 else label}: {problem}")
    if not path.exists():
        return _failed(label, f"{label}: file not found")
    if not path.is_file():
        return _failed(label, f"{label}: not a file")
    if not os.access(path, os.R_OK):
        return _failed(label, f"{label}: cannot be read (permission denied)")
    return Entry(label, path)


def _folder(path: Path, label: str, recursive: bool) -> list[Entry]:
    found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file() and _is_video(p))
    if not found:
        deep = " (with --recursive: in any subfolder)" if recursive else "; --recursive also looks in subfolders"
        return [_failed(label, f"{label}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder{deep}")]
    return [_readable(p, str(p)) for p in found]


def _glob(pattern: str, recursive: bool) -> list[Entry]:
    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    files: list[Path] = []
    for p in matches:
        if p.is_dir():
            files.extend(e.source for e in _folder(p, str(p), recursive) if e.source is not None)
        elif _is_video(p):
            files.append(p)
    if not files:
        return [_failed(pattern, f"{pattern}: no video file matches this pattern")]
    return [_readable(p, str(p)) for p in files]


def _cell(column: str, text: str) -> object:
    kind = MANIFEST_COLUMNS[column]
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise BadInput(f"column '{column}': '{text}' is not {what}") from None


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The manifest's non-empty rows with their line numbers; refuses a manifest it cannot use."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise BadInput(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: the manifest cannot be read ({err})") from None
    reader = csv.DictReader(lines)
    columns = [c.strip() for c in reader.fieldnames or []]
    if "video" not in columns:
        raise BadInput(f"{path}: a manifest needs a header row with a 'video' column (got: {', '.join(columns)})")
    unknown = [c for c in columns if c and c not in {"video", "output", *MANIFEST_COLUMNS}]
    if unknown:
        raise BadInput(f"{path}: unknown manifest column(s) {', '.join(unknown)}; known: video, output, "
                       f"{', '.join(MANIFEST_COLUMNS)}")
    for row in reader:
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not cells.get("video") or cells["video"].startswith("#"):
            continue  # blank lines and comment rows
        yield reader.line_num, cells


def read_manifest(path: Path) -> list[Entry]:
    """The clips of a CSV manifest: a ``video`` column (paths relative to the manifest's folder),
    optionally ``output`` and reconstruct options (empty cell: the command line's value)."""
    entries = []
    for line, cells in _rows(path):
        video = Path(cells["video"]).expanduser()
        video = video if video.is_absolute() else path.parent / video
        label = str(video)
        try:
            overrides = {c: _cell(c, v) for c, v in cells.items() if c in MANIFEST_COLUMNS and v}
        except BadInput as err:
            entries.append(_failed(label, f"{path} line {line}: {err}"))
            continue
        entry = _readable(video, label)
        entries.append(Entry(entry.label, entry.source, overrides, cells.get("output") or None, entry.error,
                             entry.exit_code))
    if not entries:
        raise BadInput(f"{path}: the manifest lists no video")
    return entries


def expand_inputs(inputs: Sequence[str], *, recursive: bool = False) -> list[Entry]:
    """Files, folders (their videos, by extension), globs and ``.csv`` manifests -> entries, in order."""
    entries: list[Entry] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.suffix.lower() == MANIFEST_SUFFIX and not glob.has_magic(text):
            entries.extend(read_manifest(path))
        elif path.is_dir():
            entries.extend(_folder(path, text, recursive))
        elif not path.exists() and glob.has_magic(text):
            entries.extend(_glob(text, recursive))
        else:
            entries.append(_readable(path, text))
    return entries
