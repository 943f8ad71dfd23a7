"""Operators: thin shells over the plain functions of rig, the exporters and session.

Each gathers its inputs, calls one function, and turns an ``AddonError`` into one error report
and ``{'CANCELLED'}``. "Reconstruct from video" is modal: it polls the engine from a timer, shows
progress, and stops on ESC or the panel's Cancel button; the scene changes only when the engine
succeeded, in one step (one undo step).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .bvh_export import ROTATION_ORDERS, export_bvh
from .engine import EngineOptions, resolve_interpreter
from .errors import AddonError
from .fbx_export import export_characters, find_rigs
from .gltf_export import export_gltf
from .people import free_base_name, parse_people
from .plan import ImportOptions
from .preferences import engine_settings, interpreter_candidates
from .properties import ROOT_MOTION_ITEMS, import_options, set_tracks
from .rig import ImportResult, import_motion_file
from .session import Reconstruction, ReconstructRequest, cache_last_motion

__all__ = [
    "STAF_OT_cancel_reconstruct",
    "STAF_OT_check_engine",
    "STAF_OT_export_bvh",
    "STAF_OT_export_fbx",
    "STAF_OT_export_gltf",
    "STAF_OT_import_motion",
    "STAF_OT_import_tracks",
    "STAF_OT_reconstruct_video",
    "import_tracks",
    "reconstruct_request",
]


def _report_import(op: Any, result: ImportResult, what: str) -> None:
    for note in result.notes:
        op.report({'WARNING'}, note)
    if result.world:
        op.report({'INFO'}, result.world)
    people = len(result.armatures)
    op.report({'INFO'}, f"{what}: {people} character{'s' if people != 1 else ''} in '{result.collection.name}' "
                        f"(root motion {result.root_motion})")


class STAF_OT_import_motion(bpy.types.Operator, ImportHelper):
    """Build rigged, animated characters from a STAF motion file (.npz)"""

    bl_idname = "staf.import_motion"
    bl_label = "Import Motion File"
    bl_options = {'REGISTER', 'UNDO', 'PRESET'}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={'HIDDEN'})
    root_motion: EnumProperty(name="Root motion", items=ROOT_MOTION_ITEMS, default='auto')
    foot_lock: BoolProperty(name="Foot lock", default=True,
                            description="Use the motion file's foot-locked pose where it has one")
    ground_plane: BoolProperty(name="Ground plane", default=True,
                               description="Add a plane at z = 0 when the motion file has a ground plane")
    people: StringProperty(name="People", default="all", description="'all' or person ids, e.g. '0, 2'")
    shape_keys: BoolProperty(name="Shape keys", default=False)
    camera: BoolProperty(name="Camera", default=True)
    match_scene: BoolProperty(name="Match scene", default=True,
                              description="Set the scene's frame rate, range, resolution and camera from the clip")
    name: StringProperty(name="Name", default="", description="Base name of the new objects; empty: the file's")

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.mode == 'OBJECT'

    def execute(self, context: Any) -> set[str]:
        try:
            options = ImportOptions(root_motion=self.root_motion, people=parse_people(self.people),
                                    shape_keys=self.shape_keys, camera=self.camera, match_scene=self.match_scene,
                                    name=self.name, foot_lock=self.foot_lock, ground_plane=self.ground_plane)
            result = import_motion_file(context, self.filepath, options)
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        settings = getattr(context.scene, "staf", None)
        if settings is not None:
            set_tracks(settings, result.tracks, Path(self.filepath).absolute(), result.collection.name,
                       result.world or "")
        _report_import(self, result, "Imported")
        return {'FINISHED'}


class STAF_OT_import_tracks(bpy.types.Operator):
    """Build the characters of the last run's people again, all of them or only those checked"""

    bl_idname = "staf.import_tracks"
    bl_label = "Import People"
    bl_options = {'REGISTER', 'UNDO'}

    only_checked: BoolProperty(name="Only checked", default=False, description="Only the people checked in the list")

    @classmethod
    def poll(cls, context: Any) -> bool:
        settings = getattr(context.scene, "staf", None)
        return context.mode == 'OBJECT' and settings is not None and len(settings.tracks) > 0

    def execute(self, context: Any) -> set[str]:
        settings = context.scene.staf
        try:
            result = import_tracks(context, settings, only_checked=self.only_checked)
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        _report_import(self, result, "Imported")
        return {'FINISHED'}


def import_tracks(context: Any, settings: Any, *, only_checked: bool) -> ImportResult:
    """Import the people listed in the panel (all, or the checked ones) from the kept motion file,
    under the first free name (``<clip>``, ``<clip>_2``, ...); raises AddonError."""
    ids = [t.person_id for t in settings.tracks if t.use or not only_checked]
    if not ids:
        raise AddonError("no person is checked: check the people to import")
    path = Path(bpy.path.abspath(settings.tracks_file)) if settings.tracks_file else None
    if path is None or not path.is_file():
        raise AddonError("the last run's motion file is gone: reconstruct or import the motion file again")
    name = free_base_name(settings.tracks_name or path.stem, ids,
                          lambda n: n in bpy.data.objects or n in bpy.data.collections)
    options = replace(import_options(settings, name=name), people=tuple(ids))
    return import_motion_file(context, path, options)


