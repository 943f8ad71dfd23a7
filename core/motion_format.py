"""The motion file: the documented, versioned boundary between the engine and the add-on.

A motion file is an uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, no pickles) described
in ``docs/motion-format.md``. This module is the single definition of its layout: the engine
writes through :func:`motion_arrays`, and every reader (the engine, the Blender add-on, other
tools) goes through :func:`read_motion`, which checks the version and every field's type, shape
and range (the tables of ``motion_schema.py``) and reads the archive with bounded memory
(``npz_archive.py``). ``python -m core.motion_format FILE...`` checks files from a shell.

It depends on numpy and the standard library only, so the Blender add-on ships a copy of it and
of those two modules.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .motion_schema import (
    FILE_ARRAYS,
    FILE_OPTIONAL,
    MAX_FILE_BYTES,
    MAX_PEOPLE,
    MAX_RATIO,
    PERSON_ARRAYS,
    PERSON_OPTIONAL,
    ArraySpec,
    check_header,
    check_meta,
    check_values,
    member_bound,
)
from .npz_archive import ArchiveLimits, NpzArchive

__all__ = [
    "FLAG_DETECTED",
    "FLAG_INTERPOLATED",
    "FLAG_NOT_ANALYSED",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Motion",
    "MotionFormatError",
    "PersonMotion",
    "motion_arrays",
    "read_motion",
]

FORMAT_NAME = "staf-motion"
FORMAT_VERSION = 2

#: Bits of ``PersonMotion.flags`` (version 1 files set FLAG_DETECTED on frames not analysed too).
FLAG_DETECTED = 1  # the detector ran on this frame and found the person
FLAG_INTERPOLATED = 2  # the box was filled in over a short detection gap (the detector ran, found nobody)
FLAG_NOT_ANALYSED = 4  # the detector did not run on this frame (--detect-every): box from the frames around it



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
    frames where the person was not observed (interpolated or not analysed); from version 2,
    contacts (F, 4) uint8 0/1 foot contacts (left heel, left toe, right heel, right toe),
    world_translation (F, 3) float32 the root translation in world axes (with ``Motion.camera_to_world``)
    and pose_locked (F, 24, 3) float32 ``pose`` with foot lock applied to the legs; reprojection_px
    (F,) float32 the median distance (pixels) of the projected joints from the detector's landmarks
    (NaN where not observed; core/reprojection.py).
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
    contacts: np.ndarray | None = None
    world_translation: np.ndarray | None = None
    pose_locked: np.ndarray | None = None
    reprojection_px: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class Motion:
    """A whole motion file.

    meta: JSON-compatible dict (source video, engine, checkpoint, options, camera); frame_index (N,)
    int64 and frame_time (N,) float64: every frame of the processed range; joint_names (24,);
    parents (24,) int32 (root -1); faces (13776, 3) int32; skin_weights (V, 24) float32;
    shape_dirs (V, 3, 10) float32; people: one PersonMotion per track; camera_to_world (N, 4, 4)
    float64 or None: per frame, the camera-to-world transform of the world frame (z up, the ground
    plane at z = 0), present when the run found a ground plane (version 2).
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
    camera_to_world: np.ndarray | None = None

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
    if motion.camera_to_world is not None:
        arrays["camera_to_world"] = np.asarray(motion.camera_to_world, np.float64)
    for person in motion.people:
        for name, spec in {**PERSON_ARRAYS, **PERSON_OPTIONAL}.items():
            if getattr(person, name) is not None:
                arrays[_person_key(person.person_id, name)] = np.asarray(getattr(person, name), spec.dtype)
    return arrays


_LIMITS = ArchiveLimits(
    max_members=len(FILE_ARRAYS) + len(FILE_OPTIONAL) + MAX_PEOPLE * (len(PERSON_ARRAYS) + len(PERSON_OPTIONAL)) + 100,
    max_total_bytes=MAX_FILE_BYTES,
    max_ratio=MAX_RATIO,
)
_REDO = "re-create it with 'python -m core reconstruct'"


