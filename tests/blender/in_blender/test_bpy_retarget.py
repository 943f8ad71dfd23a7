"""Retargeting in Blender (staf_blender/retarget_scene.py), checked on what Blender evaluates: a
foot-locked walk (the reference bundle's gait.npz: a synthetic walk with STAF-like noise put through the
engine's clean-up) onto armatures built in the real naming
schemes (Mixamo imported as the FBX importer leaves it: object turned and scaled 0.01, bones in
centimetres; UE5 with Euler bones; Rigify deform bones; VRM), with A-pose arms, longer legs and
random rolls. Every mapped limb must point where the source's points within 2 degrees, planted
feet stay within 1 cm, and bad input changes nothing."""

from __future__ import annotations

import json
import math

import bpy
import numpy as np
import pytest
from blender_checks import snapshot
from mathutils import Matrix
from retarget_rigs import build_target

from staf_blender.compat import action_fcurves
from staf_blender.errors import AddonError
from staf_blender.plan import ImportOptions
from staf_blender.retarget import PRESETS, SMPL_AIM_CHILD
from staf_blender.retarget_scene import RETARGET_PROPERTY, retarget_armature
from staf_blender.rig import RIG_PROPERTY, import_motion_file

SAMPLED = 12  # frames checked per clip


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


@pytest.fixture()
def walker(ref):
    result = import_motion_file(bpy.context, ref / "gait.npz", ImportOptions())
    assert result.root_motion == "world"
    return result.armatures[0]


def _heads(obj: bpy.types.Object, names: list[str]) -> np.ndarray:
    return np.array([list(obj.matrix_world @ obj.pose.bones[n].head) for n in names])


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _limbs(preset: str) -> list[tuple[str, str]]:
    table = PRESETS[preset]
    return [(joint, child) for joint, child in SMPL_AIM_CHILD.items() if joint in table and child in table]


def _contact_runs(walker: bpy.types.Object, side: str, start: int, end: int) -> list[np.ndarray]:
    """Runs (3 frames or more) of frames where the character's heel is on the ground."""
    curve = next(c for c in action_fcurves(walker) if c.data_path == f'pose.bones["{side}_ankle"]["staf_heel_contact"]')
    planted = np.array([f for f in range(start, end + 1) if curve.evaluate(f) > 0.5])
    groups = np.split(planted, np.nonzero(np.diff(planted) > 1)[0] + 1)
    return [g for g in groups if len(g) >= 3]


def _limb_error(walker, target, table, limbs, frames) -> np.ndarray:
    """Per sampled frame and limb, the angle (degrees) between the source's and the target's limb."""
    out = []
    for frame in frames:
        bpy.context.scene.frame_set(int(frame))
        src = _heads(walker, [j for limb in limbs for j in limb])
        tgt = _heads(target, [table[j] for limb in limbs for j in limb])
        out.append(_angle(src[1::2] - src[0::2], tgt[1::2] - tgt[0::2]))
    return np.array(out)


@pytest.mark.parametrize(("preset", "turned", "modes"), [
    ("mixamo", True, {}),
    ("ue5", False, {"thigh_l": 'XYZ', "lowerarm_r": 'ZXY', "spine_03": 'AXIS_ANGLE'}),
    ("rigify", False, {}),
    ("vrm", False, {}),
])
def test_limbs_follow_and_planted_feet_stay(addon, walker, preset, turned, modes):
    table = PRESETS[preset]
    limbs = _limbs(preset)
    start, end = (int(x) for x in walker.animation_data.action.frame_range)
    frames = np.linspace(start, end, SAMPLED).round().astype(int)
    # Rotations alone: every mapped limb points where the source's does.
    free = make_armature(f"{preset}_free", preset, turned=turned)
    for bone, mode in modes.items():
        free.pose.bones[bone].rotation_mode = mode
    report = retarget_armature(bpy.context, walker, free, "auto", plant_feet=False)
    assert report.mapping == preset and report.action == free.animation_data.action
    assert free[RIG_PROPERTY] == walker[RIG_PROPERTY] and free[RETARGET_PROPERTY] == walker.name
    for bone, mode in modes.items():  # keyed in the bone's own rotation mode
        assert free.pose.bones[bone].rotation_mode == mode
    worst = _limb_error(walker, free, table, limbs, frames).max()
    assert worst < 2.0, f"a mapped limb is {worst:.2f} degrees off the source's"
    # With planted feet: the ankles hold within 1 cm over each heel contact, the legs bend a little
    # differently to do it, and every other limb still points where the source's does.
    held = make_armature(f"{preset}_character", preset, turned=turned)
    retarget_armature(bpy.context, walker, held, "auto")
    errors = _limb_error(walker, held, table, limbs, frames)
    legs = [i for i, (joint, _) in enumerate(limbs) if joint.endswith(("_hip", "_knee"))]
    assert np.delete(errors, legs, axis=1).max() < 2.0
    assert errors[:, legs].max() < 10.0
    # Where the character's ankle is still (its foot locked), the target's holds within 1 cm.
    drift = _planted_drift(walker, held, table, start, end)
    assert drift < 0.01, f"an ankle moved {drift * 100:.2f} cm while the person's foot was planted"


def _planted_drift(walker, target, table, start: int, end: int) -> float:
    """The largest move of the target's ankle over the frames where the person's ankle is still
    (at least 4 such runs of 3 frames or more)."""
    runs, worst = 0, 0.0
    for side in ("left", "right"):
        for group in _contact_runs(walker, side, start, end):
            spots, source = [], []
            for frame in group:
                bpy.context.scene.frame_set(int(frame))
                spots.append(_heads(target, [table[f"{side}_ankle"]])[0])
                source.append(_heads(walker, [f"{side}_ankle"])[0])
            still = np.linalg.norm(np.array(source) - np.median(source, axis=0), axis=-1) < 1e-3
            if still.sum() < 3:
                continue
            runs += 1
            spots = np.array(spots)[still]
            worst = max(worst, float(np.linalg.norm(spots - spots[0], axis=-1).max()))
    assert runs >= 4, "the walk should have planted feet"
    return worst


