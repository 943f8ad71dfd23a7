"""Building and writing motion files on the engine side (the format itself: core/motion_format.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.atomic import atomic_path
from core.camera import CROP_SCALE, crop_to_full, full_to_translation
from core.motion_format import Motion, PersonMotion, motion_arrays
from core.reprojection import reprojection_error
from core.smpl import SmplData

__all__ = ["build_person", "make_meta", "motion_from_people", "rest_pose", "robust_shape", "write_motion"]


def robust_shape(betas: np.ndarray) -> np.ndarray:
    """One shape (10,) for a person from per-frame estimates (F, 10): the mean of the frames whose
    estimate lies near the median (within 3 median distances), so a few bad frames do not pull it."""
    betas = np.asarray(betas, np.float64)
    if betas.shape[0] == 0:
        raise ValueError("no frames to estimate a shape from")
    median = np.median(betas, axis=0)
    dist = np.linalg.norm(betas - median, axis=1)
    cut = 3 * np.median(dist)
    keep = dist <= cut if cut > 0 else np.ones(len(betas), bool)
    return betas[keep].mean(axis=0).astype(np.float32)


def rest_pose(smpl: SmplData, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL's rest mesh (V, 3) and joints (24, 3) for a shape (10,)."""
    verts = smpl.v_template.astype(np.float64) + smpl.shapedirs.astype(np.float64) @ np.asarray(shape, np.float64)
    joints = smpl.j_regressor.astype(np.float64) @ verts
    return verts.astype(np.float32), joints.astype(np.float32)


def build_person(person_id: int, *, frame: np.ndarray, time: np.ndarray, pose: np.ndarray, betas: np.ndarray,
                 cam_crop: np.ndarray, box: np.ndarray, flags: np.ndarray, smpl: SmplData, width: int,
                 height: int, focal: float, crop_scale: float = CROP_SCALE, score: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None) -> PersonMotion:
    """A person's motion from per-frame STAF results (axis-angle ``pose`` (F, 24, 3), ``betas`` (F, 10),
    ``cam_crop`` (F, 3)) and boxes (F, 4) (cx, cy, w, h) in a ``width`` x ``height`` video; optionally
    the detector's scores (F,) and 2D landmarks (F, 33, 3), NaN where not observed."""
    cam_full = crop_to_full(cam_crop, box, width, height, crop_scale)
    shape = robust_shape(betas)
    rest_vertices, rest_joints = rest_pose(smpl, shape)
    translation = full_to_translation(cam_full, width, focal)
    error = None if landmarks is None else reprojection_error(pose, translation, rest_joints, smpl.parents, landmarks,
                                                              width, height, focal)
    return PersonMotion(
        person_id=person_id,
        frame=np.asarray(frame, np.int64),
        time=np.asarray(time, np.float64),
        pose=np.asarray(pose, np.float32),
        betas=np.asarray(betas, np.float32),
        cam_crop=np.asarray(cam_crop, np.float32),
        cam_full=cam_full.astype(np.float32),
        translation=translation.astype(np.float32),
        box=np.asarray(box, np.float32),
        flags=np.asarray(flags, np.uint8),
        shape=shape,
        rest_vertices=rest_vertices,
        rest_joints=rest_joints,
        score=None if score is None else np.asarray(score, np.float32),
        landmarks=None if landmarks is None else np.asarray(landmarks, np.float32),
        reprojection_px=error,
    )


def motion_from_people(meta: dict, frame_index: np.ndarray, frame_time: np.ndarray, smpl: SmplData,
                       people: list[PersonMotion]) -> Motion:
    """Assemble a Motion: the body data shared by every person comes from ``smpl``."""
    return Motion(
        meta=meta,
        frame_index=np.asarray(frame_index, np.int64),
        frame_time=np.asarray(frame_time, np.float64),
        joint_names=tuple(smpl.joint_names),
        parents=np.asarray(smpl.parents, np.int32),
        faces=np.asarray(smpl.faces, np.int32),
        skin_weights=np.asarray(smpl.lbs_weights, np.float32),
        shape_dirs=np.asarray(smpl.shapedirs, np.float32),
        people=tuple(people),
    )


def make_meta(*, source: dict[str, Any], frame_range: tuple[int, int], assets: dict[str, Any], focal: float,
              options: dict[str, Any], crop_scale: float = CROP_SCALE, focal_rule: str = "image diagonal") -> dict:
    """The ``meta`` JSON of a motion file (layout in docs/motion-format.md)."""
    return {
        "engine": {"name": "staf-mocap", "version": __version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "range": {"start": int(frame_range[0]), "end": int(frame_range[1])},
        "assets": assets,
        "camera": {"focal_length_px": float(focal), "focal_rule": focal_rule, "crop_scale": crop_scale},
        "options": options,
    }


def write_motion(path: Path, motion: Motion) -> None:
    """Write ``motion`` to ``path`` atomically (a reader never sees a half-written file)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **motion_arrays(motion))
