"""Rotations and the add-on's axis conventions, in numpy (no bpy): the math the rig is planned with.

Quaternions are (w, x, y, z), the order of Blender's ``rotation_quaternion``.

Axes (documented in docs/blender.md):

- Camera axes of the motion file (x right, y down, z forward) map to Blender's world by
  :data:`CAMERA_TO_WORLD`: (x, y, z) -> (x, z, -y), a -90 degree rotation about X (right-handed).
  The created camera sits at the origin looking along +Y with +Z up.
- SMPL's rest frame (y up, +x the person's left, +z the way the person faces) maps to armature
  space by :data:`SMPL_TO_ARMATURE`: (x, y, z) -> (x, -z, y), +90 degrees about X. That is exactly
  the local frame of a bone pointing along +Z with roll 0, so every bone's frame equals SMPL's
  joint frame and a joint's rotation applies to its pose bone unchanged.
- The root (pelvis) rotation is in camera axes; turned into armature space it becomes
  ``ROOT_CORRECTION @ R_root`` with ``ROOT_CORRECTION = SMPL_TO_ARMATURE.T @ CAMERA_TO_WORLD``,
  a 180 degree turn about X.
- A Blender camera looks along its local -Z with +Y up: camera axes map to its local frame by
  :data:`CAMERA_AXES_TO_BLENDER_CAMERA`, diag(1, -1, -1).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CAMERA_AXES_TO_BLENDER_CAMERA",
    "CAMERA_TO_WORLD",
    "ROOT_CORRECTION",
    "ROOT_CORRECTION_QUATERNION",
    "SMPL_TO_ARMATURE",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "continuous_quaternions",
    "matrix_to_quaternion",
    "nearest_rotation",
    "quaternion_multiply",
    "quaternion_to_matrix",
]

#: Camera axes (x right, y down, z forward) -> Blender world (Z up, camera looking along +Y).
CAMERA_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
#: SMPL's rest frame (Y up) -> armature space (Z up); also the rest frame of every bone.
SMPL_TO_ARMATURE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
#: Applied before the root's camera-axes rotation: 180 degrees about X.
ROOT_CORRECTION = SMPL_TO_ARMATURE.T @ CAMERA_TO_WORLD
ROOT_CORRECTION_QUATERNION = np.array([0.0, 1.0, 0.0, 0.0])
#: Camera axes (x right, y down, z forward) -> a Blender camera's local frame (looking along -Z, +Y up).
CAMERA_AXES_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (..., 3) in radians -> unit quaternions (..., 4) (w, x, y, z), float64."""
    aa = np.asarray(axis_angle, np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(a/2)/a, with its series near 0 so tiny rotations stay exact.
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of quaternions (..., 4), broadcasting; the rotation b, then a."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (w, x, y, z), normalised here -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (..., 3) -> rotation matrices (..., 3, 3) (Rodrigues), float64."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 (time) so consecutive quaternions lie on one hemisphere.

    q (F, ..., 4): the same rotations, with dot(q[i-1], q[i]) >= 0 for every i and every trailing
    index, so interpolating between keys takes the short way round. q[0] is kept as is.
    """
    q = np.array(q, np.float64, copy=True)
    if q.shape[0] < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.where(dots < 0.0, -1.0, 1.0)
    signs = np.concatenate([np.ones_like(flips[:1]), np.cumprod(flips, axis=0)], axis=0)
    return q * signs[..., None]


def nearest_rotation(m: np.ndarray) -> np.ndarray:
    """The rotation matrices (..., 3, 3) nearest to ``m`` (SVD; a file's rigid transforms are
    rotations only within 1e-4)."""
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) (w, x, y, z) with w >= 0.

    Shepperd's method: each row is computed from its largest of w, x, y, z, so it stays exact near
    half turns."""
    m = np.asarray(m, np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m00 - m11 + m22], -1),
    ], -2)  # row k is 4 q_k q, with candidates[..., k, k] = 4 q_k^2
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                               1 - m00 - m11 + m22], -1), axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)
