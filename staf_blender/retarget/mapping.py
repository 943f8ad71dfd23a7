"""Which target bone each SMPL joint drives: automatic mapping by names, a user's JSON mapping, and
the check that a target is humanoid enough to retarget onto.

A mapping is a dict {SMPL joint name: target bone name}; joints left out stay unmapped (their
target bones, and every bone no joint maps to, keep their rest pose).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import EXIT_BAD_INPUT, AddonError
from .presets import PRESETS, SMPL_JOINT_NAMES, preset

__all__ = ["REQUIRED_JOINTS", "auto_mapping", "check_humanoid", "choose_mapping", "load_mapping", "name_mapping",
           "parse_mapping", "preset_mapping"]

#: Joints a target must have mapped to be retargeted onto (a body with two arms and two legs).
REQUIRED_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "head",
)

# Name prefixes a rig puts before its bone names (Mixamo's namespaces, Rigify's deform layer).
_PREFIX = re.compile(r"^(?:.*[:|])?(?:def[-_.])?", re.IGNORECASE)
_VROID = re.compile(r"^j_bip_([lrc])_", re.IGNORECASE)
_SIDE_SUFFIX = re.compile(r"[._\- ]([lr])$")
_SIDE_PREFIX = re.compile(r"^(left|right|l(?=[._\- ])|r(?=[._\- ]))[._\- ]?")
_SIDE_WORD = re.compile(r"(left|right)")
# Part names (separators removed) -> SMPL joint part; side joints get "left_"/"right_" put before.
_LIMB_WORDS: dict[str, str] = {
    "upleg": "hip", "thigh": "hip", "upperleg": "hip", "hip": "hip",
    "leg": "knee", "calf": "knee", "shin": "knee", "lowerleg": "knee", "knee": "knee",
    "foot": "ankle", "ankle": "ankle",
    "toebase": "foot", "toe": "foot", "toes": "foot", "ball": "foot",
    "shoulder": "collar", "clavicle": "collar", "collar": "collar",
    "arm": "shoulder", "upperarm": "shoulder", "uparm": "shoulder",
    "forearm": "elbow", "lowerarm": "elbow", "loarm": "elbow", "elbow": "elbow",
    "hand": "wrist", "wrist": "wrist",
}
_CENTRE_WORDS: dict[str, str] = {"hips": "pelvis", "pelvis": "pelvis", "neck": "neck", "neck01": "neck",
                                 "neck1": "neck", "head": "head"}
_SPINE = re.compile(r"^(spine|chest|upperchest)(\d*)$")


def _split(name: str) -> tuple[str, str]:
    """A bone name -> (side "left"/"right"/"", core name lowercase without separators or prefixes)."""
    side = ""
    vroid = _VROID.match(name)
    if vroid:
        side = {"l": "left", "r": "right"}.get(vroid.group(1).lower(), "")
        name = name[vroid.end():]
    low = _PREFIX.sub("", name).lower()
    if not side:
        suffix = _SIDE_SUFFIX.search(low)
        prefix = _SIDE_PREFIX.match(low)
        if suffix:
            side = "left" if suffix.group(1) == "l" else "right"
            low = low[:suffix.start()]
        elif prefix:
            side = "left" if prefix.group(1).startswith("l") else "right"
            low = low[prefix.end():]
        else:
            word = _SIDE_WORD.search(low)
            if word:
                side = word.group(1)
                low = low[:word.start()] + low[word.end():]
    low = re.sub(r"[._\- ]fk$", "", low)  # Rigify's FK controls: thigh_fk.L
    return side, re.sub(r"[._\- ]", "", low)


def name_mapping(bone_names: Iterable[str]) -> dict[str, str]:
    """Guess a mapping from bone names alone (sides, common part names, spine bones in order)."""
    found: dict[str, str] = {}
    spine: list[tuple[int, int, str]] = []
    for bone in bone_names:
        side, core = _split(bone)
        joint = ""
        if side and core in _LIMB_WORDS:
            joint = f"{side}_{_LIMB_WORDS[core]}"
        elif not side and core in _CENTRE_WORDS:
            joint = _CENTRE_WORDS[core]
        elif not side and (match := _SPINE.match(core)):
            kind = ("spine", "chest", "upperchest").index(match.group(1))
            spine.append((kind, int(match.group(2) or 0), bone))
        if joint and joint not in found:
            found[joint] = bone
    spine.sort()
    if spine:
        # The lowest, a middle and the highest spine bone; the others stay at rest.
        picks = [spine[0], spine[(len(spine) - 1) // 2 if len(spine) > 2 else 0], spine[-1]]
        for joint, (_, _, bone) in zip(("spine1", "spine2", "spine3"), picks, strict=True):
            if bone not in found.values():
                found[joint] = bone
    return {joint: found[joint] for joint in SMPL_JOINT_NAMES if joint in found}


def auto_mapping(bone_names: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The best mapping for an armature's bones: (preset name or "names", mapping).

    Each preset is matched case-insensitively (and ignoring a namespace such as ``mixamorig1:``);
    the one mapping the most joints wins over the name-based guess when it maps at least as many.
    """
    bones = list(bone_names)
    by_key = {_key(bone): bone for bone in bones}
    best_name, best = "names", name_mapping(bones)
    for name, table in PRESETS.items():
        mapped = {joint: by_key[_key(bone)] for joint, bone in table.items() if _key(bone) in by_key}
        if len(mapped) >= len(best) and len(mapped) > 0 and (best_name == "names" or len(mapped) > len(best)):
            best_name, best = name, mapped
    if best_name == "rigify":
        # A rig generated by Rigify has both its deform bones and its controls; the controls are
        # what it is animated with (the deform bones follow them through constraints).
        controls = preset_mapping("rigify_fk", bones)
        if all(joint in controls for joint in REQUIRED_JOINTS):
            best_name, best = "rigify_fk", controls
    return best_name, best


