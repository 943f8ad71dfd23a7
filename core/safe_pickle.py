"""Read the pickles inside SMPL and GraphCMR asset files without ever running code from them.

The original SMPL ``.pkl`` files are Python-2 pickles holding ``chumpy`` objects, scipy sparse
matrices and numpy arrays; GraphCMR's ``mesh_downsampling.npz`` holds object arrays of pickled
sparse matrices. ``pickle.load`` would import and call whatever a file names, so a file handed to
us could run any code. Here a restricted unpickler admits a short, fixed list of globals (see
``_ADMITTED`` and ``_RestrictedUnpickler.find_class``):

- numpy's array, dtype and scalar reconstruction (``_reconstruct``, ``dtype``, ``scalar``,
  ``_frombuffer``), wrapped so that they accept only data;
- chumpy classes and scipy sparse classes, mapped to inert placeholder classes of our own (no chumpy
  or scipy code runs while reading);
- what a protocol 0-2 pickle needs to spell bytes and sets: ``_codecs.encode`` (latin1 only),
  ``bytes()``, ``set`` of plain values (the original SMPL files hold chumpy's sets of names), and
  ``copyreg._reconstructor`` for placeholder classes (with ``object`` only as its base argument).

Everything else is refused with ``AssetInvalid`` before it is touched. After loading, placeholders
are converted: a chumpy object becomes ``np.asarray(x)``, a sparse placeholder becomes a validated
``scipy.sparse.csc_matrix``.

``load_joblib`` reads files written by ``joblib.dump`` (e.g. the VIBE/TCMR ``*_db.pt`` datasets)
with the same admitted list minus chumpy and sparse classes, plus joblib's array record
``joblib.numpy_pickle.NumpyArrayWrapper`` as an inert placeholder: joblib writes each array as that
record followed by the array's raw bytes outside the pickle, which are read here as plain data
(never through ``pickle``, except the elements of object arrays, which go through the same
restricted unpickler).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import AssetInvalid, AssetMissing
from core.npz_archive import ArchiveLimits, check_directory, check_members

__all__ = ["ASSET_LIMITS", "load_joblib", "load_npz_with_objects", "load_pickle"]

#: Bounds on an asset archive (.npz): member sizes are checked before anything is inflated, so
#: reading one holds at most 2 GiB of array data whatever sizes the file declares.
ASSET_LIMITS = ArchiveLimits(max_members=4096, max_total_bytes=2 << 30, max_ratio=1000)

# What a failing read raises from inside ``pickle``/``numpy``/``zipfile`` on a corrupt file.
_CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    struct.error,
    zipfile.BadZipFile,
    RecursionError,
)

_REPLACE_HINT = "replace it with the original download"


# --------------------------------------------------------------------------------------------
# Inert placeholders: they only remember the state the pickle gives them.


class _Placeholder:
    """Stands in for a class named by a pickle; holds the pickled state and runs no foreign code."""

    origin: str = "?"

    __slots__ = ("_state",)

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        self = object.__new__(cls)
        self._state = None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state


class _ChumpyPlaceholder(_Placeholder):
    """A ``chumpy`` object: its state dict holds the array under ``'x'``."""

    __slots__ = ()


class _SparsePlaceholder(_Placeholder):
    """A scipy sparse matrix/array; ``layout`` is 'csc', 'csr' or 'coo'."""

    __slots__ = ()
    layout: str = "csc"


_SPARSE_MODULES = {
    "scipy.sparse.csc": "csc",
    "scipy.sparse._csc": "csc",
    "scipy.sparse.csr": "csr",
    "scipy.sparse._csr": "csr",
    "scipy.sparse.coo": "coo",
    "scipy.sparse._coo": "coo",
}


# --------------------------------------------------------------------------------------------
# Admitted callables. Each takes only plain data and checks its arguments before acting.


class _RefusedError(Exception):
    """Raised inside the unpickler; turned into AssetInvalid naming the file."""


class _Guarded:
    """An admitted callable as handed to a pickle: callable, but its state cannot be changed.

    (A pickle may apply BUILD to any object it holds; these objects refuse it, so a file can neither
    alter them nor leave anything behind for the next file.)
    """

    __slots__ = ("_func", "_name")

    def __init__(self, name: str, func: Any) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_func", func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _RefusedError(f"changing {self._name}")

    def __setstate__(self, state: Any) -> None:
        raise _RefusedError(f"changing {self._name}")


def _argument_only(qualname: str, where: str) -> _Guarded:
    """A global admitted only as an argument of another admitted call, never called itself."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _RefusedError(f"{qualname} used outside {where}")

    return _Guarded(qualname, refuse)


