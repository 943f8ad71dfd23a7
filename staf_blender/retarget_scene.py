"""Retargeting in Blender: a STAF character's motion onto another armature (the user's Mixamo,
UE5, Rigify or VRM character), baked in bulk onto a new action of that armature.

Everything is read and checked first (the source's keys, the target's bones, the mapping, the
humanoid check); only then is anything changed: the target gets a new action (its previous one is
kept, with a fake user so saving never drops it), keys for every mapped bone and for the unmapped
bones between them (at rest, as the solve assumes), the root bone's translation, and the custom
properties that make it a character the exporters take. Fingers and other extra bones are left alone.

The maths is :mod:`staf_blender.retarget` (no bpy); this module reads armatures and writes keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
from mathutils import Quaternion

from .compat import action_fcurves, new_object_action
from .errors import EXIT_BAD_INPUT, AddonError
from .keys import KeyWriter
from .retarget import (
    RestSkeleton,
    choose_mapping,
    preset_mapping,
    retarget,
    world_rotations,
)
from .retarget.presets import CORRECTORS, ROOT_BONES, SMPL_JOINT_NAMES
from .retarget.solve import source_ankles, target_orientations
from .retarget_constrained import MEASURED, correct, limb_aims, planted_aims
from .rig import RIG_PROPERTY, is_staf_rig, remove_datablocks
from .rotations import nearest_rotation

__all__ = ["RETARGET_PROPERTY", "RetargetReport", "SourceMotion", "armature_skeleton", "is_smpl_rig",
           "read_source", "retarget_armature"]

#: Custom property on a retargeted armature: the STAF character its motion came from.
RETARGET_PROPERTY = "staf_retargeted_from"
_HEELS = {"left": "left_ankle", "right": "right_ankle"}
_HEEL_PROPERTY = "staf_heel_contact"


@dataclass(frozen=True, eq=False)
class SourceMotion:
    """A STAF character's keys: frames (F,) scene frames, pose (F, 24, 3, 3) its bones'
    armature-space orientations, root (F, 3) the pelvis head, planted {side: (F,) bool} where the
    heel is on the ground (empty: the character has no contact keys)."""

    skeleton: RestSkeleton
    frames: np.ndarray
    pose: np.ndarray
    root: np.ndarray
    planted: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class RetargetReport:
    """What a retarget did, for the user: the target, its new action, the mapping's name and joints,
    the root translation's scale, the previous action kept (or ""), the limbs switched to FK."""

    target: Any
    action: Any
    mapping: str
    joints: tuple[str, ...]
    scale: float
    kept_action: str = ""
    switched_to_fk: int = 0

    def summary(self) -> str:
        """One line for the status bar or the batch log."""
        text = (f"retargeted onto '{self.target.name}' ({self.mapping} mapping, {len(self.joints)} joints, "
                f"translation x{self.scale:.3g}) as action '{self.action.name}'")
        if self.kept_action:
            text += f"; its previous action '{self.kept_action}' is kept"
        if self.switched_to_fk:
            text += f"; {self.switched_to_fk} IK/FK and follow switches set to FK"
        return text


def is_smpl_rig(obj: Any) -> bool:
    """Whether ``obj`` is a character made by this add-on (not one retargeted onto)."""
    return is_staf_rig(obj) and RETARGET_PROPERTY not in obj.keys()


def armature_skeleton(obj: Any, names: tuple[str, ...] | None = None) -> RestSkeleton:
    """The rest pose of armature object ``obj`` in its armature space (bones in ``names``' order,
    which must be all of its bones; None: the armature's order)."""
    bones = obj.data.bones
    order = [b.name for b in bones] if names is None else list(names)
    if sorted(order) != sorted(b.name for b in bones):
        raise AddonError(f"'{obj.name}' does not have exactly the bones expected", EXIT_BAD_INPUT)
    index = {name: i for i, name in enumerate(order)}
    parents = [index[bones[n].parent.name] if bones[n].parent else -1 for n in order]
    heads = np.array([bones[n].head_local for n in order], np.float64).reshape(-1, 3)
    tails = np.array([bones[n].tail_local for n in order], np.float64).reshape(-1, 3)
    matrices = nearest_rotation(np.array([np.array(bones[n].matrix_local)[:3, :3] for n in order]).reshape(-1, 3, 3))
    return RestSkeleton(tuple(order), tuple(parents), heads, tails, matrices)


