"""Adding downloaded asset files to the asset folder, and the doctor's verdicts as data.

:func:`add_assets` takes a folder or a ``.zip`` (the STAF release, the SMPL download): every file
named like one of ``ASSETS`` is first copied into a private staging folder inside the asset folder
(zip members read with size limits, never extracted by name), checked there with its
``AssetSpec``, and only when every one of them is valid renamed into place, one atomic rename per
file. One bad file and nothing is copied, so a valid file already there is never replaced by an
invalid one. :func:`doctor_report` is ``staf doctor`` for programs such as the Blender add-on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from core.assets import ASSETS, AssetSpec, check_assets
from core.errors import (
    EXIT_ASSET_INVALID,
    EXIT_ASSET_MISSING,
    EXIT_OUTPUT,
    AssetInvalid,
    AssetMissing,
    BadInput,
    OutputError,
)

__all__ = ["AddReport", "FileVerdict", "ZipLimits", "add_assets", "doctor_report"]

_KNOWN: dict[str, AssetSpec] = {name: spec for spec in ASSETS for name in spec.names}
_CHUNK = 1 << 20
_MAX_FOLDER_ENTRIES = 20000  # a folder with more is not a download (the user picked their home folder?)


@dataclass(frozen=True)
class ZipLimits:
    """What a zip member may be: at most ``member_bytes`` uncompressed, all candidates together at
    most ``total_bytes``, and members over 1 MiB shrunk at most ``ratio`` times by compression (a zip bomb)."""

    member_bytes: int = 4 << 30
    total_bytes: int = 16 << 30
    ratio: float = 200.0


@dataclass
class FileVerdict:
    """One file of the source: ``state`` valid / invalid / unsafe / skipped, why (``detail``), and
    what was done with it (``action``: added, replaced, unchanged, or "" when nothing)."""

    name: str
    where: str
    state: str
    detail: str
    action: str = ""

    def line(self) -> str:
        """One line for people: ``  where  state: detail (action)``."""
        done = f" -> {self.action}" if self.action else ""
        return f"  {self.where}  {self.state}: {self.detail}{done}"


@dataclass
class AddReport:
    """The outcome of :func:`add_assets`; ``ok`` false means nothing was copied and ``message`` says why."""

    source: str
    folder: str
    files: list[FileVerdict] = field(default_factory=list)
    ok: bool = True
    message: str = ""
    exit_code: int = 0

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``assets add --json`` prints)."""
        return {**asdict(self), "files": [asdict(f) for f in self.files]}


@dataclass
class _Candidate:
    """A file of the source with an asset's name, and how to read it."""

    name: str
    where: str
    size: int
    open: Callable[[], IO[bytes]]
    from_zip: bool = False
    staged: Path | None = None
    verdict: FileVerdict | None = None


# --------------------------------------------------------------------------------------------
# The doctor as data


def doctor_report(folder: Path) -> dict[str, Any]:
    """Every asset's verdict in ``folder`` as JSON-ready data, with the exit code ``staf doctor``
    gives (0 ready, 3 something required missing, 4 something invalid)."""
    from core.standins import STANDIN_MARKER

    folder = Path(folder)
    assets = []
    for status in check_assets(folder):
        spec = status.spec
        detail = status.detail.removeprefix(f"{status.path}: ") if status.state == "invalid" else status.detail
        assets.append({"name": status.path.name if status.state != "missing" else spec.name,
                       "state": status.state, "detail": detail, "source": spec.source,
                       "required": spec.required, "description": spec.description})
    invalid = any(a["state"] == "invalid" for a in assets)
    missing = any(a["state"] == "missing" and a["required"] for a in assets)
    code = EXIT_ASSET_INVALID if invalid else EXIT_ASSET_MISSING if missing else 0
    return {"folder": str(folder), "exists": folder.is_dir(), "standins": (folder / STANDIN_MARKER).is_file(),
            "ready": code == 0, "exit_code": code, "assets": assets}


