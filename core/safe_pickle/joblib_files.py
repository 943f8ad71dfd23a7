"""Reading files written by ``joblib.dump`` (e.g. the VIBE/TCMR ``*_db.pt`` datasets).

joblib writes each array as a ``NumpyArrayWrapper`` record inside the pickle followed by the
array's raw bytes outside it, optionally compressing the whole file. ``load_joblib`` reads the
pickle with the pure-Python unpickler and the same admitted list (minus chumpy and sparse
classes), reads the raw bytes as plain data between opcodes, and converts the result; kept apart
because the format needs its own unpickler, decompression and array reading.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import AssetInvalid, AssetMissing
from core.safe_pickle.admitted import (
    ADMITTED,
    CORRUPT_ERRORS,
    NDARRAY_TYPE,
    PY2_MODULES,
    Placeholder,
    RefusedError,
    first_line,
)
from core.safe_pickle.convert import Converter

__all__ = ["load_joblib"]

# --------------------------------------------------------------------------------------------
# joblib files (``joblib.dump``): a pickle whose arrays are records followed by raw bytes.


class _JoblibArrayPlaceholder(Placeholder):
    """joblib's ``NumpyArrayWrapper``: its state describes the raw array bytes that follow it."""

    __slots__ = ()


_JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
_JOBLIB_HINT = "regenerate it with the dataset's preprocessing scripts or download it again"
_READ_CHUNK = 16 * 1024 * 1024
# joblib's compressors, recognised by the first bytes of the file.
_COMPRESSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"]\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"ZF", "joblib<0.10 zfile"),
)


class _ZlibReader(io.RawIOBase):
    """A read-only stream over a zlib-compressed file (joblib's default compressor)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__()
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._inflate.eof:
                return 0
            compressed = self._raw.read(_READ_CHUNK // 16)
            if not compressed:
                raise EOFError("compressed stream ended early")
            self._pending = self._inflate.decompress(compressed)
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _JoblibUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (it reads exactly what each opcode needs, so raw array bytes can
    be read between opcodes, as joblib does) with the restricted ``find_class``.

    ``size_limit`` bounds the bytes an array may claim (the file's size when it is uncompressed).
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, *, size_limit: int | None) -> None:
        super().__init__(file, encoding="latin1", fix_imports=False)
        self._size_limit = size_limit

    def find_class(self, module: str, name: str) -> Any:
        admitted = ADMITTED.get((module, name))
        if admitted is not None:
            return admitted
        if (module, name) == _JOBLIB_WRAPPER:
            return _JoblibArrayPlaceholder
        qualname = f"{module}.{name}"
        if module in PY2_MODULES:
            qualname += f" (i.e. {PY2_MODULES[module]}.{name})"
        raise RefusedError(qualname)

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedError("a persistent id")

    def _load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], _JoblibArrayPlaceholder):
            self.stack[-1] = self._read_array(self.stack[-1]._state)

    dispatch[pickle.BUILD[0]] = _load_build

    def _read_array(self, state: Any) -> np.ndarray:
        if not isinstance(state, dict):
            raise RefusedError("a joblib array record without its field dict")
        if state.get("subclass") is not NDARRAY_TYPE:
            raise RefusedError("a joblib array of a class other than numpy.ndarray")
        shape, order, dtype = state.get("shape"), state.get("order"), state.get("dtype")
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError("joblib array record with an invalid shape")
        if order not in ("C", "F") or not isinstance(dtype, np.dtype):
            raise ValueError("joblib array record with an invalid order or dtype")
        count = 1
        for n in shape:
            count *= n
        if dtype.hasobject:
            if dtype != np.dtype(object):
                raise RefusedError("a structured array with object fields")
            return self._read_object_array(shape)
        alignment = state.get("numpy_array_alignment_bytes")
        if alignment is not None:
            padding = self.read(1)
            if len(padding) != 1:
                raise EOFError("file ends inside an array")
            if len(self.read(padding[0])) != padding[0]:
                raise EOFError("file ends inside an array")
        nbytes = count * dtype.itemsize
        if self._size_limit is not None and nbytes > self._size_limit:
            raise ValueError(f"an array of shape {shape} claims more bytes than the file holds")
        if self._size_limit is not None:
            # Size checked against the file: fill the array in place (peak memory: the array + one chunk).
            flat = np.empty(count, dtype=dtype)
            target = flat.view(np.uint8)
            done = 0
            while done < nbytes:
                part = self.read(min(nbytes - done, _READ_CHUNK))
                if not part:
                    raise EOFError("file ends inside an array")
                target[done:done + len(part)] = np.frombuffer(part, dtype=np.uint8)
                done += len(part)
        else:
            # A compressed stream's length is unknown: hold only what it really contains.
            parts = []
            remaining = nbytes
            while remaining:
                part = self.read(min(remaining, _READ_CHUNK))
                if not part:
                    raise EOFError("file ends inside an array")
                parts.append(part)
                remaining -= len(part)
            flat = np.frombuffer(b"".join(parts), dtype=dtype, count=count) if count else np.empty(0, dtype)
        array = flat.reshape(shape[::-1]).T if order == "F" else flat.reshape(shape)
        if not array.flags.writeable:
            array = array.copy(order="K")
        if not dtype.isnative:
            array = array.astype(dtype.newbyteorder("="))
        return array

    def _read_object_array(self, shape: tuple[int, ...]) -> np.ndarray:
        # joblib pickles object arrays as a nested (protocol 2) pickle right after the record.
        nested = _JoblibUnpickler(_UnpicklerStream(self), size_limit=self._size_limit)
        array = nested.load()
        if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != np.dtype(object):
            raise ValueError("a joblib object array whose contents do not match its record")
        return array


class _UnpicklerStream:
    """Reads through another unpickler's framing, for a pickle nested inside its stream."""

    def __init__(self, outer: pickle._Unpickler) -> None:
        self.read = outer.read
        self.readline = outer.readline


