"""The motion file's limits and its field checks: one table for the arrays, one for ``meta``.

Every value a reader or the add-on's planner uses is checked here for type and range, with one
line naming the field; the limits also bound what a reader may allocate (docs/motion-format.md,
"Limits"). numpy + standard library only: the add-on ships a copy (scripts/build_extension.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FILE_ARRAYS",
    "FILE_OPTIONAL",
    "MAX_FACES",
    "MAX_FILE_BYTES",
    "MAX_FPS",
    "MAX_FRAMES",
    "MAX_META_CHARS",
    "MAX_PEOPLE",
    "MAX_PERSON_ID",
    "MAX_RATIO",
    "MAX_VERTICES",
    "META_FIELDS",
    "MIN_FPS",
    "PERSON_ARRAYS",
    "PERSON_OPTIONAL",
    "ArraySpec",
    "MetaField",
    "check_header",
    "check_meta",
    "check_values",
    "member_bound",
]

MAX_FRAMES = 1_000_000  # frames per file; frame numbers are 0 <= n < MAX_FRAMES (9 h at 30 fps)
MAX_PEOPLE = 1_000  # people per file
MAX_PERSON_ID = 999_999
MAX_VERTICES = 100_000  # SMPL has 6890
MAX_FACES = 200_000  # SMPL has 13776
MAX_META_CHARS = 1_000_000
MAX_FILE_BYTES = 1 << 30  # array data a reader inflates for one file
MAX_RATIO = 100  # a deflated member inflates at most this many times its compressed size
MIN_FPS, MAX_FPS = 0.01, 1000.0
N_JOINTS, N_BETAS, N_LANDMARKS = 24, 10, 33
_BIG = 1e6


@dataclass(frozen=True)
class ArraySpec:
    """One array: dtype (what readers convert to), shape (ints, or "N" file frames, "F" person
    frames, "V" vertices, "T" faces, "P" people), the allowed value range, whether NaN marks a
    missing value, and for text the most characters per entry."""

    dtype: type
    shape: tuple[int | str, ...]
    low: float = -_BIG
    high: float = _BIG
    allow_nan: bool = False
    chars: int = 0

    @property
    def kind(self) -> str:
        """'f' float, 'i' integer (signed or unsigned in the file), 'U' text."""
        k = np.dtype(self.dtype).kind
        return "i" if k in "iu" else k


FILE_ARRAYS = {
    "format": ArraySpec(np.str_, (), chars=64),
    "version": ArraySpec(np.int64, (), -(2**62), 2**62),  # the reader words versions below 1 or too new
    "meta": ArraySpec(np.str_, (), chars=MAX_META_CHARS),
    "frame_index": ArraySpec(np.int64, ("N",), 0, MAX_FRAMES - 1),
    "frame_time": ArraySpec(np.float64, ("N",), -1e9, 1e9),
    "joint_names": ArraySpec(np.str_, (N_JOINTS,), chars=63),
    "parents": ArraySpec(np.int32, (N_JOINTS,), -1, N_JOINTS - 1),
    "skin_weights": ArraySpec(np.float32, ("V", N_JOINTS), 0.0, 1.0),
    "faces": ArraySpec(np.int32, ("T", 3), 0, MAX_VERTICES - 1),
    "shape_dirs": ArraySpec(np.float32, ("V", 3, N_BETAS), -1e3, 1e3),
    "person_ids": ArraySpec(np.int64, ("P",), 0, MAX_PERSON_ID),
}
#: Whole-file arrays a file may leave out (version 2: the world frame, when a ground plane was found).
FILE_OPTIONAL = {
    "camera_to_world": ArraySpec(np.float64, ("N", 4, 4)),
}
#: Per person (keys ``person_<id>/<name>``), in the order a reader checks them.
PERSON_ARRAYS = {
    "frame": ArraySpec(np.int64, ("F",), 0, MAX_FRAMES - 1),
    "time": ArraySpec(np.float64, ("F",), -1e9, 1e9),
    "pose": ArraySpec(np.float32, ("F", N_JOINTS, 3), -100.0, 100.0),
    "betas": ArraySpec(np.float32, ("F", N_BETAS), -1e3, 1e3),
    "cam_crop": ArraySpec(np.float32, ("F", 3)),
    "cam_full": ArraySpec(np.float32, ("F", 4)),
    "translation": ArraySpec(np.float32, ("F", 3)),
    "box": ArraySpec(np.float32, ("F", 4), -1e7, 1e7),
    "flags": ArraySpec(np.uint8, ("F",), 0, 255),
    "shape": ArraySpec(np.float32, (N_BETAS,), -1e3, 1e3),
    "rest_vertices": ArraySpec(np.float32, ("V", 3), -1e3, 1e3),
    "rest_joints": ArraySpec(np.float32, (N_JOINTS, 3), -1e3, 1e3),
}
PERSON_OPTIONAL = {
    "score": ArraySpec(np.float32, ("F",), 0.0, 1.0, allow_nan=True),
    "landmarks": ArraySpec(np.float32, ("F", N_LANDMARKS, 3), -1e7, 1e7, allow_nan=True),
    # Version 2: the clean-up stage (core/cleanup).
    "contacts": ArraySpec(np.uint8, ("F", 4), 0, 1),
    "world_translation": ArraySpec(np.float32, ("F", 3)),
    "pose_locked": ArraySpec(np.float32, ("F", N_JOINTS, 3), -100.0, 100.0),
    "reprojection_px": ArraySpec(np.float32, ("F",), 0.0, 1e7, allow_nan=True),
}
_MAX_DIM = {"N": MAX_FRAMES, "F": MAX_FRAMES, "V": MAX_VERTICES, "T": MAX_FACES, "P": MAX_PEOPLE}


def member_bound(key: str) -> int | None:
    """The most data bytes member ``key`` may hold (None: a key readers never read)."""
    name = key.split("/", 1)[1] if key.startswith("person_") and "/" in key else key
    spec = FILE_ARRAYS.get(key) or FILE_OPTIONAL.get(key) or PERSON_ARRAYS.get(name) or PERSON_OPTIONAL.get(name)
    if spec is None:
        return None
    count = math.prod(_MAX_DIM[d] if isinstance(d, str) else d for d in spec.shape)
    item = 4 * spec.chars if spec.kind == "U" else 8  # files may hold other widths than the documented
    return count * item


def check_header(shape: tuple[int, ...], dtype: np.dtype, spec: ArraySpec, dims: dict[str, int]) -> str | None:
    """The problem with an array's declared dtype kind and shape (against ``dims``, free sizes up
    to their limit), or None: checked from the ``.npy`` header, before the data is read."""
    kind = "i" if dtype.kind in "iu" else dtype.kind
    if kind != spec.kind:
        names = {"f": "floating point", "i": "integer", "U": "text"}
        return f"has dtype {dtype}, expected {names[spec.kind]}"
    want = tuple(dims.get(d) if isinstance(d, str) else d for d in spec.shape)  # None: free (to its limit)
    if len(shape) != len(want) or any(w is not None and w != n for w, n in zip(want, shape, strict=False)):
        shown = ", ".join(str(d) if w is None else str(w) for d, w in zip(spec.shape, want, strict=True))
        return f"has shape {shape}, expected ({shown})"
    for d, w, n in zip(spec.shape, want, shape, strict=True):
        if w is None and n > _MAX_DIM[d]:
            return f"has {n} rows, more than the {_MAX_DIM[d]} a motion file may hold"
    if kind == "U" and dtype.itemsize // 4 > spec.chars:
        return f"holds text of {dtype.itemsize // 4} characters, more than {spec.chars}"
    return None


def check_values(a: np.ndarray, spec: ArraySpec) -> str | None:
    """The problem with an array's values (NaN where not allowed, infinite, outside the spec's
    range), or None. Reads each value once, without temporary copies."""
    if a.dtype.kind == "U" or a.size == 0:
        return None
    if a.dtype.kind == "f":
        lo, hi = (np.fmin.reduce(a, axis=None), np.fmax.reduce(a, axis=None)) if spec.allow_nan \
            else (a.min(), a.max())
        if np.isnan(lo) or np.isnan(hi):
            return None if spec.allow_nan else "holds NaN values"
        if np.isinf(lo) or np.isinf(hi):
            return "holds infinite values"
        lo, hi = float(lo), float(hi)
    else:
        lo, hi = int(a.min()), int(a.max())
    if lo < spec.low or hi > spec.high:
        return f"holds values outside {_num(spec.low)}..{_num(spec.high)} (from {_num(lo)} to {_num(hi)})"
    return None


@dataclass(frozen=True)
class MetaField:
    """One entry of ``meta``: dotted path, kind ("object", "int", "number", "text"), whether it is
    required, and its range (numbers) or length (text)."""

    path: str
    kind: str
    required: bool = False
    low: float = 0
    high: float = _BIG


META_FIELDS = (
    MetaField("source", "object", True),
    MetaField("source.fps_num", "int", True, 1, 1_000_000),
    MetaField("source.fps_den", "int", True, 1, 1_000_000),
    MetaField("source.width", "int", False, 1, 65_536),
    MetaField("source.height", "int", False, 1, 65_536),
    MetaField("source.frame_count", "int", False, 0, MAX_FRAMES),
    MetaField("source.duration", "number", False, 0, 1e7),
    MetaField("source.rotation", "int", False, -360, 360),
    MetaField("source.name", "text", False, 0, 1024),
    MetaField("source.path", "text", False, 0, 4096),
    MetaField("range", "object"),
    MetaField("range.start", "int", False, 0, MAX_FRAMES),
    MetaField("range.end", "int", False, 0, MAX_FRAMES),
    MetaField("camera", "object"),
    MetaField("camera.focal_length_px", "number", False, 1, 1e6),
    MetaField("camera.crop_scale", "number", False, 0.01, 100),
    MetaField("camera.focal_rule", "text", False, 0, 256),
    MetaField("engine", "object"),
    MetaField("engine.name", "text", False, 0, 256),
    MetaField("engine.version", "text", False, 0, 256),
    MetaField("assets", "object"),
    MetaField("assets.kind", "text", False, 0, 64),
    MetaField("options", "object"),
    MetaField("created", "text", False, 0, 64),
    MetaField("people_found", "int", False, 0, MAX_PERSON_ID + 1),
    MetaField("world", "object"),
    MetaField("world.camera_motion", "text", False, 0, 64),
    MetaField("world.camera_height_m", "number", False, 0, 1e4),
    MetaField("world.camera_pitch_deg", "number", False, -90, 90),
    MetaField("world.note", "text", False, 0, 1024),
)


def _num(x: float) -> str:
    """A bound or value as a user reads it: integers in full, other numbers short."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:.6g}"


