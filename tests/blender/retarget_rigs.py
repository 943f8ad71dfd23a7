"""Rigs and motion for the retargeting tests, shared by the numpy tests and the in-Blender ones:
the add-on's SMPL rig as a rest skeleton, target rigs in the real naming schemes (A-pose arms,
longer legs and spine, extra bones, random rolls), a smooth random motion, and forward kinematics
written independently of the add-on's."""

from __future__ import annotations

import numpy as np

from staf_blender.retarget import PRESETS, SMPL_AIM_CHILD, RestSkeleton
from staf_blender.retarget.presets import SMPL_JOINT_NAMES, SMPL_PARENTS
from staf_blender.rotations import axis_angle_to_matrix, axis_angle_to_quaternion, quaternion_to_matrix

__all__ = ["ARMS", "EXTRAS", "LEGS", "SMPL_REST", "angle", "build_target", "fk", "motion", "smpl_source",
           "target_joints"]

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


def target_joints() -> dict[str, np.ndarray]:
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


def smpl_source() -> RestSkeleton:
    """The add-on's SMPL rig: every bone along +Z with roll 0 (plan.py)."""
    heads = np.stack([SMPL_REST[name] for name in SMPL_JOINT_NAMES])
    tails = heads + np.array([0.0, 0.0, 0.1])
    return RestSkeleton.from_bones(SMPL_JOINT_NAMES, SMPL_PARENTS, heads, tails)


def build_target(name: str, seed: int = 0, odd_tails: bool = False, shuffle: bool = False) -> RestSkeleton:
    """A target rig for a preset: its mapped bones at the target joints, extras, random rolls."""
    rng = np.random.default_rng(seed)
    table = PRESETS[name]
    joints = target_joints()
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


def motion(frames: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
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


def fk(skeleton: RestSkeleton, local: dict[str, np.ndarray], root: dict[str, np.ndarray], frames: int) -> np.ndarray:
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


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, -1), -1, 1)))
