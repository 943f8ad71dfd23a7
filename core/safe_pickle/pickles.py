"""Reading plain pickles and ``.npz`` archives (SMPL ``.pkl`` files, GraphCMR's object arrays).

``load_pickle`` reads a whole file through the restricted unpickler and converts the result;
``load_npz_with_objects`` checks an archive's directory against ``ASSET_LIMITS`` before anything
is inflated, reads plain members with ``allow_pickle=False`` and only object members through the
restricted unpickler. Both turn every failure into one ``AssetInvalid`` or ``AssetMissing`` line
naming the file.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AssetInvalid, AssetMissing
from core.npz_archive import ArchiveLimits, check_directory, check_members
from core.safe_pickle.admitted import CORRUPT_ERRORS, REPLACE_HINT, RefusedError, RestrictedUnpickler, first_line
from core.safe_pickle.convert import Converter

__all__ = ["ASSET_LIMITS", "load_npz_with_objects", "load_pickle"]

#: Bounds on an asset archive (.npz): member sizes are checked before anything is inflated, so
#: reading one holds at most 2 GiB of array data whatever sizes the file declares.
ASSET_LIMITS = ArchiveLimits(max_members=4096, max_total_bytes=2 << 30, max_ratio=1000)


# --------------------------------------------------------------------------------------------
# Public API


def _unpickle(data: bytes | io.BufferedIOBase, path: Path, *, encoding: str) -> Any:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        loaded = RestrictedUnpickler(stream, encoding=encoding).load()
    except RefusedError as refused:
        raise AssetInvalid(
            f"{path}: refused to load: the pickle asks for {refused} (only numpy arrays, chumpy arrays "
            f"and scipy sparse matrices are admitted; nothing from the file was run); the file is not "
            f"the expected asset or was tampered with: {REPLACE_HINT}."
        ) from None
    except CORRUPT_ERRORS as err:
        raise AssetInvalid(
            f"{path}: not a readable pickle ({type(err).__name__}: {first_line(err)}); the file is "
            f"truncated or damaged: {REPLACE_HINT}."
        ) from None
    try:
        return Converter(path).convert(loaded)
    except RecursionError:
        raise AssetInvalid(f"{path}: the pickle is nested too deeply for an asset; {REPLACE_HINT}.") from None


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
        raise AssetInvalid(f"{path}: the file is empty; {REPLACE_HINT}.")
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
            raise AssetInvalid(f"{path}: not a valid .npz ({problem}); {REPLACE_HINT}.")
        with zipfile.ZipFile(path) as archive:
            problem = check_members(archive, ASSET_LIMITS)  # before anything is inflated
            if problem:
                raise AssetInvalid(f"{path}: {problem}; {REPLACE_HINT}.")
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
                                           f"bytes of data; {REPLACE_HINT}.")
                    stream.seek(0)
                    out[key] = np.lib.format.read_array(stream, allow_pickle=False)
                    continue
                array = _unpickle(stream, path, encoding="latin1")
                if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
                    raise AssetInvalid(
                        f"{path}: member '{key}' does not hold the object array its header announces; {REPLACE_HINT}."
                    )
                out[key] = array
        if not out:
            raise AssetInvalid(f"{path}: a zip archive without any .npy array, not an .npz; {REPLACE_HINT}.")
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise AssetInvalid(f"{path}: not a valid .npz (zip) archive ({first_line(err)}); {REPLACE_HINT}.") from None
    except OSError as err:
        raise AssetInvalid(f"{path}: cannot be read ({err.strerror or err}); check the file.") from None
    except CORRUPT_ERRORS as err:
        where = f" member '{member}'" if member else ""
        raise AssetInvalid(
            f"{path}:{where} is truncated or malformed ({type(err).__name__}: {first_line(err)}); {REPLACE_HINT}."
        ) from None
    return out
