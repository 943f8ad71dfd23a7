"""Settings shown in the panel (saved with the scene), the people of the last run (listed in the
panel, saved too) and the running job's state (not saved)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .fbx_presets import PRESETS
from .people import TrackSummary
from .plan import ImportOptions
from .retarget import PRESETS as MAPPING_PRESETS
from .retarget_scene import is_smpl_rig

__all__ = ["MAPPING_ITEMS", "ROOT_MOTION_ITEMS", "STAF_PG_job", "STAF_PG_settings", "STAF_PG_track", "import_options",
           "set_tracks"]

ROOT_MOTION_ITEMS = (
    ('auto', "Auto", "World (ground) when the motion file has a ground plane, else From camera"),
    ('camera', "From camera", "The character moves as seen from the camera; the clip's camera overlays it"),
    ('world', "World (ground)", "The character on the ground plane the engine found (z up, ground at z = 0); "
                                "the clip's camera placed and turned as found"),
    ('in_place', "In place", "The character stays at the origin, feet on the ground"),
    ('ground', "On the ground", "Horizontal motion only, starting at the origin, feet on the ground"),
)
_MAPPING_LABELS = {"mixamo": "Mixamo", "ue5": "UE5 Mannequin", "rigify": "Rigify (deform bones)",
                   "rigify_fk": "Rigify (FK controls)", "vrm": "VRM humanoid", "vroid": "VRoid"}
MAPPING_ITEMS = (
    ('auto', "Automatic", "The preset that maps the most bones, else a guess from the bone names"),
    *((name, _MAPPING_LABELS.get(name, name), f"The {_MAPPING_LABELS.get(name, name)} bone names")
      for name in MAPPING_PRESETS),
    ('FILE', "Mapping file", "A .json file {\"pelvis\": \"Hips\", ...}: SMPL joint -> your bone"),
)


def _poll_character(self: Any, obj: Any) -> bool:
    return is_smpl_rig(obj)


def _poll_target(self: Any, obj: Any) -> bool:
    return obj.type == 'ARMATURE' and not is_smpl_rig(obj)


class STAF_PG_track(bpy.types.PropertyGroup):
    """One person of the last run's motion file, as the panel lists it (``scene.staf.tracks``)."""

    person_id: IntProperty(name="Person id")
    frames: IntProperty(name="Frames")
    first: IntProperty(name="First frame", description="Clip frame, from 0")
    last: IntProperty(name="Last frame", description="Clip frame, from 0")
    segments: IntProperty(name="Parts", description="Runs of consecutive frames")
    use: BoolProperty(name="Import", default=True, description="Import this person with 'Import Checked'")

    @property
    def summary(self) -> TrackSummary:
        """The bpy-free summary this item stores."""
        return TrackSummary(self.person_id, self.frames, self.first, self.last, self.segments)


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
    people: StringProperty(name="People", default="all",
                           description="Which tracks to reconstruct: 'all' or ids like 0, 2 (ids by prominence, "
                           "0 = the most on screen)")
    max_people: IntProperty(name="Max people", min=0, default=0,
                            description="Keep at most this many of the most prominent tracks; 0: no limit")
    device: EnumProperty(name="Device", items=(
        ('auto', "Auto", "A GPU if there is one, else the CPU"),
        ('cpu', "CPU", ""),
        ('cuda', "CUDA", "The first NVIDIA GPU"),
    ), default='auto')
    precision: EnumProperty(name="Precision", items=(
        ('DEFAULT', "Auto", "The engine's choice: bf16 where the device has native bf16 units and the pose "
                            "stays within 1e-4 rad of fp32, else fp32"),
        ('fp32', "FP32", ""),
        ('fp16', "FP16", "Half precision (CUDA)"),
        ('bf16', "BF16", "bfloat16 (recent GPUs; CPUs with AMX or AVX-512 BF16)"),
    ), default='DEFAULT')
    batch_size: IntProperty(name="Batch size", min=0, default=0, description="Frames per batch; 0: the engine's")
    keep_motion: StringProperty(name="Keep motion file", subtype='FILE_PATH',
                                description="Also save the motion file (.npz) here; empty: not kept")
    root_motion: EnumProperty(name="Root motion", items=ROOT_MOTION_ITEMS, default='auto')
    foot_lock: BoolProperty(name="Foot lock", default=True,
                            description="Use the motion file's foot-locked pose (planted feet stay) where it has one")
    ground_plane: BoolProperty(name="Ground plane", default=True,
                               description="Add a plane at the ground (z = 0) when the motion file has a ground plane")
    shape_keys: BoolProperty(name="Shape keys", description="One shape key per body-shape coefficient")
    camera: BoolProperty(name="Camera", default=True, description="Add the clip's camera, the clip as background")
    match_scene: BoolProperty(name="Match scene", default=True,
                              description="Set the scene's frame rate, range, resolution and camera from the clip")
    export_split: BoolProperty(name="One file per person",
                               description="Write OUT_p<ID>.fbx per character instead of one FBX holding them all")
    retarget_source: PointerProperty(type=bpy.types.Object, name="Character", poll=_poll_character,
                                     description="The STAF character whose motion is retargeted (empty: the "
                                     "only one in the scene)")
    retarget_target: PointerProperty(type=bpy.types.Object, name="Target", poll=_poll_target,
                                     description="Your armature (empty: the active one)")
    retarget_mapping: EnumProperty(name="Mapping", items=MAPPING_ITEMS, default='auto')
    retarget_mapping_file: StringProperty(name="Mapping file", subtype='FILE_PATH',
                                          description="JSON {SMPL joint: your bone}, e.g. {\"pelvis\": \"Hips\"}")
    retarget_plant_feet: BoolProperty(name="Plant feet", default=True,
                                      description="Hold the target's ankles still where the character's heels "
                                      "are on the ground (its other proportions would make them slide)")
    tracks: CollectionProperty(type=STAF_PG_track, description="The people of the last run's motion file")
    tracks_file: StringProperty(name="Motion file", subtype='FILE_PATH',
                                description="The motion file of the last reconstruction or import")
    tracks_name: StringProperty(name="Name", description="The clip's name, the base name of re-imports")
    tracks_world: StringProperty(name="World", description="What the motion file says about its ground plane")
    export_preset: EnumProperty(name="Preset", items=tuple((p.name, p.name.capitalize(), p.description)
                                                           for p in PRESETS.values()), default='unity')


