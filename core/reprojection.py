"""Per-frame confidence: how far the body's joints land from the detector's 2D landmarks.

STAF never sees BlazePose's landmarks, so they are an independent check of every frame: the
reconstructed joints, projected through the clip's camera, should fall near the landmarks of the
same joints. The median distance over the visible ones (pixels) is stored per frame in the
motion file (``reprojection_px``); frames where it is large compared with the person's size are
listed as frames to check (``frames_to_check``), in the add-on and in the preview.
"""

from __future__ import annotations

import numpy as np

from core.camera import project_full
from core.cleanup.feet import joint_positions

__all__ = ["CHECK_FRACTION", "JOINT_LANDMARKS", "frames_to_check", "reprojection_error"]

#: (BlazePose landmark, SMPL joint) pairs at the same place on the body: shoulders, elbows, wrists,
#: hips, knees, ankles (left then right; both use the person's own left).
JOINT_LANDMARKS: tuple[tuple[int, int], ...] = (
    (11, 16), (12, 17), (13, 18), (14, 19), (15, 20), (16, 21), (23, 1), (24, 2), (25, 4), (26, 5), (27, 7), (28, 8),
)
#: A frame is to be checked when its error exceeds this share of the person's box height: a
#: correct reconstruction stays within a few percent (hip joints sit differently in the two
#: skeletons), a wrong limb or a swapped side puts a joint a limb's length (25-30 %) away.
CHECK_FRACTION = 0.1
_MIN_VISIBILITY = 0.5
_MIN_POINTS = 4


def reprojection_error(pose: np.ndarray, translation: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray,
                       landmarks: np.ndarray, width: int, height: int, focal: float) -> np.ndarray:
    """Median pixel distance (F,) between the projected joints and the landmarks (F, 33, 3: x, y,
    visibility) of the same joints, over those seen with visibility >= 0.5; NaN on frames without
    landmarks or with fewer than four such joints."""
    pose = np.asarray(pose, np.float64)
    out = np.full(len(pose), np.nan)
    if not len(pose):
        return out.astype(np.float32)
    marks = np.asarray(landmarks, np.float64)[:, [m for m, _ in JOINT_LANDMARKS]]
    joints = joint_positions(pose, np.zeros((len(pose), 3)), rest_joints, np.asarray(parents))
    px = project_full(joints[:, [j for _, j in JOINT_LANDMARKS]], np.asarray(translation, np.float64), width, height,
                      focal)
    dist = np.linalg.norm(px - marks[..., :2], axis=-1)
    seen = np.isfinite(dist) & (np.nan_to_num(marks[..., 2]) >= _MIN_VISIBILITY)
    enough = seen.sum(axis=1) >= _MIN_POINTS
    masked = np.where(seen, dist, np.nan)
    out[enough] = np.nanmedian(masked[enough], axis=1)
    return out.astype(np.float32)


def frames_to_check(error_px: np.ndarray, box: np.ndarray, fraction: float = CHECK_FRACTION) -> np.ndarray:
    """Rows (indices into the person's frames) whose error exceeds ``fraction`` of the box height."""
    error = np.asarray(error_px, np.float64)
    height = np.asarray(box, np.float64)[:, 3]
    return np.flatnonzero(np.isfinite(error) & (error > fraction * np.maximum(height, 1.0)))
