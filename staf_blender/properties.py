"""Settings shown in the panel (saved with the scene) and the running job's state (not saved)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .fbx_presets import PRESETS
from .plan import ImportOptions

__all__ = ["ROOT_MOTION_ITEMS", "STAF_PG_job", "STAF_PG_settings", "import_options"]

ROOT_MOTION_ITEMS = (
    ('camera', "From camera", "The character moves as seen from the camera; the clip's camera overlays it"),
    ('in_place', "In place", "The character stays at the origin, feet on the ground"),
    ('ground', "On the ground", "Horizontal motion only, starting at the origin, feet on the ground"),
)


class STAF_PG_settings(bpy.types.PropertyGroup):
    """Reconstruction and import options (``scene.staf``)."""

    clip_source: EnumProperty(name="Clip", items=(
        ('FILE', "File", "A video file"),
        ('MOVIECLIP', "Active Movie Clip", "The scene's active Movie Clip"),
    ), default='FILE')
    clip_path: StringProperty(name="Video", subtype='FILE_PATH', description="The video to reconstruct")
    use_range: BoolProperty(name="Frame range", description="Reconstruct only part of the clip")
    frame_start: IntProperty(name="Start", min=0, default=0, description="First clip frame (from 0)")
    frame_end: IntProperty(name="End", min=1, default=100, description="Clip frame after the last one")
    person: IntProperty(name="Person", min=0, default=0, description="Which track to reconstruct; 0: the main person")
    device: EnumProperty(name="Device", items=(
        ('auto', "Auto", "A GPU if there is one, else the CPU"),
        ('cpu', "CPU", ""),
        ('cuda', "CUDA", "The first NVIDIA GPU"),
    ), default='auto')
    precision: EnumProperty(name="Precision", items=(
        ('DEFAULT', "Default", "The engine's choice"),
        ('fp32', "FP32", ""),
        ('fp16', "FP16", "Half precision (CUDA)"),
        ('bf16', "BF16", "bfloat16 (CUDA)"),
    ), default='DEFAULT')
    batch_size: IntProperty(name="Batch size", min=0, default=0, description="Frames per batch; 0: the engine's")
    keep_motion: StringProperty(name="Keep motion file", subtype='FILE_PATH',
                                description="Also save the motion file (.npz) here; empty: not kept")
    root_motion: EnumProperty(name="Root motion", items=ROOT_MOTION_ITEMS, default='camera')
    shape_keys: BoolProperty(name="Shape keys", description="One shape key per body-shape coefficient")
    camera: BoolProperty(name="Camera", default=True, description="Add the clip's camera, the clip as background")
    match_scene: BoolProperty(name="Match scene", default=True,
                              description="Set the scene's frame rate, range, resolution and camera from the clip")
    export_preset: EnumProperty(name="Preset", items=tuple((p.name, p.name.capitalize(), p.description)
                                                           for p in PRESETS.values()), default='unity')


class STAF_PG_job(bpy.types.PropertyGroup):
    """The running reconstruction (``window_manager.staf_job``: runtime only, never saved)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR')
    stage: StringProperty()
    message: StringProperty()
    cancel_requested: BoolProperty(default=False)


def import_options(settings: STAF_PG_settings, *, name: str = "") -> ImportOptions:
    """The ImportOptions the panel's settings describe."""
    return ImportOptions(root_motion=settings.root_motion, shape_keys=settings.shape_keys, camera=settings.camera,
                         match_scene=settings.match_scene, name=name)
