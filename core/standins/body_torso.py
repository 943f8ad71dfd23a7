"""The stand-in body's torso: a subdivided box whose lattice is mapped onto rounded, tapering
cross-sections, and the patches of it that are removed for the limbs and the neck to grow from."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = [
    "Y_BOTTOM",
    "boundary_loop",
    "cube_surface",
    "patch_masks",
    "torso_positions",
]


# ============================================================================================
# Design: the torso box's lattice and cross-sections (metres).

# Torso box lattice: cells along x, y, z; the patches that limbs grow from.
_NX, _NY, _NZ = 18, 36, 12
_LEG_COLS = 8  # bottom-face columns (x) under each leg; all _NZ rows
_ARM_ROWS, _ARM_MARGIN = 8, 3  # side-face rows (y) from the top; z columns [margin, NZ - margin)
_NECK_COLS, _NECK_ROWS = 6, 8  # top-face cells (x, z) around the centre
Y_BOTTOM, _Y_TOP = -0.42, 0.26
_TORSO_EXPONENT = 2.3  # super-ellipse exponent of the torso's cross-sections (2 = ellipse)

# Torso cross-sections: y, half-width x, front depth, back depth, z of the centre.
_TORSO_PROFILE = np.array(
    [
        (-0.420, 0.158, 0.085, 0.102, 0.000),
        (-0.360, 0.170, 0.092, 0.120, 0.000),
        (-0.290, 0.172, 0.098, 0.116, 0.000),
        (-0.200, 0.160, 0.103, 0.098, 0.000),
        (-0.100, 0.145, 0.105, 0.088, 0.000),
        (-0.020, 0.139, 0.100, 0.087, 0.000),
        (0.060, 0.148, 0.104, 0.092, 0.000),
        (0.130, 0.165, 0.112, 0.098, 0.000),
        (0.200, 0.180, 0.104, 0.098, -0.004),
        (0.260, 0.178, 0.080, 0.090, -0.008),
    ]
)
_SHOULDER_DOME = 0.036  # how much higher the top of the torso is at the neck than at the shoulders


# ============================================================================================
# The torso box


def cube_surface() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface of an _NX x _NY x _NZ box of cells.

    Returns lattice points (P, 3) int64, quads (Q, 4) indexing them (counter-clockwise seen from
    outside) and a tag per quad (Q, 4): axis of the face's normal, side (0: -, 1: +), and the cell
    coordinates c1, c2 along axes (axis + 1) % 3 and (axis + 2) % 3.
    """
    n = (_NX, _NY, _NZ)
    corners_all, tags = [], []
    for axis in range(3):
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        for side in (0, 1):
            c1, c2 = np.meshgrid(np.arange(n[a1]), np.arange(n[a2]), indexing="ij")
            c1, c2 = c1.ravel(), c2.ravel()
            quad = np.zeros((c1.size, 4, 3), dtype=np.int64)
            quad[:, :, axis] = side * n[axis]
            for corner, (d1, d2) in enumerate(((0, 0), (1, 0), (1, 1), (0, 1))):
                quad[:, corner, a1] = c1 + d1
                quad[:, corner, a2] = c2 + d2
            if side == 0:  # (a1, a2) order faces +axis; reverse it on the negative face
                quad = quad[:, ::-1]
            corners_all.append(quad)
            tags.append(np.stack([np.full_like(c1, axis), np.full_like(c1, side), c1, c2], axis=1))
    corners = np.concatenate(corners_all)
    keys = (corners[..., 0] * (_NY + 1) + corners[..., 1]) * (_NZ + 1) + corners[..., 2]
    unique, inverse = np.unique(keys.ravel(), return_inverse=True)
    lattice = np.stack([unique // ((_NY + 1) * (_NZ + 1)), (unique // (_NZ + 1)) % (_NY + 1), unique % (_NZ + 1)],
                       axis=1)
    return lattice, inverse.reshape(-1, 4), np.concatenate(tags)


def _torso_profile(y: np.ndarray) -> np.ndarray:
    """(len(y), 4): half-width, front depth, back depth, z centre of the torso at heights y."""
    interp = PchipInterpolator(_TORSO_PROFILE[:, 0], _TORSO_PROFILE[:, 1:], axis=0, extrapolate=True)
    return interp(np.clip(y, Y_BOTTOM, _Y_TOP))


def torso_positions(lattice: np.ndarray) -> np.ndarray:
    """Map box lattice points onto the rounded torso: walls follow the cross-section profile,
    the top and bottom faces become gently domed caps."""
    u = 2.0 * lattice[:, 0] / _NX - 1.0
    w = 2.0 * lattice[:, 2] / _NZ - 1.0
    j = lattice[:, 1]
    y_wall = Y_BOTTOM + (j / _NY) * (_Y_TOP - Y_BOTTOM)
    prof = _torso_profile(y_wall)
    r = np.maximum(np.abs(u), np.abs(w))  # 1 on the walls, < 1 inside the caps
    pnorm = (np.abs(u) ** _TORSO_EXPONENT + np.abs(w) ** _TORSO_EXPONENT) ** (1.0 / _TORSO_EXPONENT)
    safe = np.where(pnorm > 0, pnorm, 1.0)
    qu, qw = np.where(pnorm > 0, u / safe, 0.0), np.where(pnorm > 0, w / safe, 0.0)
    x = prof[:, 0] * r * qu
    z = prof[:, 3] + r * qw * np.where(qw > 0, prof[:, 1], prof[:, 2])
    # The top rises towards the neck: flat on the neck patch, falling to the shoulders, the back of
    # the neck (trapezius) higher than the front (collarbones).
    neck_u, neck_w = _NECK_COLS / _NX, _NECK_ROWS / _NZ
    reach = np.maximum(np.abs(u) / neck_u, np.abs(w) / neck_w * np.where(w > 0, 2.0, 1.2))
    dome = _SHOULDER_DOME * (1.0 - np.clip((reach - 1.0) / (1.0 / neck_u - 1.0), 0.0, 1.0)) ** 1.5
    y = np.where(j == _NY, _Y_TOP + dome, y_wall)
    return np.stack([x, y, z], axis=1)


def patch_masks(tags: np.ndarray) -> dict[str, np.ndarray]:
    """Quads removed for each limb, as boolean masks over the box's quads."""
    axis, side, c1, c2 = tags.T

    def cells(ax: int, sd: int, r1: tuple[int, int], r2: tuple[int, int]) -> np.ndarray:
        return (axis == ax) & (side == sd) & (c1 >= r1[0]) & (c1 < r1[1]) & (c2 >= r2[0]) & (c2 < r2[1])

    arm_rows = (_NY - _ARM_ROWS, _NY)
    arm_cols = (_ARM_MARGIN, _NZ - _ARM_MARGIN)
    neck_z = (_NZ // 2 - _NECK_ROWS // 2, _NZ // 2 + _NECK_ROWS // 2)
    neck_x = (_NX // 2 - _NECK_COLS // 2, _NX // 2 + _NECK_COLS // 2)
    return {
        # bottom face (axis y, side -): c1 = z, c2 = x
        "left_leg": cells(1, 0, (0, _NZ), (_NX - _LEG_COLS, _NX)),
        "right_leg": cells(1, 0, (0, _NZ), (0, _LEG_COLS)),
        # side faces (axis x): c1 = y, c2 = z
        "left_arm": cells(0, 1, arm_rows, arm_cols),
        "right_arm": cells(0, 0, arm_rows, arm_cols),
        # top face: c1 = z, c2 = x
        "head": cells(1, 1, neck_z, neck_x),
    }


def boundary_loop(quads: np.ndarray) -> np.ndarray:
    """The boundary of a disk of quads as one vertex loop, in the quads' own orientation."""
    edges = {}
    for q in quads:
        for k in range(4):
            edges[(int(q[k]), int(q[(k + 1) % 4]))] = True
    nxt = {a: b for (a, b) in edges if (b, a) not in edges}
    if not nxt:
        raise RuntimeError("patch has no boundary")
    start = min(nxt)
    loop = [start]
    while True:
        step = nxt[loop[-1]]
        if step == start:
            break
        loop.append(step)
        if len(loop) > len(nxt):
            raise RuntimeError("patch boundary is not a single loop")
    if len(loop) != len(nxt):
        raise RuntimeError("patch boundary is not a single loop")
    return np.array(loop, dtype=np.int64)
