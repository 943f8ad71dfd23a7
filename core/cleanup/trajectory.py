"""A depth-consistent root trajectory: planted feet pin STAF's noisy depth.

STAF places the body well across the image but poorly along the viewing ray (its depth comes from
the crop camera's scale). So each frame's whole body may slide along its own viewing ray through
the pelvis, t'_f = t_f + d_f u_f, and the shifts d (F,) are chosen by one sparse linear least
squares problem (residuals in metres, each weighted by one over its expected size):

- a foot point in contact on two consecutive frames does not move between them (camera-0 axes);
- a foot point in contact lies on the ground plane, when one is known;
- d varies smoothly (second differences), and so does the corrected pelvis path, which is all
  that acts where no foot is down (a jump, a clip with no contact: smoothing only);
- a weak prior pulls d toward 0 (STAF's depth is unbiased on average).

The normal equations are banded (each row couples frames at most two apart), so a banded
Cholesky solve takes milliseconds for 10,000 frames. Two reweighting rounds (Huber) let a wrong contact
(a foot that really slides) give way. No term spans a gap in the frame numbers.

``clean_trajectory`` runs the whole stage: foot points, contacts without a plane, the plane, the
depth fix, contacts again on the fixed motion with heights, and the fix again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solveh_banded

from core.cleanup.contacts import ContactThresholds, detect_contacts, rough_up
from core.cleanup.feet import foot_points, foot_vertex_indices, pelvis_rays, to_cam0
from core.cleanup.ground import GroundParams, GroundPlane, camera_to_world_per_frame, fit_ground_plane

__all__ = ["CleanTrajectory", "TrajectoryWeights", "clean_trajectory", "solve_depth"]


@dataclass(frozen=True)
class TrajectoryWeights:
    """Expected sizes (m) of each residual; the solver weights by their inverses.

    ``still`` 5 mm: a planted foot in STAF's output wanders by a few mm per frame (slow pose error);
    ``plane`` 1.5 cm: planted soles sit within 1-2 cm of the floor; ``depth_accel`` 1 cm: STAF's
    depth error changes slowly; ``path_accel`` 1 cm per frame^2: a walking pelvis accelerates by
    up to 5 m/s^2 (5 mm per frame^2 at 30 fps), twice that is allowed; ``prior`` 0.3 m: the depth
    error is a few cm to decimetres. ``huber`` (in units of each residual's size) starts the
    down-weighting of contact residuals.
    """

    still: float = 0.005
    plane: float = 0.015
    depth_accel: float = 0.01
    path_accel: float = 0.01
    prior: float = 0.3
    huber: float = 3.0
    rounds: int = 2


def _pairs(frames: np.ndarray) -> np.ndarray:
    """Rows r whose next row is the next frame."""
    return np.flatnonzero(np.diff(np.asarray(frames).astype(np.int64)) == 1)


def solve_depth(points: np.ndarray, rays: np.ndarray, pelvis: np.ndarray, contacts: np.ndarray, frames: np.ndarray,
                plane: GroundPlane | None = None, weights: TrajectoryWeights | None = None) -> np.ndarray:
    """Shifts d (F,) along the rays: corrected positions are x + d_f * rays_f.

    All inputs in camera-0 axes: foot points (F, K, 3), unit rays through the pelvis (F, 3),
    pelvis positions (F, 3), contacts (F, K) bool, frame numbers (F,).
    """
    wt = weights or TrajectoryWeights()
    points = np.asarray(points, np.float64)
    rays = np.asarray(rays, np.float64)
    pelvis = np.asarray(pelvis, np.float64)
    contacts = np.asarray(contacts, bool)
    n, k = contacts.shape
    if n == 0:
        return np.zeros(0)
    pairs = _pairs(frames)
    triples = pairs[np.isin(pairs + 1, pairs)]  # r, r+1, r+2 consecutive

    # Stillness rows: 3 per (pair, point) in contact on both frames.
    pr, pk = np.nonzero(contacts[pairs] & contacts[pairs + 1])
    f0 = pairs[pr]
    still_cols = np.stack([f0, f0 + 1], -1)
    still_coef = np.stack([-rays[f0], rays[f0 + 1]], -1)  # M x 3 x 2
    still_const = points[f0 + 1, pk] - points[f0, pk]  # M x 3
    blocks = []  # (rows x cols ids, coefficients, constants, base weight, robust)
    m = len(f0)
    blocks.append((np.repeat(still_cols[:, None, :], 3, 1).reshape(-1, 2), still_coef.reshape(-1, 2),
                   still_const.reshape(-1), 1.0 / wt.still, np.repeat(np.arange(m), 3)))
    if plane is not None:
        cf, ck = np.nonzero(contacts)
        blocks.append((cf[:, None], (rays[cf] @ plane.normal)[:, None], plane.heights(points[cf, ck]),
                       1.0 / wt.plane, np.arange(len(cf))))
    if len(triples):
        cols = np.stack([triples, triples + 1, triples + 2], -1)
        blocks.append((cols, np.tile([1.0, -2.0, 1.0], (len(triples), 1)), np.zeros(len(triples)),
                       1.0 / wt.depth_accel, None))
        coef = np.stack([rays[triples], -2.0 * rays[triples + 1], rays[triples + 2]], -1)  # T x 3 x 3
        const = pelvis[triples] - 2.0 * pelvis[triples + 1] + pelvis[triples + 2]
        blocks.append((np.repeat(cols[:, None, :], 3, 1).reshape(-1, 3), coef.reshape(-1, 3), const.reshape(-1),
                       1.0 / wt.path_accel, None))
    blocks.append((np.arange(n)[:, None], np.ones((n, 1)), np.zeros(n), 1.0 / wt.prior, None))

    robust = [np.ones(len(b[2])) for b in blocks]
    d = np.zeros(n)
    for round_ in range(wt.rounds + 1):
        rows, cols, vals, rhs = [], [], [], []
        start = 0
        for (ids, coef, const, base, _), extra in zip(blocks, robust, strict=True):
            w = base * extra
            r = np.arange(start, start + len(const))
            rows.append(np.repeat(r, ids.shape[1]))
            cols.append(ids.reshape(-1))
            vals.append((coef * w[:, None]).reshape(-1))
            rhs.append(-const * w)
            start += len(const)
        a = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(start, n))
        b = np.concatenate(rhs)
        normal = (a.T @ a).todia()
        banded = np.zeros((3, n))  # upper form: every row couples frames at most two apart
        for k in range(3):
            banded[2 - k, k:] = normal.diagonal(k)
        d = solveh_banded(banded, a.T @ b)
        if round_ == wt.rounds:
            break
        for i, (ids, coef, const, base, group) in enumerate(blocks):
            if group is None:
                continue
            resid = np.abs(const + np.sum(coef * d[ids], axis=1)) * base
            per = np.zeros(group.max() + 1 if len(group) else 0)
            np.maximum.at(per, group, resid)
            scale = np.minimum(1.0, wt.huber / np.maximum(per, 1e-12))
            robust[i] = scale[group]
    return d


@dataclass(frozen=True, eq=False)
class CleanTrajectory:
    """The stage's output for one person (F frames).

    ``translation`` (F, 3): corrected root translation in each frame's camera axes;
    ``translation_world`` (F, 3) and ``camera_to_world`` (F, 4, 4), None without a plane;
    ``plane`` (camera 0) or None with ``reason``; ``contacts`` (F, 4) on the corrected motion;
    ``depth_shift`` (F,) the d_f applied; ``feet`` (F, 4, 3) corrected foot points in camera-0
    axes; ``foot_indices`` (4,) the vertices used.
    """

    translation: np.ndarray
    translation_world: np.ndarray | None
    camera_to_world: np.ndarray | None
    plane: GroundPlane | None
    reason: str
    contacts: np.ndarray
    depth_shift: np.ndarray
    feet: np.ndarray
    foot_indices: np.ndarray


def clean_trajectory(pose: np.ndarray, translation: np.ndarray, rest_vertices: np.ndarray, rest_joints: np.ndarray,
                     skin_weights: np.ndarray, parents: np.ndarray, frames: np.ndarray, fps: float,
                     r_rel: np.ndarray | None = None, *, thresholds: ContactThresholds | None = None,
                     ground: GroundParams | None = None, weights: TrajectoryWeights | None = None) -> CleanTrajectory:
    """Contacts, ground plane, world frame and depth-consistent translation of one person.

    ``pose`` (F, 24, 3) and ``translation`` (F, 3) in each frame's camera axes (the motion file's);
    ``r_rel`` (F, 3, 3) camera-f -> camera-0 rotations of a panning camera, None for a static one.
    """
    pose = np.asarray(pose, np.float64)
    translation = np.asarray(translation, np.float64)
    frames = np.asarray(frames)
    if pose.shape[0] != translation.shape[0] or pose.shape[0] != len(frames):
        raise ValueError(f"pose, translation and frames disagree on F: {pose.shape}, {translation.shape}, "
                         f"{len(frames)}")
    indices = foot_vertex_indices(rest_vertices, skin_weights)
    rest_joints = np.asarray(rest_joints, np.float64)
    if len(frames) == 0:
        return CleanTrajectory(translation=translation.reshape(0, 3), translation_world=None, camera_to_world=None,
                               plane=None, reason="no ground plane: no frames", contacts=np.zeros((0, 4), bool),
                               depth_shift=np.zeros(0), feet=np.zeros((0, 4, 3)), foot_indices=indices)
    feet_cam = foot_points(pose, translation, rest_vertices, rest_joints, skin_weights, parents, indices)
    rays_cam = pelvis_rays(translation, rest_joints)
    feet0, rays0 = to_cam0(feet_cam, r_rel), to_cam0(rays_cam, r_rel)
    pelvis0 = to_cam0(translation + rest_joints[0], r_rel)
    up = rough_up(pose, r_rel)
    contacts = detect_contacts(feet0, frames, fps, up=up, rays=rays0, thresholds=thresholds)
    # The plane is fitted after a first fix without it: raw depth noise would tilt it.
    d = solve_depth(feet0, rays0, pelvis0, contacts, frames, None, weights)
    fixed = feet0 + d[:, None, None] * rays0[:, None, :]
    standing = float(rest_joints[0, 1] - np.asarray(rest_vertices, np.float64)[indices, 1].mean())
    plane, reason = fit_ground_plane(fixed[contacts], pelvis=pelvis0 + d[:, None] * rays0, standing_height=standing,
                                     params=ground)
    for _ in range(2):
        heights = plane.heights(fixed) if plane is not None else None
        contacts = detect_contacts(fixed, frames, fps, heights=heights, up=up, rays=rays0, thresholds=thresholds)
        d = solve_depth(feet0, rays0, pelvis0, contacts, frames, plane, weights)
        fixed = feet0 + d[:, None, None] * rays0[:, None, :]
    new_t = translation + d[:, None] * rays_cam
    t_world = cam_to_world = None
    if plane is not None:
        cam_to_world = camera_to_world_per_frame(plane.camera_to_world, r_rel, len(frames))
        rot, origin = cam_to_world[:, :3, :3], cam_to_world[:, :3, 3]
        t_world = np.einsum("fab,fb->fa", rot, new_t + rest_joints[0]) + origin - rest_joints[0]
    return CleanTrajectory(translation=new_t, translation_world=t_world, camera_to_world=cam_to_world, plane=plane,
                           reason=reason, contacts=contacts, depth_shift=d, feet=fixed, foot_indices=indices)
