"""The motion file: the documented, versioned boundary between the engine and the add-on.

A motion file is an uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, no pickles) described
in ``docs/motion-format.md``. This module is the single definition of its layout: the engine
writes through :func:`motion_arrays`, and every reader (the engine, the Blender add-on, other
tools) goes through :func:`read_motion`, which checks the version, every shape and finiteness.

It depends on numpy and the standard library only, so the Blender add-on ships a copy of it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FLAG_DETECTED",
    "FLAG_INTERPOLATED",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Motion",
    "MotionFormatError",
    "PersonMotion",
    "motion_arrays",
    "read_motion",
]

FORMAT_NAME = "staf-motion"
FORMAT_VERSION = 1

#: Bits of ``PersonMotion.flags``.
FLAG_DETECTED = 1  # the person's box was detected in this frame
FLAG_INTERPOLATED = 2  # the box was filled in from neighbouring frames (a short detection gap)

N_JOINTS = 24
N_BETAS = 10
N_LANDMARKS = 33


class MotionFormatError(ValueError):
    """A motion file that cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True, eq=False)
class PersonMotion:
    """One tracked person. F = frames in which the person has a box.

    frame (F,) int64 clip frame numbers, increasing; time (F,) float64 seconds;
    pose (F, 24, 3) float32 SMPL axis-angle, root in camera axes (x right, y down, z forward);
    betas (F, 10) float32 per-frame shape; cam_crop (F, 3) float32 crop camera (s, tx, ty);
    cam_full (F, 4) float32 full-image camera (sx, sy, tx, ty); translation (F, 3) float32 metres,
    camera axes, added to the posed SMPL body; box (F, 4) float32 (cx, cy, w, h) pixels;
    flags (F,) uint8 FLAG_* bits; shape (10,) float32 the person's one shape (robust mean);
    rest_vertices (V, 3) and rest_joints (24, 3) float32: the SMPL rest pose for ``shape``.
    Optional (None when the file has none): score (F,) float32 the detector's presence score and
    landmarks (F, 33, 3) float32 BlazePose's 2D landmarks (x, y pixels, visibility), both NaN on
    frames where the person was not observed (interpolated or not analysed).
    """

    person_id: int
    frame: np.ndarray
    time: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    cam_crop: np.ndarray
    cam_full: np.ndarray
    translation: np.ndarray
    box: np.ndarray
    flags: np.ndarray
    shape: np.ndarray
    rest_vertices: np.ndarray
    rest_joints: np.ndarray
    score: np.ndarray | None = None
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class Motion:
    """A whole motion file.

    meta: JSON-compatible dict (source video, engine, checkpoint, options, camera); frame_index (N,)
    int64 and frame_time (N,) float64: every frame of the processed range; joint_names (24,);
    parents (24,) int32 (root -1); faces (13776, 3) int32; skin_weights (V, 24) float32;
    shape_dirs (V, 3, 10) float32; people: one PersonMotion per track.
    """

    meta: dict[str, Any]
    frame_index: np.ndarray
    frame_time: np.ndarray
    joint_names: tuple[str, ...]
    parents: np.ndarray
    faces: np.ndarray
    skin_weights: np.ndarray
    shape_dirs: np.ndarray
    people: tuple[PersonMotion, ...] = field(default_factory=tuple)

    @property
    def fps(self) -> float:
        """The clip's frame rate, exact for rational rates such as 30000/1001."""
        src = self.meta["source"]
        return src["fps_num"] / src["fps_den"]

    def person(self, person_id: int) -> PersonMotion:
        """The person with this id."""
        for p in self.people:
            if p.person_id == person_id:
                return p
        ids = ", ".join(str(p.person_id) for p in self.people) or "none"
        raise KeyError(f"no person {person_id} in this motion file (people: {ids})")


_PERSON_FIELDS = {
    # name: (dtype, trailing shape; "V" = vertices)
    "frame": (np.int64, ()),
    "time": (np.float64, ()),
    "pose": (np.float32, (N_JOINTS, 3)),
    "betas": (np.float32, (N_BETAS,)),
    "cam_crop": (np.float32, (3,)),
    "cam_full": (np.float32, (4,)),
    "translation": (np.float32, (3,)),
    "box": (np.float32, (4,)),
    "flags": (np.uint8, ()),
}
_PERSON_STATIC = {
    "shape": (np.float32, (N_BETAS,)),
    "rest_vertices": (np.float32, ("V", 3)),
    "rest_joints": (np.float32, (N_JOINTS, 3)),
}


_PERSON_OPTIONAL = {
    # name: (dtype, trailing shape); NaN marks frames without an observation
    "score": (np.float32, ()),
    "landmarks": (np.float32, (N_LANDMARKS, 3)),
}


def _person_key(person_id: int, name: str) -> str:
    return f"person_{person_id}/{name}"