def preset_mapping(name: str, bone_names: Iterable[str]) -> dict[str, str]:
    """The preset ``name`` restricted to the armature's bones (matched as :func:`auto_mapping` does)."""
    by_key = {_key(bone): bone for bone in bone_names}
    return {joint: by_key[_key(bone)] for joint, bone in preset(name).items() if _key(bone) in by_key}


def choose_mapping(spec: str, bone_names: Iterable[str], armature: str = "the target") -> tuple[str, dict[str, str]]:
    """(name, mapping) for a user's choice: "" or "auto" (:func:`auto_mapping`), a preset name, or a
    path to a .json mapping; checked with :func:`check_humanoid`."""
    bones = list(bone_names)
    spec = spec.strip()
    if spec in ("", "auto"):
        name, mapping = auto_mapping(bones)
    elif spec in PRESETS:
        name, mapping = spec, preset_mapping(spec, bones)
    elif spec.lower().endswith(".json"):
        name, mapping = Path(spec).name, load_mapping(spec, bones)
    else:
        raise AddonError(f"mapping '{spec}': give auto, a preset ({', '.join(PRESETS)}) or a .json file",
                         EXIT_BAD_INPUT)
    check_humanoid(mapping, armature)
    return name, mapping


def _key(bone: str) -> str:
    """A bone name compared case-insensitively and without a namespace (``mixamorig1:Hips`` = ``Hips``)."""
    return bone.rsplit(":", 1)[-1].lower()


def check_humanoid(mapping: Mapping[str, str], armature: str = "the target") -> None:
    """Raise one line naming the required joints the mapping leaves out."""
    missing = [joint for joint in REQUIRED_JOINTS if joint not in mapping]
    if missing:
        raise AddonError(f"armature '{armature}' has no recognisable humanoid bones for {', '.join(missing)}: "
                         "give a mapping (a preset or a .json file {\"pelvis\": \"Hips\", ...})", EXIT_BAD_INPUT)


def parse_mapping(text: str, bone_names: Iterable[str], source: str = "mapping") -> dict[str, str]:
    """A JSON mapping {SMPL joint: target bone (or null to leave it unmapped)}, checked against the
    armature's bones; every problem raises one line naming the entry."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AddonError(f"{source}: bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                         EXIT_BAD_INPUT) from None
    if not isinstance(data, dict):
        raise AddonError(f"{source}: expected a JSON object {{\"pelvis\": \"Hips\", ...}}, "
                         f"got {type(data).__name__}", EXIT_BAD_INPUT)
    bones = set(bone_names)
    used: dict[str, str] = {}
    for joint, bone in data.items():
        if joint not in SMPL_JOINT_NAMES:
            raise AddonError(f"{source}: entry '{joint}' is not an SMPL joint (use one of "
                             f"{', '.join(SMPL_JOINT_NAMES)})", EXIT_BAD_INPUT)
        if bone is None:
            continue
        if not isinstance(bone, str):
            raise AddonError(f"{source}: entry '{joint}': the bone must be a name or null, got {bone!r}",
                             EXIT_BAD_INPUT)
        if bone not in bones:
            raise AddonError(f"{source}: entry '{joint}': bone '{bone}' is not in the armature", EXIT_BAD_INPUT)
        if bone in used:
            raise AddonError(f"{source}: entry '{joint}': bone '{bone}' is already mapped from '{used[bone]}'",
                             EXIT_BAD_INPUT)
        used[bone] = joint
    return {joint: data[joint] for joint in SMPL_JOINT_NAMES if data.get(joint) is not None}


def load_mapping(path: str | Path, bone_names: Iterable[str]) -> dict[str, str]:
    """:func:`parse_mapping` of a JSON file; an unreadable file raises one line too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AddonError(f"mapping {path}: cannot read it ({exc.__class__.__name__}: {exc})", EXIT_BAD_INPUT) from None
    return parse_mapping(text, bone_names, source=f"mapping {path}")
