"""Retargeting SMPL motion onto other humanoid rigs, in plain numpy (no bpy).

:mod:`.presets` names the bones of common rigs, :mod:`.mapping` finds or reads a mapping from SMPL's
joints to a target armature's bones, and :mod:`.solve` turns the source's per-frame pose into the
target bones' local rotations and root location, which the Blender side only keys.
"""

from __future__ import annotations

from .mapping import auto_mapping, check_humanoid, load_mapping, parse_mapping
from .presets import PRESETS, SMPL_AIM_CHILD
from .solve import RestSkeleton, RetargetResult, bone_matrix, retarget, world_rotations

__all__ = [
    "PRESETS",
    "SMPL_AIM_CHILD",
    "RestSkeleton",
    "RetargetResult",
    "auto_mapping",
    "bone_matrix",
    "check_humanoid",
    "load_mapping",
    "parse_mapping",
    "retarget",
    "world_rotations",
]