class _Reader:
    def __init__(self, path: Path, archive: NpzArchive) -> None:
        self.path = path
        self.archive = archive
        self.dims: dict[str, int] = {}
        self.converted = 0  # bytes of copies in the documented dtypes (files may hold other widths)

    def fail(self, problem: str) -> MotionFormatError:
        return MotionFormatError(f"{self.path}: {problem}")

    def array(self, key: str, spec: ArraySpec, **dims: int) -> np.ndarray:
        """Member ``key`` checked against ``spec`` (shape letters from ``self.dims`` and ``dims``):
        dtype kind and shape from its header first, then its values; converted to the spec's dtype."""
        if key not in self.archive:
            raise self.fail(f"not a complete motion file: '{key}' is missing; {_REDO}")
        shape, dtype = self.archive.header(key)
        problem = check_header(shape, dtype, spec, {**self.dims, **dims})
        out = np.dtype(spec.dtype)
        if problem is None and dtype != out and out.kind != "U":
            self.converted += math.prod(shape) * out.itemsize
            if self.converted > MAX_FILE_BYTES:
                problem = f"needs more than {MAX_FILE_BYTES} bytes once converted to the documented dtypes"
        a = self.archive.read(key) if problem is None else None
        problem = problem or check_values(a, spec)
        if problem:
            raise self.fail(f"'{key}' {problem}; {_REDO}")
        return a.astype(spec.dtype, copy=False)


def read_motion(path: str | Path) -> Motion:
    """Read and validate a motion file; raises MotionFormatError with one line on any problem.

    Every field is checked for type, shape and range (core/motion_schema.py), and memory stays
    within the bounds of docs/motion-format.md ("Limits") whatever the file declares."""
    path = Path(path)
    try:
        found = path.is_file()
    except (OSError, ValueError) as err:  # a name the system refuses (too long, NUL)
        raise MotionFormatError(f"{path}: cannot be opened ({err})") from None
    if not found:
        raise MotionFormatError(f"{path}: motion file not found")

    def not_motion(problem: str) -> MotionFormatError:
        return MotionFormatError(f"{path}: not a motion file ({problem})")

    def bad_member(problem: str) -> MotionFormatError:
        return MotionFormatError(f"{path}: {problem}")

    with NpzArchive(path, _LIMITS, bad_member, member_bound, fail_open=not_motion) as archive:
        return _read(_Reader(path, archive))


def _read(r: _Reader) -> Motion:
    marker = r.archive.read("format") if "format" in r.archive else None
    if marker is None or marker.dtype.kind != "U" or marker.shape != () or str(marker) != FORMAT_NAME:
        raise r.fail(f"not a motion file (no '{FORMAT_NAME}' marker): write one with 'python -m core reconstruct'")
    version = int(r.array("version", FILE_ARRAYS["version"]))
    if version > FORMAT_VERSION:
        raise r.fail(f"motion file version {version} is newer than this reader's ({FORMAT_VERSION}): "
                     "update the add-on")
    if version < 1:
        raise r.fail(f"invalid motion file version {version}; {_REDO}")
    text = str(r.array("meta", FILE_ARRAYS["meta"]))
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise r.fail(f"'meta' is not valid JSON; {_REDO}") from None
    problem = check_meta(meta)
    if problem:
        raise r.fail(f"{problem}; {_REDO}")

    frame_index = r.array("frame_index", FILE_ARRAYS["frame_index"])
    r.dims["N"] = frame_index.shape[0]
    if (np.diff(frame_index) <= 0).any():
        raise r.fail(f"'frame_index' is not strictly increasing; {_REDO}")
    frame_time = r.array("frame_time", FILE_ARRAYS["frame_time"])
    names = tuple(str(n) for n in r.array("joint_names", FILE_ARRAYS["joint_names"]))
    if len(set(names)) != len(names) or not all(n.isprintable() and 0 < len(n.encode()) <= 63 for n in names):
        raise r.fail(f"'joint_names' must be distinct printable names of 1 to 63 bytes; {_REDO}")
    parents = r.array("parents", FILE_ARRAYS["parents"])
    if parents[0] != -1 or any(not 0 <= parents[j] < j for j in range(1, len(parents))):
        raise r.fail(f"'parents' is not a kinematic tree with the root first (-1) and parents before children; {_REDO}")
    weights = r.array("skin_weights", FILE_ARRAYS["skin_weights"])
    r.dims["V"] = n_verts = weights.shape[0]
    if n_verts == 0:
        raise r.fail(f"'skin_weights' has no vertices; {_REDO}")
    faces = r.array("faces", FILE_ARRAYS["faces"])
    if faces.size and faces.max() >= n_verts:
        raise r.fail(f"'faces' index vertices outside 0..{n_verts - 1}; {_REDO}")
    if ((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])).any():
        raise r.fail(f"'faces' has triangles that repeat a vertex; {_REDO}")
    shape_dirs = r.array("shape_dirs", FILE_ARRAYS["shape_dirs"])
    ids = r.array("person_ids", FILE_ARRAYS["person_ids"]).tolist()
    if len(set(ids)) != len(ids):
        raise r.fail(f"'person_ids' repeats an id; {_REDO}")
    camera_to_world = None
    if "camera_to_world" in r.archive:
        camera_to_world = r.array("camera_to_world", FILE_OPTIONAL["camera_to_world"])
        problem = _rigid_problem(camera_to_world)
        if problem:
            raise r.fail(f"'camera_to_world' {problem}; {_REDO}")
    people = tuple(_read_person(r, int(pid), frame_index) for pid in ids)
    return Motion(meta, frame_index, frame_time, names, parents, faces, weights, shape_dirs, people,
                  camera_to_world)


