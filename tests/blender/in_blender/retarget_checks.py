"""Shared by the in-Blender retargeting tests, tests/blender/in_blender/rigify_check.py and
scripts/bench_retarget.py: target armatures built in Blender from tests/blender/retarget_rigs.py's
rest skeletons, and what Blender evaluates (limb angles against the person's, planted-ankle drift)."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix
from retarget_rigs import build_target

from staf_blender.compat import action_fcurves
from staf_blender.retarget import PRESETS, SMPL_AIM_CHILD

SAMPLED = 12  # frames checked per clip

__all__ = ["SAMPLED", "angle", "contact_runs", "heads", "limb_error", "limbs", "make_armature", "planted_drift"]


def make_armature(name: str, preset: str, *, turned: bool = False, seed: int = 0) -> bpy.types.Object:
    """An armature object with ``build_target(preset)``'s bones; ``turned``: as Blender's FBX importer
    leaves a Mixamo file (object rotated 90 degrees about X, scale 0.01, bones in centimetres)."""
    skeleton = build_target(preset, seed=seed)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    to_data = Matrix.Identity(4)
    if turned:
        to_data = Matrix.Scale(100.0, 4) @ Matrix.Rotation(-math.pi / 2, 4, 'X')
        obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
        obj.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    bones = []
    for i, bone_name in enumerate(skeleton.names):
        bone = data.edit_bones.new(bone_name)
        bone.head = skeleton.heads[i].tolist()
        bone.tail = skeleton.tails[i].tolist()
        rest = Matrix(np.eye(4))
        for r in range(3):
            for c in range(3):
                rest[r][c] = skeleton.matrices[i, r, c]
        rest.translation = skeleton.heads[i].tolist()
        bone.matrix = rest  # the roll (head and length kept)
        bones.append(bone)
    for i, parent in enumerate(skeleton.parents):
        if parent >= 0:
            bones[i].parent = bones[parent]
    data.transform(to_data)
    bpy.ops.object.mode_set(mode='OBJECT')
    return obj


def heads(obj: bpy.types.Object, names: list[str]) -> np.ndarray:
    return np.array([list(obj.matrix_world @ obj.pose.bones[n].head) for n in names])


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def limbs(preset: str) -> list[tuple[str, str]]:
    table = PRESETS[preset]
    return [(joint, child) for joint, child in SMPL_AIM_CHILD.items() if joint in table and child in table]


def contact_runs(walker: bpy.types.Object, side: str, start: int, end: int) -> list[np.ndarray]:
    """Runs (3 frames or more) of frames where the character's heel is on the ground."""
    curve = next(c for c in action_fcurves(walker) if c.data_path == f'pose.bones["{side}_ankle"]["staf_heel_contact"]')
    planted = np.array([f for f in range(start, end + 1) if curve.evaluate(f) > 0.5])
    groups = np.split(planted, np.nonzero(np.diff(planted) > 1)[0] + 1)
    return [g for g in groups if len(g) >= 3]


def limb_error(walker, target, table, limbs, frames) -> np.ndarray:
    """Per sampled frame and limb, the angle (degrees) between the source's and the target's limb."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(int(frame))
        src = heads(walker, [j for limb in limbs for j in limb])
        tgt = heads(target, [table[j] for limb in limbs for j in limb])
        out.append(angle(src[1::2] - src[0::2], tgt[1::2] - tgt[0::2]))
    return np.array(out)


def planted_drift(walker, target, table, start: int, end: int) -> float:
    """The largest move of the target's ankle over the frames where the person's ankle is still
    (at least 4 such runs of 3 frames or more)."""
    runs, worst = 0, 0.0
    for side in ("left", "right"):
        for group in contact_runs(walker, side, start, end):
            spots, source = [], []
            for frame in group:
                bpy.context.scene.frame_set(int(frame))
                spots.append(heads(target, [table[f"{side}_ankle"]])[0])
                source.append(heads(walker, [f"{side}_ankle"])[0])
            still = np.linalg.norm(np.array(source) - np.median(source, axis=0), axis=-1) < 1e-3
            if still.sum() < 3:
                continue
            runs += 1
            spots = np.array(spots)[still]
            worst = max(worst, float(np.linalg.norm(spots - spots[0], axis=-1).max()))
    assert runs >= 4, "the walk should have planted feet"
    return worst
