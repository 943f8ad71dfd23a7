"""Where the stand-in body's joints are: the hand-designed rest joints and the ends of the limbs.

The surface's tubes grow along these joint chains and the rig's bone segments run between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.standins.body_spec import JOINT_NAMES, NUM_JOINTS

__all__ = [
    "HEAD_TOP",
    "LEFT_FINGERTIP",
    "LEFT_TOE",
    "design_joints",
    "mirror",
]


# ============================================================================================
# Design: joint positions of the canonical body (metres).
# Left-side values are given; the right side mirrors them (x -> -x).

_CENTER_JOINTS = {
    "pelvis": (0.0, -0.225, 0.012),
    "spine1": (0.0, -0.105, -0.020),
    "spine2": (0.0, 0.020, -0.012),
    "spine3": (0.0, 0.075, 0.005),
    "neck": (0.0, 0.272, -0.018),
    "head": (0.0, 0.360, 0.030),
}
_LEFT_JOINTS = {
    "hip": (0.075, -0.315, 0.005),
    "knee": (0.100, -0.690, 0.010),
    "ankle": (0.090, -1.075, -0.030),
    "foot": (0.112, -1.140, 0.095),
    "collar": (0.078, 0.190, -0.010),
    "shoulder": (0.170, 0.225, -0.020),
    "elbow": (0.430, 0.210, -0.040),
    "wrist": (0.680, 0.220, -0.040),
    "hand": (0.765, 0.215, -0.055),
}
# Ends of the limbs, beyond the last joints (used for the tubes, caps and bone segments).
LEFT_FINGERTIP = (0.885, 0.210, -0.060)
LEFT_TOE = (0.118, -1.150, 0.150)
HEAD_TOP = (0.0, 0.548, 0.0)


def design_joints() -> np.ndarray:
    """The canonical rest joints (24, 3), SMPL's order."""
    out = np.zeros((NUM_JOINTS, 3))
    for i, name in enumerate(JOINT_NAMES):
        if name in _CENTER_JOINTS:
            out[i] = _CENTER_JOINTS[name]
        else:
            side, part = name.split("_", 1)
            out[i] = _LEFT_JOINTS[part]
            if side == "right":
                out[i, 0] = -out[i, 0]
    return out


def mirror(point: Sequence[float], sign: float) -> np.ndarray:
    return np.array([sign * point[0], point[1], point[2]], dtype=np.float64)
