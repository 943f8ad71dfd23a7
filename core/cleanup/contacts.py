"""Foot contacts per frame and per foot point, from speed and height, with hysteresis.

A point is in contact when it is slow and low: slower than ``speed_on`` and lower than
``height_on`` starts a contact, faster than ``speed_off`` or higher than ``height_off`` ends it
(separate thresholds so noise near one threshold does not flicker), then contacts shorter than
``min_contact_s`` are dropped and breaks shorter than ``min_break_s`` are filled.

Two passes, because the floor is found from the contacts:
1. No plane yet: "low" means within ``height_on`` of the lowest foot point of that frame along a
   rough up direction (``rough_up``: the body's mean up axis), and the speed discounts the depth
   noise STAF adds (``rays``: see ``point_speeds``). Its contacts feed the plane fit.
2. With a plane: height above it, and the speed in a consistent frame after the depth fix.

Positions must be in axes that do not turn with the camera (camera 0 or world). Velocities are
never taken across a gap in the frame numbers; a frame with no neighbour has unknown speed and is
never a contact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from core.posing import axis_angle_to_matrix

__all__ = ["ContactThresholds", "detect_contacts", "frame_segments", "point_speeds", "rough_up"]


@dataclass(frozen=True)
class ContactThresholds:
    """Contact thresholds (m/s, m, s), chosen for 30 fps video reconstructions.

    Speeds: a planted foot in STAF's output still wanders by its pose error, about 0.1-0.15 m/s
    (1.5 deg of slow joint error over the leg); a swinging foot averages 3 m/s and passes 0.6 m/s
    within a frame or two of toe off and heel strike. 0.3 m/s (1 cm per frame at 30 fps) starts a
    contact, 0.6 m/s ends it (HumanML3D's rule, 0.002 m^2 per frame at 20 fps, is 0.9 m/s).
    Heights: the sole is within 1-3 cm of a fitted floor while planted (pose error), a swinging
    toe clears it by 2 cm or more and a lifted heel quickly by 5+ cm: 5 cm starts, 10 cm ends.
    Runs: a real heel or toe contact lasts 0.3 s or more when walking; 0.1 s (3 frames) is the
    shortest kept and the longest break filled.
    """

    speed_on: float = 0.3
    speed_off: float = 0.6
    height_on: float = 0.05
    height_off: float = 0.10
    min_contact_s: float = 0.1
    min_break_s: float = 0.1


def frame_segments(frames: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [start, end) of runs of consecutive frame numbers (a gap starts a new run)."""
    frames = np.asarray(frames).astype(np.int64)
    if frames.ndim != 1:
        raise ValueError(f"frames must be 1-D, got shape {frames.shape}")
    if frames.size == 0:
        return []
    if np.any(np.diff(frames) <= 0):
        raise ValueError("frame numbers must increase")
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    bounds = np.concatenate([[0], cuts, [frames.size]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def rough_up(pose: np.ndarray, r_rel: np.ndarray | None = None) -> np.ndarray:
    """The body's mean up direction (3,) in camera-0 axes: the root's rest +y axis over all frames.

    People stand roughly upright on average, so this is the down direction to within a few
    degrees even when the camera is pitched, unlike the camera's own -y.
    """
    up = axis_angle_to_matrix(np.asarray(pose, np.float64)[:, 0])[:, :, 1]
    if r_rel is not None:
        up = np.einsum("fab,fb->fa", np.asarray(r_rel, np.float64), up)
    mean = up.mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 1e-6 else np.array([0.0, -1.0, 0.0])


def point_speeds(points: np.ndarray, frames: np.ndarray, fps: float, rays: np.ndarray | None = None,
                 heights: np.ndarray | None = None) -> np.ndarray:
    """Speed (F, K) in m/s of each point, the mean of its speeds to the previous and next frame.

    ``rays`` (F, 3), unit viewing rays through the pelvis in the points' axes: STAF's depth error
    moves the whole body along that ray, the same for every point. Each step is then measured
    relative to the along-ray motion of the point most likely planted, the one that moves least
    across the ray, with 0.2 m per m of ``heights`` (F, K) added as a handicap (a swinging foot
    can move along the ray only, walking away); that removes the shared error. ``inf`` where a
    frame has no neighbour.
    """
    points = np.asarray(points, np.float64)
    n, k = points.shape[:2]
    step = np.diff(points, axis=0)  # F-1 x K x 3
    if rays is not None:
        rays = np.asarray(rays, np.float64)
        ray = 0.5 * (rays[1:] + rays[:-1])
        ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
        along = np.einsum("fka,fa->fk", step, ray)
        across = np.linalg.norm(step - along[..., None] * ray[:, None, :], axis=-1)
        if heights is not None:
            heights = np.asarray(heights, np.float64)
            across = across + 0.1 * (heights[1:] + heights[:-1])
        ref = along[np.arange(n - 1), np.argmin(across, axis=1)]
        step = step - ref[:, None, None] * ray[:, None, :]
    seg = np.linalg.norm(step, axis=-1) * fps
    valid = np.diff(np.asarray(frames).astype(np.int64)) == 1
    seg[~valid] = np.nan
    prev = np.vstack([np.full((1, k), np.nan), seg])
    nxt = np.vstack([seg, np.full((1, k), np.nan)])
    both = np.stack([prev, nxt])
    count = np.sum(np.isfinite(both), axis=0)
    total = np.nansum(both, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.inf)


def _hysteresis(on: np.ndarray, off: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    state = np.zeros(on.shape, bool)
    for a, b in segments:
        current = on[a].copy()
        state[a] = current
        for f in range(a + 1, b):
            current = np.where(current, ~off[f], on[f])
            state[f] = current
    return state


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends [start, end) of True runs of a 1-D mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _clean_runs(state: np.ndarray, segments: list[tuple[int, int]], min_contact: int, min_break: int
                ) -> np.ndarray:
    out = state.copy()
    for a, b in segments:
        for k in range(state.shape[1]):
            col = out[a:b, k]
            starts, ends = _runs(~col)
            for s, e in zip(starts, ends, strict=True):
                if 0 < s and e < len(col) and e - s < min_break:
                    col[s:e] = True  # a short break inside one contact
            starts, ends = _runs(col)
            for s, e in zip(starts, ends, strict=True):
                if e - s < min_contact:
                    col[s:e] = False
    return out


def detect_contacts(points: np.ndarray, frames: np.ndarray, fps: float, *, heights: np.ndarray | None = None,
                    up: np.ndarray | None = None, rays: np.ndarray | None = None,
                    thresholds: ContactThresholds | None = None) -> np.ndarray:
    """Contacts (F, K) bool of foot points (F, K, 3) given in axes consistent across frames.

    ``heights`` (F, K): heights above the ground plane, when one is known (pass 2). Without them
    (pass 1) a point's height is taken above the frame's lowest foot point along ``up`` (pass
    ``rough_up``; camera -y when None). ``rays``: the pelvis rays, see ``point_speeds``.
    """
    th = thresholds or ContactThresholds()
    points = np.asarray(points, np.float64)
    frames = np.asarray(frames)
    if points.ndim != 3 or points.shape[2] != 3 or len(frames) != len(points):
        raise ValueError(f"points must be (F, K, 3) with F = len(frames), got {points.shape}, {len(frames)}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(points) == 0:
        return np.zeros(points.shape[:2], bool)
    if heights is None:
        direction = np.array([0.0, -1.0, 0.0]) if up is None else np.asarray(up, np.float64)
        h = points @ (direction / np.linalg.norm(direction))
        heights = h - h.min(axis=1, keepdims=True)
    heights = np.asarray(heights, np.float64)
    speed = point_speeds(points, frames, fps, rays, heights)
    on = (speed < th.speed_on) & (heights < th.height_on)
    off = (speed > th.speed_off) | (heights > th.height_off) | ~np.isfinite(speed)
    segments = frame_segments(frames)
    state = _hysteresis(on, off, segments)
    return _clean_runs(state, segments, max(1, round(th.min_contact_s * fps)), max(1, round(th.min_break_s * fps)))
