"""A seeded, person-shaped stand-in for the SMPL body model: mesh, skeleton, skinning, blend shapes.

The licensed SMPL files cannot be bundled, yet tests and the demo must run the real loading and
posing code. ``make_body`` builds a body with exactly SMPL's sizes and conventions so the same
code paths run on it:

- 6890 vertices / 13776 triangles forming one closed, outward-oriented, genus-0 surface;
- SMPL's rest-pose coordinates: metres, y up, +x the person's left, +z forward (the face),
  pelvis near the origin, arms out sideways (T-pose), feet pointing forward;
- SMPL's 24 joints in SMPL's order and kinematic tree, linear-blend-skinning weights,
  shape directions (6890, 3, 10), pose-corrective directions (6890, 3, 207), and joint
  regressors (SMPL's 24 joints, SPIN's 9 extra joints, Human3.6M's 17 joints).

How the surface is made (box modelling, all hand-written): the torso is the surface of a
subdivided box whose lattice is mapped onto rounded, tapering cross-sections. Five rectangular
patches of that box (under each leg, at each shoulder, around the neck) are removed; from each
patch's boundary loop a tube of rings grows along the limb's joint chain (hip -> knee -> ankle,
shoulder -> elbow -> wrist -> hand, neck -> head), each ring an elliptical cross-section that
follows human proportions; feet, hands and the top of the head are closed by caps. Consecutive
rings may have different vertex counts (they are stitched by angle), which lets the builder hit
exactly 6890 vertices. Removing a disk and gluing on a capped tube keeps the surface a sphere
topologically, so F = 2V - 4 holds by construction.

The geometry (faces included) is the same for every seed; the seed varies the body's shape a
little (through its own shape directions), the strength of the shape directions and the
pose-corrective fields, so different seeds give different but equally valid people.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import PchipInterpolator
from scipy.optimize import nnls

from core.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS

__all__ = [
    "EXTRA_JOINT_NAMES",
    "H36M_JOINT_NAMES",
    "JOINT_NAMES",
    "NUM_BETAS",
    "NUM_FACES",
    "NUM_JOINTS",
    "NUM_POSE_BASIS",
    "NUM_VERTICES",
    "PARENTS",
    "PART_NAMES",
    "StandInBody",
    "make_body",
]

NUM_VERTICES = 6890
NUM_FACES = 13776  # 2 * 6890 - 4: a closed genus-0 triangle mesh
NUM_JOINTS = 24
NUM_BETAS = 10
NUM_POSE_BASIS = (NUM_JOINTS - 1) * 9  # 207

JOINT_NAMES = SMPL_JOINT_NAMES

#: Parent of each joint in ``JOINT_NAMES`` (SMPL's kinematic tree), -1 for the root.
PARENTS = SMPL_PARENTS

#: The 9 points of ``j_regressor_extra``, in the order SPIN appends them after SMPL's joints.
EXTRA_JOINT_NAMES: tuple[str, ...] = (
    "right_hip_lsp",
    "left_hip_lsp",
    "neck_lsp",
    "head_top_lsp",
    "pelvis_mpii",
    "thorax_mpii",
    "spine_h36m",
    "jaw_h36m",
    "head_h36m",
)

#: The 17 points of ``j_regressor_h36m``, in Human3.6M's order.
H36M_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)

#: Body parts the surface is built from; ``StandInBody.part_labels`` indexes this tuple.
PART_NAMES: tuple[str, ...] = ("torso", "left_leg", "right_leg", "left_arm", "right_arm", "head")
_TORSO, _LEFT_LEG, _RIGHT_LEG, _LEFT_ARM, _RIGHT_ARM, _HEAD = range(6)


@dataclass(frozen=True, eq=False)
class StandInBody:
    """A SMPL-sized body in SMPL's rest pose (metres; float64 unless noted; arrays read-only).

    v_template (6890, 3); faces (13776, 3) int64, counter-clockwise seen from outside;
    joints (24, 3) rest joints, equal to ``j_regressor @ v_template``; parents (24,) int64;
    lbs_weights (6890, 24), rows sum to 1; shapedirs (6890, 3, 10); posedirs (6890, 3, 207)
    (SMPL's pickle layout); j_regressor (24, 6890) ``scipy.sparse.csc_matrix``;
    j_regressor_extra (9, 6890) and j_regressor_h36m (17, 6890) dense (rows: ``EXTRA_JOINT_NAMES``,
    ``H36M_JOINT_NAMES``); part_labels (6890,) int8 indexing ``PART_NAMES``.
    """

    v_template: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    lbs_weights: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: sp.csc_matrix
    j_regressor_extra: np.ndarray
    j_regressor_h36m: np.ndarray
    part_labels: np.ndarray


# ============================================================================================
# Design: joint positions and cross-section profiles of the canonical body (metres).
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
_LEFT_FINGERTIP = (0.885, 0.210, -0.060)
_LEFT_TOE = (0.118, -1.150, 0.150)
_HEAD_TOP = (0.0, 0.548, 0.0)


def _design_joints() -> np.ndarray:
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


def _mirror(point: Sequence[float], sign: float) -> np.ndarray:
    return np.array([sign * point[0], point[1], point[2]], dtype=np.float64)


# Torso box lattice: cells along x, y, z; the patches that limbs grow from.
_NX, _NY, _NZ = 18, 36, 12
_LEG_COLS = 8  # bottom-face columns (x) under each leg; all _NZ rows
_ARM_ROWS, _ARM_MARGIN = 8, 3  # side-face rows (y) from the top; z columns [margin, NZ - margin)
_NECK_COLS, _NECK_ROWS = 6, 8  # top-face cells (x, z) around the centre
_Y_BOTTOM, _Y_TOP = -0.42, 0.26
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

# Neck and head cross-sections (horizontal rings): y, half-width x, front depth, back depth, z centre.
_HEAD_PROFILE = np.array(
    [
        (0.312, 0.056, 0.052, 0.060, -0.010),
        (0.330, 0.054, 0.056, 0.058, -0.006),
        (0.350, 0.057, 0.075, 0.060, -0.004),
        (0.370, 0.066, 0.110, 0.070, -0.002),
        (0.395, 0.075, 0.121, 0.083, 0.000),
        (0.425, 0.080, 0.123, 0.093, 0.000),
        (0.455, 0.082, 0.121, 0.098, 0.000),
        (0.485, 0.080, 0.113, 0.100, 0.000),
        (0.512, 0.072, 0.095, 0.091, 0.000),
        (0.532, 0.053, 0.068, 0.066, 0.000),
        (0.543, 0.028, 0.036, 0.035, 0.000),
    ]
)

# Left leg cross-sections along the hip -> knee -> ankle chain, keyed by height y:
# y, lateral half-width, front-back half-depth, outward shift, forward shift.
_LEG_PROFILE = np.array(
    [
        (-0.440, 0.079, 0.098, 0.010, -0.004),
        (-0.500, 0.077, 0.088, 0.007, 0.000),
        (-0.580, 0.069, 0.076, 0.003, 0.002),
        (-0.650, 0.058, 0.063, 0.000, 0.004),
        (-0.690, 0.053, 0.057, 0.000, 0.007),
        (-0.740, 0.050, 0.054, 0.000, 0.000),
        (-0.820, 0.050, 0.059, 0.000, -0.012),
        (-0.900, 0.044, 0.050, 0.000, -0.010),
        (-0.980, 0.036, 0.040, 0.000, -0.004),
        (-1.030, 0.032, 0.035, 0.000, 0.000),
        (-1.058, 0.034, 0.038, 0.000, 0.002),
    ]
)
# Foot rings (horizontal): y, blend from the ankle's ellipse to the foot's outline, scale.
_FOOT_RINGS = np.array(
    [
        (-1.080, 0.00, 1.00),
        (-1.097, 0.35, 1.00),
        (-1.114, 0.70, 1.00),
        (-1.131, 0.93, 1.00),
        (-1.148, 1.00, 1.00),
        (-1.160, 1.00, 0.94),
        (-1.166, 1.00, 0.78),
        (-1.168, 1.00, 0.50),
    ]
)
_SOLE_Y = -1.168

# Left arm cross-sections along shoulder -> elbow -> wrist -> hand -> fingertip, keyed by arc
# length from the shoulder: s, half-height (y), half-depth (z), super-ellipse exponent, y shift.
_ARM_PROFILE = np.array(
    [
        (0.025, 0.054, 0.057, 2.0, -0.006),
        (0.060, 0.051, 0.052, 2.0, -0.003),
        (0.120, 0.046, 0.047, 2.0, 0.000),
        (0.190, 0.042, 0.043, 2.0, 0.000),
        (0.256, 0.037, 0.040, 2.0, 0.000),
        (0.310, 0.039, 0.042, 2.0, 0.000),
        (0.370, 0.035, 0.038, 2.0, 0.000),
        (0.440, 0.027, 0.032, 2.0, 0.000),
        (0.505, 0.021, 0.029, 2.1, 0.000),
        (0.535, 0.019, 0.037, 2.4, 0.000),
        (0.575, 0.018, 0.044, 2.6, 0.000),
        (0.605, 0.016, 0.046, 2.6, 0.000),
        (0.645, 0.013, 0.043, 2.6, 0.000),
        (0.680, 0.011, 0.038, 2.4, 0.000),
        (0.700, 0.0095, 0.033, 2.2, 0.000),
    ]
)
_FINGER_CAP = 0.013  # how far the fingertip cap reaches beyond the last arm ring
_RING_SPACING = 0.0165  # distance between consecutive rings along the arms and legs
_SMOOTHING_STEPS = 12  # Taubin smoothing passes over the assembled surface


# ============================================================================================
# Small geometry helpers


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _wrap(angle: np.ndarray | float) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2.0 * math.pi) - math.pi


class _Chain:
    """A polyline through joint positions, parametrised by arc length s."""

    def __init__(self, points: Sequence[np.ndarray]) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def at(self, s: float) -> np.ndarray:
        return np.array([np.interp(s, self.s, self.points[:, k]) for k in range(3)])

    def tangent(self, s: float, window: float = 0.04) -> np.ndarray:
        lo, hi = max(0.0, s - window), min(self.length, s + window)
        return _unit(self.at(hi) - self.at(lo))

    def s_at_y(self, y: float) -> float:
        """Arc length where the chain reaches height y (the chain must be monotone in y)."""
        ys = self.points[:, 1]
        order = np.argsort(ys)
        return float(np.interp(y, ys[order], self.s[order]))


def _superellipse(t: np.ndarray, a: float, b: float, p: float) -> np.ndarray:
    """Points (m, 2) of |x/a|^p + |y/b|^p = 1 at parameters t."""
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / p
    return np.stack([a * np.sign(c) * np.abs(c) ** e, b * np.sign(s) * np.abs(s) ** e], axis=1)


def _param_for_angle(theta: float, a: float, b: float) -> float:
    """Ellipse parameter whose point lies at polar angle theta (start rings where the loop starts)."""
    return math.atan2(a * math.sin(theta), b * math.cos(theta))


# ============================================================================================
# Ring plans: a tube is a list of rings, each a closed outline in a plane, plus an end point.


@dataclass(frozen=True)
class _Ring:
    """One planned ring: centre (3,), in-plane axes e1, e2 (3,), outline(count, theta0) -> (m, 2)."""

    center: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    outline: Callable[[int, float], np.ndarray]
    perimeter: float
    min_count: int = 8


@dataclass(frozen=True)
class _Tube:
    """A limb grown from a removed patch: its part label, rings (in order), closing point, and the
    length over which the rings morph from the patch's outline into their own (a smooth junction)."""

    name: str
    part: int
    rings: list[_Ring]
    tip: np.ndarray
    blend: float


def _outline_perimeter(outline: Callable[[int, float], np.ndarray]) -> float:
    pts = outline(96, 0.0)
    return float(np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1).sum())