class _ExportCharacters(ExportHelper):
    """What the FBX, BVH and glTF export operators share: object mode, the panel's "one file per
    person", one report line; ``write(context, rigs)`` returns the files written."""

    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.mode == 'OBJECT'

    def invoke(self, context: Any, event: Any) -> set[str]:
        settings = getattr(context.scene, "staf", None)
        if settings is not None:
            self.split = settings.export_split
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: Any) -> set[str]:
        try:
            paths = self.write(context, find_rigs(context))
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Exported {', '.join(str(p) for p in paths)}")
        return {'FINISHED'}


class STAF_OT_export_fbx(_ExportCharacters, bpy.types.Operator):
    """Export the selected STAF characters (none selected: all of them) to FBX with a game-engine preset"""

    bl_idname = "staf.export_fbx"
    bl_label = "Export FBX"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={'HIDDEN'})
    split: BoolProperty(name="One file per person", default=False,
                        description="One FBX per character, OUT_p<ID>.fbx beside the chosen name")
    preset: EnumProperty(name="Preset", items=(
        ('unity', "Unity", "Metres, Y up"),
        ('unreal', "Unreal", "Centimetres, a root bone"),
        ('generic', "Generic", "Metres declared in the file"),
    ), default='unity')

    def invoke(self, context: Any, event: Any) -> set[str]:
        settings = getattr(context.scene, "staf", None)
        if settings is not None:
            self.preset = settings.export_preset
        return super().invoke(context, event)

    def write(self, context: Any, rigs: list[Any]) -> list[Path]:
        return export_characters(context, rigs, self.filepath, self.preset, split=self.split)


class STAF_OT_export_bvh(_ExportCharacters, bpy.types.Operator):
    """Export the selected STAF characters (none selected: all of them) to BVH, one skeleton per file"""

    bl_idname = "staf.export_bvh"
    bl_label = "Export BVH"

    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={'HIDDEN'})
    split: BoolProperty(name="One file per person", default=False,
                        description="OUT_p<ID>.bvh even for one character (several always get one file each)")
    rotation_order: EnumProperty(name="Rotation order", default='ZXY', items=tuple(
        (o, o, " ".join(f"{axis}rotation" for axis in o)) for o in ROTATION_ORDERS))

    def write(self, context: Any, rigs: list[Any]) -> list[Path]:
        return export_bvh(context, rigs, self.filepath, split=self.split, rotation_order=self.rotation_order)


class STAF_OT_export_gltf(_ExportCharacters, bpy.types.Operator):
    """Export the selected STAF characters (none selected: all of them) to glTF, one animation per person"""

    bl_idname = "staf.export_gltf"
    bl_label = "Export glTF"

    filename_ext = ".glb"
    check_extension = None  # keep the name typed: .glb (one file) or .gltf (with its .bin)
    filter_glob: StringProperty(default="*.glb;*.gltf", options={'HIDDEN'})
    split: BoolProperty(name="One file per person", default=False,
                        description="One file per character, OUT_p<ID>.glb beside the chosen name")
    all_influences: BoolProperty(name="All bone influences", default=False,
                                 description="Every influence of a vertex (SMPL: up to 9, in sets of 4) instead of "
                                 "the 4 strongest that every glTF reader takes")

    def write(self, context: Any, rigs: list[Any]) -> list[Path]:
        return export_gltf(context, rigs, self.filepath, split=self.split, all_influences=self.all_influences)


def reconstruct_request(context: Any) -> ReconstructRequest:
    """The request the panel describes (clip, range, person, device, preferences); checks the
    clip and the engine's interpreter, raising AddonError."""
    settings = context.scene.staf
    if settings.clip_source == 'MOVIECLIP':
        clip = context.scene.active_clip
        if clip is None:
            raise AddonError("the scene has no active Movie Clip: open one or choose a video file")
        video = bpy.path.abspath(clip.filepath, library=clip.library)
    else:
        if not settings.clip_path:
            raise AddonError("choose a video file to reconstruct")
        video = bpy.path.abspath(settings.clip_path)
    if not os.path.isfile(video):
        raise AddonError(f"{video}: no such video file")
    prefs = engine_settings(context)
    python = resolve_interpreter(prefs.python_path, interpreter_candidates())
    engine = EngineOptions(
        assets=prefs.assets_dir,
        device=settings.device,
        start=settings.frame_start if settings.use_range else None,
        end=settings.frame_end if settings.use_range else None,
        people=parse_people(settings.people),
        max_people=settings.max_people or None,
        batch_size=settings.batch_size or None,
        precision="" if settings.precision == 'DEFAULT' else settings.precision,
    )
    keep = Path(bpy.path.abspath(settings.keep_motion)) if settings.keep_motion else None
    return ReconstructRequest(video=Path(video), python=python, engine=engine, keep_motion=keep)


