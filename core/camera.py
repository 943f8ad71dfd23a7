"""Crop and full-image cameras (numpy): the conversions documented in docs/motion-format.md."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CROP_SCALE", "CROP_SIZE", "crop_to_full", "default_focal", "full_to_translation", "project_full",
           "translation_to_cameras"]

#: Side of the network's square crop as a multiple of the person box's longer side. The same value
#: is used to cut crops and to convert their cameras (the release cut at 1.1 but converted at 1.2).
CROP_SCALE = 1.2

#: Side in pixels of the network's input crop.
CROP_SIZE = 224


def default_focal(width: int, height: int) -> float:
    """Focal length in pixels assumed when the video says nothing: the image diagonal."""
    return math.hypot(width, height)


def crop_to_full(cam_crop: np.ndarray, box: np.ndarray, width: int, height: int,
                 crop_scale: float = CROP_SCALE) -> np.ndarray:
    """Crop cameras (F, 3) (s, tx, ty) and boxes (F, 4) (cx, cy, w, h) -> full-image (F, 4) (sx, sy, tx, ty)."""
    s, tx, ty = (cam_crop[:, i].astype(np.float64) for i in range(3))
    side = crop_scale * np.maximum(box[:, 2], box[:, 3]).astype(np.float64)
    sx = s * side / width
    sy = s * side / height
    tx_full = tx + (box[:, 0] - width / 2) / (width / 2) / sx
    ty_full = ty + (box[:, 1] - height / 2) / (height / 2) / sy
    return np.stack([sx, sy, tx_full, ty_full], axis=1)


def full_to_translation(cam_full: np.ndarray, width: int, focal: float) -> np.ndarray:
    """Full-image cameras (F, 4) -> root translations (F, 3) in camera axes for a pinhole camera of
    focal length ``focal`` px with its principal point at the image centre."""
    sx, _, tx, ty = (cam_full[:, i].astype(np.float64) for i in range(4))
    return np.stack([tx, ty, 2 * focal / (width * sx)], axis=1)


def project_full(points: np.ndarray, translation: np.ndarray, width: int, height: int,
                 focal: float) -> np.ndarray:
    """Pinhole projection of camera-axes points (F, N, 3) + translation (F, 3) -> pixels (F, N, 2)."""
    p = points + translation[:, None, :]
    return np.stack([focal * p[..., 0] / p[..., 2] + width / 2, focal * p[..., 1] / p[..., 2] + height / 2], -1)


def translation_to_cameras(translation: np.ndarray, box: np.ndarray, width: int, height: int, focal: float,
                           crop_scale: float = CROP_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`crop_to_full` and :func:`full_to_translation`: root translations (F, 3)
    and boxes (F, 4) -> crop cameras (F, 3) and full-image cameras (F, 4), for solvers that find the
    translation directly (the landmark solver) and must still fill the motion file's cameras."""
    t = np.asarray(translation, np.float64)
    box = np.asarray(box, np.float64)
    sx = 2 * focal / (width * t[:, 2])
    sy = sx * width / height
    cam_full = np.stack([sx, sy, t[:, 0], t[:, 1]], axis=1)
    side = crop_scale * np.maximum(box[:, 2], box[:, 3])
    s = sx * width / side
    tx = t[:, 0] - (box[:, 0] - width / 2) / (width / 2) / sx
    ty = t[:, 1] - (box[:, 1] - height / 2) / (height / 2) / sy
    return np.stack([s, tx, ty], axis=1), cam_full
