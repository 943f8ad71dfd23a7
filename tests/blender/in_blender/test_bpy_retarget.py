"""Retargeting in Blender (staf_blender/retarget_scene.py), checked on what Blender evaluates: a
foot-locked walk (the reference bundle's gait.npz: a synthetic walk with STAF-like noise put through the
engine's clean-up) onto armatures built in the real naming
schemes (Mixamo imported as the FBX importer leaves it: object turned and scaled 0.01, bones in
centimetres; UE5 with Euler bones; Rigify deform bones; VRM), with A-pose arms, longer legs and
random rolls. Every mapped limb must point where the source's points within 2 degrees, planted
feet stay within 1 cm, and bad input changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_checks import snapshot
from retarget_checks import SAMPLED, limb_error, limbs, make_armature, planted_drift

from staf_blender.errors import AddonError
from staf_blender.plan import ImportOptions
from staf_blender.retarget import PRESETS
from staf_blender.retarget_scene import RETARGET_PROPERTY, retarget_armature
from staf_blender.rig import RIG_PROPERTY, import_motion_file


@pytest.fixture()
def walker(ref):
    result = import_motion_file(bpy.context, ref / "gait.npz", ImportOptions())
    assert result.root_motion == "world"
    return result.armatures[0]


@pytest.mark.parametrize(("preset", "turned", "modes"), [
    ("mixamo", True, {}),
    ("ue5", False, {"thigh_l": 'XYZ', "lowerarm_r": 'ZXY', "spine_03": 'AXIS_ANGLE'}),
    ("rigify", False, {}),
    ("vrm", False, {}),
])
def test_limbs_follow_and_planted_feet_stay(addon, walker, preset, turned, modes):
    table = PRESETS[preset]
    pairs = limbs(preset)
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
    worst = limb_error(walker, free, table, pairs, frames).max()
    assert worst < 2.0, f"a mapped limb is {worst:.2f} degrees off the source's"
    # With planted feet: the ankles hold within 1 cm over each heel contact, the legs bend a little
    # differently to do it, and every other limb still points where the source's does.
    held = make_armature(f"{preset}_character", preset, turned=turned)
    retarget_armature(bpy.context, walker, held, "auto")
    errors = limb_error(walker, held, table, pairs, frames)
    legs = [i for i, (joint, _) in enumerate(pairs) if joint.endswith(("_hip", "_knee"))]
    assert np.delete(errors, legs, axis=1).max() < 2.0
    assert errors[:, legs].max() < 10.0
    # Where the character's ankle is still (its foot locked), the target's holds within 1 cm.
    drift = planted_drift(walker, held, table, start, end)
    assert drift < 0.01, f"an ankle moved {drift * 100:.2f} cm while the person's foot was planted"


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


def test_a_generated_rigify_rig_moves_its_deform_bones_with_the_person(ref):
    """Keyed through its FK controls (auto mapping picks them), the rig's constraints evaluated and
    corrected for: the DEF- bones, which deform the mesh, point where the person's limbs point, and
    their ankles hold where the person's feet are planted (in a process of its own: rigify_check.py)."""
    import addon_utils

    if not any(m.__name__ == "rigify" for m in addon_utils.modules()):
        pytest.skip("this Blender has no Rigify add-on")
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("rigify_check.py")), str(ref)],
                          capture_output=True, text=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, result.get("error", proc.stderr[-2000:])
    assert result["mapping"] == "rigify_fk" and result["switched"] >= 4 and result["ik_fk"] == 1.0
    assert result["limbs_deg"] < 2.0, f"a deform bone is {result['limbs_deg']:.2f} degrees off the person's limb"
    drift = result["planted_drift_m"]
    assert drift < 0.01, f"a DEF- ankle moved {drift * 100:.2f} cm while the person's foot was planted"