def _make_ring(center: np.ndarray, e1: np.ndarray, e2: np.ndarray,
               outline: Callable[[int, float], np.ndarray], min_count: int = 8) -> _Ring:
    return _Ring(center, e1, e2, outline, _outline_perimeter(outline), min_count)


def _ellipse_outline(a: float, b: float, p: float = 2.0) -> Callable[[int, float], np.ndarray]:
    def outline(count: int, theta0: float) -> np.ndarray:
        t = _param_for_angle(theta0, a, b) + 2.0 * math.pi * np.arange(count) / count
        return _superellipse(t, a, b, p)

    return outline


def _split_ellipse_outline(half_x: float, depth_pos: float, depth_neg: float) -> Callable[[int, float], np.ndarray]:
    """Ellipse whose extent along +e2 (depth_pos) and -e2 (depth_neg) differ (front/back asymmetry)."""

    def outline(count: int, theta0: float) -> np.ndarray:
        depth0 = depth_pos if math.sin(theta0) >= 0 else depth_neg
        t = _param_for_angle(theta0, half_x, depth0) + 2.0 * math.pi * np.arange(count) / count
        s = np.sin(t)
        return np.stack([half_x * np.cos(t), np.where(s >= 0, depth_pos, depth_neg) * s], axis=1)

    return outline