def test_previous_action_is_kept_and_rest_bones_between_are_keyed(addon, walker):
    target = make_armature("ue5_character", "ue5")
    old = bpy.data.actions.new("users_own_motion")
    target.animation_data_create().action = old
    target.pose.bones["spine_02"].rotation_quaternion = (0.9, 0.3, 0.0, 0.0)  # a pose the user left
    target.pose.bones["index_01_l"].rotation_quaternion = (0.8, 0.0, 0.6, 0.0)
    report = retarget_armature(bpy.context, walker, target, "ue5")
    assert report.kept_action == "users_own_motion" and old.use_fake_user
    assert target.animation_data.action != old
    bpy.context.scene.frame_set(5)
    assert tuple(target.pose.bones["spine_02"].rotation_quaternion) == pytest.approx((1, 0, 0, 0))
    assert tuple(target.pose.bones["index_01_l"].rotation_quaternion) == pytest.approx((0.8, 0, 0.6, 0))  # a finger


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_bad_targets_and_mappings_change_nothing(addon, walker, tmp_path):
    data = bpy.data.armatures.new("prop")
    prop = bpy.data.objects.new("prop", data)
    bpy.context.scene.collection.objects.link(prop)
    bpy.context.view_layer.objects.active = prop
    bpy.ops.object.mode_set(mode='EDIT')
    for i, name in enumerate(("Bone", "Bone.001", "Lid")):
        bone = data.edit_bones.new(name)
        bone.head, bone.tail = (0, 0, i), (0, 0, i + 1)
    bpy.ops.object.mode_set(mode='OBJECT')
    ue5 = make_armature("ue5_character", "ue5")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"pelvis": "pelvis", ')
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"pelvis": "pelvis", "tail": "spine_01"}))
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"pelvis": "no_such_bone"}))
    cases = [
        (prop, "auto", "has no recognisable humanoid bones for pelvis"),
        (ue5, str(bad_json), "bad JSON at line 1"),
        (ue5, str(unknown), "entry 'tail' is not an SMPL joint"),
        (ue5, str(missing), "bone 'no_such_bone' is not in the armature"),
        (ue5, "maya", "give auto, a preset"),
        (walker, "auto", "is the source character"),
    ]
    before = snapshot()
    for target, mapping, words in cases:
        with pytest.raises(AddonError) as excinfo:
            retarget_armature(bpy.context, walker, target, mapping)
        assert words in _one_line(excinfo)
    with pytest.raises(AddonError) as excinfo:
        retarget_armature(bpy.context, ue5, prop, "auto")
    assert "is not a character made by STAF" in _one_line(excinfo)
    assert snapshot() == before
    assert ue5.animation_data is None and RIG_PROPERTY not in ue5.keys()


def test_panel_operator_retargets_the_active_armature(addon, walker):
    target = make_armature("vrm_character", "vrm")
    for obj in bpy.context.scene.objects:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = target
    settings = bpy.context.scene.staf
    settings.retarget_mapping = 'vrm'
    assert bpy.ops.staf.retarget() == {'FINISHED'}
    assert target.animation_data.action.name == f"{walker.name} on {target.name}"
    settings.retarget_mapping = 'FILE'
    settings.retarget_mapping_file = ""
    with pytest.raises(RuntimeError, match="choose the mapping file"):
        bpy.ops.staf.retarget()


@pytest.fixture()
def rigify_rig():
    """A rig generated by Rigify (Blender's bundled add-on) from its human metarig."""
    import addon_utils

    # Rigify reads its own preferences when it registers, so it must be enabled in them (default_set);
    # they are never saved from here.
    bpy.context.preferences.use_preferences_save = False
    if addon_utils.enable("rigify", default_set=True) is None:
        pytest.skip("this Blender has no Rigify add-on")
    try:
        bpy.ops.object.armature_human_metarig_add()
        bpy.ops.pose.rigify_generate()
        bpy.ops.object.mode_set(mode='OBJECT')
        yield bpy.context.active_object
    finally:
        addon_utils.disable("rigify", default_set=True)


def test_a_generated_rigify_rig_moves_its_deform_bones_with_the_person(addon, walker, rigify_rig):
    """Keyed through its FK controls (auto mapping picks them), the rig's constraints evaluated and
    corrected for: the DEF- bones, which deform the mesh, point where the person's limbs point."""
    report = retarget_armature(bpy.context, walker, rigify_rig, "auto", plant_feet=False)
    assert report.mapping == "rigify_fk" and report.switched_to_fk >= 4
    assert rigify_rig.pose.bones["thigh_parent.L"]["IK_FK"] == 1.0
    start, end = (int(x) for x in walker.animation_data.action.frame_range)
    frames = np.linspace(start, end, SAMPLED).round().astype(int)
    errors = _limb_error(walker, rigify_rig, PRESETS["rigify"], _limbs("rigify"), frames)
    assert errors.max() < 2.0, f"a deform bone is {errors.max():.2f} degrees off the person's limb"
    # Planted feet, worked out on the evaluated DEF- legs: the ankles hold within 1 cm.
    retarget_armature(bpy.context, walker, rigify_rig, "auto")
    drift = _planted_drift(walker, rigify_rig, PRESETS["rigify"], start, end)
    assert drift < 0.01, f"a DEF- ankle moved {drift * 100:.2f} cm while the person's foot was planted"
