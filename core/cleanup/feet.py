"""Foot points of a body: which four rest-mesh vertices stand for the heels and toes, and where they are.

Contacts, the ground plane, the world trajectory and the foot lock all reason about the same four
points per body: left heel, left toe, right heel, right toe (in that order, ``FOOT_POINT_NAMES``).
They are picked geometrically from the rest mesh, so the same code works on the real SMPL mesh and
on the stand-in body: among the vertices skinned mostly to one side's ankle and foot joints, those
on the sole (within ``SOLE_BAND`` of that foot's lowest vertex, rest y up), the rearmost (heel) and
the frontmost (toe, rest +z forward). WHAM's evaluation uses fixed SMPL vertex ids for the same
purpose; picking by geometry keeps us free of the licensed mesh.

Positions are computed by skinning only these four vertices: forward kinematics of the 24 joints
plus four blended transforms per frame, instead of the whole 6890-vertex mesh.
"""

from __future__ import annotations

import numpy as np

from core.posing import forward_kinematics

__all__ = [
    "FOOT_JOINTS",
    "FOOT_POINT_NAMES",
    "SOLE_BAND",
    "foot_points",
    "foot_vertex_indices",
    "forward_kinematics",
    "joint_positions",
    "pelvis_rays",
    "to_cam0",
]

FOOT_POINT_NAMES: tuple[str, ...] = ("left_heel", "left_toe", "right_heel", "right_toe")
#: SMPL (ankle, foot) joint indices of the left and right side.
FOOT_JOINTS: tuple[tuple[int, int], tuple[int, int]] = ((7, 10), (8, 11))
#: Height band above a foot's lowest vertex that counts as its sole (m): 2 cm holds the flat
#: underside of an SMPL-sized foot and leaves out the ankle's sides and the top of the toes.
SOLE_BAND = 0.02


def foot_vertex_indices(rest_vertices: np.ndarray, skin_weights: np.ndarray) -> np.ndarray:
    """Vertex ids (4,) of left heel, left toe, right heel, right toe on a rest mesh (y up, +z forward).

    A heel is the sole vertex furthest back and a toe the one furthest forward, each penalised a
    little for height (2 mm per mm) so a vertex on the back of the heel's rounding does not win
    over one that actually touches the floor.
    """
    verts = np.asarray(rest_vertices, np.float64)
    weights = np.asarray(skin_weights, np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3 or weights.shape[0] != verts.shape[0] or weights.shape[1] < 12:
        raise ValueError(f"need rest vertices (V, 3) and skin weights (V, >=12), got {verts.shape}, {weights.shape}")
    out = []
    for joints in FOOT_JOINTS:
        candidates = np.flatnonzero(weights[:, list(joints)].sum(axis=1) > 0.5)
        if candidates.size == 0:
            raise ValueError(f"no vertex is skinned mostly to joints {joints}: not an SMPL-like body")
        y = verts[candidates, 1]
        lift = y - y.min()
        sole = candidates[lift <= SOLE_BAND]
        lift = lift[lift <= SOLE_BAND]
        z = verts[sole, 2]
        out.append(sole[np.argmin(z + 2.0 * lift)])
        out.append(sole[np.argmax(z - 2.0 * lift)])
    return np.asarray(out, np.int64)


def joint_positions(pose: np.ndarray, translation: np.ndarray, rest_joints: np.ndarray,
                    parents: np.ndarray) -> np.ndarray:
    """Posed joints (F, 24, 3) in the axes the pose is in (camera axes for the motion file)."""
    _, joints = forward_kinematics(pose, rest_joints, parents)
    return joints + np.asarray(translation, np.float64)[:, None, :]


def foot_points(pose: np.ndarray, translation: np.ndarray, rest_vertices: np.ndarray, rest_joints: np.ndarray,
                skin_weights: np.ndarray, parents: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Skinned positions (F, K, 3) of rest vertices ``indices`` (K,) for each frame, plus translation.

    Only the given vertices are skinned (linear blend skinning as in ``core.posing``), so this costs
    about as much as forward kinematics.
    """
    indices = np.asarray(indices, np.int64)
    rest_joints = np.asarray(rest_joints, np.float64)
    world_r, world_t = forward_kinematics(pose, rest_joints, parents)
    offset = world_t - np.einsum("fjab,jb->fja", world_r, rest_joints)
    w = np.asarray(skin_weights, np.float64)[indices]  # K x J
    used = np.flatnonzero(np.any(w > 0, axis=0))
    w = w[:, used]
    blend_r = np.einsum("kj,fjab->fkab", w, world_r[:, used])
    blend_t = np.einsum("kj,fja->fka", w, offset[:, used])
    verts = np.einsum("fkab,kb->fka", blend_r, np.asarray(rest_vertices, np.float64)[indices]) + blend_t
    return verts + np.asarray(translation, np.float64)[:, None, :]


def pelvis_rays(translation: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Unit viewing rays (F, 3) from the camera centre through the pelvis, in each frame's camera axes.

    The root joint does not move under the pose, so the pelvis is rest_joints[0] + translation.
    """
    pelvis = np.asarray(translation, np.float64) + np.asarray(rest_joints, np.float64)[0]
    norm = np.linalg.norm(pelvis, axis=-1, keepdims=True)
    if np.any(norm < 1e-9):
        raise ValueError("the pelvis is at the camera centre in some frame: no viewing ray")
    return pelvis / norm


def to_cam0(points: np.ndarray, r_rel: np.ndarray | None) -> np.ndarray:
    """Points (F, ..., 3) in each frame's camera axes -> camera-0 axes (``R_rel[f] @ p``); unchanged
    when ``r_rel`` is None (a static camera)."""
    points = np.asarray(points, np.float64)
    if r_rel is None:
        return points
    r_rel = np.asarray(r_rel, np.float64)
    if r_rel.shape != (points.shape[0], 3, 3):
        raise ValueError(f"R_rel must be (F, 3, 3) with F={points.shape[0]}, got {r_rel.shape}")
    return np.einsum("fab,f...b->f...a", r_rel, points)