# --------------------------------------------------------------------------------------------
# Reading the source


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member must not be read (a path that leaves the folder, a link, encryption), or None."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if "\x00" in name or name.startswith(("/", "\\")) or (parts and ":" in parts[0]):
        return "an absolute path"
    if ".." in parts:
        return "a path that leads out of the archive's folder ('..')"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def _zip_candidates(zf: zipfile.ZipFile, source: Path, limits: ZipLimits,
                    skipped: list[FileVerdict]) -> tuple[list[_Candidate], list[FileVerdict]]:
    """The members named like assets, and verdicts for the unsafe ones (any of those stops the import)."""
    found, unsafe = [], []
    total = 0
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = PurePosixPath(info.filename.replace("\\", "/")).name
        problem = _zip_member_problem(info)
        if problem:
            unsafe.append(FileVerdict(name, info.filename, "unsafe", f"{problem}; the archive is not used"))
            continue
        if name not in _KNOWN:
            skipped.append(FileVerdict(name, info.filename, "skipped", "not a file the engine uses"))
            continue
        if info.file_size > limits.member_bytes:
            unsafe.append(FileVerdict(name, info.filename, "unsafe", f"{info.file_size} bytes uncompressed, more "
                                      f"than the {limits.member_bytes} any asset file has"))
            continue
        if info.file_size > 1 << 20 and info.file_size > limits.ratio * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            unsafe.append(FileVerdict(name, info.filename, "unsafe",
                                      f"compressed {ratio} times: not a real asset file (a zip bomb?)"))
            continue
        total += info.file_size
        found.append(_Candidate(name, info.filename, info.file_size, lambda i=info: zf.open(i), from_zip=True))
    if total > limits.total_bytes:
        raise BadInput(f"{source}: its asset files take {total} bytes uncompressed, more than the "
                       f"{limits.total_bytes} all asset files together have; not used")
    return found, unsafe


def _folder_candidates(source: Path, skipped: list[FileVerdict]) -> list[_Candidate]:
    """The regular files under ``source`` named like assets (links followed for reading only)."""
    found, seen = [], 0
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".staf-add-"))  # an import's staging folder
        seen += len(files) + len(dirs)
        if seen > _MAX_FOLDER_ENTRIES:
            raise BadInput(f"{source} holds more than {_MAX_FOLDER_ENTRIES} files and folders: choose the folder "
                           "of the download itself")
        for name in sorted(files):
            path = Path(root) / name
            where = path.relative_to(source).as_posix()
            if name not in _KNOWN:
                skipped.append(FileVerdict(name, where, "skipped", "not a file the engine uses"))
            elif not path.is_file():
                skipped.append(FileVerdict(name, where, "skipped", "not a regular file"))
            else:
                found.append(_Candidate(name, where, path.stat().st_size, lambda p=path: open(p, "rb")))
    return found


# --------------------------------------------------------------------------------------------
# Staging, checking, publishing


