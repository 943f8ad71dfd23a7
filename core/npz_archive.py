"""Reading ``.npz`` archives from users with bounded memory (numpy + standard library only).

``np.load`` trusts an archive: a deflated member inflates to whatever it holds (a zip bomb), and a
``.npy`` header may declare more elements than its data holds (numpy allocates the declared size
first). :class:`NpzArchive` checks, before a byte is inflated, the zip directory (member count,
compression method, declared size against a per-key bound, against ``max_ratio`` x its compressed
size and against a running total for the file) and then each ``.npy`` header (no Python objects,
declared shape x item size equal to the member's declared data size and within the bound). Data is
then read in 1 MiB pieces into one preallocated array, so a read holds at most the bytes it allows.

The add-on ships a copy of this module beside ``motion_format.py`` (scripts/build_extension.py).
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArchiveLimits", "NpzArchive", "check_directory", "check_members", "read_npy_file"]

_CHUNK = 1 << 20
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_LOCATOR = b"PK\x06\x07"
_LOCATOR_SIZE = 20
_MAX_ENTRY_BYTES = 2048  # a directory entry: 46 bytes, its name, zip64 extra field (real ones: < 200)
#: What a damaged member raises from inside zipfile / zlib / numpy's header parser.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError, TypeError,
                KeyError, IndexError, OverflowError, struct.error, SyntaxError, tokenize.TokenError,
                RecursionError, NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on one archive: ``max_members`` zip entries; ``max_total_bytes`` of array data read
    from the whole file; a deflated member may declare at most ``max_ratio`` x its compressed size
    (plus ``ratio_slack`` bytes, for tiny members); ``max_header_bytes`` of ``.npy`` header."""

    max_members: int
    max_total_bytes: int
    max_ratio: int = 100
    ratio_slack: int = 1 << 16
    max_header_bytes: int = 10_000


class _Refusal(Exception):
    """A check failed; the message is the one-line problem (turned into the caller's error)."""


def _zip_directory(path: Path) -> tuple[int, int] | None:
    """(entries, central directory bytes) from the end records (zip64's where present), or None
    where there is no end record: read from the file's last 64 KiB, before zipfile reads more."""
    with open(path, "rb") as fp:
        fp.seek(0, 2)
        size = fp.tell()
        tail = min(size, _EOCD_SIZE + _MAX_COMMENT + _LOCATOR_SIZE)
        fp.seek(size - tail)
        data = fp.read(tail)
        at = data.rfind(_EOCD)
        if at < 0 or len(data) - at < _EOCD_SIZE:
            return None
        count, cd_size = struct.unpack("<HI", data[at + 10:at + 16])
        locator = data[at - _LOCATOR_SIZE:at] if at >= _LOCATOR_SIZE else b""
        if locator[:4] == _LOCATOR:  # zip64: the counts that matter are in its end record
            fp.seek(struct.unpack("<Q", locator[8:16])[0])
            record = fp.read(56)
            if len(record) < 56 or record[:4] != b"PK\x06\x06":
                return None
            count, cd_size = struct.unpack("<QQ", record[32:48])
    return count, cd_size


def check_directory(path: str | Path, limits: ArchiveLimits) -> str | None:
    """The problem with a zip file's directory as its end records declare it (no end record, more
    entries than ``max_members``, a directory larger than such entries need), or None: checked
    before zipfile reads the directory into memory."""
    found = _zip_directory(Path(path))
    if found is None:
        return "not a zip archive"
    count, cd_size = found
    if count > limits.max_members or count == 0xFFFF:
        return f"the archive lists {count} members, more than the {limits.max_members} allowed"
    if cd_size > (count + 1) * _MAX_ENTRY_BYTES:
        return f"the archive's directory declares {cd_size} bytes for {count} members"
    return None