def _rigid_problem(m: np.ndarray) -> str | None:
    """Why the (N, 4, 4) transforms are not rigid (rotation and translation), or None."""
    if m.size == 0:
        return None
    if np.abs(m[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max() > 1e-6:
        return "has a last row other than (0, 0, 0, 1)"
    r = m[:, :3, :3]
    if np.abs(r @ r.transpose(0, 2, 1) - np.eye(3)).max() > 1e-4 or (np.linalg.det(r) < 0).any():
        return "holds a matrix that is not a rotation"
    return None


def _read_person(r: _Reader, pid: int, frame_index: np.ndarray) -> PersonMotion:
    frame = r.array(_person_key(pid, "frame"), PERSON_ARRAYS["frame"])
    if (np.diff(frame) <= 0).any():
        raise r.fail(f"person {pid}: frame numbers are not strictly increasing; {_REDO}")
    at = np.searchsorted(frame_index, frame)
    listed = frame.size == 0 or (at[-1] < frame_index.size and (frame_index[at] == frame).all())
    if not listed:
        raise r.fail(f"person {pid}: 'frame' holds frame numbers that 'frame_index' does not list; {_REDO}")
    values: dict[str, np.ndarray | None] = {"frame": frame}
    for name, spec in PERSON_ARRAYS.items():
        if name != "frame":
            values[name] = r.array(_person_key(pid, name), spec, F=frame.shape[0])
    for name, spec in PERSON_OPTIONAL.items():
        key = _person_key(pid, name)
        values[name] = r.array(key, spec, F=frame.shape[0]) if key in r.archive else None
    return PersonMotion(person_id=pid, **values)


def main(argv: list[str] | None = None) -> int:
    """``python -m core.motion_format FILE...``: check motion files, one line each; exit 5 (the
    engine's bad-input code) at the first unusable one, with one ``error:`` line on stderr."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths or any(p.startswith("-") for p in paths):
        print("error: usage: python -m core.motion_format FILE.npz [FILE.npz ...] (checks motion files)",
              file=sys.stderr)
        return 2
    for name in paths:
        try:
            motion = read_motion(name)
        except MotionFormatError as err:
            print(f"error: {err}", file=sys.stderr)
            return 5
        ids = ", ".join(str(p.person_id) for p in motion.people) or "none"
        print(f"{name}: ok, {len(motion.frame_index)} frames at {motion.fps:.6g} fps, people {ids}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
