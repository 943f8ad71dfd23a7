"""Retargeting SMPL motion onto other humanoid rigs, in plain numpy (no bpy).

:mod:`.presets` names the bones of common rigs, :mod:`.mapping` finds or reads a mapping from SMPL's
joints to a target armature's bones, :mod:`.skeleton` holds an armature's rest pose, :mod:`.solve`
turns the source's per-frame pose into the target bones' local rotations and root location (which
the Blender side only keys), and :mod:`.plant` holds the target's feet where the source's are on
the ground, which the target's own proportions would otherwise make slide.
"""

from __future__ import annotations

from .mapping import auto_mapping, check_humanoid, choose_mapping, load_mapping, parse_mapping, preset_mapping
from .plant import plant_feet
from .presets import PRESETS, SMPL_AIM_CHILD
from .skeleton import RestSkeleton, bone_matrix, swing_between, world_rotations
from .solve import RetargetResult, retarget

__all__ = [
    "PRESETS",
    "SMPL_AIM_CHILD",
    "RestSkeleton",
    "RetargetResult",
    "auto_mapping",
    "bone_matrix",
    "check_humanoid",
    "choose_mapping",
    "load_mapping",
    "parse_mapping",
    "plant_feet",
    "preset_mapping",
    "retarget",
    "swing_between",
    "world_rotations",
]