def _pose_path(bone: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'


def _sample(curve: Any, frames: np.ndarray) -> np.ndarray:
    """An F-curve's values at ``frames``: its keys where they are exactly those frames, else evaluated."""
    points = curve.keyframe_points
    if len(points) == len(frames):
        co = np.empty(2 * len(points), np.float64)
        points.foreach_get("co", co)
        if np.array_equal(co[0::2], frames):
            return co[1::2]
    return np.array([curve.evaluate(float(f)) for f in frames])


def read_source(obj: Any) -> SourceMotion:
    """The keys of the STAF character ``obj`` (its action's frames, every one sampled)."""
    if not is_smpl_rig(obj):
        raise AddonError(f"'{getattr(obj, 'name', obj)}' is not a character made by STAF: pick one as the source",
                         EXIT_BAD_INPUT)
    names = {b.name for b in obj.data.bones}
    if names != set(SMPL_JOINT_NAMES):
        raise AddonError(f"'{obj.name}' does not have SMPL's 24 bones any more: re-import the character",
                         EXIT_BAD_INPUT)
    curves = {(c.data_path, c.array_index): c for c in action_fcurves(obj)}
    if not curves:
        raise AddonError(f"'{obj.name}' has no animation to retarget", EXIT_BAD_INPUT)
    start, end = obj.animation_data.action.frame_range
    frames = np.arange(int(np.floor(start + 0.5)), int(np.floor(end + 0.5)) + 1, dtype=np.float64)
    local = np.zeros((len(frames), len(SMPL_JOINT_NAMES), 4))
    local[..., 0] = 1.0
    for j, name in enumerate(SMPL_JOINT_NAMES):
        for k in range(4):
            curve = curves.get((_pose_path(name, "rotation_quaternion"), k))
            if curve is not None:
                local[:, j, k] = _sample(curve, frames)
    norm = np.linalg.norm(local, axis=-1, keepdims=True)
    if not np.all(norm > 1e-9):
        raise AddonError(f"'{obj.name}' has a zero rotation key: re-import the character", EXIT_BAD_INPUT)
    skeleton = armature_skeleton(obj, SMPL_JOINT_NAMES)
    location = np.zeros((len(frames), 3))
    for k in range(3):
        curve = curves.get((_pose_path("pelvis", "location"), k))
        if curve is not None:
            location[:, k] = _sample(curve, frames)
    root = skeleton.heads[0] + location @ skeleton.matrices[0].T
    planted = {}
    for side, bone in _HEELS.items():
        curve = curves.get((f'pose.bones["{bone}"]["{_HEEL_PROPERTY}"]', 0))
        if curve is not None:
            planted[side] = _sample(curve, frames) > 0.5
    return SourceMotion(skeleton, frames, world_rotations(skeleton, local / norm), root, planted)


def _check_target(source: Any, target: Any) -> None:
    if target is None or getattr(target, "type", None) != 'ARMATURE':
        raise AddonError("pick an armature to retarget onto (the target)", EXIT_BAD_INPUT)
    if target == source:
        raise AddonError("the target is the source character: pick another armature", EXIT_BAD_INPUT)
    if is_smpl_rig(target):
        raise AddonError(f"'{target.name}' is a STAF character itself: pick your own character's armature",
                         EXIT_BAD_INPUT)
    if target.library is not None or target.data.library is not None or target.override_library is not None:
        raise AddonError(f"'{target.name}' is linked from another file: make it local first (Object > Relations)",
                         EXIT_BAD_INPUT)
    if target.mode == 'EDIT':
        raise AddonError(f"'{target.name}' is in Edit Mode: leave it first", EXIT_BAD_INPUT)


def _align(source: Any, target: Any) -> np.ndarray:
    """Rotation from the source's armature space into the target's, so both face the same way in
    the scene (the objects' scales drop out: the solve scales by hip height)."""
    world = [nearest_rotation(np.array(obj.matrix_world)[:3, :3]) for obj in (source, target)]
    return world[1].T @ world[0]


def _in_mode(pose_bone: Any, quats: np.ndarray) -> tuple[str, np.ndarray]:
    """(data path property, values (F, n)) of quaternions (F, 4) in the pose bone's rotation mode."""
    mode = pose_bone.rotation_mode
    if mode == 'QUATERNION':
        return "rotation_quaternion", quats
    if mode == 'AXIS_ANGLE':
        angle = 2.0 * np.arccos(np.clip(quats[:, 0], -1.0, 1.0))
        axis = quats[:, 1:] / np.maximum(np.linalg.norm(quats[:, 1:], axis=-1, keepdims=True), 1e-12)
        axis[np.linalg.norm(quats[:, 1:], axis=-1) < 1e-12] = (0.0, 1.0, 0.0)
        return "rotation_axis_angle", np.column_stack([angle, axis])
    out = np.empty((quats.shape[0], 3))
    previous = None
    for f, q in enumerate(quats):
        euler = Quaternion(q).to_euler(mode) if previous is None else Quaternion(q).to_euler(mode, previous)
        out[f] = euler
        previous = euler
    return "rotation_euler", out


def _between(target: RestSkeleton, bones: tuple[str, ...]) -> list[str]:
    """Unmapped bones that a mapped bone hangs from (keyed at rest, as the solve assumes them)."""
    mapped = set(bones)
    above: set[str] = set()
    for bone in bones:
        parent = target.parents[target.index(bone)]
        while parent >= 0:
            above.add(target.names[parent])
            parent = target.parents[parent]
    return [name for name in target.names if name in above - mapped]


def _switch_to_fk(target: Any) -> int:
    """Set a Rigify rig's IK/FK switches to FK (the FK controls are what gets keyed) and its head and
    neck to follow the neck and chest (so the controls form one FK chain); returns the switches changed."""
    count = 0
    for pose_bone in target.pose.bones:
        for prop in ("IK_FK", "head_follow", "neck_follow"):
            if prop in pose_bone.keys() and pose_bone[prop] != 1.0:
                pose_bone[prop] = 1.0
                count += 1
    return count


def _bake(keys: KeyWriter, target: Any, result: Any, rest: list[str], frames: int,
          curves: dict[tuple[str, int], Any]) -> None:
    """Key ``result`` (and ``rest`` at rest) onto the action behind ``keys``; the first call makes
    the curves (kept in ``curves``), later calls rewrite their values."""
    channels = [(bone, *_in_mode(target.pose.bones[bone], result.rotations[:, i]))
                for i, bone in enumerate(result.bones)]
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))
    channels += [(bone, *_in_mode(target.pose.bones[bone], identity)) for bone in rest if bone not in result.bones]
    if result.root_bone:
        channels.append((result.root_bone, "location", result.root_location))
    for bone, prop, values in channels:
        for k in range(values.shape[1]):
            path = _pose_path(bone, prop)
            if (path, k) in curves:
                keys.rewrite(curves[path, k], values[:, k])
            else:
                curves[path, k] = keys.curve(path, k, bone, values[:, k])


