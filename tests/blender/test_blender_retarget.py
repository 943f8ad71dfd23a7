"""The bpy-free retargeting maths (staf_blender/retarget): presets, automatic and JSON mappings, and
the solve, checked on target rigs built in the real naming schemes with A-pose arms, longer legs,
extra bones and other rolls and tail conventions, against forward kinematics written here."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

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
from staf_blender.retarget.solve import swing_between
from staf_blender.rotations import (
    SMPL_TO_ARMATURE,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    quaternion_to_matrix,
)

# A T-pose in armature space (Z up, facing -Y, +X the body's left), roughly SMPL's proportions.
_LEFT = {"hip": (0.06, 0.0, 0.85), "knee": (0.10, 0.0, 0.47), "ankle": (0.09, 0.03, 0.08),
         "foot": (0.11, -0.10, 0.02), "collar": (0.07, 0.0, 1.36), "shoulder": (0.17, 0.01, 1.39),
         "elbow": (0.43, 0.02, 1.38), "wrist": (0.68, 0.02, 1.38), "hand": (0.76, 0.01, 1.37)}
_CENTRE = {"pelvis": (0.0, 0.0, 0.93), "spine1": (0.0, 0.01, 1.04), "spine2": (0.0, 0.0, 1.17),
           "spine3": (0.0, 0.0, 1.22), "neck": (0.0, 0.01, 1.44), "head": (0.0, -0.03, 1.51)}
SMPL_REST = {**{k: np.array(v) for k, v in _CENTRE.items()},
             **{f"{side}_{k}": np.array(v) * (1 if side == "left" else np.array([-1, 1, 1]))
                for k, v in _LEFT.items() for side in ("left", "right")}}
LEGS = ("hip", "knee", "ankle", "foot")
ARMS = ("shoulder", "elbow", "wrist", "hand")

# Per preset: bones put between two mapped bones, leaves below one, and a root above the hips.
EXTRAS = {
    "mixamo": ([], [("mixamorig:HeadTop_End", "mixamorig:Head"), ("mixamorig:LeftHandIndex1", "mixamorig:LeftHand"),
                    ("mixamorig:LeftToe_End", "mixamorig:LeftToeBase")], None),
    "ue5": ([("spine_02", "spine_01", "spine_03"), ("spine_04", "spine_03", "spine_05"),
             ("neck_02", "neck_01", "head")], [("index_01_l", "hand_l"), ("thumb_01_r", "hand_r")], "root"),
    "rigify": ([("DEF-spine.005", "DEF-spine.004", "DEF-spine.006"), ("DEF-thigh.L.001", "DEF-thigh.L", "DEF-shin.L"),
                ("DEF-upper_arm.R.001", "DEF-upper_arm.R", "DEF-forearm.R"),
                ("DEF-forearm.L.001", "DEF-forearm.L", "DEF-hand.L")], [("DEF-pelvis.L", "DEF-spine")], "root"),
    "rigify_fk": ([], [("tweak_spine", "torso")], "root"),
    "vrm": ([], [("leftThumbProximal", "leftHand")], "Root"),
    "vroid": ([], [("J_Sec_Hair1_01", "J_Bip_C_Head")], None),
}


def _target_joints() -> dict[str, np.ndarray]:
    """The target's joint positions: legs 1.3 times longer, A-pose arms (45 degrees down), a longer spine."""
    out = {}
    for joint, pos in SMPL_REST.items():
        pos = pos.copy()
        side, _, part = joint.partition("_")
        if part in LEGS:
            hip = SMPL_REST[f"{side}_hip"]
            pos = hip + 1.3 * (pos - hip)
        elif part in ARMS:
            shoulder = SMPL_REST[f"{side}_shoulder"]
            turn = axis_angle_to_matrix(np.array([0.0, (1 if side == "left" else -1) * np.pi / 4, 0.0]))
            pos = shoulder + turn @ (pos - shoulder)
        if part not in LEGS and joint != "pelvis":
            pos[2] = 0.93 + 1.1 * (pos[2] - 0.93)
        out[joint] = pos
    lift = 0.02 - min(pos[2] for pos in out.values())  # stand the longer legs on the floor
    return {joint: pos + np.array([0.0, 0.0, lift]) for joint, pos in out.items()}