def motion_arrays(motion: Motion) -> dict[str, np.ndarray]:
    """The arrays ``np.savez`` writes for ``motion`` (plain dtypes only: readable without pickles)."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "meta": np.array(json.dumps(motion.meta, sort_keys=True)),
        "frame_index": np.asarray(motion.frame_index, np.int64),
        "frame_time": np.asarray(motion.frame_time, np.float64),
        "joint_names": np.array(motion.joint_names, dtype=str),
        "parents": np.asarray(motion.parents, np.int32),
        "faces": np.asarray(motion.faces, np.int32),
        "skin_weights": np.asarray(motion.skin_weights, np.float32),
        "shape_dirs": np.asarray(motion.shape_dirs, np.float32),
        "person_ids": np.array([p.person_id for p in motion.people], dtype=np.int64),
    }
    for person in motion.people:
        for name, (dtype, _) in {**_PERSON_FIELDS, **_PERSON_STATIC}.items():
            arrays[_person_key(person.person_id, name)] = np.asarray(getattr(person, name), dtype)
        for name, (dtype, _) in _PERSON_OPTIONAL.items():
            if getattr(person, name) is not None:
                arrays[_person_key(person.person_id, name)] = np.asarray(getattr(person, name), dtype)
    return arrays


class _Reader:
    def __init__(self, path: Path, data: Any) -> None:
        self.path = path
        self.data = data

    def fail(self, problem: str) -> MotionFormatError:
        return MotionFormatError(f"{self.path}: {problem}")

    def get(self, key: str) -> np.ndarray:
        if key not in self.data.files:
            raise self.fail(f"not a complete motion file: '{key}' is missing")
        try:
            return self.data[key]
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise self.fail(f"'{key}' is unreadable ({err}); the file is truncated or corrupt") from None

    def array(self, key: str, kind: type, shape: tuple[int | None, ...], allow_nan: bool = False) -> np.ndarray:
        a = self.get(key)
        if (kind is np.floating and a.dtype.kind != "f") or (kind is np.integer and a.dtype.kind not in "iu"):
            raise self.fail(f"'{key}' has dtype {a.dtype}, expected {kind.__name__}")
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape, strict=True)):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise self.fail(f"'{key}' has shape {a.shape}, expected {want}")
        if a.dtype.kind == "f" and not (np.isfinite(a) | (allow_nan & np.isnan(a))).all():
            raise self.fail(f"'{key}' holds {'infinite' if allow_nan else 'NaN or infinite'} values")
        return a


def read_motion(path: str | Path) -> Motion:
    """Read and validate a motion file; raises MotionFormatError with one line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise MotionFormatError(f"{path}: motion file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise MotionFormatError(f"{path}: not a motion file (not a readable .npz: {err})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise MotionFormatError(f"{path}: not a motion file (a single array, not an .npz archive)")
    with data:
        r = _Reader(path, data)
        if "format" not in data.files or str(r.get("format")) != FORMAT_NAME:
            raise r.fail(f"not a motion file (no '{FORMAT_NAME}' marker): write one with 'python -m core reconstruct'")
        version = int(r.get("version"))
        if version > FORMAT_VERSION:
            raise r.fail(f"motion file version {version} is newer than this reader's ({FORMAT_VERSION}): "
                         "update the add-on")
        if version < 1:
            raise r.fail(f"invalid motion file version {version}")
        try:
            meta = json.loads(str(r.get("meta")))
            fps_num, fps_den = int(meta["source"]["fps_num"]), int(meta["source"]["fps_den"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise r.fail("'meta' is not valid JSON with source.fps_num and source.fps_den") from None
        if fps_num <= 0 or fps_den <= 0:
            raise r.fail(f"invalid frame rate {fps_num}/{fps_den}")

        frame_index = r.array("frame_index", np.integer, (None,)).astype(np.int64)
        frame_time = r.array("frame_time", np.floating, (frame_index.shape[0],)).astype(np.float64)
        names = r.get("joint_names")
        if names.dtype.kind != "U" or names.shape != (N_JOINTS,):
            raise r.fail(f"'joint_names' must be {N_JOINTS} strings, got {names.dtype} {names.shape}")
        parents = r.array("parents", np.integer, (N_JOINTS,)).astype(np.int32)
        if parents[0] != -1 or any(not 0 <= parents[j] < j for j in range(1, N_JOINTS)):
            raise r.fail("'parents' is not a kinematic tree with the root first (-1) and parents before children")
        weights = r.array("skin_weights", np.floating, (None, N_JOINTS)).astype(np.float32)
        n_verts = weights.shape[0]
        faces = r.array("faces", np.integer, (None, 3)).astype(np.int32)
        if faces.size and (faces.min() < 0 or faces.max() >= n_verts):
            raise r.fail(f"'faces' index vertices outside 0..{n_verts - 1}")
        shape_dirs = r.array("shape_dirs", np.floating, (n_verts, 3, N_BETAS)).astype(np.float32)

        people = []
        for pid in r.array("person_ids", np.integer, (None,)).tolist():
            people.append(_read_person(r, int(pid), n_verts))
    return Motion(meta, frame_index, frame_time, tuple(str(n) for n in names), parents, faces, weights,
                  shape_dirs, tuple(people))


def _read_person(r: _Reader, pid: int, n_verts: int) -> PersonMotion:
    n = r.array(_person_key(pid, "frame"), np.integer, (None,)).shape[0]
    values: dict[str, np.ndarray] = {}
    for name, (dtype, trailing) in _PERSON_FIELDS.items():
        kind = np.floating if np.issubdtype(dtype, np.floating) else np.integer
        values[name] = r.array(_person_key(pid, name), kind, (n, *trailing)).astype(dtype)
    for name, (dtype, trailing) in _PERSON_STATIC.items():
        shape = tuple(n_verts if s == "V" else s for s in trailing)
        values[name] = r.array(_person_key(pid, name), np.floating, shape).astype(dtype)
    for name, (dtype, trailing) in _PERSON_OPTIONAL.items():
        key = _person_key(pid, name)
        values[name] = r.array(key, np.floating, (n, *trailing), allow_nan=True).astype(dtype) \
            if key in r.data.files else None
    if values["score"] is not None and not ((values["score"] >= 0) & (values["score"] <= 1)
                                            | np.isnan(values["score"])).all():
        raise r.fail(f"person {pid}: 'score' outside 0..1")
    if n > 1 and not (np.diff(values["frame"]) > 0).all():
        raise r.fail(f"person {pid}: frame numbers are not strictly increasing")
    return PersonMotion(person_id=pid, **values)