def _open_joblib_stream(handle: io.BufferedIOBase, path: Path) -> tuple[Any, int | None]:
    """The stream to unpickle (decompressing if needed) and the most bytes an array may take."""
    head = handle.peek(8)[:8] if hasattr(handle, "peek") else b""
    size = os.fstat(handle.fileno()).st_size
    if head.startswith(b"\x80") or not head:
        return handle, size
    for magic, name in _COMPRESSED_MAGIC:
        if head.startswith(magic):
            if name == "zlib":
                return io.BufferedReader(_ZlibReader(handle)), None
            if name == "gzip":
                return gzip.GzipFile(fileobj=handle, mode="rb"), None
            if name == "bz2":
                return bz2.BZ2File(handle, mode="rb"), None
            if name in ("xz", "lzma"):
                return lzma.LZMAFile(handle, mode="rb"), None
            raise AssetInvalid(
                f"{path}: a {name}-compressed joblib file, which is not supported; save it uncompressed "
                f"(joblib.dump(obj, path) with compress=0) or with zlib/gzip/bz2/xz compression."
            )
    return handle, size


def load_joblib(path: Path, *, hint: str = _JOBLIB_HINT) -> Any:
    """Load a ``joblib.dump`` file (uncompressed, or zlib/gzip/bz2/xz-compressed) admitting only
    plain data: numpy arrays of any plain dtype (object arrays of plain values too), numbers,
    strings, bytes, and dicts/lists/tuples/sets of them. No code from the file runs.

    Arrays come back in native byte order; ``hint`` ends error messages (what the user should do).
    Raises ``AssetMissing`` if the file does not exist and ``AssetInvalid`` (one line naming the
    file) for a refused global, an empty, truncated or malformed file.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")  # closed by the with-block below
    except FileNotFoundError:
        raise AssetMissing(f"{path} does not exist: check the path.") from None
    except OSError as err:
        raise AssetInvalid(f"{path}: cannot be read ({err.strerror or err}); check the file.") from None
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise AssetInvalid(f"{path}: the file is empty; {hint}.")
        try:
            stream, limit = _open_joblib_stream(handle, path)
            loaded = _JoblibUnpickler(stream, size_limit=limit).load()
        except RefusedError as refused:
            raise AssetInvalid(
                f"{path}: refused to load: the pickle asks for {refused} (only arrays and plain values are "
                f"admitted; nothing from the file was run); the file is not the expected data or was "
                f"tampered with: {hint}."
            ) from None
        except (*CORRUPT_ERRORS, zlib.error, lzma.LZMAError, OSError, MemoryError) as err:
            raise AssetInvalid(
                f"{path}: not a readable joblib file ({type(err).__name__}: {first_line(err)}); the file "
                f"is truncated or damaged: {hint}."
            ) from None
    try:
        return Converter(path, hint).convert(loaded)
    except RecursionError:
        raise AssetInvalid(f"{path}: the pickle is nested too deeply for a data file; {hint}.") from None
