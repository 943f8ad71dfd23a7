"""Posing a motion file's body with numpy alone: linear blend skinning of the rest mesh.

This is what a rig does (SMPL without pose correctives), so previews and add-on checks agree with it.
"""

from __future__ import annotations

import numpy as np

from core.motion_format import Motion, PersonMotion

__all__ = ["axis_angle_to_matrix", "forward_kinematics", "pose_person", "posed_joints_and_vertices"]


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle (..., 3) -> rotation matrices (..., 3, 3), float64."""
    aa = np.asarray(aa, np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.where(angle > 1e-12, angle, 1.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def forward_kinematics(pose: np.ndarray, rest_joints: np.ndarray, parents: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (F, J, 3, 3) and joint positions (F, J, 3) of axis-angle poses (F, J, 3), in the
    body's frame without the root translation (SMPL: the root joint stays at its rest position)."""
    pose = np.asarray(pose, np.float64)
    rest_joints = np.asarray(rest_joints, np.float64)
    rot = axis_angle_to_matrix(pose)
    world_r = np.empty_like(rot)
    world_t = np.empty((*pose.shape[:2], 3))
    for i, p in enumerate(np.asarray(parents)):
        if p < 0:
            world_r[:, i] = rot[:, i]
            world_t[:, i] = rest_joints[i]
        else:
            world_r[:, i] = world_r[:, p] @ rot[:, i]
            world_t[:, i] = world_t[:, p] + world_r[:, p] @ (rest_joints[i] - rest_joints[p])
    return world_r, world_t


def posed_joints_and_vertices(pose: np.ndarray, rest_vertices: np.ndarray, rest_joints: np.ndarray,
                              parents: np.ndarray, skin_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics and skinning: pose (F, 24, 3) axis-angle -> joints (F, 24, 3), vertices (F, V, 3)."""
    world_r, world_t = forward_kinematics(pose, rest_joints, parents)
    # Each joint's transform maps rest space to posed space: x -> R (x - J_rest) + J_posed.
    offset = world_t - np.einsum("fjab,jb->fja", world_r, rest_joints)
    blend_r = np.einsum("vj,fjab->fvab", skin_weights, world_r)
    blend_t = np.einsum("vj,fja->fva", skin_weights, offset)
    verts = np.einsum("fvab,vb->fva", blend_r, rest_vertices) + blend_t
    return world_t, verts


def pose_person(motion: Motion, person: PersonMotion, rows: np.ndarray | slice = slice(None),
                camera_space: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Joints (F, 24, 3) and vertices (F, V, 3) of a person's frames ``rows``; in camera axes with the
    root translation when ``camera_space``, else in SMPL's frame around its origin."""
    joints, verts = posed_joints_and_vertices(person.pose[rows], person.rest_vertices.astype(np.float64),
                                              person.rest_joints.astype(np.float64), motion.parents,
                                              motion.skin_weights.astype(np.float64))
    if camera_space:
        t = person.translation[rows].astype(np.float64)[:, None, :]
        joints, verts = joints + t, verts + t
    return joints, verts