_OBJECT_BASE = _argument_only("builtins.object", "copyreg._reconstructor")
_NDARRAY_TYPE = _argument_only("numpy.ndarray", "numpy's _reconstruct")


def _multiarray() -> Any:
    from numpy.core import multiarray  # numpy<2 is pinned; numpy._core exists only from 2.0

    return multiarray


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _NDARRAY_TYPE:
        raise _RefusedError(f"numpy _reconstruct of {type(subtype).__name__} (only numpy.ndarray is admitted)")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and 0 <= s <= 1 for s in shape):
        raise _RefusedError("numpy _reconstruct with an unusual shape")
    if not isinstance(dtype, (bytes, str)) or len(dtype) != 1:
        raise _RefusedError("numpy _reconstruct with an unusual type code")
    return _multiarray()._reconstruct(np.ndarray, shape, dtype)


def _np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(obj, str):
        raise _RefusedError(f"numpy.dtype of a {type(obj).__name__} (only a type string is admitted)")
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _np_scalar(dtype: Any, obj: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise _RefusedError("numpy scalar without a numpy dtype")
    if dtype.hasobject:
        return obj
    if not isinstance(obj, (bytes, str)):
        raise _RefusedError("numpy scalar without raw bytes")
    return _multiarray().scalar(dtype, obj)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # Protocol 5 spelling of a contiguous array (numpy's ``_frombuffer``), for plain data only.
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _RefusedError("numpy _frombuffer of something other than raw bytes of a plain dtype")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _RefusedError("numpy _frombuffer with an invalid shape")
    if order not in ("C", "F"):
        raise _RefusedError("numpy _frombuffer with an invalid order")
    array = np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)
    return array if array.flags.writeable else array.copy()


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Python 3 writes ``bytes`` into protocol 0-2 pickles as ``_codecs.encode(str, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _RefusedError("_codecs.encode other than the latin1 spelling of bytes")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    # Python 3 writes empty ``bytes`` into protocol 0-2 pickles as ``bytes()``.
    if args:
        raise _RefusedError("builtins.bytes with arguments (only bytes() is admitted)")
    return b""


_PLAIN = (str, bytes, int, float, bool, type(None))


def _set(items: Any = ()) -> set:
    # chumpy objects keep a set of names (``_dirty_vars``); protocol 0-2 spell it ``set([...])``.
    if not isinstance(items, (list, tuple)):
        raise _RefusedError("builtins.set of something other than a list")
    if not all(isinstance(i, _PLAIN) for i in items):
        raise _RefusedError("builtins.set of objects other than plain values")
    return set(items)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 spelling of "make an empty instance of cls", for placeholder classes only.
    if not (isinstance(cls, type) and issubclass(cls, _Placeholder)):
        raise _RefusedError("copyreg._reconstructor of a class that is not admitted")
    if base is not _OBJECT_BASE or state is not None:
        raise _RefusedError("copyreg._reconstructor with a base other than object")
    return cls.__new__(cls)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_FROMBUFFER = _Guarded("numpy _frombuffer", _np_frombuffer)
_RECONSTRUCT = _Guarded("numpy _reconstruct", _np_reconstruct)
_SCALAR = _Guarded("numpy scalar", _np_scalar)
_BYTES = _Guarded("builtins.bytes", _bytes)
_SET = _Guarded("builtins.set", _set)
_RECONSTRUCTOR = _Guarded("copyreg._reconstructor", _reconstructor)

# Every global a file may name, as (module, name) -> what the pickle gets. Module names as they
# appear in the file (Python 2 spellings included: find_class sees them before any renaming).
# Besides these, chumpy classes and scipy sparse classes map to placeholders (find_class).
_ADMITTED: dict[tuple[str, str], _Guarded] = {
    **{(m, "_reconstruct"): _RECONSTRUCT for m in _NUMPY_MODULES},
    **{(m, "scalar"): _SCALAR for m in _NUMPY_MODULES},
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NDARRAY_TYPE,
    ("numpy", "dtype"): _Guarded("numpy.dtype", _np_dtype),
    ("_codecs", "encode"): _Guarded("_codecs.encode", _codecs_encode),
    ("builtins", "bytes"): _BYTES,
    ("__builtin__", "bytes"): _BYTES,
    ("builtins", "set"): _SET,
    ("__builtin__", "set"): _SET,
    ("copyreg", "_reconstructor"): _RECONSTRUCTOR,
    ("copy_reg", "_reconstructor"): _RECONSTRUCTOR,
    ("builtins", "object"): _OBJECT_BASE,
    ("__builtin__", "object"): _OBJECT_BASE,
}

# Python 2 module names a refused global may be spelled with (named in messages as Python 3 does).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins"}

_SPARSE_NAMES = {
    "csc": ("csc_matrix", "csc_array"),
    "csr": ("csr_matrix", "csr_array"),
    "coo": ("coo_matrix", "coo_array"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` returns only admitted objects or inert placeholders."""

    def __init__(self, file: io.BufferedIOBase, *, encoding: str) -> None:
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._placeholders: dict[str, type[_Placeholder]] = {}

    def find_class(self, module: str, name: str) -> Any:
        admitted = _ADMITTED.get((module, name))
        if admitted is not None:
            return admitted
        qualname = f"{module}.{name}"
        if module in _PY2_MODULES:
            qualname += f" (i.e. {_PY2_MODULES[module]}.{name})"
        if not name.isidentifier():
            raise _RefusedError(qualname)
        if module == "chumpy" or module.startswith("chumpy."):
            return self._placeholder(qualname, _ChumpyPlaceholder, {})
        layout = _SPARSE_MODULES.get(module)
        if layout is not None and name in _SPARSE_NAMES[layout]:
            return self._placeholder(qualname, _SparsePlaceholder, {"layout": layout})
        raise _RefusedError(qualname)

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedError("a persistent id")

    def _placeholder(self, qualname: str, base: type[_Placeholder], extra: dict[str, Any]) -> type:
        cls = self._placeholders.get(qualname)
        if cls is None:
            cls = type(qualname.rsplit(".", 1)[-1], (base,), {"__slots__": (), "origin": qualname, **extra})
            self._placeholders[qualname] = cls
        return cls


# --------------------------------------------------------------------------------------------
# Conversion of the loaded object graph.


class _Converter:
    """Replaces placeholders by arrays / csc matrices throughout a loaded object graph."""

    def __init__(self, path: Path, hint: str = _REPLACE_HINT) -> None:
        self.path = path
        self.hint = hint
        self.done: dict[int, Any] = {}  # id of an object of the (live) loaded graph -> converted
        self.active: set[int] = set()

    def fail(self, problem: str) -> AssetInvalid:
        return AssetInvalid(f"{self.path}: {problem}; the file is damaged or not the expected asset: {self.hint}.")

    def convert(self, obj: Any) -> Any:
        if isinstance(obj, (*_PLAIN, complex, np.generic, np.dtype)):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise self.fail(f"a {type(obj).__name__} object refers to itself")
        if isinstance(obj, dict):
            out: Any = {}
            self.done[key] = out
            for k, v in obj.items():
                if not isinstance(k, _PLAIN):
                    raise self.fail(f"a dict key of type {type(k).__name__}")
                out[k] = self.convert(v)
            return out
        if isinstance(obj, list):
            out = []
            self.done[key] = out
            out.extend(self.convert(v) for v in obj)
            return out
        self.active.add(key)
        try:
            if isinstance(obj, tuple):
                out = tuple(self.convert(v) for v in obj)
            elif isinstance(obj, (set, frozenset)):
                if not all(isinstance(v, _PLAIN) for v in obj):
                    raise self.fail("a set of objects other than plain values")
                out = obj
            elif isinstance(obj, np.ndarray):
                out = self._array(obj)
            elif isinstance(obj, _ChumpyPlaceholder):
                out = self._chumpy(obj)
            elif isinstance(obj, _SparsePlaceholder):
                out = _sparse_from_state(obj, self.fail)
            else:
                raise self.fail(f"an unexpected object of type {type(obj).__name__}")
        finally:
            self.active.discard(key)
        self.done[key] = out
        return out

    def _array(self, arr: np.ndarray) -> np.ndarray:
        if not arr.dtype.hasobject:
            return arr
        if arr.dtype != np.dtype(object):
            raise self.fail("a structured array with object fields")
        out = np.empty(arr.shape, dtype=object)
        for index, value in np.ndenumerate(arr):
            out[index] = self.convert(value)
        return out

    def _chumpy(self, obj: _ChumpyPlaceholder) -> np.ndarray:
        state = obj._state
        if not isinstance(state, dict) or "x" not in state:
            raise self.fail(f"chumpy object {obj.origin} holds no array under 'x'")
        try:
            value = np.asarray(self.convert(state["x"]))
        except (ValueError, TypeError):
            raise self.fail(f"chumpy object {obj.origin} holds no array under 'x'") from None
        if value.dtype.kind not in "biuf":
            raise self.fail(f"chumpy object {obj.origin} holds {value.dtype} data, not numbers")
        return value


def _as_index_array(value: Any, what: str, fail: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in "iu":
        raise fail(f"sparse matrix field '{what}' is not a 1-D integer array")
    return value


def _sparse_from_state(obj: _SparsePlaceholder, fail: Any) -> Any:
    """Build a validated ``scipy.sparse.csc_matrix`` from a sparse placeholder's pickled fields."""
    import scipy.sparse as sp

    state = obj._state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]
    if not isinstance(state, dict):
        raise fail(f"sparse matrix {obj.origin} has no field dict")
    shape = state.get("_shape", state.get("shape"))
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise fail(f"sparse matrix {obj.origin} has no valid 2-D shape")
    shape = (int(shape[0]), int(shape[1]))
    data = state.get("data")
    if not isinstance(data, np.ndarray) or data.ndim != 1 or data.dtype.kind not in "biufc":
        raise fail(f"sparse matrix {obj.origin} field 'data' is not a 1-D numeric array")
    try:
        if obj.layout == "coo":
            if "coords" in state:
                coords = state["coords"]
                if not isinstance(coords, tuple) or len(coords) != 2:
                    raise fail(f"sparse matrix {obj.origin} field 'coords' is not a pair of arrays")
                row, col = coords
            else:
                row, col = state.get("row"), state.get("col")
            row = _as_index_array(row, "row", fail)
            col = _as_index_array(col, "col", fail)
            if not (row.size == col.size == data.size):
                raise fail(f"sparse matrix {obj.origin} has fields of different lengths")
            outside = row.size and (row.min() < 0 or col.min() < 0 or row.max() >= shape[0] or col.max() >= shape[1])
            if outside:
                raise fail(f"sparse matrix {obj.origin} has indices outside its shape {shape}")
            return sp.coo_matrix((data, (row, col)), shape=shape).tocsc()
        indices = _as_index_array(state.get("indices"), "indices", fail)
        indptr = _as_index_array(state.get("indptr"), "indptr", fail)
        cls = sp.csc_matrix if obj.layout == "csc" else sp.csr_matrix
        matrix = cls((data, indices, indptr), shape=shape)
        matrix.check_format(full_check=True)
        return matrix.tocsc()
    except (ValueError, TypeError, IndexError) as err:
        raise fail(f"sparse matrix {obj.origin} is malformed ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------
# Public API


def _unpickle(data: bytes | io.BufferedIOBase, path: Path, *, encoding: str) -> Any:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        loaded = _RestrictedUnpickler(stream, encoding=encoding).load()
    except _RefusedError as refused:
        raise AssetInvalid(
            f"{path}: refused to load: the pickle asks for {refused} (only numpy arrays, chumpy arrays "
            f"and scipy sparse matrices are admitted; nothing from the file was run); the file is not "
            f"the expected asset or was tampered with: {_REPLACE_HINT}."
        ) from None
    except _CORRUPT_ERRORS as err:
        raise AssetInvalid(
            f"{path}: not a readable pickle ({type(err).__name__}: {_first_line(err)}); the file is "
            f"truncated or damaged: {_REPLACE_HINT}."
        ) from None
    try:
        return _Converter(path).convert(loaded)
    except RecursionError:
        raise AssetInvalid(f"{path}: the pickle is nested too deeply for an asset; {_REPLACE_HINT}.") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AssetMissing(f"{path} does not exist: put the file there or point to its folder.") from None
    except OSError as err:
        raise AssetInvalid(f"{path}: cannot be read ({err.strerror or err}); check the file.") from None


def load_pickle(path: Path, *, encoding: str = "latin1") -> Any:
    """Load a pickle (e.g. an original SMPL ``.pkl``) admitting only array/chumpy/sparse data.

    chumpy objects come back as ``np.ndarray`` (their ``x``), sparse matrices as
    ``scipy.sparse.csc_matrix``. Raises ``AssetInvalid`` (one line, naming the file) for a refused
    global, a truncated/empty/non-pickle file, and ``AssetMissing`` if the file does not exist.
    """
    path = Path(path)
    data = _read_bytes(path)
    if not data:
        raise AssetInvalid(f"{path}: the file is empty; {_REPLACE_HINT}.")
    return _unpickle(data, path, encoding=encoding)


def _npy_header(fp: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        return fmt.read_array_header_1_0(fp)
    if version == (2, 0):
        return fmt.read_array_header_2_0(fp)
    raise ValueError(f"unsupported .npy format version {version}")


def load_npz_with_objects(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz``, object arrays through the restricted unpickler.

    Plain members are read with ``allow_pickle=False``; object members (e.g. GraphCMR's
    ``A``/``U``/``D``: object arrays of scipy sparse matrices) come back as object arrays whose
    elements are converted (sparse -> ``csc_matrix``). Never calls ``np.load(allow_pickle=True)``.
    Raises ``AssetInvalid`` (bad zip, truncated or malformed member, refused global) or
    ``AssetMissing``.
    """
    path = Path(path)
    if not path.exists():
        raise AssetMissing(f"{path} does not exist: put the file there or point to its folder.")
    out: dict[str, np.ndarray] = {}
    member = ""
    try:
        problem = check_directory(path, ASSET_LIMITS)  # before zipfile reads the directory
        if problem:
            raise AssetInvalid(f"{path}: not a valid .npz ({problem}); {_REPLACE_HINT}.")
        with zipfile.ZipFile(path) as archive:
            problem = check_members(archive, ASSET_LIMITS)  # before anything is inflated
            if problem:
                raise AssetInvalid(f"{path}: {problem}; {_REPLACE_HINT}.")
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                key = member[: -len(".npy")]
                stream = io.BytesIO(archive.read(member))  # read() checks the member's CRC
                shape, _fortran, dtype = _npy_header(stream)
                if not dtype.hasobject:
                    held = len(stream.getbuffer()) - stream.tell()
                    if math.prod(shape) * dtype.itemsize != held:
                        raise AssetInvalid(f"{path}: member '{key}' declares shape {tuple(shape)} but holds {held} "
                                           f"bytes of data; {_REPLACE_HINT}.")
                    stream.seek(0)
                    out[key] = np.lib.format.read_array(stream, allow_pickle=False)
                    continue
                array = _unpickle(stream, path, encoding="latin1")
                if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
                    raise AssetInvalid(
                        f"{path}: member '{key}' does not hold the object array its header announces; {_REPLACE_HINT}."
                    )
                out[key] = array
        if not out:
            raise AssetInvalid(f"{path}: a zip archive without any .npy array, not an .npz; {_REPLACE_HINT}.")
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise AssetInvalid(f"{path}: not a valid .npz (zip) archive ({_first_line(err)}); {_REPLACE_HINT}.") from None
    except OSError as err:
        raise AssetInvalid(f"{path}: cannot be read ({err.strerror or err}); check the file.") from None
    except _CORRUPT_ERRORS as err:
        where = f" member '{member}'" if member else ""
        raise AssetInvalid(
            f"{path}:{where} is truncated or malformed ({type(err).__name__}: {_first_line(err)}); {_REPLACE_HINT}."
        ) from None
    return out


# --------------------------------------------------------------------------------------------
# joblib files (``joblib.dump``): a pickle whose arrays are records followed by raw bytes.


class _JoblibArrayPlaceholder(_Placeholder):
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
        admitted = _ADMITTED.get((module, name))
        if admitted is not None:
            return admitted
        if (module, name) == _JOBLIB_WRAPPER:
            return _JoblibArrayPlaceholder
        qualname = f"{module}.{name}"
        if module in _PY2_MODULES:
            qualname += f" (i.e. {_PY2_MODULES[module]}.{name})"
        raise _RefusedError(qualname)

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedError("a persistent id")

    def _load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], _JoblibArrayPlaceholder):
            self.stack[-1] = self._read_array(self.stack[-1]._state)

    dispatch[pickle.BUILD[0]] = _load_build

    def _read_array(self, state: Any) -> np.ndarray:
        if not isinstance(state, dict):
            raise _RefusedError("a joblib array record without its field dict")
        if state.get("subclass") is not _NDARRAY_TYPE:
            raise _RefusedError("a joblib array of a class other than numpy.ndarray")
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
                raise _RefusedError("a structured array with object fields")
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
        except _RefusedError as refused:
            raise AssetInvalid(
                f"{path}: refused to load: the pickle asks for {refused} (only arrays and plain values are "
                f"admitted; nothing from the file was run); the file is not the expected data or was "
                f"tampered with: {hint}."
            ) from None
        except (*_CORRUPT_ERRORS, zlib.error, lzma.LZMAError, OSError, MemoryError) as err:
            raise AssetInvalid(
                f"{path}: not a readable joblib file ({type(err).__name__}: {_first_line(err)}); the file "
                f"is truncated or damaged: {hint}."
            ) from None
    try:
        return _Converter(path, hint).convert(loaded)
    except RecursionError:
        raise AssetInvalid(f"{path}: the pickle is nested too deeply for a data file; {hint}.") from None
