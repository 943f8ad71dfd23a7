"""Readers of the VIBE/TCMR-style preprocessed datasets (``*_db.pt``, written by ``joblib.dump``).

A db file is a dict of per-frame arrays, one row per person per frame, rows of one track
consecutive. Keys read here (others, such as VIBE's pooled ``features``, are ignored):

| key | shape | meaning |
|---|---|---|
| ``vid_name`` | (N,) str | track name (sequence and person); consecutive equal names form a sequence |
| ``frame_id`` | (N,) int | frame number within the video (optional: 0.. per sequence) |
| ``img_name`` | (N,) str | image file of the frame (needed to compute features) |
| ``bbox`` | (N, 4) | person box (cx, cy, w, h) in pixels |
| ``joints2D`` | (N, J, 3) | 2D keypoints in pixels and confidence; J = 49 (SPIN), 17 or 14 |
| ``joints3D`` | (N, J, 3 or 4) | 3D joints in metres; J = 49 (SPIN), 17 or 14 |
| ``pose`` | (N, 72) | SMPL axis-angle pose |
| ``shape`` | (N, 10) | SMPL betas |
| ``valid`` | (N,) | 0 where the frame must not be scored (3DPW) |

Files are read with :func:`core.safe_pickle.load_joblib`: arrays and plain values only, nothing
from the file runs. Every problem is a one-line :class:`~core.errors.BadInput` naming the file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import AssetInvalid, AssetMissing, BadInput

__all__ = ["DATASETS", "DatasetSpec", "Db", "SequenceSlice", "dataset_spec", "read_db"]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its name on the command line, title, label kind, required keys, frame rate."""

    name: str
    title: str
    kind: Literal["3d", "2d"]
    required: tuple[str, ...]
    fps: float | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("3dpw", "3DPW", "3d", ("vid_name", "joints3D", "pose", "shape", "bbox"), 30.0),
        DatasetSpec("mpii3d", "MPI-INF-3DHP", "3d", ("vid_name", "joints3D", "bbox")),
        DatasetSpec("h36m", "Human3.6M", "3d", ("vid_name", "joints3D", "bbox")),
        DatasetSpec("posetrack", "PoseTrack", "2d", ("vid_name", "joints2D", "bbox")),
        DatasetSpec("pennaction", "PennAction", "2d", ("vid_name", "joints2D", "bbox")),
        DatasetSpec("insta", "InstaVariety", "2d", ("vid_name", "joints2D", "bbox")),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name``; BadInput listing the known ones otherwise."""
    spec = DATASETS.get(name.lower())
    if spec is None:
        raise BadInput(f"unknown dataset '{name}': use one of {', '.join(DATASETS)}")
    return spec


@dataclass(frozen=True)
class SequenceSlice:
    """Rows ``start .. stop - 1`` of a db: one track."""

    name: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class Db:
    """One validated db file. Arrays have N rows; optional ones are None when the file lacks them.

    vid_name (N,) str; frame_id (N,) int64; img_name (N,) str or None; bbox (N, 4) float32
    (cx, cy, w, h); joints2d (N, J, 3) float32 pixels + confidence; joints3d (N, J, 3|4) float32
    metres; pose (N, 72) float32; shape (N, 10) float32; valid (N,) bool.
    """

    path: Path
    spec: DatasetSpec
    vid_name: np.ndarray
    frame_id: np.ndarray
    img_name: np.ndarray | None
    bbox: np.ndarray
    joints2d: np.ndarray | None
    joints3d: np.ndarray | None
    pose: np.ndarray | None
    shape: np.ndarray | None
    valid: np.ndarray
    sequences: tuple[SequenceSlice, ...]

    def __len__(self) -> int:
        return len(self.vid_name)

    @property
    def has_smpl(self) -> bool:
        return self.pose is not None and self.shape is not None

    def fingerprint(self) -> str:
        """A digest of which frames (names, ids, boxes, images) the file holds, in order: a feature
        cache records it to detect being used with another db."""
        h = hashlib.sha256()
        h.update("\n".join(self.vid_name.tolist()).encode())
        h.update(self.frame_id.astype("<i8").tobytes())
        h.update(np.round(self.bbox.astype(np.float64), 3).astype("<f8").tobytes())
        if self.img_name is not None:
            h.update("\n".join(self.img_name.tolist()).encode())
        return h.hexdigest()[:32]


def _fail(path: Path, problem: str) -> BadInput:
    return BadInput(f"{path}: {problem}")


def _strings(path: Path, key: str, value: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or (n is not None and len(arr) != n):
        raise _fail(path, f"'{key}' has shape {arr.shape}, expected ({n if n is not None else 'N'},)")
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "O" and all(isinstance(v, (str, bytes)) for v in arr.tolist()):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in arr.tolist()], dtype=str)
    raise _fail(path, f"'{key}' holds {arr.dtype} values, not strings")


def _numbers(path: Path, key: str, value: Any, n: int, tail: tuple[int | None, ...] | None,
             expected: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise _fail(path, f"'{key}' holds {arr.dtype} values, not numbers")
    if tail is not None and (
        arr.ndim != 1 + len(tail)
        or len(arr) != n
        or any(t is not None and s != t for s, t in zip(arr.shape[1:], tail, strict=True))
    ):
        raise _fail(path, f"'{key}' has shape {arr.shape}, expected {expected}")
    arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise _fail(path, f"'{key}' contains NaN or infinite values")
    return arr


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False  # the reader reports it


def _sequences(vid_name: np.ndarray) -> tuple[SequenceSlice, ...]:
    if len(vid_name) == 0:
        return ()
    starts = np.flatnonzero(np.r_[True, vid_name[1:] != vid_name[:-1]])
    stops = np.r_[starts[1:], len(vid_name)]
    seen: dict[str, int] = {}
    out = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        name = str(vid_name[a])
        seen[name] = seen.get(name, 0) + 1
        out.append(SequenceSlice(name if seen[name] == 1 else f"{name}#{seen[name]}", a, b))
    return tuple(out)


def read_db(path: Path, dataset: str | DatasetSpec) -> Db:
    """Read and validate a ``*_db.pt`` of ``dataset`` (a name in :data:`DATASETS` or a spec).

    Raises BadInput (one line naming the file) if it is missing, unreadable, unsafe, lacks a key
    the dataset needs, or holds an array of the wrong shape.
    """
    path = Path(path)
    spec = dataset if isinstance(dataset, DatasetSpec) else dataset_spec(dataset)
    if _starts_with(path, b"\x89HDF\r\n\x1a\n"):
        raise _fail(path, "an HDF5 file (e.g. VIBE's insta_train_db.h5); only joblib *_db.pt files are read")
    from core.safe_pickle import load_joblib

    try:
        raw = load_joblib(path, hint=f"regenerate the {spec.title} db with the VIBE/TCMR preprocessing scripts")
    except AssetMissing:
        raise BadInput(f"{path}: dataset file not found; check the path") from None
    except AssetInvalid as err:
        raise BadInput(str(err)) from None
    if not isinstance(raw, dict):
        raise _fail(path, f"holds a {type(raw).__name__}, not the dict of arrays of a {spec.title} db")
    missing = [k for k in spec.required if k not in raw]
    if missing:
        found = ", ".join(sorted(map(str, raw))) or "nothing"
        raise _fail(path, f"not a {spec.title} db: key(s) {', '.join(repr(k) for k in missing)} missing (found: "
                          f"{found})")

    vid_name = _strings(path, "vid_name", raw["vid_name"], None)
    n = len(vid_name)
    bbox = _numbers(path, "bbox", raw["bbox"], n, (4,), f"({n}, 4)")
    if n and (bbox[:, 2:] <= 0).any():
        raise _fail(path, "'bbox' has boxes of zero or negative size (expected cx, cy, w, h)")
    frame_id = (
        _numbers(path, "frame_id", raw["frame_id"], n, (), f"({n},)").astype(np.int64)
        if "frame_id" in raw else np.zeros(n, dtype=np.int64)
    )
    img_name = _strings(path, "img_name", raw["img_name"], n) if "img_name" in raw else None

    def joints(key: str, coords: tuple[int, ...]) -> np.ndarray | None:
        if key not in raw:
            return None
        expected = f"({n}, 49|17|14, {'|'.join(map(str, coords))})"
        arr = _numbers(path, key, raw[key], n, (None, None), expected)
        if arr.shape[2] not in coords or arr.shape[1] not in (49, 17, 14):
            raise _fail(path, f"'{key}' has shape {arr.shape}, expected {expected}")
        return arr.astype(np.float32)

    joints2d = joints("joints2D", (3,))
    joints3d = joints("joints3D", (3, 4))
    if joints3d is not None and n and np.abs(joints3d[..., :3]).max() > 100:
        raise _fail(path, "'joints3D' values exceed 100: they look like millimetres, the readers expect metres")
    pose = _numbers(path, "pose", raw["pose"], n, (72,), f"({n}, 72)") if "pose" in raw else None
    shape = _numbers(path, "shape", raw["shape"], n, (10,), f"({n}, 10)") if "shape" in raw else None
    valid = np.ones(n, dtype=bool)
    if "valid" in raw:
        flags = np.asarray(raw["valid"])
        if flags.size != n or flags.dtype.kind not in "biuf":
            raise _fail(path, f"'valid' has shape {flags.shape} and type {flags.dtype}, expected {n} numbers")
        valid = flags.reshape(n) != 0
    return Db(path, spec, vid_name, frame_id, img_name, bbox, joints2d, joints3d, pose, shape, valid,
              _sequences(vid_name))
