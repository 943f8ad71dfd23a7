"""Rigs whose deforming bones follow their controls through constraints (a rig Rigify generates):
the controls are keyed, the rig is evaluated over the clip, and each control is turned by how far
its deform bone's limb is off, a few rounds, until the deform bones point where the person's limbs
do. Planted feet are then worked out on the evaluated deform legs (two-bone IK) and corrected the
same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .retarget import SMPL_AIM_CHILD, RestSkeleton, swing_between
from .retarget.plant import ankle_goals, two_bone_swings
from .rotations import nearest_rotation

__all__ = ["MEASURED", "correct", "limb_aims", "planted_aims"]


def _evaluated(context: Any, target: Any, bones: list[str], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Armature-space orientations (F, n, 3, 3) and heads (F, n, 3) of ``bones`` as Blender
    evaluates them (constraints included) at ``frames``."""
    scene = context.scene
    current = scene.frame_current
    turns = np.empty((len(frames), len(bones), 3, 3))
    heads = np.empty((len(frames), len(bones), 3))
    pose = [target.pose.bones[name] for name in bones]
    # Deforming meshes is most of a frame's evaluation and nothing here needs it: off meanwhile.
    muted = [m for obj in scene.objects if obj.type == 'MESH' for m in obj.modifiers if m.show_viewport]
    try:
        for modifier in muted:
            modifier.show_viewport = False
        for f, frame in enumerate(frames):
            scene.frame_set(int(frame))
            matrices = np.array([p.matrix for p in pose])
            turns[f], heads[f] = matrices[:, :3, :3], matrices[:, :3, 3]
    finally:
        for modifier in muted:
            modifier.show_viewport = True
        scene.frame_set(current)
    return nearest_rotation(turns), heads


def limb_aims(skeleton: RestSkeleton, deform: dict[str, str], truth: dict[str, np.ndarray]
          ) -> list[tuple[str, str | None, np.ndarray]]:
    """Per mapped joint: (deform bone, the deform bone its limb aims at or None, the limb's wanted
    armature-space direction per frame (F, 3): toward that bone's head, else along the bone)."""
    out = []
    for joint, bone in deform.items():
        child = SMPL_AIM_CHILD.get(joint)
        aim = deform.get(child) if child else None
        i = skeleton.index(bone)
        if aim is not None:
            rest = skeleton.matrices[i].T @ (skeleton.heads[skeleton.index(aim)] - skeleton.heads[i])
        else:
            rest = np.array([0.0, 1.0, 0.0])
        out.append((bone, aim, truth[bone] @ rest))
    return out


#: Control presets whose rigs move their deforming bones through constraints: the deform preset
#: they must move, matched by evaluating the rig and correcting the controls' keys.
MEASURED = {"rigify_fk": "rigify"}
_ROUNDS = 8  # correction rounds at most
_TOLERANCE_DEG = 0.5


def correct(context: Any, target: Any, aims: list[tuple[str, str | None, np.ndarray]], controls: dict[str, str],
             frames: np.ndarray, rebake: Callable[[dict[str, np.ndarray]], None],
             corrections: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate the rig and turn each deform bone's control (``controls`` {deform bone: control}) by
    the swing its limb is off from ``aims`` (:func:`limb_aims`), a few rounds, starting from
    ``corrections``; the rig is left keyed with the best round's, which are returned."""
    measured = list(dict.fromkeys([bone for bone, _, _ in aims] + [aim for _, aim, _ in aims if aim]))
    index = {bone: i for i, bone in enumerate(measured)}
    best: tuple[float, dict[str, np.ndarray]] = (np.inf, corrections)  # the round with the smallest largest error
    for round_ in range(_ROUNDS + 1):
        turns, heads = _evaluated(context, target, measured, frames)
        swings, worst = {}, 0.0
        for bone, aim, want in aims:
            i = index[bone]
            got = heads[:, index[aim]] - heads[:, i] if aim else turns[:, i, :, 1]
            swings[controls[bone]] = swing = swing_between(got, want)
            worst = max(worst, float(_angle_deg(swing).max()))
        if worst < best[0]:
            best = (worst, dict(corrections))
        if worst < _TOLERANCE_DEG or round_ == _ROUNDS:
            break
        corrections = {control: swing @ corrections.get(control, np.eye(3)) for control, swing in swings.items()}
        rebake(corrections)
    if best[1] is not corrections:
        rebake(best[1])
    return best[1]


def planted_aims(context: Any, target: Any, deform: dict[str, str], aims: list[tuple[str, str | None, np.ndarray]],
                  follow: dict[str, np.ndarray], planted: dict[str, np.ndarray], frames: np.ndarray,
                  forward: np.ndarray) -> list[tuple[str, str | None, np.ndarray]]:
    """``aims`` with the deform legs' thigh and shin turned (two-bone IK on the evaluated rig) so
    each ankle follows the person's where the heel is planted."""
    legs = {side: [deform.get(f"{side}_{part}") for part in ("hip", "knee", "ankle")] for side in planted}
    legs = {side: bones for side, bones in legs.items() if all(bones)}
    if not legs:
        return aims
    bones = [bone for leg in legs.values() for bone in leg]
    _, heads = _evaluated(context, target, bones, frames)
    wants = {bone: want for bone, _, want in aims}
    for n, (side, (thigh, shin, _)) in enumerate(legs.items()):
        hip, knee, ankle = heads[:, 3 * n], heads[:, 3 * n + 1], heads[:, 3 * n + 2]
        goal, weight = ankle_goals(ankle, planted[side], follow[side])
        sel = np.nonzero(weight > 0)[0]
        if sel.size == 0:
            continue
        swing_thigh, swing_shin = two_bone_swings(hip[sel], knee[sel], ankle[sel], goal[sel], forward)
        thigh_dir, shin_dir = knee - hip, ankle - knee
        thigh_dir[sel] = np.einsum("fij,fj->fi", swing_thigh, thigh_dir[sel])
        shin_dir[sel] = np.einsum("fij,fj->fi", swing_shin @ swing_thigh, shin_dir[sel])
        wants[thigh], wants[shin] = thigh_dir, shin_dir
    return [(bone, aim, wants[bone]) for bone, aim, _ in aims]


def _angle_deg(rotations: np.ndarray) -> np.ndarray:
    """The angles (degrees) of rotation matrices (..., 3, 3)."""
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