def _smpl_source() -> RestSkeleton:
    """The add-on's SMPL rig: every bone along +Z with roll 0 (plan.py)."""
    heads = np.stack([SMPL_REST[name] for name in SMPL_JOINT_NAMES])
    tails = heads + np.array([0.0, 0.0, 0.1])
    return RestSkeleton.from_bones(SMPL_JOINT_NAMES, SMPL_PARENTS, heads, tails)


def _build_target(name: str, seed: int = 0, odd_tails: bool = False, shuffle: bool = False) -> RestSkeleton:
    """A target rig for a preset: its mapped bones at the target joints, extras, random rolls."""
    rng = np.random.default_rng(seed)
    table = PRESETS[name]
    joints = _target_joints()
    bones: dict[str, list] = {}  # name -> [parent name, head, tail]
    for joint in SMPL_JOINT_NAMES:
        if joint not in table:
            continue
        parent = SMPL_PARENTS[SMPL_JOINT_NAMES.index(joint)]
        while parent >= 0 and SMPL_JOINT_NAMES[parent] not in table:
            parent = SMPL_PARENTS[parent]
        head = joints[joint]
        child = SMPL_AIM_CHILD.get(joint)
        if child in table:
            tail = joints[child]
        else:
            up = joints[SMPL_JOINT_NAMES[max(parent, 0)]]
            tail = head + 0.1 * (head - up) / max(np.linalg.norm(head - up), 1e-9)
        if odd_tails:
            direction = rng.normal(size=3)
            tail = head + 0.1 * direction / np.linalg.norm(direction)
        bones[table[joint]] = [table[SMPL_JOINT_NAMES[parent]] if parent >= 0 else None, head, tail]
    inserts, leaves, root = EXTRAS[name]
    for extra, upper, lower in inserts:
        head = 0.5 * (bones[upper][1] + bones[lower][1])
        bones[extra] = [upper, head, bones[lower][1]]
        bones[lower][0] = extra
    for extra, parent in leaves:
        bones[extra] = [parent, bones[parent][2], bones[parent][2] + np.array([0.0, 0.0, 0.05])]
    if root:
        bones[table["pelvis"]][0] = root
        bones[root] = [None, np.zeros(3), np.array([0.0, -0.2, 0.0])]
    names = list(bones)
    if shuffle:
        rng.shuffle(names)
    parents = [names.index(bones[n][0]) if bones[n][0] else -1 for n in names]
    heads = np.stack([bones[n][1] for n in names])
    tails = np.stack([bones[n][2] for n in names])
    return RestSkeleton.from_bones(names, parents, heads, tails, rng.uniform(-np.pi, np.pi, len(names)))


