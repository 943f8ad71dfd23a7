"""Conversion of a loaded object graph into plain data.

The restricted unpickler leaves inert placeholders where a file named chumpy or scipy sparse
classes; ``Converter`` walks what was loaded and replaces each one by data (a chumpy object by
``np.asarray`` of its ``x``, a sparse placeholder by a validated ``scipy.sparse.csc_matrix``),
refusing anything that is not plain values, containers, arrays or placeholders. Kept apart from
the unpickler because it runs after loading, on the result, and both readers share it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AssetInvalid
from core.safe_pickle.admitted import PLAIN, REPLACE_HINT, ChumpyPlaceholder, SparsePlaceholder, first_line

__all__ = ["Converter"]


# --------------------------------------------------------------------------------------------
# Conversion of the loaded object graph.


class Converter:
    """Replaces placeholders by arrays / csc matrices throughout a loaded object graph."""

    def __init__(self, path: Path, hint: str = REPLACE_HINT) -> None:
        self.path = path
        self.hint = hint
        self.done: dict[int, Any] = {}  # id of an object of the (live) loaded graph -> converted
        self.active: set[int] = set()

    def fail(self, problem: str) -> AssetInvalid:
        return AssetInvalid(f"{self.path}: {problem}; the file is damaged or not the expected asset: {self.hint}.")

    def convert(self, obj: Any) -> Any:
        if isinstance(obj, (*PLAIN, complex, np.generic, np.dtype)):
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
                if not isinstance(k, PLAIN):
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
                if not all(isinstance(v, PLAIN) for v in obj):
                    raise self.fail("a set of objects other than plain values")
                out = obj
            elif isinstance(obj, np.ndarray):
                out = self._array(obj)
            elif isinstance(obj, ChumpyPlaceholder):
                out = self._chumpy(obj)
            elif isinstance(obj, SparsePlaceholder):
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

    def _chumpy(self, obj: ChumpyPlaceholder) -> np.ndarray:
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


def _sparse_from_state(obj: SparsePlaceholder, fail: Any) -> Any:
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
        raise fail(f"sparse matrix {obj.origin} is malformed ({first_line(err)})") from None
