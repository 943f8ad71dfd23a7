"""Mapping presets: SMPL's 24 joint names (the add-on's bone names) -> a target rig's bone names.

SMPL has three spine joints. Where a target has more spine bones, spine1/spine2/spine3 go to the
lowest, a middle and the highest spine bone below the neck, and the others stay at rest:

- UE5 Mannequin: spine_01, spine_03, spine_05 (spine_02, spine_04 at rest); neck_01 (neck_02 at rest).
- Rigify deform bones: DEF-spine is the hips; DEF-spine.001, .002, .003 the spine; DEF-spine.004 the
  neck (DEF-spine.005 at rest); DEF-spine.006 the head. The limbs' second segments (DEF-thigh.L.001,
  DEF-upper_arm.L.001, ...) stay at rest: their first segment carries the whole limb.
- Rigify FK controls (``rigify_fk``): torso (the root control, which also carries the translation),
  spine_fk.001 .. .003, neck, head, and the limbs' ``*_fk`` controls. Keying the FK controls needs
  the rig's arms and legs switched to FK (IK_FK = 1.0); the deform bones follow them through
  constraints, which the add-on evaluates and corrects for.

SMPL's ``left_hand``/``right_hand`` (the knuckles) have no counterpart in these rigs (their fingers
start there) and stay unmapped; fingers and other extra bones are left alone.
"""

from __future__ import annotations

from ..errors import EXIT_BAD_INPUT, AddonError

#: SMPL's joints in order (core/skeleton.py's names; the add-on's bones carry them). Copied, not
#: imported: the add-on ships without the engine's ``core`` package.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
)
#: Each joint's parent (-1 for the pelvis), as in core/skeleton.py.
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20,
                                 21)

__all__ = ["CORRECTORS", "PRESETS", "ROOT_BONES", "SMPL_AIM_CHILD", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "preset"]

#: The joint whose head a joint's limb points at (its child along the body's chains).
SMPL_AIM_CHILD: dict[str, str] = {
    "pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
    **{f"{s}_{a}": f"{s}_{b}" for s in ("left", "right") for a, b in (
        ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("collar", "shoulder"),
        ("shoulder", "elbow"), ("elbow", "wrist"), ("wrist", "hand"))},
}

# SMPL limb joint -> (Mixamo, UE5, Rigify DEF, Rigify FK, VRM, VRoid) with {S}/{s} the side.
_LIMBS: dict[str, tuple[str, str, str, str, str, str]] = {
    "hip": ("{S}UpLeg", "thigh_{s}", "DEF-thigh.{s}", "thigh_fk.{s}", "{w}UpperLeg", "J_Bip_{s}_UpperLeg"),
    "knee": ("{S}Leg", "calf_{s}", "DEF-shin.{s}", "shin_fk.{s}", "{w}LowerLeg", "J_Bip_{s}_LowerLeg"),
    "ankle": ("{S}Foot", "foot_{s}", "DEF-foot.{s}", "foot_fk.{s}", "{w}Foot", "J_Bip_{s}_Foot"),
    "foot": ("{S}ToeBase", "ball_{s}", "DEF-toe.{s}", "toe_fk.{s}", "{w}Toes", "J_Bip_{s}_ToeBase"),
    "collar": ("{S}Shoulder", "clavicle_{s}", "DEF-shoulder.{s}", "shoulder.{s}", "{w}Shoulder",
               "J_Bip_{s}_Shoulder"),
    "shoulder": ("{S}Arm", "upperarm_{s}", "DEF-upper_arm.{s}", "upper_arm_fk.{s}", "{w}UpperArm",
                 "J_Bip_{s}_UpperArm"),
    "elbow": ("{S}ForeArm", "lowerarm_{s}", "DEF-forearm.{s}", "forearm_fk.{s}", "{w}LowerArm",
              "J_Bip_{s}_LowerArm"),
    "wrist": ("{S}Hand", "hand_{s}", "DEF-hand.{s}", "hand_fk.{s}", "{w}Hand", "J_Bip_{s}_Hand"),
}
# Torso joints in the same column order.
_TORSO: dict[str, tuple[str, str, str, str, str, str]] = {
    "pelvis": ("Hips", "pelvis", "DEF-spine", "torso", "hips", "J_Bip_C_Hips"),
    "spine1": ("Spine", "spine_01", "DEF-spine.001", "spine_fk.001", "spine", "J_Bip_C_Spine"),
    "spine2": ("Spine1", "spine_03", "DEF-spine.002", "spine_fk.002", "chest", "J_Bip_C_Chest"),
    "spine3": ("Spine2", "spine_05", "DEF-spine.003", "spine_fk.003", "upperChest", "J_Bip_C_UpperChest"),
    "neck": ("Neck", "neck_01", "DEF-spine.004", "neck", "neck", "J_Bip_C_Neck"),
    "head": ("Head", "head", "DEF-spine.006", "head", "head", "J_Bip_C_Head"),
}
_COLUMNS = ("mixamo", "ue5", "rigify", "rigify_fk", "vrm", "vroid")
# Side spellings per column: Mixamo "Left", UE5 "l", Rigify "L", VRM "left", VRoid "L".
_SIDES = {"left": {"S": "Left", "s": "l", "w": "left"}, "right": {"S": "Right", "s": "r", "w": "right"}}
_UPPER_SIDE = ("rigify", "rigify_fk", "vroid")


def _build(column: int) -> dict[str, str]:
    """One preset: every mapped SMPL joint -> the target bone name."""
    name = _COLUMNS[column]
    out: dict[str, str] = {}
    for joint in SMPL_JOINT_NAMES:
        if joint in _TORSO:
            out[joint] = _TORSO[joint][column]
            continue
        side, _, part = joint.partition("_")
        if part not in _LIMBS:
            continue  # left_hand / right_hand: the fingers' start
        sides = dict(_SIDES[side])
        if name in _UPPER_SIDE:
            sides["s"] = sides["s"].upper()
        out[joint] = _LIMBS[part][column].format(**sides)
    if name == "mixamo":
        out = {joint: f"mixamorig:{bone}" for joint, bone in out.items()}
    return out


#: Presets whose translation goes on a bone above the pelvis's (which then only turns).
ROOT_BONES: dict[str, str] = {}
#: Per preset, the control that corrects a joint's deform bone where it is not the joint's own
#: (Rigify's lowest spine segment hangs from spine_fk.001 and turns with spine_fk, not the torso).
CORRECTORS: dict[str, dict[str, str]] = {"rigify_fk": {"pelvis": "spine_fk"}}

#: Preset name -> {SMPL joint: target bone}.
PRESETS: dict[str, dict[str, str]] = {name: _build(i) for i, name in enumerate(_COLUMNS)}


def preset(name: str) -> dict[str, str]:
    """A copy of the preset ``name`` (raises AddonError naming the known presets)."""
    if name not in PRESETS:
        raise AddonError(f"unknown mapping preset '{name}': use one of {', '.join(PRESETS)} or a .json file",
                         EXIT_BAD_INPUT)
    return dict(PRESETS[name])