class NpzArchive:
    """An ``.npz`` opened for guarded reading: ``files`` (keys), ``header(key)``, ``read(key)``.

    ``fail(problem)`` turns a one-line problem into the caller's exception; ``bound(key)`` is the
    most data bytes a member may hold (None: no per-key bound, only the file's); ``fail_open``
    (default ``fail``) words the problems of the container itself. Use as a context manager (or
    call :meth:`close`)."""

    def __init__(self, path: str | Path, limits: ArchiveLimits, fail: Callable[[str], Exception],
                 bound: Callable[[str], int | None] = lambda key: None, *,
                 fail_open: Callable[[str], Exception] | None = None) -> None:
        self.path = Path(path)
        self.limits = limits
        self._fail = fail
        self._bound = bound
        self.total_read = 0
        fail = fail_open or fail
        try:
            problem = check_directory(self.path, limits)
            if problem:
                raise _Refusal(problem)
            self._zip = zipfile.ZipFile(self.path)
        except _Refusal as refusal:
            raise fail(str(refusal)) from None
        except _READ_ERRORS as err:
            raise fail(f"not a readable .npz: {_first_line(err)}") from None
        self._infos = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i
                       for i in self._zip.infolist()}
        self.files = list(self._infos)
        self.arrays = [k for k, i in self._infos.items() if i.filename.endswith(".npy")]  # keys np.load reads
        self._headers: dict[str, tuple[tuple[int, ...], bool, np.dtype, int, int]] = {}

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying zip file."""
        self._zip.close()

    def __contains__(self, key: str) -> bool:
        return key in self._infos

    def _info(self, key: str) -> zipfile.ZipInfo:
        info = self._infos[key]
        lim = self.limits
        if not info.filename.endswith(".npy"):
            raise _Refusal(f"'{key}' is not a .npy array")
        if info.flag_bits & 0x1:
            raise _Refusal(f"'{key}' is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refusal(f"'{key}' uses zip compression method {info.compress_type}; "
                             "write it uncompressed (np.savez) or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise _Refusal(f"'{key}' is stored uncompressed but declares {info.file_size} bytes in "
                           f"{info.compress_size}")
        bound = self._bound(key)
        if bound is not None and info.file_size > bound + lim.max_header_bytes + 128:
            raise _Refusal(f"'{key}' declares {info.file_size} bytes, more than the {bound} bytes of data "
                           "allowed for it")
        if info.compress_type == zipfile.ZIP_DEFLATED and \
                info.file_size > lim.max_ratio * info.compress_size + lim.ratio_slack:
            raise _Refusal(f"'{key}' inflates from {info.compress_size} to {info.file_size} bytes, more than "
                           f"{lim.max_ratio} times (a zip bomb?)")
        if self.total_read + info.file_size > lim.max_total_bytes:
            raise _Refusal(f"the arrays declare more than the {lim.max_total_bytes} bytes one file may hold")
        return info

    def _open_checked(self, key: str) -> tuple[Any, tuple[int, ...], bool, np.dtype, int]:
        """The member opened at its data, with its checked header (parsed once per key)."""
        info = self._info(key)
        fp = self._zip.open(info)
        if key in self._headers:
            shape, fortran, dtype, nbytes, offset = self._headers[key]
            fp.read(offset)
            return fp, shape, fortran, dtype, nbytes
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    fp, max_header_size=self.limits.max_header_bytes)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    fp, max_header_size=self.limits.max_header_bytes)
            else:
                raise _Refusal(f"'{key}' is a .npy of format version {version}, not 1.0 or 2.0")
            if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
                raise _Refusal(f"'{key}' holds Python objects or records ({dtype}), not plain numbers or text")
            nbytes = math.prod(shape) * dtype.itemsize
            bound = self._bound(key)
            if bound is not None and nbytes > bound:
                raise _Refusal(f"'{key}' declares shape {shape} ({nbytes} bytes), more than the {bound} allowed")
            if fp.tell() + nbytes != info.file_size:
                raise _Refusal(f"'{key}' declares shape {shape} ({nbytes} bytes) but holds "
                               f"{info.file_size - fp.tell()} bytes of data")
        except BaseException:
            fp.close()
            raise
        self._headers[key] = (tuple(shape), bool(fortran), dtype, nbytes, fp.tell())
        return fp, tuple(shape), bool(fortran), dtype, nbytes

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """The checked shape and dtype of member ``key`` (reads only its header)."""
        try:
            fp, shape, _fortran, dtype, _n = self._open_checked(key)
        except _Refusal as refusal:
            raise self._fail(str(refusal)) from None
        except _READ_ERRORS as err:
            raise self._fail(f"'{key}' is unreadable ({_first_line(err)}); the file is truncated or corrupt") \
                from None
        fp.close()
        return shape, dtype

    def read(self, key: str) -> np.ndarray:
        """Member ``key`` as an array, after every check; raises ``fail(...)`` on any problem."""
        try:
            fp, shape, fortran, dtype, nbytes = self._open_checked(key)
            with fp:
                array = np.zeros(math.prod(shape), dtype)
                view = memoryview(array.view(np.uint8)) if nbytes else memoryview(b"")
                done = 0
                while done < nbytes:
                    piece = fp.read(min(_CHUNK, nbytes - done))
                    if not piece:
                        raise EOFError(f"the data ends after {done} of {nbytes} bytes")
                    view[done:done + len(piece)] = piece
                    done += len(piece)
                fp.read(1)  # at the end: zipfile checks the CRC
        except _Refusal as refusal:
            raise self._fail(str(refusal)) from None
        except _READ_ERRORS as err:
            raise self._fail(f"'{key}' is unreadable ({_first_line(err)}); the file is truncated or corrupt") \
                from None
        self.total_read += nbytes
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def check_members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> str | None:
    """The first problem with an open zip's directory (too many members, an unknown compression
    method, a deflated member above ``max_ratio``, declared sizes above the total), or None: for
    readers that inflate members themselves (the restricted unpickler of core/safe_pickle/pickles.py)."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        return f"the archive lists {len(infos)} members, more than the {limits.max_members} allowed"
    total = 0
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return f"member '{info.filename}' uses zip compression method {info.compress_type}"
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            return f"member '{info.filename}' is stored but declares {info.file_size} bytes in {info.compress_size}"
        if info.compress_type == zipfile.ZIP_DEFLATED and \
                info.file_size > limits.max_ratio * info.compress_size + limits.ratio_slack:
            return (f"member '{info.filename}' inflates from {info.compress_size} to {info.file_size} bytes, "
                    f"more than {limits.max_ratio} times (a zip bomb?)")
        total += info.file_size
        if total > limits.max_total_bytes:
            return f"the members declare more than the {limits.max_total_bytes} bytes one file may hold"
    return None


def read_npy_file(path: str | Path, fail: Callable[[str], Exception], max_bytes: int,
                  max_header_bytes: int = 10_000) -> np.ndarray:
    """A plain ``.npy`` file whose header must declare exactly the data the file holds (at most
    ``max_bytes``), read without pickles; raises ``fail(problem)`` otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise _Refusal(f"a .npy of format version {version}, not 1.0 or 2.0")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fp, max_header_size=max_header_bytes)
            if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
                raise _Refusal(f"holds Python objects or records ({dtype}), not plain numbers")
            nbytes = math.prod(shape) * dtype.itemsize
            held = path.stat().st_size - fp.tell()
            if nbytes != held or nbytes > max_bytes:
                raise _Refusal(f"the header declares shape {shape} ({nbytes} bytes) but the file holds {held} "
                               f"bytes of data (at most {max_bytes})")
            array = np.fromfile(fp, dtype=dtype, count=math.prod(shape))
    except _Refusal as refusal:
        raise fail(str(refusal)) from None
    except _READ_ERRORS as err:
        raise fail(f"not a readable .npy ({_first_line(err)})") from None
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