def retarget_armature(context: Any, source: Any, target: Any, mapping: str = "auto", *,
                      plant_feet: bool = True, action_name: str = "") -> RetargetReport:
    """Retarget STAF character ``source`` onto armature ``target`` with ``mapping`` ("auto", a preset
    name or a .json path); with ``plant_feet`` the target's ankles hold still where the source's
    heels are on the ground. Raises AddonError (one line) with nothing changed on bad input.

    For a rig driven through constraints (Rigify's FK controls, :data:`MEASURED`) the deforming
    bones are what must follow the person: the controls are keyed, the rig evaluated, and the
    controls' keys corrected until the deforming bones are within half a degree (a few rounds)."""
    _check_target(source, target)
    motion = read_source(source)
    names = [b.name for b in target.data.bones]
    mapping_name, table = choose_mapping(mapping, names, target.name)
    deform = preset_mapping(MEASURED[mapping_name], names) if mapping_name in MEASURED else {}
    pairs = [(table[joint], deform[joint]) for joint in table if joint in deform]
    context.view_layer.update()  # matrix_world of objects made since the last update
    skeleton = armature_skeleton(target)
    align = _align(source, target)
    planted = motion.planted if plant_feet else None
    solve = (motion.skeleton, skeleton, table, motion.pose, motion.root, align)
    root_bone = ROOT_BONES.get(mapping_name)
    root_bone = root_bone if root_bone in names else None
    truth = target_orientations(*solve[:2], deform, *solve[3:]) if pairs else {}
    result = retarget(*solve, planted=None if pairs else planted, root_bone=root_bone)
    rest = _between(skeleton, result.bones)
    anim = target.animation_data
    previous = anim.action if anim is not None else None
    previous_slot = getattr(anim, "action_slot", None) if anim is not None else None
    made: list[tuple[Any, Any]] = []
    curves: dict[tuple[str, int], Any] = {}
    frames = len(motion.frames)
    switched = 0
    try:
        channels = new_object_action(target, action_name or f"{source.name} on {target.name}")
        made.append((bpy.data.actions, channels.action))
        keys = KeyWriter(channels, motion.frames.astype(np.float32))
        _bake(keys, target, result, rest, frames, curves)
        if pairs:
            switched = _switch_to_fk(target)
            by_joint = {**table, **{j: b for j, b in CORRECTORS.get(mapping_name, {}).items() if b in names}}
            measured = {j: b for j, b in deform.items() if j in by_joint}
            controls = {bone: by_joint[joint] for joint, bone in measured.items()}
            aims = limb_aims(skeleton, measured, truth)

            def rebake(turns: dict[str, np.ndarray]) -> None:
                _bake(keys, target, retarget(*solve, corrections=turns, root_bone=root_bone), rest, frames, curves)

            corrections = correct(context, target, aims, controls, motion.frames, rebake, {})
            if planted:
                follow = source_ankles(motion.skeleton, skeleton, deform, motion.pose, motion.root, align)
                aims = planted_aims(context, target, deform, aims, follow, planted, motion.frames,
                                     align @ np.array([0.0, -1.0, 0.0]))
                correct(context, target, aims, controls, motion.frames, rebake, corrections)
    except Exception:
        remove_datablocks(made)
        if anim is not None:
            anim.action = previous
            if previous_slot is not None:
                anim.action_slot = previous_slot
        raise
    kept = ""
    if previous is not None:
        if not previous.use_fake_user:
            previous.use_fake_user = True
        kept = previous.name
    target[RIG_PROPERTY] = int(source[RIG_PROPERTY])
    target[RETARGET_PROPERTY] = source.name
    target["staf_mapping"] = mapping_name
    for prop in ("staf_fps", "staf_source"):
        if prop in source.keys():
            target[prop] = source[prop]
    return RetargetReport(target, channels.action, mapping_name, tuple(table), result.scale, kept, switched)