def _stage(candidate: _Candidate, folder: Path, limit: int) -> None:
    """Copy the candidate into ``folder`` under its own name, reading at most ``limit`` bytes."""
    target = folder / candidate.name
    copied = 0
    with candidate.open() as src, open(target, "wb") as out:
        while chunk := src.read(_CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise AssetInvalid("longer than its archive entry says; the archive is damaged or crafted")
            out.write(chunk)
    candidate.staged = target


def _check(candidate: _Candidate) -> FileVerdict:
    """The staged file checked by its asset's spec; the verdict names the file as the source does."""
    assert candidate.staged is not None
    try:
        summary = _KNOWN[candidate.name].check(candidate.staged)
    except (AssetInvalid, AssetMissing) as err:
        why = str(err).replace(f"{candidate.staged}: ", "").replace(str(candidate.staged), candidate.name)
        return FileVerdict(candidate.name, candidate.where, "invalid", why.rstrip("."))
    except Exception as err:  # a tampered file can break a reader in ways no check foresaw
        return FileVerdict(candidate.name, candidate.where, "invalid", f"unreadable ({type(err).__name__})")
    return FileVerdict(candidate.name, candidate.where, "valid", summary)


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _conflicts(candidates: list[_Candidate]) -> None:
    """Mark as invalid every copy of a name that the source holds more than once with different contents."""
    by_name: dict[str, list[_Candidate]] = {}
    for c in candidates:
        by_name.setdefault(c.name, []).append(c)
    for name, group in by_name.items():
        if len(group) > 1 and len({_digest(c.staged) for c in group if c.staged is not None}) > 1:
            places = ", ".join(c.where for c in group)
            for c in group:
                c.verdict = FileVerdict(name, c.where, "invalid", f"{name} is in the source {len(group)} times with "
                                        f"different contents ({places}): keep the one you mean")


def _publish(candidates: list[_Candidate], folder: Path) -> None:
    """Rename each valid staged file over its target (an identical file already there is kept)."""
    umask = os.umask(0)
    os.umask(umask)
    done: set[str] = set()
    for c in candidates:
        assert c.staged is not None and c.verdict is not None
        if c.name in done:
            c.verdict.action = "unchanged"
            continue
        target = folder / c.name
        if target.is_file() and target.stat().st_size == c.staged.stat().st_size \
                and _digest(target) == _digest(c.staged):
            c.verdict.action = "unchanged"
        else:
            c.verdict.action = "replaced" if target.exists() else "added"
            os.chmod(c.staged, 0o666 & ~umask)
            os.replace(c.staged, target)
        done.add(c.name)


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A private folder inside ``folder`` (same file system: the final renames are atomic); removed
    afterwards, and ``folder`` too if it was created for this and is still empty."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staf-add-", dir=folder))
    except OSError as err:
        raise OutputError(f"cannot write into the asset folder {folder}: {err.strerror or err}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _refuse(report: AddReport, code: int, problem: str) -> AddReport:
    report.ok, report.exit_code, report.message = False, code, problem
    return report


def add_assets(source: Path, folder: Path, *, limits: ZipLimits | None = None) -> AddReport:
    """Check every asset file in ``source`` (a folder or a .zip) and copy them into ``folder`` only
    if all are valid. Returns the report (``ok`` false: nothing copied, ``message`` names the bad
    files); raises BadInput/OutputError when the source or the folder cannot be used at all."""
    source, folder = Path(source).expanduser(), Path(folder).expanduser()
    limits = limits or ZipLimits()
    report = AddReport(str(source), str(folder))
    skipped: list[FileVerdict] = []
    if source.is_dir():
        with _staging(folder) as staging:
            return _run(_folder_candidates(source, skipped), [], skipped, staging, folder, report, limits)
    if not source.exists():
        raise BadInput(f"{source} does not exist: choose the folder or the .zip you downloaded")
    if not source.is_file() or not zipfile.is_zipfile(source):
        raise BadInput(f"{source} is neither a folder nor a .zip archive: choose the downloaded folder or .zip")
    try:
        with zipfile.ZipFile(source) as zf:
            candidates, unsafe = _zip_candidates(zf, source, limits, skipped)
            with _staging(folder) as staging:
                return _run(candidates, unsafe, skipped, staging, folder, report, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as err:
        raise BadInput(f"{source}: a damaged or unsupported .zip archive ({err}); download it again") from None


def _run(candidates: list[_Candidate], unsafe: list[FileVerdict], skipped: list[FileVerdict], staging: Path,
         folder: Path, report: AddReport, limits: ZipLimits) -> AddReport:
    """Stage and check every candidate, then publish all of them or none."""
    if not candidates and not unsafe:
        names = ", ".join(spec.name for spec in ASSETS)
        raise BadInput(f"{report.source} holds none of the asset files ({names}): choose the STAF release or the "
                       "SMPL download")
    need = sum(c.size for c in candidates)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise OutputError(f"the asset folder {folder} has {free >> 20} MiB free, the files need {need >> 20} MiB: "
                          "make room and add them again")
    if not unsafe:
        for index, c in enumerate(candidates):
            place = staging / str(index)
            place.mkdir()
            try:
                _stage(c, place, c.size if c.from_zip else limits.member_bytes)
            except AssetInvalid as err:
                c.verdict = FileVerdict(c.name, c.where, "unsafe", str(err))
            except zipfile.BadZipFile as err:
                c.verdict = FileVerdict(c.name, c.where, "invalid", f"damaged in the archive ({err})")
            except OSError as err:
                raise OutputError(f"cannot stage {c.name} in {folder}: {err.strerror or err}") from None
        _conflicts([c for c in candidates if c.verdict is None])
        for c in candidates:
            if c.verdict is None:
                c.verdict = _check(c)
    else:
        for c in candidates:
            c.verdict = FileVerdict(c.name, c.where, "skipped", "not checked: the archive has unsafe entries")
    bad = unsafe + [c.verdict for c in candidates if c.verdict is not None and c.verdict.state in ("invalid", "unsafe")]
    report.files = unsafe + [c.verdict for c in candidates if c.verdict is not None] + skipped
    if bad:
        listed = "; ".join(f"{v.where} ({v.detail})" for v in bad[:4]) + (f"; and {len(bad) - 4} more"
                                                                           if len(bad) > 4 else "")
        noun = "file is" if len(bad) == 1 else "files are"
        return _refuse(report, EXIT_ASSET_INVALID,
                       f"nothing copied into {folder}: {len(bad)} {noun} not usable: {listed}")
    try:
        _publish(candidates, folder)
    except OSError as err:
        done = [c.name for c in candidates if c.verdict is not None and c.verdict.action]
        return _refuse(report, EXIT_OUTPUT, f"cannot write into the asset folder {folder}: {err.strerror or err}"
                       + (f" (already copied: {', '.join(done)})" if done else " (nothing copied)"))
    added = sum(1 for c in candidates if c.verdict is not None and c.verdict.action in ("added", "replaced"))
    report.message = f"{added} file{'s' if added != 1 else ''} copied into {folder}" + (
        f", {len(candidates) - added} already there" if added < len(candidates) else "")
    return report
