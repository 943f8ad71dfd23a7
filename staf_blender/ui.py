"""The sidebar panel (3D viewport, tab "STAF") and the File > Import/Export menu entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from .errors import AddonError
from .people import PEOPLE_HELP, parse_people

__all__ = ["STAF_PT_character", "STAF_PT_export", "STAF_PT_people", "STAF_PT_reconstruct", "STAF_PT_retarget",
           "menu_export", "menu_import"]


class _SidebarPanel:
    """Where every STAF panel lives: the 3D viewport's sidebar, tab "STAF"."""

    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "STAF"


class STAF_PT_reconstruct(_SidebarPanel, bpy.types.Panel):
    """Clip, range, people, device and the Reconstruct button (progress and Cancel while it runs)."""

    bl_idname = "STAF_PT_reconstruct"
    bl_label = "Reconstruct from Video"

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = context.scene.staf
        job = context.window_manager.staf_job
        col = layout.column()
        col.enabled = not job.running
        col.prop(settings, "clip_source", expand=True)
        if settings.clip_source == 'FILE':
            col.prop(settings, "clip_path", text="")
        elif context.scene.active_clip is not None:
            col.label(text=context.scene.active_clip.name, icon='SEQUENCE')
        else:
            col.label(text="No active Movie Clip", icon='ERROR')
        col.prop(settings, "use_range")
        row = col.row(align=True)
        row.enabled = settings.use_range
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
        row = col.row()
        row.alert = _people_problem(settings.people) is not None
        row.prop(settings, "people")
        if row.alert:
            col.label(text=PEOPLE_HELP, icon='ERROR')
        col.prop(settings, "max_people")
        col.prop(settings, "device")
        col.prop(settings, "precision")
        col.prop(settings, "batch_size")
        col.prop(settings, "keep_motion")
        if job.running:
            layout.progress(factor=job.progress, type='BAR', text=job.stage or "working")
            layout.operator("staf.cancel_reconstruct", icon='CANCEL')
        else:
            layout.operator("staf.reconstruct_video", icon='PLAY')
        if job.message:
            box = layout.box()
            box.alert = True
            for i, chunk in enumerate(_wrap(job.message, 40)):
                box.label(text=chunk, icon='ERROR' if i == 0 else 'BLANK1')


class STAF_PT_people(_SidebarPanel, bpy.types.Panel):
    """The people of the last reconstruction or import (id, frames, first-last frame), a checkbox
    each, and re-importing all of them or only those checked from that run's motion file."""

    bl_idname = "STAF_PT_people"
    bl_label = "People"

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = context.scene.staf
        if not settings.tracks:
            layout.label(text="Reconstruct or import a motion file", icon='INFO')
            return
        path = Path(bpy.path.abspath(settings.tracks_file)) if settings.tracks_file else None
        present = path is not None and path.is_file()
        layout.label(text=path.name if present else "motion file gone", icon='FILE' if present else 'ERROR')
        for i, chunk in enumerate(_wrap(settings.tracks_world, 40)):
            layout.label(text=chunk, icon='WORLD' if i == 0 else 'BLANK1')
        col = layout.column(align=True)
        for track in settings.tracks:
            col.prop(track, "use", text=track.summary.label())
        row = layout.row(align=True)
        row.enabled = present
        row.operator("staf.import_tracks", text="Import All", icon='IMPORT').only_checked = False
        row.operator("staf.import_tracks", text="Import Checked", icon='CHECKBOX_HLT').only_checked = True


class STAF_PT_character(_SidebarPanel, bpy.types.Panel):
    """How the character is built, and importing an existing motion file."""

    bl_idname = "STAF_PT_character"
    bl_label = "Character"

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = context.scene.staf
        layout.prop(settings, "root_motion")
        row = layout.row()
        row.enabled = settings.root_motion in {'auto', 'camera', 'world'}
        row.prop(settings, "camera")
        layout.prop(settings, "foot_lock")
        row = layout.row()
        row.enabled = settings.root_motion != 'camera'
        row.prop(settings, "ground_plane")
        layout.prop(settings, "shape_keys")
        layout.prop(settings, "match_scene")
        op = layout.operator("staf.import_motion", icon='IMPORT')
        op.root_motion, op.shape_keys = settings.root_motion, settings.shape_keys
        op.camera, op.match_scene = settings.camera, settings.match_scene
        op.foot_lock, op.ground_plane = settings.foot_lock, settings.ground_plane


class STAF_PT_retarget(_SidebarPanel, bpy.types.Panel):
    """The character's motion onto the user's own armature: which character, which armature, the
    mapping (automatic, a preset or a JSON file) and planted feet."""

    bl_idname = "STAF_PT_retarget"
    bl_label = "Retarget"

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = context.scene.staf
        layout.prop(settings, "retarget_source")
        layout.prop(settings, "retarget_target")
        layout.prop(settings, "retarget_mapping")
        if settings.retarget_mapping == 'FILE':
            layout.prop(settings, "retarget_mapping_file", text="")
        layout.prop(settings, "retarget_plant_feet")
        layout.operator("staf.retarget", icon='ARMATURE_DATA')


class STAF_PT_export(_SidebarPanel, bpy.types.Panel):
    """FBX, BVH and glTF export of the selected characters (none selected: all), in one file or one per
    person (BVH: always one per person)."""

    bl_idname = "STAF_PT_export"
    bl_label = "Export"

    def draw(self, context: Any) -> None:
        layout = self.layout
        settings = context.scene.staf
        layout.prop(settings, "export_preset")
        layout.prop(settings, "export_split")
        op = layout.operator("staf.export_fbx", icon='EXPORT')
        op.preset, op.split = settings.export_preset, settings.export_split
        row = layout.row(align=True)
        row.operator("staf.export_bvh", icon='EXPORT').split = settings.export_split
        row.operator("staf.export_gltf", icon='EXPORT').split = settings.export_split


def _people_problem(text: str) -> str | None:
    """Why the People text cannot be used (None: it can)."""
    try:
        parse_people(text)
    except AddonError as err:
        return str(err)
    return None


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def menu_import(self: Any, context: Any) -> None:
    """File > Import entry."""
    self.layout.operator("staf.import_motion", text="STAF Motion (.npz)")


def menu_export(self: Any, context: Any) -> None:
    """File > Export entry."""
    self.layout.operator("staf.export_fbx", text="STAF Character (.fbx)")
    self.layout.operator("staf.export_bvh", text="STAF Character (.bvh)")
    self.layout.operator("staf.export_gltf", text="STAF Character (.glb/.gltf)")
