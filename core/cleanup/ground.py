"""The ground plane under the contact points, and the gravity-aligned world frame it gives.

``fit_ground_plane`` fits a plane through candidate contact points in camera-0 axes with RANSAC
(three-point hypotheses whose up direction is plausible), refines it by least squares on the
inliers, and refuses, with a one-line reason, whenever the points cannot carry a floor: too few,
too few inliers, spanning too little (a close-up, someone standing with feet together, points on
one line: the tilt across the line would be made up), a normal that is not roughly the image's up,
a camera below the floor, or a body whose pelvis sits far below its standing height (sitting,
crouching: the feet are not what carries it).

Decision on a single standing spot: accepted when the two feet span a patch of at least
``min_extent`` by ``min_width`` (0.2 m x 0.15 m: hip-width stance, heel to toe), since then heels
and toes of both feet give a real two-dimensional support; feet together, one foot, or a seated
body are refused.

World frame (``GroundPlane.camera_to_world``, for camera 0): z up along the plane's normal,
origin on the plane under the camera centre, y the camera's forward direction projected on the
plane, x = y x z (to the camera's right): right-handed, x right, y forward, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from core.posing import axis_angle_to_matrix

__all__ = ["GroundParams", "GroundPlane", "camera_to_world_per_frame", "fit_ground_plane", "motion_to_world",
           "world_frame"]

_CAMERA_UP = np.array([0.0, -1.0, 0.0])  # image up in OpenCV camera axes


@dataclass(frozen=True)
class GroundParams:
    """Plane fit settings (metres, degrees).

    ``inlier_m`` 3 cm: planted soles of a video reconstruction sit within 1-2 cm of the floor
    (rotation error over the leg), so three standard deviations; ``max_tilt_deg`` 60: a camera
    may look down steeply, never sideways at the floor; ``min_points`` 30: one second of one foot
    point; ``min_pelvis_ratio`` 0.7: walking keeps the pelvis at 85-95 % of its standing height,
    sitting puts it near 60 %.
    """

    inlier_m: float = 0.03
    iterations: int = 256
    min_points: int = 30
    min_inlier_fraction: float = 0.5
    min_extent: float = 0.2
    min_width: float = 0.15
    max_tilt_deg: float = 60.0
    min_camera_height: float = 0.05
    min_pelvis_ratio: float = 0.7


@dataclass(frozen=True, eq=False)
class GroundPlane:
    """A floor in camera-0 axes: height(p) = normal . p + camera_height (m above the floor).

    ``camera_to_world`` (4, 4) maps camera-0 coordinates to the world frame (module docstring);
    ``pitch_deg`` positive when the camera looks down; ``roll_deg`` positive when the image's
    right side is higher; ``inliers``, ``inlier_fraction`` of the fit (0 and 1 when built directly).
    """

    normal: np.ndarray
    camera_height: float
    camera_to_world: np.ndarray
    pitch_deg: float
    roll_deg: float
    inliers: int = 0
    inlier_fraction: float = 1.0

    def heights(self, points: np.ndarray) -> np.ndarray:
        """Heights (...) above the floor of camera-0 points (..., 3)."""
        return np.asarray(points, np.float64) @ self.normal + self.camera_height

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Camera-0 points (..., 3) -> world points (..., 3)."""
        t = self.camera_to_world
        return np.asarray(points, np.float64) @ t[:3, :3].T + t[:3, 3]


def world_frame(normal: np.ndarray, camera_height: float, inliers: int = 0, inlier_fraction: float = 1.0
                ) -> GroundPlane:
    """The world frame of a floor with up ``normal`` (camera-0 axes) ``camera_height`` m below the camera."""
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    forward = np.array([0.0, 0.0, 1.0]) - n[2] * n
    if np.linalg.norm(forward) < 1e-6:
        raise ValueError("the camera looks straight along the floor's normal: no forward direction")
    y = forward / np.linalg.norm(forward)
    x = np.cross(y, n)
    rot = np.stack([x, y, n])  # rows: world axes in camera coordinates
    t = np.eye(4)
    t[:3, :3] = rot
    t[:3, 3] = rot @ (camera_height * n)  # the camera centre sits at (0, 0, height)
    pitch = float(np.degrees(np.arcsin(np.clip(-n[2], -1.0, 1.0))))
    roll = float(np.degrees(np.arctan2(n[0], -n[1])))
    return GroundPlane(normal=n, camera_height=float(camera_height), camera_to_world=t, pitch_deg=pitch,
                       roll_deg=roll, inliers=int(inliers), inlier_fraction=float(inlier_fraction))