def _finish_reconstruction(op: Any, context: Any, run: Reconstruction) -> set[str]:
    """Import the engine's result (or report why there is none); always cleans up."""
    job = context.window_manager.staf_job
    try:
        result = run.result()
        if not result.ok:
            if result.cancelled:
                op.report({'WARNING'}, "Reconstruction cancelled")
            else:
                op.report({'ERROR'}, f"Engine: {result.message}")
                job.message = result.message
            return {'CANCELLED'}
        settings = context.scene.staf
        try:
            name = Path(run.request.video).stem
            imported = import_motion_file(context, result.output, import_options(settings, name=name))
        except AddonError as err:
            op.report({'ERROR'}, str(err))
            job.message = str(err)
            return {'CANCELLED'}
        kept = listed = None
        try:
            kept = run.keep()
            listed = kept if kept is not None else cache_last_motion(result.output, name)
        except AddonError as err:  # the character is in the scene; only the copy of the file failed
            op.report({'WARNING'}, f"motion file not kept: {err}")
        set_tracks(settings, imported.tracks, listed or "", imported.collection.name, imported.world or "")
    finally:
        run.close()
    _report_import(op, imported, "Reconstructed" + (f" (motion file: {kept})" if kept else ""))
    return {'FINISHED'}


class STAF_OT_reconstruct_video(bpy.types.Operator):
    """Run the STAF engine on the clip and build the animated character (ESC cancels)"""

    bl_idname = "staf.reconstruct_video"
    bl_label = "Reconstruct from Video"
    bl_options = {'REGISTER', 'UNDO'}

    _run: Reconstruction | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        job = getattr(context.window_manager, "staf_job", None)
        return context.mode == 'OBJECT' and job is not None and not job.running

    def invoke(self, context: Any, event: Any) -> set[str]:
        job = context.window_manager.staf_job
        job.message = ""
        try:
            self._run = Reconstruction(reconstruct_request(context))
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            job.message = str(err)
            return {'CANCELLED'}
        job.running, job.progress, job.stage, job.cancel_requested = True, 0.0, "starting the engine", False
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0.0, 1.0)
        return {'RUNNING_MODAL'}

    def modal(self, context: Any, event: Any) -> set[str]:
        job = context.window_manager.staf_job
        if event.type == 'ESC' or job.cancel_requested:
            if not self._run.job.cancelling:
                self._run.cancel()
                job.stage = "cancelling"
            if event.type == 'ESC':
                return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        progress = self._run.poll()
        if progress is not None:
            job.progress, job.stage = progress.fraction, progress.describe()
            context.window_manager.progress_update(progress.fraction)
        for area in getattr(context.screen, "areas", ()):
            if area.type == 'VIEW_3D':
                area.tag_redraw()
        if not self._run.done():
            return {'PASS_THROUGH'}
        self._stop(context)
        return _finish_reconstruction(self, context, self._run)

    def execute(self, context: Any) -> set[str]:
        """Blocking run, for scripts and background mode (no progress bar)."""
        try:
            run = Reconstruction(reconstruct_request(context))
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        try:
            run.job.wait()
        except KeyboardInterrupt:
            run.cancel()
            run.job.wait(run.job.grace + 1.0)
        return _finish_reconstruction(self, context, run)

    def cancel(self, context: Any) -> None:
        """Blender ends the operator (a file is loaded, Blender quits): stop the engine."""
        self._stop(context)
        if self._run is not None:
            self._run.close()

    def _stop(self, context: Any) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
            wm.progress_end()
        job = wm.staf_job
        job.running, job.cancel_requested, job.progress, job.stage = False, False, 0.0, ""


class STAF_OT_cancel_reconstruct(bpy.types.Operator):
    """Stop the running reconstruction (the scene stays as it was)"""

    bl_idname = "staf.cancel_reconstruct"
    bl_label = "Cancel"
    bl_options = {'INTERNAL'}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.window_manager.staf_job.running

    def execute(self, context: Any) -> set[str]:
        context.window_manager.staf_job.cancel_requested = True
        return {'FINISHED'}


class STAF_OT_check_engine(bpy.types.Operator):
    """Check that the configured Python interpreter can run the STAF engine"""

    bl_idname = "staf.check_engine"
    bl_label = "Check Engine"
    bl_options = {'REGISTER'}

    def execute(self, context: Any) -> set[str]:
        prefs = engine_settings(context)
        try:
            python = resolve_interpreter(prefs.python_path, interpreter_candidates())
        except AddonError as err:
            self.report({'ERROR'}, str(err))
            return {'CANCELLED'}
        self.report({'INFO'}, f"The engine runs with {python}")
        return {'FINISHED'}