class STAF_PG_job(bpy.types.PropertyGroup):
    """The running reconstruction (``window_manager.staf_job``: runtime only, never saved)."""

    running: BoolProperty(default=False)
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR')
    stage: StringProperty()
    message: StringProperty()
    cancel_requested: BoolProperty(default=False)


def set_tracks(settings: STAF_PG_settings, summaries: Iterable[TrackSummary], path: str | Path, name: str,
               world: str = "") -> None:
    """List ``summaries`` (the people of the motion file at ``path``) in the panel, all checked,
    with ``world``, the file's line on its ground plane ("" = none)."""
    settings.tracks.clear()
    for summary in summaries:
        item = settings.tracks.add()
        item.person_id, item.frames, item.first, item.last = (summary.person_id, summary.frames, summary.first,
                                                              summary.last)
        item.segments, item.use = summary.segments, True
    settings.tracks_file = str(path)
    settings.tracks_name = name
    settings.tracks_world = world


def import_options(settings: STAF_PG_settings, *, name: str = "") -> ImportOptions:
    """The ImportOptions the panel's settings describe."""
    return ImportOptions(root_motion=settings.root_motion, shape_keys=settings.shape_keys, camera=settings.camera,
                         match_scene=settings.match_scene, name=name, foot_lock=settings.foot_lock,
                         ground_plane=settings.ground_plane)
