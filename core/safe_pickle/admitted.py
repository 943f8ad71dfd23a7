"""What the restricted unpickler admits, and the unpickler itself.

A pickle names the globals it needs; ``RestrictedUnpickler.find_class`` hands back only what
``ADMITTED`` lists (numpy's array, dtype and scalar reconstruction, the spellings of bytes and sets,
each wrapped so that it checks its arguments and accepts only data) or an inert placeholder class
for a chumpy or scipy sparse class, and refuses everything else with ``RefusedError`` before it is
touched. The placeholders, the error tuple and the message helpers live here too because the
converter and both readers (``pickles``, ``joblib_files``) build on them.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

__all__ = [
    "ADMITTED",
    "CORRUPT_ERRORS",
    "NDARRAY_TYPE",
    "PLAIN",
    "PY2_MODULES",
    "REPLACE_HINT",
    "ChumpyPlaceholder",
    "Placeholder",
    "RefusedError",
    "RestrictedUnpickler",
    "SparsePlaceholder",
    "first_line",
]

# What a failing read raises from inside ``pickle``/``numpy``/``zipfile`` on a corrupt file.
CORRUPT_ERRORS: tuple[type[BaseException], ...] = (
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

REPLACE_HINT = "replace it with the original download"


# --------------------------------------------------------------------------------------------
# Inert placeholders: they only remember the state the pickle gives them.


class Placeholder:
    """Stands in for a class named by a pickle; holds the pickled state and runs no foreign code."""

    origin: str = "?"

    __slots__ = ("_state",)

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        self = object.__new__(cls)
        self._state = None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self._state = state


class ChumpyPlaceholder(Placeholder):
    """A ``chumpy`` object: its state dict holds the array under ``'x'``."""

    __slots__ = ()


class SparsePlaceholder(Placeholder):
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


class RefusedError(Exception):
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
        raise RefusedError(f"changing {self._name}")

    def __setstate__(self, state: Any) -> None:
        raise RefusedError(f"changing {self._name}")


def _argument_only(qualname: str, where: str) -> _Guarded:
    """A global admitted only as an argument of another admitted call, never called itself."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RefusedError(f"{qualname} used outside {where}")

    return _Guarded(qualname, refuse)


_OBJECT_BASE = _argument_only("builtins.object", "copyreg._reconstructor")
NDARRAY_TYPE = _argument_only("numpy.ndarray", "numpy's _reconstruct")


def _multiarray() -> Any:
    from numpy.core import multiarray  # numpy<2 is pinned; numpy._core exists only from 2.0

    return multiarray


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not NDARRAY_TYPE:
        raise RefusedError(f"numpy _reconstruct of {type(subtype).__name__} (only numpy.ndarray is admitted)")
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and 0 <= s <= 1 for s in shape):
        raise RefusedError("numpy _reconstruct with an unusual shape")
    if not isinstance(dtype, (bytes, str)) or len(dtype) != 1:
        raise RefusedError("numpy _reconstruct with an unusual type code")
    return _multiarray()._reconstruct(np.ndarray, shape, dtype)


def _np_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(obj, str):
        raise RefusedError(f"numpy.dtype of a {type(obj).__name__} (only a type string is admitted)")
    return np.dtype(obj, align=bool(align), copy=bool(copy))


def _np_scalar(dtype: Any, obj: Any = None) -> Any:
    if not isinstance(dtype, np.dtype):
        raise RefusedError("numpy scalar without a numpy dtype")
    if dtype.hasobject:
        return obj
    if not isinstance(obj, (bytes, str)):
        raise RefusedError("numpy scalar without raw bytes")
    return _multiarray().scalar(dtype, obj)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # Protocol 5 spelling of a contiguous array (numpy's ``_frombuffer``), for plain data only.
    if not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise RefusedError("numpy _frombuffer of something other than raw bytes of a plain dtype")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise RefusedError("numpy _frombuffer with an invalid shape")
    if order not in ("C", "F"):
        raise RefusedError("numpy _frombuffer with an invalid order")
    array = np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)
    return array if array.flags.writeable else array.copy()


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Python 3 writes ``bytes`` into protocol 0-2 pickles as ``_codecs.encode(str, 'latin1')``.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise RefusedError("_codecs.encode other than the latin1 spelling of bytes")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    # Python 3 writes empty ``bytes`` into protocol 0-2 pickles as ``bytes()``.
    if args:
        raise RefusedError("builtins.bytes with arguments (only bytes() is admitted)")
    return b""


PLAIN = (str, bytes, int, float, bool, type(None))


def _set(items: Any = ()) -> set:
    # chumpy objects keep a set of names (``_dirty_vars``); protocol 0-2 spell it ``set([...])``.
    if not isinstance(items, (list, tuple)):
        raise RefusedError("builtins.set of something other than a list")
    if not all(isinstance(i, PLAIN) for i in items):
        raise RefusedError("builtins.set of objects other than plain values")
    return set(items)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 spelling of "make an empty instance of cls", for placeholder classes only.
    if not (isinstance(cls, type) and issubclass(cls, Placeholder)):
        raise RefusedError("copyreg._reconstructor of a class that is not admitted")
    if base is not _OBJECT_BASE or state is not None:
        raise RefusedError("copyreg._reconstructor with a base other than object")
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
ADMITTED: dict[tuple[str, str], _Guarded] = {
    **{(m, "_reconstruct"): _RECONSTRUCT for m in _NUMPY_MODULES},
    **{(m, "scalar"): _SCALAR for m in _NUMPY_MODULES},
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): NDARRAY_TYPE,
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
PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins"}

_SPARSE_NAMES = {
    "csc": ("csc_matrix", "csc_array"),
    "csr": ("csr_matrix", "csr_array"),
    "coo": ("coo_matrix", "coo_array"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` returns only admitted objects or inert placeholders."""

    def __init__(self, file: io.BufferedIOBase, *, encoding: str) -> None:
        super().__init__(file, encoding=encoding, fix_imports=False)
        self._placeholders: dict[str, type[Placeholder]] = {}

    def find_class(self, module: str, name: str) -> Any:
        admitted = ADMITTED.get((module, name))
        if admitted is not None:
            return admitted
        qualname = f"{module}.{name}"
        if module in PY2_MODULES:
            qualname += f" (i.e. {PY2_MODULES[module]}.{name})"
        if not name.isidentifier():
            raise RefusedError(qualname)
        if module == "chumpy" or module.startswith("chumpy."):
            return self._placeholder(qualname, ChumpyPlaceholder, {})
        layout = _SPARSE_MODULES.get(module)
        if layout is not None and name in _SPARSE_NAMES[layout]:
            return self._placeholder(qualname, SparsePlaceholder, {"layout": layout})
        raise RefusedError(qualname)

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedError("a persistent id")

    def _placeholder(self, qualname: str, base: type[Placeholder], extra: dict[str, Any]) -> type:
        cls = self._placeholders.get(qualname)
        if cls is None:
            cls = type(qualname.rsplit(".", 1)[-1], (base,), {"__slots__": (), "origin": qualname, **extra})
            self._placeholders[qualname] = cls
        return cls


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
