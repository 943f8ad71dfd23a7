"""What rigs the stand-in body's surface like SMPL: linear-blend-skinning weights from bone
segments, shape directions, seeded pose-corrective directions, and joint regressor rows for SMPL's
joints, SPIN's extra joints and Human3.6M's joints."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from core.standins.body_geometry import smoothstep
from core.standins.body_joints import HEAD_TOP, LEFT_FINGERTIP, LEFT_TOE, mirror
from core.standins.body_spec import (
    H36M_JOINT_NAMES,
    HEAD,
    JOINT_NAMES,
    LEFT_ARM,
    LEFT_LEG,
    NUM_BETAS,
    NUM_JOINTS,
    NUM_POSE_BASIS,
    PARENTS,
    PART_NAMES,
    RIGHT_ARM,
    RIGHT_LEG,
    TORSO,
)
from core.standins.body_surface import adjacency
from core.standins.body_torso import Y_BOTTOM
from core.standins.body_tubes import SOLE_Y

__all__ = [
    "extra_targets",
    "h36m_targets",
    "pose_directions",
    "regressor_rows",
    "shape_directions",
    "skinning_weights",
]


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
        ends[idx[f"{side}_foot"]] = mirror(LEFT_TOE, sign)
        ends[idx[f"{side}_hand"]] = mirror(LEFT_FINGERTIP, sign)
    for name, c in child.items():
        ends[idx[name]] = joints[idx[c]]
    ends[idx["head"]] = HEAD_TOP
    # The pelvis moves the hips and buttocks: its segment reaches down to the crotch.
    starts[idx["pelvis"]] = (0.0, Y_BOTTOM + 0.04, joints[idx["pelvis"], 2])
    return starts, ends


def _closest_on_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Closest point (N, S, 3) on each segment to each point."""
    d = ends - starts
    t = np.einsum("nsk,sk->ns", points[:, None, :] - starts[None], d) / np.einsum("sk,sk->s", d, d)
    return starts[None] + np.clip(t, 0.0, 1.0)[..., None] * d[None]


# Bones a vertex of each part may be skinned to (a leg never follows the other leg or an arm).
_ALLOWED_BONES: dict[int, tuple[int, ...]] = {
    TORSO: (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17),
    LEFT_LEG: (0, 1, 4, 7, 10),
    RIGHT_LEG: (0, 2, 5, 8, 11),
    LEFT_ARM: (9, 13, 16, 18, 20, 22),
    RIGHT_ARM: (9, 14, 17, 19, 21, 23),
    HEAD: (9, 12, 15),
}


def skinning_weights(vertices: np.ndarray, faces: np.ndarray, parts: np.ndarray,
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
    adj = adjacency(faces, len(vertices))
    mean = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(30):
        weights = 0.5 * weights + 0.5 * (mean @ weights)
        weights = np.where(mask, weights, 0.0)
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


# ============================================================================================
# Shape and pose-corrective directions


def shape_directions(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
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
    sd[:, 0, 2] = 0.012 * np.tanh(x / 0.06) * smoothstep(y, 0.0, 0.2) * (1.0 - head_w)
    sd[:, 1, 3] = -0.025 * np.clip((-0.32 - y) / (-0.32 - SOLE_Y), 0.0, 1.0)

    core_w = weights[:, [idx["pelvis"], idx["spine1"], idx["spine2"], idx["spine3"]]].sum(axis=1)
    belly = np.exp(-(((y + 0.08) / 0.12) ** 2)) * core_w
    sd[:, 2, 4] = 0.02 * belly * smoothstep(z, -0.02, 0.08)
    sd[:, 0, 4] = 0.006 * belly * np.tanh(x / 0.08)

    sd[:, 0, 5] = 0.012 * np.tanh(x / 0.05) * smoothstep(-y, 0.15, 0.35)
    sd[:, :, 6] = 0.05 * (weights[:, idx["head"]] + 0.5 * weights[:, idx["neck"]])[:, None] * (
        vertices - joints[idx["head"]])
    arm_bones = [idx[f"{s}_{n}"] for s in ("left", "right") for n in ("shoulder", "elbow", "wrist", "hand")]
    arm_w = weights[:, arm_bones].sum(axis=1)
    sd[:, 0, 7] = 0.02 * np.sign(x) * np.clip((np.abs(x) - 0.17) / 0.7, 0.0, 1.0) * arm_w
    sd[:, 2, 8] = 0.015 * np.exp(-(((y - 0.12) / 0.1) ** 2)) * smoothstep(z, 0.0, 0.08) * core_w
    sd[:, 1, 9] = 0.02 * smoothstep(y, -0.25, 0.15)
    return sd


def pose_directions(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
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


def regressor_rows(vertices: np.ndarray, targets: np.ndarray) -> np.ndarray:
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


def extra_targets(joints: np.ndarray) -> np.ndarray:
    """Points for ``EXTRA_JOINT_NAMES`` (9, 3)."""
    neck = joints[JOINT_NAMES.index("neck")]
    return np.array([
        (-0.085, -0.350, 0.010),
        (0.085, -0.350, 0.010),
        (0.0, neck[1] + 0.04, -0.005),
        (0.0, HEAD_TOP[1] - 0.02, 0.0),
        (0.0, -0.330, 0.010),
        (0.0, 0.240, -0.010),
        (0.0, 0.020, -0.020),
        (0.0, 0.380, 0.060),
        (0.0, 0.450, 0.010),
    ])


def h36m_targets(joints: np.ndarray) -> np.ndarray:
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
