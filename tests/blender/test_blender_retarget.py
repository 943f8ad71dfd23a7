"""The bpy-free retargeting maths (staf_blender/retarget): presets, automatic and JSON mappings, and
the solve, checked on target rigs built in the real naming schemes with A-pose arms, longer legs,
extra bones and other rolls and tail conventions, against forward kinematics written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from retarget_rigs import SMPL_REST, angle, build_target, fk, motion, smpl_source

from core.skeleton import SMPL_JOINT_NAMES as CORE_NAMES
from core.skeleton import SMPL_PARENTS as CORE_PARENTS
from staf_blender.errors import EXIT_BAD_INPUT, AddonError
from staf_blender.retarget import (
    PRESETS,
    SMPL_AIM_CHILD,
    RestSkeleton,
    auto_mapping,
    bone_matrix,
    check_humanoid,
    load_mapping,
    parse_mapping,
    retarget,
    world_rotations,
)
from staf_blender.retarget.mapping import name_mapping
from staf_blender.retarget.presets import SMPL_JOINT_NAMES, SMPL_PARENTS, preset
from staf_blender.retarget.skeleton import swing_between
from staf_blender.rotations import (
    SMPL_TO_ARMATURE,
    axis_angle_to_matrix,
)


def _run(name: str, frames: int = 120, align: np.ndarray | None = None, **build):
    source = smpl_source()
    target = build_target(name, **build)
    if align is not None:  # turn the whole target (its rest pose) by align
        target = RestSkeleton(target.names, target.parents, target.heads @ align.T, target.tails @ align.T,
                              align @ target.matrices)
    quats, path = motion(frames)
    src = fk(source, dict(zip(SMPL_JOINT_NAMES, np.moveaxis(quats, 1, 0), strict=True)),
              {"pelvis": path @ source.matrices[0]}, frames)
    # The solve takes the source's orientations; check they equal the FK here.
    pose = world_rotations(source, quats)
    np.testing.assert_allclose(pose, src[:, :, :3, :3], atol=1e-9)
    result = retarget(source, target, PRESETS[name], pose, src[:, 0, :3, 3], align=align)
    tgt = fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
              {result.root_bone: result.root_location}, frames)
    return source, target, result, src, tgt


@pytest.mark.parametrize("name", list(PRESETS))
def test_mapped_limbs_point_where_the_source_points(name):
    """Every mapped bone's limb (head -> next mapped joint) matches the source's within 2 degrees at
    sampled frames, frame 0 (the source's T-pose) included, and whole rotations (twist too) carry over."""
    source, target, result, src, tgt = _run(name, odd_tails=name == "ue5", shuffle=name == "vrm")
    table = PRESETS[name]
    frames = np.arange(0, src.shape[0], 7)
    checked = 0
    for joint, bone in table.items():
        s, t = source.index(joint), target.index(bone)
        child = SMPL_AIM_CHILD.get(joint)
        if child in table:
            sc, tc = source.index(child), target.index(table[child])
            worst = angle(tgt[frames, tc, :3, 3] - tgt[frames, t, :3, 3],
                           src[frames, sc, :3, 3] - src[frames, s, :3, 3])
            assert worst.max() < 2.0, f"{name} {bone}: {worst.max():.3f} degrees"
            checked += 1
        turn_t = tgt[frames, t, :3, :3] @ tgt[0, t, :3, :3].T
        turn_s = src[frames, s, :3, :3] @ src[0, s, :3, :3].T
        np.testing.assert_allclose(turn_t, turn_s, atol=1e-6, err_msg=f"{name} {bone}")
    assert checked >= 16
    assert set(result.bones) == set(table.values())  # extras and fingers unkeyed: at rest


def test_skipped_source_joints_still_aim_the_limb():
    """A mapping without spine2 (a shorter spine): spine1's bone points where the source's spine1 ->
    spine3 points, spine2's bend included, and the unmapped target bone stays at rest."""
    source = smpl_source()
    target = build_target("ue5")
    mapping = {joint: bone for joint, bone in PRESETS["ue5"].items() if joint != "spine2"}
    quats, path = motion(90, seed=4)
    pose = world_rotations(source, quats)
    result = retarget(source, target, mapping, pose, path + SMPL_REST["pelvis"])
    assert "spine_03" not in result.bones
    src = fk(source, dict(zip(SMPL_JOINT_NAMES, np.moveaxis(quats, 1, 0), strict=True)), {}, 90)
    tgt = fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
              {result.root_bone: result.root_location}, 90)
    want = src[:, source.index("spine3"), :3, 3] - src[:, source.index("spine1"), :3, 3]
    got = tgt[:, target.index("spine_05"), :3, 3] - tgt[:, target.index("spine_01"), :3, 3]
    assert angle(got, want).max() < 2.0
    bend = angle(src[:, source.index("spine2"), :3, 1], src[:, source.index("spine1"), :3, 1])
    assert bend.max() > 10  # the skipped joint really bends


