"""Registration: every class in one tuple, registered in order and unregistered in reverse."""

from __future__ import annotations

import bpy
from bpy.props import PointerProperty

from .install_operators import (
    STAF_OT_add_asset_files,
    STAF_OT_cancel_install,
    STAF_OT_install_engine,
    STAF_OT_refresh_assets,
)
from .operators import (
    STAF_OT_cancel_reconstruct,
    STAF_OT_check_engine,
    STAF_OT_export_bvh,
    STAF_OT_export_fbx,
    STAF_OT_export_gltf,
    STAF_OT_import_motion,
    STAF_OT_import_tracks,
    STAF_OT_reconstruct_video,
)
from .preferences import STAF_AddonPreferences
from .properties import STAF_PG_job, STAF_PG_settings, STAF_PG_track
from .retarget_operator import STAF_OT_retarget
from .session import clear_last_motion
from .ui import (
    STAF_PT_character,
    STAF_PT_export,
    STAF_PT_people,
    STAF_PT_reconstruct,
    STAF_PT_retarget,
    menu_export,
    menu_import,
)

__all__ = ["classes", "register", "unregister"]

classes = (
    STAF_AddonPreferences,
    STAF_PG_track,
    STAF_PG_settings,
    STAF_PG_job,
    STAF_OT_import_motion,
    STAF_OT_import_tracks,
    STAF_OT_export_fbx,
    STAF_OT_export_bvh,
    STAF_OT_export_gltf,
    STAF_OT_reconstruct_video,
    STAF_OT_cancel_reconstruct,
    STAF_OT_check_engine,
    STAF_OT_install_engine,
    STAF_OT_cancel_install,
    STAF_OT_refresh_assets,
    STAF_OT_add_asset_files,
    STAF_OT_retarget,
    STAF_PT_reconstruct,
    STAF_PT_people,
    STAF_PT_character,
    STAF_PT_retarget,
    STAF_PT_export,
)


def register() -> None:
    """Register the classes, the settings pointers and the menu entries."""
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.staf = PointerProperty(type=STAF_PG_settings)
    bpy.types.WindowManager.staf_job = PointerProperty(type=STAF_PG_job)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)
    bpy.types.TOPBAR_MT_file_export.append(menu_export)


def unregister() -> None:
    """Undo :func:`register`, in reverse order."""
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    del bpy.types.WindowManager.staf_job
    del bpy.types.Scene.staf
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
    clear_last_motion()
