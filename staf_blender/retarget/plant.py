"""Planted feet on the target, in numpy: where the source's heel is on the ground, the target's
ankle moves exactly as the source's ankle does (scaled by the hip heights), so it holds still where
the source's foot is locked. Its thigh and shin turn to put it there (analytic two-bone IK in the
leg's own bend plane); the foot keeps its orientation. The correction eases in and out over a few
frames around each contact, so nothing pops.

Retargeting copies rotations, so a target whose proportions differ from the source's (longer legs,
a wider pelvis) slides its feet even where the source's are still; this is what puts them back.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .skeleton import RestSkeleton, swing_between

__all__ = ["EASE_FRAMES", "ankle_goals", "plant_feet", "posed_heads", "two_bone_swings"]

#: Frames over which the correction eases in before a contact and out after it.
EASE_FRAMES = 4
_REACH = 1.0 - 1e-6  # a fully straight leg has no bend plane: stop just short of it


def posed_heads(target: RestSkeleton, wanted: Mapping[int, np.ndarray], root: int, offset: np.ndarray) -> np.ndarray:
    """Armature-space heads (F, B, 3) of the target posed with the orientations ``wanted`` (bones
    not in it at rest relative to their parent) and bone ``root``'s head moved by ``offset`` (F, 3)."""
    frames = offset.shape[0]
    rest, heads = target.matrices, target.heads
    posed: dict[int, np.ndarray] = {}
    out = np.empty((frames, len(target.names), 3))
    for bone in target.order():
        parent = target.parents[bone]
        if parent < 0:
            frame = np.broadcast_to(rest[bone], (frames, 3, 3))
            head = np.broadcast_to(heads[bone], (frames, 3))
        else:
            to_parent = posed[parent] @ rest[parent].T  # rest armature space -> posed, about the parent's head
            frame = to_parent @ rest[bone]
            head = out[:, parent] + to_parent @ (heads[bone] - heads[parent])
        out[:, bone] = head + offset if bone == root else head
        posed[bone] = wanted.get(bone, frame)
    return out


def ankle_goals(free: np.ndarray, planted: np.ndarray, follow: np.ndarray | None = None,
                ease: int = EASE_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Where the ankle should be per frame: (goal (F, 3), weight (F,) in [0, 1]).

    ``free`` (F, 3) is the ankle without planting, ``planted`` (F,) whether the foot is on the
    ground, ``follow`` (F, 3) the source's ankle in the target's space and scale (None: still).
    Over a contact the ankle keeps one offset from ``follow``, the median of its free offsets: it
    moves exactly as the source's does, so where the source's foot is locked it holds still, and
    where the source's heel is still settling it settles the same way. The correction fades in
    over ``ease`` frames before a contact and out over ``ease`` frames after it."""
    frames = free.shape[0]
    planted = np.asarray(planted, bool)
    follow = np.zeros_like(free) if follow is None else np.asarray(follow, np.float64)
    offset = free - follow
    weight = np.zeros(frames)
    wanted = offset.copy()
    f = 0
    while f < frames:
        if not planted[f]:
            f += 1
            continue
        start = f
        while f < frames and planted[f]:
            f += 1
        held = np.median(offset[start:f], axis=0)
        for g in range(max(0, start - ease), min(frames, f + ease)):
            w = 1.0 - max(start - g, g - f + 1, 0) / (ease + 1)
            if w > weight[g] and (start <= g < f or not planted[g]):
                weight[g], wanted[g] = w, held
    return free + weight[:, None] * (wanted - offset), weight


def plant_feet(target: RestSkeleton, legs: Mapping[str, tuple[str, str, str]], wanted: dict[int, np.ndarray],
               root: int, offset: np.ndarray, planted: Mapping[str, np.ndarray], forward: np.ndarray,
               follow: Mapping[str, np.ndarray] | None = None, ease: int = EASE_FRAMES) -> dict[str, float]:
    """Turn each planted leg's thigh and shin in ``wanted`` (armature-space orientations per frame,
    changed in place) so its ankle stays put; ``legs`` {side: (thigh, shin, foot) target bones},
    ``planted`` {side: (F,) bool}, ``forward`` the way the knees bend where a leg is straight,
    ``follow`` {side: (F, 3)} the source's ankle in the target's space (:func:`ankle_goals`).
    Returns per side the largest distance (target units) the ankle was moved."""
    heads = posed_heads(target, wanted, root, offset)
    moved: dict[str, float] = {}
    for side, (thigh, shin, foot) in legs.items():
        if side not in planted:
            continue
        h, k, a = (target.index(bone) for bone in (thigh, shin, foot))
        if h not in wanted or k not in wanted:
            continue
        goal, weight = ankle_goals(heads[:, a], planted[side], (follow or {}).get(side), ease)
        sel = np.nonzero(weight > 0)[0]
        if sel.size == 0:
            moved[side] = 0.0
            continue
        hip, knee, ankle, aim = heads[sel, h], heads[sel, k], heads[sel, a], goal[sel]
        swing_thigh, swing_shin = two_bone_swings(hip, knee, ankle, aim, forward)
        wanted[h] = np.array(np.broadcast_to(wanted[h], (heads.shape[0], 3, 3)))
        wanted[k] = np.array(np.broadcast_to(wanted[k], (heads.shape[0], 3, 3)))
        wanted[h][sel] = swing_thigh @ wanted[h][sel]
        wanted[k][sel] = swing_shin @ swing_thigh @ wanted[k][sel]
        moved[side] = float(np.linalg.norm(aim - ankle, axis=-1).max())
    return moved


def two_bone_swings(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray, forward: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The turns (N, 3, 3) of thigh and shin (armature space, the shin's after the thigh's) that put
    the ankle at ``goal`` (N, 3), or as near as the leg reaches, keeping the knee in the leg's bend
    plane; where the leg is straight the knee goes toward ``forward``."""
    upper = np.linalg.norm(knee - hip, axis=-1)
    lower = np.linalg.norm(ankle - knee, axis=-1)
    to_goal = goal - hip
    u = to_goal / np.maximum(np.linalg.norm(to_goal, axis=-1, keepdims=True), 1e-12)
    reach = np.clip(np.linalg.norm(to_goal, axis=-1), np.abs(upper - lower) + (1.0 - _REACH) * (upper + lower),
                    (upper + lower) * _REACH)
    v = _perpendicular(knee - hip, u)
    straight = np.linalg.norm(v, axis=-1) < 1e-4 * upper
    if straight.any():
        v[straight] = _perpendicular(np.broadcast_to(forward, v[straight].shape), u[straight])
    v /= np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    cos = np.clip((upper**2 + reach**2 - lower**2) / (2 * upper * reach), -1.0, 1.0)
    new_knee = hip + upper[:, None] * (cos[:, None] * u + np.sqrt(1 - cos**2)[:, None] * v)
    swing_thigh = swing_between(knee - hip, new_knee - hip)
    shin_now = np.einsum("fij,fj->fi", swing_thigh, ankle - knee)
    return swing_thigh, swing_between(shin_now, hip + u * reach[:, None] - new_knee)


def _perpendicular(vectors: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The parts of ``vectors`` (N, 3) perpendicular to the unit vectors ``unit`` (N, 3)."""
    return vectors - np.sum(vectors * unit, axis=-1, keepdims=True) * unit