def _motion(frames: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random local rotations (F, 24, 4), frame 0 the rest pose, and a root path (F, 3)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    freq = rng.uniform(0.2, 1.5, (2, 1, 24, 3))
    phase = rng.uniform(0, 2 * np.pi, (2, 1, 24, 3))
    aa = 0.45 * (np.sin(2 * np.pi * freq[0] * t + phase[0]) - np.sin(phase[0]))
    aa += 0.35 * (np.sin(2 * np.pi * freq[1] * t + phase[1]) - np.sin(phase[1]))
    s = t[:, 0, 0]
    path = np.stack([0.5 * np.sin(0.7 * s) + 0.4 * s, 0.5 * np.sin(0.3 * s) + 0.1 * s, 0.05 * np.sin(3 * s)], -1)
    return axis_angle_to_quaternion(aa), path


def _fk(skeleton: RestSkeleton, local: dict[str, np.ndarray], root: dict[str, np.ndarray], frames: int) -> np.ndarray:
    """Posed 4x4 bone matrices (F, B, 4, 4): M = M_parent @ inv(Rest_parent) @ Rest @ Basis."""
    rest = np.tile(np.eye(4), (len(skeleton.names), 1, 1))
    rest[:, :3, :3] = skeleton.matrices
    rest[:, :3, 3] = skeleton.heads
    out = np.zeros((frames, len(skeleton.names), 4, 4))
    todo = list(range(len(skeleton.names)))
    while todo:
        for bone in list(todo):
            parent = skeleton.parents[bone]
            if parent >= 0 and parent in todo:
                continue
            basis = np.tile(np.eye(4), (frames, 1, 1))
            name = skeleton.names[bone]
            if name in local:
                basis[:, :3, :3] = quaternion_to_matrix(local[name])
            if name in root:
                basis[:, :3, 3] = root[name]
            above = rest[bone] if parent < 0 else out[:, parent] @ np.linalg.inv(rest[parent]) @ rest[bone]
            out[:, bone] = above @ basis
            todo.remove(bone)
    return out


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))


def _run(name: str, frames: int = 120, align: np.ndarray | None = None, **build):
    source = _smpl_source()
    target = _build_target(name, **build)
    if align is not None:  # turn the whole target (its rest pose) by align
        target = RestSkeleton(target.names, target.parents, target.heads @ align.T, target.tails @ align.T,
                              align @ target.matrices)
    quats, path = _motion(frames)
    src = _fk(source, dict(zip(SMPL_JOINT_NAMES, np.moveaxis(quats, 1, 0), strict=True)),
              {"pelvis": path @ source.matrices[0]}, frames)
    # The solve takes the source's orientations; check they equal the FK here.
    pose = world_rotations(source, quats)
    np.testing.assert_allclose(pose, src[:, :, :3, :3], atol=1e-9)
    result = retarget(source, target, PRESETS[name], pose, src[:, 0, :3, 3], align=align)
    tgt = _fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
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
            worst = _angle(tgt[frames, tc, :3, 3] - tgt[frames, t, :3, 3],
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
    source = _smpl_source()
    target = _build_target("ue5")
    mapping = {joint: bone for joint, bone in PRESETS["ue5"].items() if joint != "spine2"}
    quats, path = _motion(90, seed=4)
    pose = world_rotations(source, quats)
    result = retarget(source, target, mapping, pose, path + SMPL_REST["pelvis"])
    assert "spine_03" not in result.bones
    src = _fk(source, dict(zip(SMPL_JOINT_NAMES, np.moveaxis(quats, 1, 0), strict=True)), {}, 90)
    tgt = _fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
              {result.root_bone: result.root_location}, 90)
    want = src[:, source.index("spine3"), :3, 3] - src[:, source.index("spine1"), :3, 3]
    got = tgt[:, target.index("spine_05"), :3, 3] - tgt[:, target.index("spine_01"), :3, 3]
    assert _angle(got, want).max() < 2.0
    bend = _angle(src[:, source.index("spine2"), :3, 1], src[:, source.index("spine1"), :3, 1])
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
    assert _angle(rest_dir, np.array([1.0, 0.0, 0.0])) > 40  # the rig really is in an A-pose
    posed = tgt[0, fore, :3, 3] - tgt[0, arm, :3, 3]
    assert _angle(posed, SMPL_REST["left_elbow"] - SMPL_REST["left_shoulder"]) < 0.01


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
        assert _angle(tgt[:, tc, :3, 3] - tgt[:, t, :3, 3], want).max() < 2.0


def test_ten_thousand_frames_are_fast():
    source = _smpl_source()
    target = _build_target("ue5")
    quats, path = _motion(10_000)
    pose = world_rotations(source, quats)
    start = time.perf_counter()
    result = retarget(source, target, PRESETS["ue5"], pose, path + SMPL_REST["pelvis"])
    assert time.perf_counter() - start < 5.0
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
    target = _build_target(name)
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