def _refine(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane (up normal, camera height) through points (N, 3)."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    n = vt[2] if vt[2] @ _CAMERA_UP >= 0 else -vt[2]
    return n, float(-n @ centre)


def fit_ground_plane(points: np.ndarray, *, pelvis: np.ndarray | None = None, standing_height: float | None = None,
                     params: GroundParams | None = None, seed: int = 0) -> tuple[GroundPlane | None, str]:
    """A floor through candidate contact points (N, 3) in camera-0 axes, or (None, reason).

    ``pelvis`` (F, 3) camera-0 positions and ``standing_height`` (the rest pelvis's height above
    the soles, m), when given, refuse a body that mostly sits or crouches. Deterministic for ``seed``.
    """
    p = params or GroundParams()
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < p.min_points:
        return None, f"no ground plane: {len(pts)} foot contact points, at least {p.min_points} needed"
    rng = np.random.default_rng(seed)
    scoring = pts if len(pts) <= 4000 else pts[rng.choice(len(pts), 4000, replace=False)]
    trio = scoring[rng.integers(0, len(scoring), size=(p.iterations, 3))]
    normals = np.cross(trio[:, 1] - trio[:, 0], trio[:, 2] - trio[:, 0])
    length = np.linalg.norm(normals, axis=1)
    good = length > 1e-6
    normals = normals[good] / length[good, None]
    normals *= np.where(normals @ _CAMERA_UP < 0, -1.0, 1.0)[:, None]
    cos_max = np.cos(np.radians(p.max_tilt_deg))
    plausible = normals @ _CAMERA_UP >= cos_max
    normals, anchors = normals[plausible], trio[good][plausible, 0]
    if len(normals) == 0:
        return None, "no ground plane: the contact points lie on no plane facing up in the image"
    dist = np.abs(normals @ scoring.T - np.einsum("hk,hk->h", normals, anchors)[:, None])
    best = int(np.argmax(np.sum(dist < p.inlier_m, axis=1)))
    n, h = normals[best], float(-normals[best] @ anchors[best])
    for _ in range(3):
        inl = np.abs(pts @ n + h) < p.inlier_m
        if inl.sum() < 3:
            break
        n, h = _refine(pts[inl])
    inl = np.abs(pts @ n + h) < p.inlier_m
    frac = float(inl.mean())
    if inl.sum() < p.min_points or frac < p.min_inlier_fraction:
        return None, (f"no ground plane: only {inl.sum()} of {len(pts)} contact points ({frac:.0%}) lie on one"
                      " plane")
    tilt = float(np.degrees(np.arccos(np.clip(n @ _CAMERA_UP, -1.0, 1.0))))
    if tilt > p.max_tilt_deg:
        return None, f"no ground plane: its up direction is {tilt:.0f} deg from the image's up (max {p.max_tilt_deg:g})"
    if h < p.min_camera_height:
        return None, f"no ground plane: the camera would be {h:.2f} m above it (below or in the floor)"
    # Spread of the inliers within the plane: principal extents (5th to 95th percentile).
    flat = pts[inl] - pts[inl].mean(0)
    flat -= np.outer(flat @ n, n)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    along = flat @ vt[:2].T
    extent = np.percentile(along, 95, axis=0) - np.percentile(along, 5, axis=0)
    if extent[0] < p.min_extent or extent[1] < p.min_width:
        return None, (f"no ground plane: the contact points span only {extent[0]:.2f} x {extent[1]:.2f} m"
                      f" (need {p.min_extent:g} x {p.min_width:g}: feet together, one foot or a close-up)")
    if pelvis is not None and standing_height is not None and len(pelvis):
        ratio = float(np.median(np.asarray(pelvis, np.float64) @ n + h)) / standing_height
        if ratio < p.min_pelvis_ratio:
            return None, (f"no ground plane: the pelvis is at {ratio:.0%} of its standing height above the"
                          " contact points (sitting or crouching)")
    return world_frame(n, h, int(inl.sum()), frac), ""


def camera_to_world_per_frame(camera_to_world: np.ndarray, r_rel: np.ndarray | None, frames: int | None = None
                              ) -> np.ndarray:
    """Per-frame camera-to-world (F, 4, 4) of a camera turning about its centre: T0 @ [R_rel[f]].

    ``r_rel`` (F, 3, 3) maps camera-f axes to camera-0 axes; None means a static camera (then
    ``frames`` gives F).
    """
    t0 = np.asarray(camera_to_world, np.float64)
    if r_rel is None:
        if frames is None:
            raise ValueError("a static camera needs the number of frames")
        return np.broadcast_to(t0, (frames, 4, 4)).copy()
    r_rel = np.asarray(r_rel, np.float64)
    rel = np.tile(np.eye(4), (len(r_rel), 1, 1))
    rel[:, :3, :3] = r_rel
    return t0 @ rel


def motion_to_world(pose: np.ndarray, translation: np.ndarray, rest_joints: np.ndarray,
                    camera_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose (F, 24, 3) and translation (F, 3) in camera axes -> the same body in world axes.

    ``camera_to_world`` (F, 4, 4) or (4, 4). The root rotation turns about the root joint, not
    the origin, so the translation picks up R J0 - J0 besides the camera's pose.
    """
    t = np.asarray(camera_to_world, np.float64)
    if t.ndim == 2:
        t = np.broadcast_to(t, (len(pose), 4, 4))
    rot, origin = t[:, :3, :3], t[:, :3, 3]
    j0 = np.asarray(rest_joints, np.float64)[0]
    root = rot @ axis_angle_to_matrix(np.asarray(pose, np.float64)[:, 0])
    out_pose = np.array(pose, np.float64, copy=True)
    out_pose[:, 0] = Rotation.from_matrix(root).as_rotvec()
    out_t = np.einsum("fab,fb->fa", rot, np.asarray(translation, np.float64) + j0) + origin - j0
    return out_pose, out_t
