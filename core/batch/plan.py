"""From entries to clips: each clip's options, its output name, and whether it is already done.

Output names: ``<stem>.npz`` in --out. When two clips would get the same name (same stem, ignoring
case, from different folders or with different manifest ranges), every one of them is named
``<stem>-<hash>.npz`` instead, where ``<hash>`` is 8 hex digits of a SHA-1 of the source's
absolute path and the clip's start/end/person; the name is thus the same from one run to the next
whatever the order of the inputs. A manifest's ``output`` column names the file explicitly.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.batch.inputs import Entry
from core.errors import EXIT_BAD_INPUT, EXIT_OUTPUT, OutputError, StafError
from core.paths import path_problem
from core.reconstruct import ReconstructOptions, validate_options

__all__ = ["Clip", "check_out_dir", "plan_clips"]

@dataclass(frozen=True)
class Clip:
    """One row of the run. ``status`` is "todo", "skipped" (a valid output exists) or "failed" (it
    cannot run: ``error`` says why); ``frames``/``people`` are known for skipped clips; ``redo`` is
    set when an existing output is not a valid motion file and will be replaced. ``fbx``/``blend``:
    Blender conversions to make from the motion file (None: not asked)."""

    index: int
    label: str
    source: Path | None
    output: Path | None
    options: ReconstructOptions
    status: str = "todo"
    error: str = ""
    exit_code: int = 0
    frames: int | None = None
    people: int | None = None
    redo: bool = False
    fbx: Path | None = None
    blend: Path | None = None


def check_out_dir(out: Path) -> Path:
    """Create --out when missing and make sure files can be written there (raises OutputError)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".staf-write-test.", dir=out)
    except OSError as err:
        raise OutputError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)
    return out


def _options(entry: Entry, base: ReconstructOptions) -> ReconstructOptions:
    opts = replace(base, **entry.overrides)
    validate_options(opts)  # every option, precision and focal included
    return opts


def _key(source: Path, opts: ReconstructOptions) -> str:
    return f"{source.resolve()}|{opts.start}|{opts.end}|{opts.person}|{opts.max_people}"


def _hashed(stem: str, key: str) -> str:
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.npz"


def _explicit(out: Path, name: str) -> Path:
    path = Path(name).expanduser()
    path = path if path.is_absolute() else out / path
    if path.suffix.lower() != ".npz":
        raise OutputError(f"output '{name}': a motion file must end in .npz")
    problem = path_problem(str(path))
    if problem:
        raise OutputError(f"output '{name[:60]}': {problem}")
    return path


def _existing(clip: Clip, overwrite: bool) -> Clip:
    """Mark a clip whose output is already a valid motion file as skipped (unless --overwrite)."""
    from core.motion_format import MotionFormatError, read_motion

    out = clip.output
    if out is None or not out.exists():
        return clip
    if out.is_dir():
        return replace(clip, status="failed", error=f"{out}: is a folder", exit_code=EXIT_OUTPUT)
    if overwrite:
        return replace(clip, redo=True)
    try:
        motion = read_motion(out)
    except (MotionFormatError, OSError):
        return replace(clip, redo=True)
    return replace(clip, status="skipped", frames=len(motion.frame_index), people=len(motion.people))


def _writable_parent(path: Path, checked: dict[Path, str]) -> str:
    """'' when files can be written beside ``path`` (creating its folder), else why not (cached)."""
    parent = path.parent
    if parent not in checked:
        try:
            check_out_dir(parent)
            checked[parent] = ""
        except OutputError as err:
            checked[parent] = str(err).replace("--out ", "", 1)
    return checked[parent]


@dataclass
class _Row:
    entry: Entry
    opts: ReconstructOptions | None
    error: str = ""
    code: int = 0
    output: Path | None = None


def _rows(entries: Sequence[Entry], out: Path, base: ReconstructOptions) -> list[_Row]:
    """Entries with their merged options, duplicates dropped, explicit outputs checked and unique."""
    rows: list[_Row] = []
    seen: set[str] = set()
    explicit: dict[Path, str] = {}
    for entry in entries:
        row = _Row(entry, None, entry.error or "", entry.exit_code)
        if not row.error:
            try:
                row.opts = _options(entry, base)
            except StafError as err:
                row.error, row.code = f"{entry.label}: {err}", err.exit_code
        if row.opts is not None and entry.source is not None:
            key = f"{_key(entry.source, row.opts)}|{entry.output}"
            if key in seen:
                continue
            seen.add(key)
        if not row.error and entry.output:
            try:
                row.output = _explicit(out, entry.output)
            except OutputError as err:
                row.error, row.code = str(err), err.exit_code
            else:
                if row.output in explicit:
                    row.error = f"output {row.output} is also the output of {explicit[row.output]}"
                    row.code, row.output = EXIT_OUTPUT, None
                else:
                    explicit[row.output] = entry.label
        rows.append(row)
    return rows


def plan_clips(entries: Sequence[Entry], out: Path, base: ReconstructOptions, *, overwrite: bool = False,
               fbx: bool = False, blend: bool = False) -> list[Clip]:
    """Clips in input order, duplicates (same file and options) dropped, every output name unique."""
    rows = _rows(entries, out, base)
    ok = [r for r in rows if not r.error and r.entry.source is not None]
    stems = Counter(r.entry.source.stem.lower() for r in ok if r.output is None)
    taken = {r.output.name.lower() for r in ok if r.output is not None and r.output.parent == out}
    clips: list[Clip] = []
    checked: dict[Path, str] = {}
    for index, row in enumerate(rows):
        entry = row.entry
        if row.error or row.opts is None or entry.source is None:
            clips.append(Clip(index, entry.label, entry.source, None, row.opts or base, "failed", row.error,
                              row.code or EXIT_BAD_INPUT))
            continue
        path = row.output
        if path is None:
            stem = entry.source.stem
            name = f"{stem}.npz"
            if stems[stem.lower()] > 1 or name.lower() in taken:
                name = _hashed(stem, _key(entry.source, row.opts))
            path = out / name
        clip = Clip(index, entry.label, entry.source.absolute(), path.absolute(), row.opts,
                    fbx=path.with_suffix(".fbx") if fbx else None, blend=path.with_suffix(".blend") if blend else None)
        why = _writable_parent(path, checked)
        clips.append(replace(clip, status="failed", error=why, exit_code=EXIT_OUTPUT) if why
                     else _existing(clip, overwrite))
    return clips