def _transported_frames(tangents: np.ndarray, e1_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane axes (e1, e2) for rings with the given tangents: e1 carried along without twisting,
    e2 = tangent x e1, so (e1, e2, tangent) is right-handed and ring angles turn counter-clockwise
    seen from the tip of the tangent."""
    e1s, e2s = [], []
    e1 = np.asarray(e1_start, dtype=np.float64)
    for t in tangents:
        e1 = _unit(e1 - np.dot(e1, t) * t)
        e1s.append(e1)
        e2s.append(np.cross(t, e1))
    return np.array(e1s), np.array(e2s)


def _leg_tube(sign: float, joints: np.ndarray) -> _Tube:
    """Rings of one leg (sign +1: left) from below the torso to the sole."""
    hip, knee, ankle = (joints[JOINT_NAMES.index(f"{'left' if sign > 0 else 'right'}_{n}")] for n in
                        ("hip", "knee", "ankle"))
    chain = _Chain([hip, knee, ankle])
    prof = _LEG_PROFILE
    s_keys = np.array([chain.s_at_y(y) for y in prof[:, 0]])
    interp = PchipInterpolator(s_keys, prof[:, 1:], axis=0)
    count = max(2, round((s_keys[-1] - s_keys[0]) / _RING_SPACING) + 1)
    s_values = np.linspace(s_keys[0], s_keys[-1], count)
    tangents = np.array([chain.tangent(s) for s in s_values])
    e1s, e2s = _transported_frames(tangents, np.array([1.0, 0.0, 0.0]))
    rings = []
    for s, e1, e2 in zip(s_values, e1s, e2s, strict=True):
        a, b, shift_out, shift_fwd = interp(s)
        center = chain.at(s) + np.array([sign * shift_out, 0.0, shift_fwd])
        rings.append(_make_ring(center, e1, e2, _ellipse_outline(float(a), float(b))))

    # Foot: horizontal rings blending the ankle's ellipse into the foot's outline, then the sole.
    x_axis, z_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    ankle_c = np.array([ankle[0], ankle[2] + 0.005])
    foot_c = np.array([ankle[0] + sign * 0.006, ankle[2] + 0.058])
    for y, blend, scale in _FOOT_RINGS:
        center2 = (1.0 - blend) * ankle_c + blend * foot_c

        def outline(count: int, theta0: float, blend: float = float(blend), scale: float = float(scale)) -> np.ndarray:
            t = _param_for_angle(theta0, 0.04, 0.08) + 2.0 * math.pi * np.arange(count) / count
            c, s = np.cos(t), np.sin(t)
            ankle_pts = np.stack([0.036 * c, 0.044 * s], axis=1)
            foot_pts = np.stack([(0.038 + 0.008 * s) * c, 0.125 * s], axis=1)
            return scale * ((1.0 - blend) * ankle_pts + blend * foot_pts)

        center = np.array([center2[0], y, center2[1]])
        rings.append(_make_ring(center, x_axis, z_axis, outline))
    tip = np.array([foot_c[0], _SOLE_Y, foot_c[1]])
    return _Tube("left_leg" if sign > 0 else "right_leg", _LEFT_LEG if sign > 0 else _RIGHT_LEG, rings, tip, 0.09)


def _arm_tube(sign: float, joints: np.ndarray) -> _Tube:
    """Rings of one arm (sign +1: left) from the shoulder to the fingertips."""
    side = "left" if sign > 0 else "right"
    pts = [joints[JOINT_NAMES.index(f"{side}_{n}")] for n in ("shoulder", "elbow", "wrist", "hand")]
    chain = _Chain([*pts, _mirror(_LEFT_FINGERTIP, sign)])
    prof = _ARM_PROFILE
    interp = PchipInterpolator(prof[:, 0], prof[:, 1:], axis=0)
    count = max(2, round((prof[-1, 0] - prof[0, 0]) / _RING_SPACING) + 1)
    s_values = np.linspace(prof[0, 0], prof[-1, 0], count)
    tangents = np.array([chain.tangent(s) for s in s_values])
    e1s, e2s = _transported_frames(tangents, np.array([0.0, 1.0, 0.0]))
    rings = []
    last = None
    for s, t, e1, e2 in zip(s_values, tangents, e1s, e2s, strict=True):
        a, b, p, shift_up = (float(v) for v in interp(s))
        center = chain.at(s) + np.array([0.0, shift_up, 0.0])
        rings.append(_make_ring(center, e1, e2, _ellipse_outline(a, b, p)))
        last = (center, t, e1, e2, a, b, p)
    # Fingertip cap: two shrinking rings, then the tip.
    center, t, e1, e2, a, b, p = last
    for frac, scale in ((0.45, 0.82), (0.8, 0.48)):
        rings.append(_make_ring(center + frac * _FINGER_CAP * t, e1, e2,
                                _ellipse_outline(a * scale, b * scale, p), min_count=6))
    tip = center + _FINGER_CAP * t
    return _Tube(f"{side}_arm", _LEFT_ARM if sign > 0 else _RIGHT_ARM, rings, tip, 0.06)


def _head_tube() -> _Tube:
    """Horizontal rings of the neck and head, up to the crown."""
    x_axis, back = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])  # e2 = +y x +x = -z
    rings = []
    for y, half_x, front, rear, cz in _HEAD_PROFILE:
        # e2 points backwards, so the back depth is the +e2 extent.
        rings.append(_make_ring(np.array([0.0, y, cz]), x_axis, back,
                                _split_ellipse_outline(float(half_x), float(rear), float(front))))
    return _Tube("head", _HEAD, rings, np.array(_HEAD_TOP), 0.035)


# ============================================================================================
# The torso box


def _cube_surface() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return interp(np.clip(y, _Y_BOTTOM, _Y_TOP))


def _torso_positions(lattice: np.ndarray) -> np.ndarray:
    """Map box lattice points onto the rounded torso: walls follow the cross-section profile,
    the top and bottom faces become gently domed caps."""
    u = 2.0 * lattice[:, 0] / _NX - 1.0
    w = 2.0 * lattice[:, 2] / _NZ - 1.0
    j = lattice[:, 1]
    y_wall = _Y_BOTTOM + (j / _NY) * (_Y_TOP - _Y_BOTTOM)
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


def _patch_masks(tags: np.ndarray) -> dict[str, np.ndarray]:
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


def _boundary_loop(quads: np.ndarray) -> np.ndarray:
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


# ============================================================================================
# Stitching rings


def _ring_angles(offsets: np.ndarray, theta0: float) -> tuple[np.ndarray, np.ndarray]:
    """Roll a ring so that its first vertex is the one nearest to polar angle theta0 and return
    (roll order, unwrapped increasing angles); raises if the ring does not turn once, anticlockwise."""
    raw = np.arctan2(offsets[:, 1], offsets[:, 0])
    first = int(np.argmin(np.abs(_wrap(raw - theta0))))
    order = np.roll(np.arange(len(raw)), -first)
    raw = raw[order]
    steps = np.mod(np.diff(raw), 2.0 * math.pi)
    total = steps.sum() + np.mod(raw[0] - raw[-1], 2.0 * math.pi)
    if abs(total - 2.0 * math.pi) > 1e-6 or np.any(steps > math.pi):
        raise RuntimeError("a ring does not wind once counter-clockwise around its centre")
    angles = theta0 + _wrap(raw[0] - theta0) + np.concatenate([[0.0], np.cumsum(steps)])
    return order, angles


def _stitch(a_idx: np.ndarray, a_ang: np.ndarray, b_idx: np.ndarray, b_ang: np.ndarray) -> np.ndarray:
    """Triangles joining ring a to the next ring b (both turning the same way, first vertices
    roughly aligned), oriented like the quads (a_i, a_i+1, b_i+1, b_i) of a tube growing a -> b."""
    n, m = len(a_idx), len(b_idx)
    a_next = np.append(a_ang[1:], a_ang[0] + 2.0 * math.pi)
    b_next = np.append(b_ang[1:], b_ang[0] + 2.0 * math.pi)
    tris = np.empty((n + m, 3), dtype=np.int64)
    i = j = 0
    for k in range(n + m):
        if j == m or (i < n and a_next[i] <= b_next[j]):
            tris[k] = (a_idx[i], a_idx[(i + 1) % n], b_idx[j % m])
            i += 1
        else:
            tris[k] = (a_idx[i % n], b_idx[(j + 1) % m], b_idx[j])
            j += 1
    return tris


# ============================================================================================
# Whole surface


@dataclass(frozen=True)
class _Surface:
    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    parts: np.ndarray  # (V,) int8


def _plan(joints: np.ndarray) -> list[_Tube]:
    return [
        _leg_tube(1.0, joints),
        _leg_tube(-1.0, joints),
        _arm_tube(1.0, joints),
        _arm_tube(-1.0, joints),
        _head_tube(),
    ]


def _ring_counts(perimeters: np.ndarray, min_counts: np.ndarray, budget: int) -> np.ndarray:
    """Vertices per ring (about evenly spaced around each ring) adding up to exactly ``budget``.

    The spacing h is bisected so the rings take ``budget`` vertices or just fewer; the few missing
    ones go to the coarsest rings (consecutive rings may differ in count: they are stitched by angle).
    """

    def counts(h: float) -> np.ndarray:
        return np.maximum(min_counts, np.round(perimeters / h)).astype(np.int64)

    lo, hi = 1e-3, 1.0
    if counts(lo).sum() < budget or counts(hi).sum() > budget:
        raise RuntimeError("the planned rings cannot take the vertex budget")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if counts(mid).sum() > budget:
            lo = mid
        else:
            hi = mid
    out = counts(hi)
    missing = budget - int(out.sum())
    coarsest = np.argsort(-perimeters / out, kind="stable")[:missing]
    out[coarsest] += 1
    return out


def _build_surface(joints: np.ndarray) -> _Surface:
    """The canonical closed surface with exactly NUM_VERTICES vertices (see the module docstring)."""
    lattice, quads, tags = _cube_surface()
    torso = _torso_positions(lattice)
    masks = _patch_masks(tags)
    removed = np.zeros(len(quads), dtype=bool)
    loops = {}
    for name, mask in masks.items():
        removed |= mask
        loops[name] = _boundary_loop(quads[mask])
    kept = quads[~removed]
    tubes = _plan(joints)
    rings = [r for t in tubes for r in t.rings]
    budget = NUM_VERTICES - len(np.unique(kept)) - len(tubes)  # one tip vertex per tube
    flat_counts = _ring_counts(np.array([r.perimeter for r in rings]), np.array([r.min_count for r in rings]),
                               budget)
    bounds = np.cumsum([0] + [len(t.rings) for t in tubes])
    counts = [flat_counts[bounds[i]:bounds[i + 1]].tolist() for i in range(len(tubes))]

    positions = [torso]
    parts = [np.full(len(torso), _TORSO, dtype=np.int8)]
    tris = [_split_quads(kept, torso)]
    n_vertices = len(torso)
    for tube, tube_counts in zip(tubes, counts, strict=True):
        loop = loops[tube.name]
        first = tube.rings[0]
        loop_pos = torso[loop]
        rel = loop_pos - loop_pos.mean(axis=0)
        loop_off = np.stack([rel @ first.e1, rel @ first.e2], axis=1)
        theta0 = float(np.arctan2(loop_off[0, 1], loop_off[0, 0]))
        order, prev_ang = _ring_angles(loop_off, theta0)
        if order[0] != 0:
            raise RuntimeError("patch loop misaligned")
        loop_radius, loop_ang = np.linalg.norm(loop_off, axis=1), prev_ang
        loop_center = loop_pos.mean(axis=0)
        prev_idx = loop
        for ring, count in zip(tube.rings, tube_counts, strict=True):
            offsets = ring.outline(count, theta0)
            order, ang = _ring_angles(offsets, theta0)
            offsets = offsets[order]
            center = ring.center
            tangent = np.cross(ring.e1, ring.e2)
            morph = float(_smoothstep(abs(np.dot(center - loop_center, tangent)), 0.0, tube.blend))
            if morph < 1.0:
                # Near the torso the ring keeps the patch's outline and centre, turning into its own.
                radius = np.interp(ang, loop_ang, loop_radius, period=2 * math.pi)
                patch = radius[:, None] * np.stack([np.cos(ang), np.sin(ang)], axis=1)
                offsets = morph * offsets + (1.0 - morph) * patch
                shift = loop_center - center
                center = center + (1.0 - morph) * (shift - np.dot(shift, tangent) * tangent)
            pts = center + offsets[:, :1] * ring.e1 + offsets[:, 1:] * ring.e2
            idx = np.arange(n_vertices, n_vertices + count)
            n_vertices += count
            positions.append(pts)
            parts.append(np.full(count, tube.part, dtype=np.int8))
            tris.append(_stitch(prev_idx, prev_ang, idx, ang))
            prev_idx, prev_ang = idx, ang
        positions.append(tube.tip[None])
        parts.append(np.array([tube.part], dtype=np.int8))
        tip = n_vertices
        n_vertices += 1
        tris.append(np.stack([prev_idx, np.roll(prev_idx, -1), np.full_like(prev_idx, tip)], axis=1))

    vertices = np.concatenate(positions)
    faces = np.concatenate(tris)
    part = np.concatenate(parts)
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    vertices, part, faces = vertices[used], part[used], remap[faces]
    if len(vertices) != NUM_VERTICES or len(faces) != NUM_FACES:
        raise RuntimeError(f"built {len(vertices)} vertices / {len(faces)} faces")
    vertices = _taubin_smooth(vertices, faces, _SMOOTHING_STEPS)
    vertices = _add_features(vertices, part)
    return _Surface(vertices, faces, part)


def _adjacency(faces: np.ndarray, n: int) -> sp.csr_matrix:
    """Symmetric 0/1 vertex adjacency (n, n) of a triangle mesh."""
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return sp.csr_matrix(adj)


def _taubin_smooth(vertices: np.ndarray, faces: np.ndarray, steps: int) -> np.ndarray:
    """Taubin's lambda/mu smoothing: rounds the box's creases and the tube junctions without
    shrinking the body (each shrinking step is followed by an inflating one)."""
    adj = _adjacency(faces, len(vertices))
    mean = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    v = vertices.copy()
    for _ in range(steps):
        v = v + 0.5 * (mean @ v - v)
        v = v - 0.53 * (mean @ v - v)
    return v


def _split_quads(quads: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Two triangles per quad, split along the shorter diagonal."""
    a, b, c, d = quads.T
    ac = np.linalg.norm(pos[a] - pos[c], axis=1)
    bd = np.linalg.norm(pos[b] - pos[d], axis=1)
    use_ac = ac <= bd
    t1 = np.where(use_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    t2 = np.where(use_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.concatenate([t1, t2])


def _bump(values: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.exp(-(((values - center) / width) ** 2))


def _add_features(vertices: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Nose, ears and a hint of a thumb: small smooth bumps that make the front and sides legible."""
    v = vertices.copy()
    x, y, z = v.T
    head = part == _HEAD
    nose = head * _bump(x, 0.0, 0.016) * _bump(y, 0.425, 0.022) * _smoothstep(z, 0.05, 0.1)
    v[:, 2] += 0.017 * nose
    for sign in (1.0, -1.0):
        ear = head * _bump(y, 0.44, 0.022) * _bump(z, -0.005, 0.016) * _smoothstep(sign * x, 0.045, 0.075)
        v[:, 0] += sign * 0.012 * ear
        arm = part == (_LEFT_ARM if sign > 0 else _RIGHT_ARM)
        thumb = arm * _bump(sign * x, 0.71, 0.02) * _bump(y, 0.205, 0.02) * _smoothstep(z, -0.03, 0.0)
        v[:, 2] += 0.018 * thumb
    return v


# ============================================================================================
# Skinning weights


def _bone_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (24, 3) of the body segment each joint's rotation moves."""
    idx = {name: i for i, name in enumerate(JOINT_NAMES)}
    starts = joints.copy()
    ends = np.zeros_like(joints)
    child = {"pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head"}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        child.update({f"{side}_hip": f"{side}_knee", f"{side}_knee": f"{side}_ankle",
                      f"{side}_ankle": f"{side}_foot", f"{side}_collar": f"{side}_shoulder",
                      f"{side}_shoulder": f"{side}_elbow", f"{side}_elbow": f"{side}_wrist",
                      f"{side}_wrist": f"{side}_hand"})
        ends[idx[f"{side}_foot"]] = _mirror(_LEFT_TOE, sign)
        ends[idx[f"{side}_hand"]] = _mirror(_LEFT_FINGERTIP, sign)
    for name, c in child.items():
        ends[idx[name]] = joints[idx[c]]
    ends[idx["head"]] = _HEAD_TOP
    # The pelvis moves the hips and buttocks: its segment reaches down to the crotch.
    starts[idx["pelvis"]] = (0.0, _Y_BOTTOM + 0.04, joints[idx["pelvis"], 2])
    return starts, ends


def _closest_on_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Closest point (N, S, 3) on each segment to each point."""
    d = ends - starts
    t = np.einsum("nsk,sk->ns", points[:, None, :] - starts[None], d) / np.einsum("sk,sk->s", d, d)
    return starts[None] + np.clip(t, 0.0, 1.0)[..., None] * d[None]


# Bones a vertex of each part may be skinned to (a leg never follows the other leg or an arm).
_ALLOWED_BONES: dict[int, tuple[int, ...]] = {
    _TORSO: (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17),
    _LEFT_LEG: (0, 1, 4, 7, 10),
    _RIGHT_LEG: (0, 2, 5, 8, 11),
    _LEFT_ARM: (9, 13, 16, 18, 20, 22),
    _RIGHT_ARM: (9, 14, 17, 19, 21, 23),
    _HEAD: (9, 12, 15),
}


def _skinning_weights(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray,
                      joints: np.ndarray) -> np.ndarray:
    """(V, 24) weights: soft nearest-bone assignment within each part's bones, then diffused over
    the surface so that neighbouring bones blend smoothly around each joint."""
    allowed = np.zeros((len(PART_NAMES), NUM_JOINTS), dtype=bool)
    for part, bones in _ALLOWED_BONES.items():
        allowed[part, list(bones)] = True
    mask = allowed[parts]
    starts, ends = _bone_segments(joints)
    dist = np.linalg.norm(vertices[:, None, :] - _closest_on_segments(vertices, starts, ends), axis=2)
    dist = np.where(mask, dist, np.inf)
    weights = np.exp(-(dist - dist.min(axis=1, keepdims=True)) / 0.012)
    adj = _adjacency(faces, len(vertices))
    mean = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(30):
        weights = 0.5 * weights + 0.5 * (mean @ weights)
        weights = np.where(mask, weights, 0.0)
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


# ============================================================================================
# Shape and pose-corrective directions


def _shape_directions(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 10) shape directions, a few centimetres per unit each:
    0 overall size (scale about the pelvis), 1 girth (out from the bones), 2 shoulder width,
    3 leg length, 4 belly, 5 hip width, 6 head size, 7 arm length, 8 chest depth, 9 torso length."""
    x, y, z = vertices.T
    idx = {name: i for i, name in enumerate(JOINT_NAMES)}
    sd = np.zeros((len(vertices), 3, NUM_BETAS))
    sd[:, :, 0] = 0.03 * (vertices - joints[idx["pelvis"]])

    starts, ends = _bone_segments(joints)
    nearest = np.einsum("vj,vjk->vk", weights, _closest_on_segments(vertices, starts, ends))
    girth = np.array([0.10, 0.09, 0.09, 0.12, 0.07, 0.07, 0.11, 0.04, 0.04, 0.09, 0.02, 0.02,
                      0.05, 0.07, 0.07, 0.02, 0.08, 0.08, 0.07, 0.07, 0.04, 0.04, 0.02, 0.02])
    sd[:, :, 1] = (weights @ girth)[:, None] * (vertices - nearest)

    head_w = weights[:, idx["head"]] + weights[:, idx["neck"]]
    sd[:, 0, 2] = 0.012 * np.tanh(x / 0.06) * _smoothstep(y, 0.0, 0.2) * (1.0 - head_w)
    sd[:, 1, 3] = -0.025 * np.clip((-0.32 - y) / (-0.32 - _SOLE_Y), 0.0, 1.0)

    core_w = weights[:, [idx["pelvis"], idx["spine1"], idx["spine2"], idx["spine3"]]].sum(axis=1)
    belly = np.exp(-(((y + 0.08) / 0.12) ** 2)) * core_w
    sd[:, 2, 4] = 0.02 * belly * _smoothstep(z, -0.02, 0.08)
    sd[:, 0, 4] = 0.006 * belly * np.tanh(x / 0.08)

    sd[:, 0, 5] = 0.012 * np.tanh(x / 0.05) * _smoothstep(-y, 0.15, 0.35)
    sd[:, :, 6] = 0.05 * (weights[:, idx["head"]] + 0.5 * weights[:, idx["neck"]])[:, None] * (
        vertices - joints[idx["head"]])
    arm_bones = [idx[f"{s}_{n}"] for s in ("left", "right") for n in ("shoulder", "elbow", "wrist", "hand")]
    arm_w = weights[:, arm_bones].sum(axis=1)
    sd[:, 0, 7] = 0.02 * np.sign(x) * np.clip((np.abs(x) - 0.17) / 0.7, 0.0, 1.0) * arm_w
    sd[:, 2, 8] = 0.015 * np.exp(-(((y - 0.12) / 0.1) ** 2)) * _smoothstep(z, 0.0, 0.08) * core_w
    sd[:, 1, 9] = 0.02 * _smoothstep(y, -0.25, 0.15)
    return sd


def _pose_directions(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 207) small, smooth, seeded pose correctives: component 9 (j - 1) + k acts around joint j
    (its own and its parent's skinning region), as a random linear field of about a millimetre."""
    out = np.zeros((len(vertices), 3, NUM_POSE_BASIS))
    for j in range(1, NUM_JOINTS):
        rel = (vertices - joints[j]) / 0.06
        falloff = np.exp(-0.5 * np.einsum("vk,vk->v", rel, rel)) * (weights[:, j] + weights[:, PARENTS[j]])
        near = falloff > 1e-3
        basis = np.concatenate([np.ones((int(near.sum()), 1)), rel[near]], axis=1)  # (n, 4)
        coeffs = rng.normal(0.0, 1e-3, size=(4, 3 * 9))
        field = (basis @ coeffs).reshape(-1, 3, 9) * falloff[near, None, None]
        out[near, :, 9 * (j - 1):9 * j] = field
    return out


# ============================================================================================
# Joint regressors


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * k / n)
    azimuth = math.pi * (1.0 + 5.0**0.5) * k
    return np.stack([np.cos(azimuth) * np.sin(polar), np.cos(polar), np.sin(azimuth) * np.sin(polar)], axis=1)


_DIRECTIONS = _fibonacci_sphere(96)


def _regressor_rows(vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(len(targets), V) non-negative rows summing to 1 over a few dozen vertices around each target,
    such that ``rows @ vertices`` reproduces the targets (to well under a millimetre).

    The candidates are the nearest surface points seen from the target in 96 directions (all around
    it, so the target lies in their convex hull), keeping the near ones (at least 16); the weights
    stay as even as
    possible (close to uniform) subject to reproducing the target, solved as one NNLS problem."""
    out = np.zeros((len(targets), len(vertices)))
    cone = math.cos(math.radians(16.0))
    heavy = 1e4  # weight of the "reproduce the target, sum to one" equations
    for row, target in enumerate(targets):
        rel = vertices - target
        dist = np.linalg.norm(rel, axis=1)
        seen = (rel / dist[:, None]) @ _DIRECTIONS.T > cone
        ranked = np.where(seen, dist[:, None], np.inf)
        hit = np.argmin(ranked, axis=0)
        hit = np.unique(hit[np.isfinite(ranked[hit, np.arange(len(_DIRECTIONS))])])
        for reach in (1.6, 2.0, 2.5, 3.2, 4.5, 8.0, np.inf):
            cand = hit[dist[hit] <= reach * dist[hit].min()]
            if len(cand) < min(16, len(hit)):
                continue
            system = np.vstack([heavy * np.vstack([vertices[cand].T, np.ones(len(cand))]), np.eye(len(cand))])
            rhs = np.concatenate([heavy * np.append(target, 1.0), np.full(len(cand), 1.0 / len(cand))])
            w, _ = nnls(system, rhs, maxiter=50 * len(cand))
            w[w < 1e-9] = 0.0
            w /= w.sum()
            if np.linalg.norm(w @ vertices[cand] - target) < 2e-4:
                out[row, cand] = w
                break
        else:
            raise RuntimeError(f"no vertices surround regressor target {row}")
    return out


def _extra_targets(joints: np.ndarray) -> np.ndarray:
    """Points for ``EXTRA_JOINT_NAMES`` (9, 3)."""
    neck = joints[JOINT_NAMES.index("neck")]
    return np.array([
        (-0.085, -0.350, 0.010),
        (0.085, -0.350, 0.010),
        (0.0, neck[1] + 0.04, -0.005),
        (0.0, _HEAD_TOP[1] - 0.02, 0.0),
        (0.0, -0.330, 0.010),
        (0.0, 0.240, -0.010),
        (0.0, 0.020, -0.020),
        (0.0, 0.380, 0.060),
        (0.0, 0.450, 0.010),
    ])


def _h36m_targets(joints: np.ndarray) -> np.ndarray:
    """Points for ``H36M_JOINT_NAMES`` (17, 3): Human3.6M's hips sit a little wider and lower than
    SMPL's, its shoulders a little further in, its head point higher."""
    j = {name: joints[i] for i, name in enumerate(JOINT_NAMES)}
    out = []
    for name in H36M_JOINT_NAMES:
        side, _, rest = name.partition("_")
        if side in ("left", "right") and rest in ("hip", "knee", "ankle", "elbow", "wrist", "shoulder"):
            p = j[name].copy()
            sign = 1.0 if side == "left" else -1.0
            if rest == "hip":
                p += (sign * 0.012, -0.02, 0.0)
            if rest == "shoulder":
                p += (-sign * 0.01, -0.005, 0.0)
            out.append(p)
        else:
            out.append({
                "pelvis": (0.0, -0.30, 0.01),
                "spine": (0.0, 0.0, -0.015),
                "thorax": (0.0, 0.23, -0.01),
                "neck_nose": (0.0, 0.425, 0.095),
                "head": (0.0, 0.50, 0.01),
            }[name])
    return np.array(out, dtype=np.float64)


# ============================================================================================
# Public API


@dataclass(frozen=True, eq=False)
class _Canonical:
    surface: _Surface
    joints: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    j_regressor: np.ndarray
    j_regressor_extra: np.ndarray
    j_regressor_h36m: np.ndarray


@functools.lru_cache(maxsize=1)
def _canonical() -> _Canonical:
    """The seed-independent body (built once per process; its arrays are never handed out)."""
    joints = _design_joints()
    surface = _build_surface(joints)
    weights = _skinning_weights(surface.vertices, surface.faces, surface.parts, joints)
    return _Canonical(
        surface=surface,
        joints=joints,
        weights=weights,
        shapedirs=_shape_directions(surface.vertices, joints, weights),
        j_regressor=_regressor_rows(surface.vertices, joints),
        j_regressor_extra=_regressor_rows(surface.vertices, _extra_targets(joints)),
        j_regressor_h36m=_regressor_rows(surface.vertices, _h36m_targets(joints)),
    )


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def make_body(seed: int = 0) -> StandInBody:
    """A person-like SMPL-sized body in rest pose, deterministic for ``seed`` (bitwise).

    The mesh topology, skinning weights and regressors are the same for every seed; the seed picks
    a slightly different body shape (a small random combination of the shape directions), scales
    each shape direction by 0.85-1.15 and draws the pose-corrective fields.
    """
    base = _canonical()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5AF1B0D7]))
    shapedirs = base.shapedirs * rng.uniform(0.85, 1.15, size=NUM_BETAS)
    betas = np.clip(rng.normal(0.0, 0.35, size=NUM_BETAS), -1.0, 1.0)
    v_template = base.surface.vertices + shapedirs @ betas
    posedirs = _pose_directions(base.surface.vertices, base.joints, base.weights, rng)
    j_regressor = sp.csc_matrix(base.j_regressor)
    j_regressor.sort_indices()
    return StandInBody(
        v_template=_frozen(v_template),
        faces=_frozen(base.surface.faces.astype(np.int64)),
        joints=_frozen(j_regressor @ v_template),
        parents=_frozen(np.array(PARENTS, dtype=np.int64)),
        lbs_weights=_frozen(base.weights),
        shapedirs=_frozen(shapedirs),
        posedirs=_frozen(posedirs),
        j_regressor=j_regressor,
        j_regressor_extra=_frozen(base.j_regressor_extra),
        j_regressor_h36m=_frozen(base.j_regressor_h36m),
        part_labels=_frozen(base.surface.parts),
    )
