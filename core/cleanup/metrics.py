"""Measures of how usable a motion is: foot skate, jitter, joint error, trajectory error.

Definitions follow WHAM's evaluation code where the field has one (see
shared/reference/motion-cleanup.md): foot skate is the mean displacement of a foot point between
consecutive frames where it is in contact on both; jitter the mean norm of the third finite
difference of joint positions, in m/s^3 (WHAM reports it divided by 10). Positions must be in
axes that do not move with a panning camera (world or camera 0). Differences never span a gap in
the frame numbers.
"""

from __future__ import annotations

import numpy as np

from core.cleanup.contacts import frame_segments

__all__ = ["foot_skate", "jitter", "joint_error", "path_length", "trajectory_error"]


def _consecutive(frames: np.ndarray, span: int) -> np.ndarray:
    """Rows r such that frames r .. r+span are consecutive."""
    rows = [np.arange(a, b - span) for a, b in frame_segments(frames) if b - a > span]
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def foot_skate(points: np.ndarray, contacts: np.ndarray, frames: np.ndarray) -> float:
    """Mean displacement (mm per frame) of foot points (F, K, 3) between consecutive frames in which
    ``contacts`` (F, K) holds on both; NaN when there is no such pair."""
    points = np.asarray(points, np.float64)
    contacts = np.asarray(contacts, bool)
    rows = _consecutive(frames, 1)
    both = contacts[rows] & contacts[rows + 1]
    if not np.any(both):
        return float("nan")
    step = np.linalg.norm(points[rows + 1] - points[rows], axis=-1)
    return float(step[both].mean() * 1000.0)


def jitter(joints: np.ndarray, fps: float, frames: np.ndarray) -> float:
    """Mean norm of the third finite difference of joint positions (F, J, 3), times fps^3 (m/s^3)."""
    joints = np.asarray(joints, np.float64)
    rows = _consecutive(frames, 3)
    if rows.size == 0:
        return float("nan")
    third = joints[rows + 3] - 3.0 * joints[rows + 2] + 3.0 * joints[rows + 1] - joints[rows]
    return float(np.linalg.norm(third, axis=-1).mean() * fps ** 3)


def joint_error(predicted: np.ndarray, truth: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Mean joint position error (mm) between (F, J, 3) arrays, over the frames ``rows`` (a bool
    mask or indices; all frames when None)."""
    err = np.linalg.norm(np.asarray(predicted, np.float64) - np.asarray(truth, np.float64), axis=-1)
    if rows is not None:
        err = err[rows]
    return float(err.mean() * 1000.0) if err.size else float("nan")


def path_length(points: np.ndarray, frames: np.ndarray, fps: float, every_s: float = 0.5) -> float:
    """Length (m) of a trajectory (F, D) sampled every ``every_s`` seconds within each run of
    consecutive frames: sampling keeps frame-to-frame noise from inflating the length, and half a
    second is shorter than any turn a walker makes."""
    points = np.asarray(points, np.float64)
    stride = max(1, round(every_s * fps))
    total = 0.0
    for a, b in frame_segments(frames):
        rows = np.unique(np.concatenate([np.arange(a, b, stride), [b - 1]]))
        total += float(np.linalg.norm(np.diff(points[rows], axis=0), axis=-1).sum())
    return total


def trajectory_error(predicted: np.ndarray, truth: np.ndarray, frames: np.ndarray, fps: float
                     ) -> dict[str, float]:
    """How far a root trajectory (F, 3) is from the truth (F, 3), in world axes.

    ``mean_m``: mean position error with no alignment (both share the world frame); ``rte``: the
    same as a fraction of the distance walked (the truth's ``path_length``) after a rigid
    alignment about the vertical (z) axis and a translation, as WHAM's RTE aligns;
    ``length_error``: relative error of the walked distance.
    """
    predicted = np.asarray(predicted, np.float64)
    truth = np.asarray(truth, np.float64)
    walked = path_length(truth, frames, fps)
    mean_m = float(np.linalg.norm(predicted - truth, axis=-1).mean())
    p = predicted - predicted.mean(0)
    t = truth - truth.mean(0)
    h = p[:, :2].T @ t[:, :2]  # yaw-only Kabsch in the floor plane
    angle = np.arctan2(h[0, 1] - h[1, 0], h[0, 0] + h[1, 1])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    aligned = p @ rot.T
    rte = float(np.linalg.norm(aligned - t, axis=-1).mean()) / max(walked, 1e-9)
    length = path_length(predicted, frames, fps)
    return {"mean_m": mean_m, "rte": rte, "length_error": abs(length - walked) / max(walked, 1e-9),
            "walked_m": walked}