def _check_value(value: Any, field: MetaField) -> str | None:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    if field.kind == "object":
        return None if isinstance(value, dict) else f"must be a JSON object, got {shown}"
    if field.kind == "text":
        if not isinstance(value, str) or len(value) > field.high or "\x00" in value:
            return f"must be text of at most {_num(field.high)} characters without NUL, got {shown}"
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    number = is_int or (field.kind == "number" and isinstance(value, float) and math.isfinite(value))
    if not number or not field.low <= value <= field.high:
        what = "an integer" if field.kind == "int" else "a finite number"
        return f"must be {what} in {_num(field.low)}..{_num(field.high)}, got {shown}"
    return None


def check_meta(meta: Any) -> str | None:
    """The first problem with the parsed ``meta`` JSON (a field of the wrong type or range, a
    missing required one, a frame rate outside MIN_FPS..MAX_FPS), or None when it is usable.
    JSON null counts as absent for optional fields."""
    if not isinstance(meta, dict):
        return "'meta' is not a JSON object"
    for field in META_FIELDS:
        parent, _, name = field.path.rpartition(".")
        holder = meta.get(parent) if parent else meta
        if not isinstance(holder, dict):
            continue  # an optional parent that is absent (a present one was checked before)
        value = holder.get(name)
        if value is None:
            if field.required:
                return f"'meta' has no {field.path}"
            continue
        problem = _check_value(value, field)
        if problem:
            return f"'meta' {field.path} {problem}"
    src = meta["source"]
    fps = src["fps_num"] / src["fps_den"]
    if not MIN_FPS <= fps <= MAX_FPS:
        return f"'meta' source.fps_num/fps_den is {fps:.6g} fps, outside {MIN_FPS:g}..{MAX_FPS:g}"
    span = meta.get("range") or {}
    if isinstance(span.get("start"), int) and isinstance(span.get("end"), int) and span["start"] > span["end"]:
        return f"'meta' range.start {span['start']} is after range.end {span['end']}"
    return None
