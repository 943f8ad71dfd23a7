"""The panel's "Retarget onto Armature": the STAF character's motion onto the user's own armature."""

from __future__ import annotations

from typing import Any

import bpy

from .errors import EXIT_BAD_INPUT, AddonError
from .retarget_scene import is_smpl_rig, retarget_armature

__all__ = ["STAF_OT_retarget", "retarget_pair"]


def retarget_pair(context: Any, settings: Any) -> tuple[Any, Any]:
    """(source character, target armature) from the panel's fields, else the scene: the only STAF
    character selected (or in the scene) and the active armature that is not one."""
    source = settings.retarget_source
    if source is None:
        selected = [o for o in getattr(context, "selected_objects", None) or () if is_smpl_rig(o)]
        candidates = selected or [o for o in context.scene.objects if is_smpl_rig(o)]
        if len(candidates) != 1:
            raise AddonError("pick the character to retarget in the Retarget panel (" + (
                "there is none in this scene: import or reconstruct one" if not candidates
                else f"{len(candidates)} are in this scene") + ")", EXIT_BAD_INPUT)
        source = candidates[0]
    target = settings.retarget_target
    if target is None:
        active = getattr(context, "active_object", None)
        if active is None or active.type != 'ARMATURE' or is_smpl_rig(active):
            raise AddonError("pick the target armature in the Retarget panel, or make your armature the active "
                             "object", EXIT_BAD_INPUT)
        target = active
    return source, target


class STAF_OT_retarget(bpy.types.Operator):
    """Put the STAF character's motion onto your armature (Mixamo, UE5, Rigify, VRM or your own
    mapping), baked onto a new action; its previous action is kept"""

    bl_idname = "staf.retarget"
    bl_label = "Retarget onto Armature"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.mode in {'OBJECT', 'POSE'}

    def execute(self, context: Any) -> set[str]:
        settings = context.scene.staf
        try:
            if settings.retarget_mapping == 'FILE':
                if not settings.retarget_mapping_file:
                    raise AddonError("choose the mapping file (.json), or another mapping", EXIT_BAD_INPUT)
                mapping = bpy.path.abspath(settings.retarget_mapping_file)
            else:
                mapping = settings.retarget_mapping
            source, target = retarget_pair(context, settings)
            report = retarget_armature(context, source, target, mapping, plant_feet=settings.retarget_plant_feet)
        except AddonError as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        self.report({'INFO'}, report.summary())
        return {'FINISHED'}
