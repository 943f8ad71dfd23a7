"""Writing data in joblib's file format without joblib: test fixtures, synthetic datasets, converted data.

``joblib.dump`` pickles each numpy array as a record of class ``joblib.numpy_pickle.NumpyArrayWrapper``
(state: subclass, shape, order, dtype, allow_mmap, numpy_array_alignment_bytes) and writes the
array's bytes right after that record, outside the pickle: one byte giving a padding length,
that many 0xFF bytes (so the data starts on a 16-byte boundary), then the data in the record's
order. Object arrays are written instead as a nested protocol-2 pickle. Pickles of protocol 4 and
above end their current frame before the raw bytes. :func:`write_joblib` produces exactly that, so
``joblib.load`` and :func:`core.safe_pickle.load_joblib` both read the result.
"""

from __future__ import annotations

import copyreg
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.atomic import atomic_path

__all__ = ["write_joblib"]

_ALIGNMENT = 16
_MODULE, _NAME = "joblib.numpy_pickle", "NumpyArrayWrapper"


class _ArrayRecord:
    """Pickles as joblib's array record (the class name written is joblib's, not this one)."""

    def __init__(self, array: np.ndarray, order: str) -> None:
        self.state = {
            "subclass": np.ndarray,
            "shape": tuple(int(n) for n in array.shape),
            "order": order,
            "dtype": array.dtype,
            "allow_mmap": not array.dtype.hasobject,
            "numpy_array_alignment_bytes": _ALIGNMENT,
        }

    def __reduce_ex__(self, protocol: int) -> tuple:
        return copyreg.__newobj__, (_ArrayRecord,), self.state


class _JoblibStylePickler(pickle._Pickler):
    """The pure-Python pickler (joblib's base too), writing arrays as joblib does."""

    def __init__(self, file: BinaryIO, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self._file = file

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if type(obj) is np.ndarray:
            self._save_array(obj)
            return
        super().save(obj, save_persistent_id)

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is not _ArrayRecord:
            super().save_global(obj, name)
            return
        if self.proto >= 4:
            self.save(_MODULE)
            self.save(_NAME)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{_MODULE}\n{_NAME}\n".encode())
        self.memoize(obj)

    def _save_array(self, array: np.ndarray) -> None:
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        super().save(_ArrayRecord(array, order))
        if self.proto >= 4:
            self.framer.commit_frame(force=True)  # the raw bytes must follow the record in the file
        if array.dtype.hasobject:
            pickle.dump(array, self._file, protocol=2)
            return
        padding = _ALIGNMENT - (self._file.tell() + 1) % _ALIGNMENT
        self._file.write(bytes([padding]) + b"\xff" * padding)
        self._file.write(array.tobytes(order=order))


def write_joblib(obj: Any, path: Path, *, protocol: int = 4) -> Path:
    """Write ``obj`` (e.g. a dict of arrays) as an uncompressed ``joblib.dump`` file, atomically.

    ``protocol``: pickle protocol 2..5 (joblib's default is Python's, 4 or 5).
    """
    if not 2 <= protocol <= pickle.HIGHEST_PROTOCOL:
        raise ValueError(f"pickle protocol must be 2..{pickle.HIGHEST_PROTOCOL}, got {protocol}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _JoblibStylePickler(fh, protocol).dump(obj)
    return path
