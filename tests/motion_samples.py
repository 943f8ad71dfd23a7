"""Small valid motion files for the fuzzer and the bad-input suite (no SMPL, no torch: milliseconds).

A 30-vertex body with SMPL's joint tree, 12 frames, two people (person 0 missing for frames 4-5,
person 1 with the optional score, landmarks and the clean-up's contacts, world translation and
foot-locked pose; the file with a camera_to_world per frame), in the real format (core.motion_format), and the
add-on exactly as the extension ships it (its vendored reader, imported without bpy).
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np

from core.motion_format import FLAG_DETECTED, FLAG_INTERPOLATED, FLAG_NOT_ANALYSED, Motion, PersonMotion, motion_arrays

ROOT = Path(__file__).resolve().parents[1]
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
N_VERTS, N_FRAMES = 30, 12


def sample_meta() -> dict:
    """A meta dict as the engine writes it (every field the readers and the planner use)."""
    return {
        "engine": {"name": "staf-mocap", "version": "0.1.0"},
        "created": "2026-11-26T07:40:00+00:00",
        "source": {"path": "/nonexistent/clip.mp4", "name": "clip.mp4", "width": 640, "height": 360,
                   "fps_num": 30000, "fps_den": 1001, "frame_count": 40, "duration": 1.33, "rotation": 0},
        "range": {"start": 3, "end": 3 + N_FRAMES},
        "assets": {"kind": "stand-in", "checkpoint_sha256": "", "smpl": "generated"},
        "camera": {"focal_length_px": 734.3, "focal_rule": "image diagonal", "crop_scale": 1.2},
        "options": {"device": "cpu"},
        "people_found": 2,
        "world": {"camera_motion": "rotating", "camera_height_m": 1.6, "camera_pitch_deg": 0.0,
                  "note": "ground plane from 40 contact points"},
    }


def sample_motion(seed: int = 0) -> Motion:
    """The small two-person motion (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    frames = np.arange(3, 3 + N_FRAMES, dtype=np.int64)
    times = frames * 1001 / 30000
    weights = rng.random((N_VERTS, 24)).astype(np.float32)
    weights /= weights.sum(1, keepdims=True)
    faces = np.array([(i, (i + 1) % N_VERTS, (i + 7) % N_VERTS) for i in range(20)], np.int32)
    people = []
    for pid, keep in ((0, np.r_[0:4, 6:N_FRAMES]), (1, np.arange(N_FRAMES))):
        n = len(keep)
        flags = np.full(n, FLAG_DETECTED, np.uint8)
        flags[-1] = FLAG_INTERPOLATED
        flags[1::3] = FLAG_NOT_ANALYSED
        optional = {}
        if pid == 1:
            score = rng.random(n).astype(np.float32)
            score[-1] = np.nan
            landmarks = rng.normal(300, 50, (n, 33, 3)).astype(np.float32)
            landmarks[:, :, 2] = rng.random((n, 33))
            landmarks[-1] = np.nan
            optional = {"score": score, "landmarks": landmarks,
                        "contacts": (rng.random((n, 4)) < 0.5).astype(np.uint8),
                        "world_translation": rng.normal(0, 1, (n, 3)).astype(np.float32),
                        "pose_locked": rng.normal(0, 0.3, (n, 24, 3)).astype(np.float32),
                        "reprojection_px": np.where(np.arange(n) == n - 1, np.nan,
                                                    rng.uniform(0, 40, n)).astype(np.float32)}
        people.append(PersonMotion(
            person_id=pid, frame=frames[keep], time=times[keep],
            pose=rng.normal(0, 0.3, (n, 24, 3)).astype(np.float32),
            betas=rng.normal(0, 1, (n, 10)).astype(np.float32),
            cam_crop=rng.normal(0.5, 0.1, (n, 3)).astype(np.float32),
            cam_full=rng.normal(0.5, 0.1, (n, 4)).astype(np.float32),
            translation=(rng.normal(0, 0.2, (n, 3)) + np.array([0, 0, 5])).astype(np.float32),
            box=rng.uniform(50, 300, (n, 4)).astype(np.float32), flags=flags,
            shape=rng.normal(0, 1, 10).astype(np.float32),
            rest_vertices=rng.normal(0, 0.5, (N_VERTS, 3)).astype(np.float32),
            rest_joints=rng.normal(0, 0.5, (24, 3)).astype(np.float32), **optional))
    names = tuple(f"joint_{j:02d}" for j in range(24))
    camera_to_world = np.tile(np.eye(4), (N_FRAMES, 1, 1))
    yaw = np.linspace(0, 0.3, N_FRAMES)  # a camera 1.6 m up, looking along +y and turning
    camera_to_world[:, :3, :3] = np.einsum("fab,bc->fac", _about_z(yaw), np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]))
    camera_to_world[:, 2, 3] = 1.6
    return Motion(sample_meta(), frames, times, names, np.array(SMPL_PARENTS, np.int32), faces, weights,
                  rng.normal(0, 0.01, (N_VERTS, 3, 10)).astype(np.float32), tuple(people), camera_to_world)


def _about_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).reshape(-1, 3, 3)


def sample_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of :func:`sample_motion` as ``np.savez`` writes them."""
    return motion_arrays(sample_motion(seed))


def npz_bytes(arrays: dict[str, np.ndarray], *, compressed: bool = False) -> bytes:
    """An .npz of ``arrays`` in memory (object arrays are pickled, as numpy writes them)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def with_meta(arrays: dict[str, np.ndarray], **changes) -> dict[str, np.ndarray]:
    """``arrays`` with ``meta`` entries replaced: ``source__fps_num=0`` sets meta.source.fps_num."""
    meta = json.loads(str(arrays["meta"]))
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        holder = meta
        for part in parents:
            holder = holder[part]
        holder[name] = value
    return {**arrays, "meta": np.array(json.dumps(meta))}


def shipped_addon(folder: Path):
    """The add-on as the extension zip ships it (vendored reader), unpacked into ``folder`` and
    imported as the package ``staf_shipped``; returns (motion_io, plan, people) modules."""
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, data in build.package_files().items():
        target = folder / "staf_shipped" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    sys.path.insert(0, str(folder))
    try:
        modules = tuple(importlib.import_module(f"staf_shipped.{m}") for m in ("motion_io", "plan", "people"))
    finally:
        sys.path.remove(str(folder))
    assert modules[0].read_motion.__module__ == "staf_shipped.vendor.motion_format"
    return modules
