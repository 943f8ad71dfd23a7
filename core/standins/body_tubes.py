"""The limbs and head of the stand-in body as planned rings: each leg, arm and the neck-and-head is
a tube of elliptical cross-sections grown along its joint chain and closed by a tip point.

Holds the hand-designed cross-section profiles (metres, left side; the right side mirrors them) and
the plans built from them; ``core.standins.body_surface`` turns the plans into vertices and faces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from core.standins.body_geometry import Chain, param_for_angle, superellipse, unit
from core.standins.body_joints import HEAD_TOP, LEFT_FINGERTIP, mirror
from core.standins.body_spec import HEAD, JOINT_NAMES, LEFT_ARM, LEFT_LEG, RIGHT_ARM, RIGHT_LEG

__all__ = [
    "SOLE_Y",
    "Tube",
    "arm_tube",
    "head_tube",
    "leg_tube",
]


# ============================================================================================
# Design: cross-section profiles of the neck and head, the legs and feet, and the arms (metres).
# Left-side values are given; the right side mirrors them (x -> -x).

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
SOLE_Y = -1.168

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
class Tube:
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
        t = param_for_angle(theta0, a, b) + 2.0 * math.pi * np.arange(count) / count
        return superellipse(t, a, b, p)

    return outline


def _split_ellipse_outline(half_x: float, depth_pos: float, depth_neg: float) -> Callable[[int, float], np.ndarray]:
    """Ellipse whose extent along +e2 (depth_pos) and -e2 (depth_neg) differ (front/back asymmetry)."""

    def outline(count: int, theta0: float) -> np.ndarray:
        depth0 = depth_pos if math.sin(theta0) >= 0 else depth_neg
        t = param_for_angle(theta0, half_x, depth0) + 2.0 * math.pi * np.arange(count) / count
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
        e1 = unit(e1 - np.dot(e1, t) * t)
        e1s.append(e1)
        e2s.append(np.cross(t, e1))
    return np.array(e1s), np.array(e2s)


def leg_tube(sign: float, joints: np.ndarray) -> Tube:
    """Rings of one leg (sign +1: left) from below the torso to the sole."""
    hip, knee, ankle = (joints[JOINT_NAMES.index(f"{'left' if sign > 0 else 'right'}_{n}")] for n in
                        ("hip", "knee", "ankle"))
    chain = Chain([hip, knee, ankle])
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
            t = param_for_angle(theta0, 0.04, 0.08) + 2.0 * math.pi * np.arange(count) / count
            c, s = np.cos(t), np.sin(t)
            ankle_pts = np.stack([0.036 * c, 0.044 * s], axis=1)
            foot_pts = np.stack([(0.038 + 0.008 * s) * c, 0.125 * s], axis=1)
            return scale * ((1.0 - blend) * ankle_pts + blend * foot_pts)

        center = np.array([center2[0], y, center2[1]])
        rings.append(_make_ring(center, x_axis, z_axis, outline))
    tip = np.array([foot_c[0], SOLE_Y, foot_c[1]])
    return Tube("left_leg" if sign > 0 else "right_leg", LEFT_LEG if sign > 0 else RIGHT_LEG, rings, tip, 0.09)


def arm_tube(sign: float, joints: np.ndarray) -> Tube:
    """Rings of one arm (sign +1: left) from the shoulder to the fingertips."""
    side = "left" if sign > 0 else "right"
    pts = [joints[JOINT_NAMES.index(f"{side}_{n}")] for n in ("shoulder", "elbow", "wrist", "hand")]
    chain = Chain([*pts, mirror(LEFT_FINGERTIP, sign)])
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
    return Tube(f"{side}_arm", LEFT_ARM if sign > 0 else RIGHT_ARM, rings, tip, 0.06)


def head_tube() -> Tube:
    """Horizontal rings of the neck and head, up to the crown."""
    x_axis, back = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])  # e2 = +y x +x = -z
    rings = []
    for y, half_x, front, rear, cz in _HEAD_PROFILE:
        # e2 points backwards, so the back depth is the +e2 extent.
        rings.append(_make_ring(np.array([0.0, y, cz]), x_axis, back,
                                _split_ellipse_outline(float(half_x), float(rear), float(front))))
    return Tube("head", HEAD, rings, np.array(HEAD_TOP), 0.035)