def test_swing_between_turns_one_direction_onto_another():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    a[0], b[0] = [0.0, 0.0, 1.0], [0.0, 0.0, -2.0]  # opposite
    a[1], b[1] = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]  # the same
    turn = swing_between(a, b)
    np.testing.assert_allclose(np.linalg.det(turn), 1.0, atol=1e-9)
    got = np.einsum("nij,nj->ni", turn, a / np.linalg.norm(a, axis=1, keepdims=True))
    np.testing.assert_allclose(got, b / np.linalg.norm(b, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(turn[1], np.eye(3), atol=1e-12)


def test_a_pose_arms_reach_the_t_pose_at_the_source_rest():
    """At the source's rest pose the A-pose target's arms are horizontal like SMPL's."""
    _, target, _, _, tgt = _run("mixamo")
    arm, fore = target.index("mixamorig:LeftArm"), target.index("mixamorig:LeftForeArm")
    rest_dir = target.heads[fore] - target.heads[arm]
    assert angle(rest_dir, np.array([1.0, 0.0, 0.0])) > 40  # the rig really is in an A-pose
    posed = tgt[0, fore, :3, 3] - tgt[0, arm, :3, 3]
    assert angle(posed, SMPL_REST["left_elbow"] - SMPL_REST["left_shoulder"]) < 0.01


def test_root_translation_scales_with_hip_height():
    source, target, result, src, tgt = _run("ue5")
    pelvis = target.index("pelvis")
    src_height = SMPL_REST["pelvis"][2] - source.floor()
    tgt_height = target.heads[pelvis, 2] - target.floor()
    assert result.scale == pytest.approx(tgt_height / src_height)
    assert result.scale > 1.1  # longer legs
    moved_s = src[:, 0, :3, 3] - SMPL_REST["pelvis"]
    moved_t = tgt[:, pelvis, :3, 3] - target.heads[pelvis]
    np.testing.assert_allclose(moved_t, result.scale * moved_s, atol=1e-9)
    np.testing.assert_allclose(result.root_offset, moved_t, atol=1e-9)


def test_a_target_facing_the_other_way_is_aligned():
    """A target turned 180 degrees about Z, with align = that turn, points its limbs where the turned
    source points."""
    turn = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi]))
    source, target, _, src, tgt = _run("vrm", align=turn)
    table = PRESETS["vrm"]
    for joint in ("left_shoulder", "right_hip", "spine2"):
        child = SMPL_AIM_CHILD[joint]
        s, sc = source.index(joint), source.index(child)
        t, tc = target.index(table[joint]), target.index(table[child])
        want = (src[:, sc, :3, 3] - src[:, s, :3, 3]) @ turn.T
        assert angle(tgt[:, tc, :3, 3] - tgt[:, t, :3, 3], want).max() < 2.0


def test_ten_thousand_frames_in_one_solve():
    source = smpl_source()
    target = build_target("ue5")
    quats, path = motion(10_000)
    pose = world_rotations(source, quats)
    result = retarget(source, target, PRESETS["ue5"], pose, path + SMPL_REST["pelvis"])
    assert result.rotations.shape == (10_000, 22, 4)
    assert np.all(np.sum(result.rotations[1:] * result.rotations[:-1], -1) >= 0)  # continuous


def test_smpl_names_match_core_and_bone_matrix_matches_blender():
    assert SMPL_JOINT_NAMES == CORE_NAMES and SMPL_PARENTS == CORE_PARENTS
    np.testing.assert_allclose(bone_matrix(np.zeros((1, 3)), [[0, 0, 1.0]], [0.0])[0], SMPL_TO_ARMATURE, atol=1e-12)
    rng = np.random.default_rng(3)
    tails = np.concatenate([rng.normal(size=(20, 3)), [[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]])
    mats = bone_matrix(np.zeros((22, 3)), tails, rng.uniform(-3, 3, 22))
    np.testing.assert_allclose(mats @ np.swapaxes(mats, 1, 2), np.tile(np.eye(3), (22, 1, 1)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-9)
    np.testing.assert_allclose(mats[:, :, 1], tails / np.linalg.norm(tails, axis=1, keepdims=True), atol=1e-9)


@pytest.mark.parametrize("name", list(PRESETS))
def test_auto_mapping_finds_every_preset(name):
    target = build_target(name)
    found, mapping = auto_mapping(target.names)
    assert (found, mapping) == (name, PRESETS[name])
    check_humanoid(mapping)


def test_auto_mapping_by_names_alone():
    """Case, namespaces and side spellings do not matter; spine bones go lowest / middle / highest."""
    for name in ("mixamo", "ue5", "vrm", "vroid"):
        assert name_mapping(PRESETS[name].values()) == PRESETS[name]
    renamed = {joint: bone.replace("mixamorig:", "mixamorig7:").upper() for joint, bone in PRESETS["mixamo"].items()}
    assert auto_mapping(renamed.values()) == ("mixamo", renamed)
    generic = ["Hips", "Spine", "Spine1", "Spine2", "Spine3", "Neck", "Head", "thigh.L", "thigh.R", "shin.L",
               "shin.R", "foot.L", "foot.R", "UpperArm_L", "UpperArm_R", "lowerarm_l", "lowerarm_r", "hand_l",
               "hand_r", "Left Finger", "Tail"]
    found, mapping = auto_mapping(generic)
    assert found == "names"
    assert (mapping["spine1"], mapping["spine2"], mapping["spine3"]) == ("Spine", "Spine1", "Spine3")
    assert mapping["left_shoulder"] == "UpperArm_L" and mapping["right_knee"] == "shin.R"
    assert "Tail" not in mapping.values() and "Left Finger" not in mapping.values()
    check_humanoid(mapping)


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and excinfo.value.exit_code == EXIT_BAD_INPUT
    return message


def test_no_humanoid_bones_names_what_is_missing():
    _, mapping = auto_mapping(["Bone", "Bone.001", "Camera_target"])
    with pytest.raises(AddonError) as excinfo:
        check_humanoid(mapping, "Cube_rig")
    message = _one_line(excinfo)
    assert "Cube_rig" in message and "pelvis" in message and "left_wrist" in message


@pytest.mark.parametrize(("text", "words"), [
    ('{"pelvis": "Hips",', ["bad JSON", "line 1"]),
    ('["Hips"]', ["JSON object"]),
    ('{"pelvs": "Hips"}', ["'pelvs'", "not an SMPL joint"]),
    ('{"pelvis": "Hipz"}', ["'pelvis'", "'Hipz'", "not in the armature"]),
    ('{"spine1": "Spine", "spine2": "Spine"}', ["'spine2'", "'Spine'", "'spine1'"]),
    ('{"pelvis": 3}', ["'pelvis'", "name or null"]),
])
def test_bad_mapping_files_give_one_line(text, words):
    with pytest.raises(AddonError) as excinfo:
        parse_mapping(text, ["Hips", "Spine"], source="mapping my.json")
    message = _one_line(excinfo)
    assert message.startswith("mapping my.json")
    for word in words:
        assert word in message


def test_mapping_file_round_trip(tmp_path):
    path = tmp_path / "rig.json"
    path.write_text(json.dumps({"pelvis": "Hips", "spine1": "Spine", "head": None}), encoding="utf-8")
    assert load_mapping(path, ["Hips", "Spine"]) == {"pelvis": "Hips", "spine1": "Spine"}
    with pytest.raises(AddonError) as excinfo:
        load_mapping(tmp_path / "missing.json", ["Hips"])
    assert "missing.json" in _one_line(excinfo)
    with pytest.raises(AddonError) as excinfo:
        preset("maya")
    assert "mixamo" in _one_line(excinfo)
