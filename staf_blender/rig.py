"""Write an :class:`~staf_blender.plan.ImportPlan` into Blender: armatures, skinned meshes, keys,
foot contacts, camera, ground plane, scene settings. All arrays go in bulk (``foreach_set``);
nothing is keyed frame by frame.

Only new data-blocks are created (one collection holding the new objects); the user's scene gets
the new collection and, with ``match_scene``, the clip's frame rate, range, resolution and camera.
Names are checked before anything is created, and anything created before an unexpected error is
removed again, so a failed import leaves the file as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from .compat import new_object_action
from .errors import AddonError
from .keys import KeyWriter
from .motion_io import load_motion
from .people import TrackSummary, summarise_people
from .plan import ImportOptions, ImportPlan, RigPlan, plan_import
from .root_motion import CONTACT_CHANNELS

__all__ = [
    "RIG_PROPERTY",
    "ImportResult",
    "build_import",
    "check_names",
    "import_motion_file",
    "is_staf_rig",
    "remove_datablocks",
]

#: Custom property on armature objects made by this add-on (its value: the person id).
RIG_PROPERTY = "staf_person_id"


@dataclass(frozen=True)
class ImportResult:
    """What an import created; ``notes`` are non-fatal messages for the user, ``world`` a line on
    the file's world frame (None: the file says nothing about one)."""

    collection: Any
    armatures: tuple[Any, ...]
    meshes: tuple[Any, ...]
    camera: Any | None
    notes: tuple[str, ...]
    tracks: tuple[TrackSummary, ...] = ()  # every person of the file (imported or not), for the panel
    ground: Any | None = None
    world: str | None = None
    root_motion: str = ""


def is_staf_rig(obj: Any) -> bool:
    """Whether ``obj`` is an armature made by this add-on."""
    return obj is not None and obj.type == 'ARMATURE' and RIG_PROPERTY in obj.keys()


class _Created:
    """Data-blocks made so far, removed again (newest first) if the import fails part-way."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, Any]] = []

    def add(self, collection: Any, item: Any) -> Any:
        self._items.append((collection, item))
        return item

    def remove_all(self) -> None:
        remove_datablocks(self._items)
        self._items.clear()


def remove_datablocks(items: list[tuple[Any, Any]]) -> None:
    """Remove data-blocks given as (bpy.data collection, block) pairs: objects first (removing a
    mesh would take its objects with it), then the rest, newest first; skips those already gone."""
    ordered = [i for i in reversed(items) if i[0] == bpy.data.objects]
    ordered += [i for i in reversed(items) if i[0] != bpy.data.objects]
    for collection, item in ordered:
        try:
            name = item.name
        except ReferenceError:  # already removed with its user
            continue
        if collection.get(name) == item:
            collection.remove(item)


def check_names(plan: ImportPlan) -> None:
    """Raise AddonError if an object or collection the plan creates is already named so in this file."""
    taken = [name for name in plan.object_names() if name in bpy.data.objects]
    if plan.collection_name in bpy.data.collections:
        taken.insert(0, plan.collection_name)
    if taken:
        raise AddonError(f"names already taken in this file: {', '.join(taken)}; choose another name")


def import_motion_file(context: Any, path: str | Path, options: ImportOptions) -> ImportResult:
    """Read, plan and build: the whole import of one motion file (named after the file unless
    ``options.name`` says otherwise)."""
    motion = load_motion(path)
    plan = plan_import(motion, replace(options, name=options.name or Path(path).stem))
    return replace(build_import(context, plan), tracks=summarise_people(motion))


def build_import(context: Any, plan: ImportPlan) -> ImportResult:
    """Create everything in ``plan`` in ``context.scene``; on any error nothing is left behind."""
    check_names(plan)
    created = _Created()
    try:
        collection = created.add(bpy.data.collections, bpy.data.collections.new(plan.collection_name))
        armatures, meshes = [], []
        for rig in plan.rigs:
            arm, mesh = _build_rig(rig, collection, created, plan.source, plan.options.root_motion)
            armatures.append(arm)
            meshes.append(mesh)
        camera = _build_camera(plan, collection, created) if plan.camera is not None else None
        ground = _build_ground(plan, collection, created) if plan.ground is not None else None
        context.scene.collection.children.link(collection)
    except BaseException:
        created.remove_all()
        raise
    if plan.options.match_scene:
        _match_scene(context.scene, plan, camera)
    return ImportResult(collection, tuple(armatures), tuple(meshes), camera, plan.notes, ground=ground,
                        world=plan.world, root_motion=plan.options.root_motion)


def _in_edit_mode(obj: Any, fn: Callable[[Any], None]) -> None:
    """Run ``fn(obj.data.edit_bones)`` with ``obj`` in edit mode, inside a scratch scene, so the
    user's active object, selection and mode are never touched."""
    scratch = bpy.data.scenes.new(".staf_edit")
    try:
        scratch.collection.objects.link(obj)
        layer = scratch.view_layers[0]
        layer.objects.active = obj
        with bpy.context.temp_override(scene=scratch, view_layer=layer, active_object=obj, object=obj):
            bpy.ops.object.mode_set(mode='EDIT')
            try:
                fn(obj.data.edit_bones)
            finally:
                bpy.ops.object.mode_set(mode='OBJECT')
    finally:
        bpy.data.scenes.remove(scratch)


def _build_rig(rig: RigPlan, collection: Any, created: _Created, source: dict, root_motion: str) -> tuple[Any, Any]:
    armature = created.add(bpy.data.armatures, bpy.data.armatures.new(rig.armature_name))
    armature.display_type = 'OCTAHEDRAL'
    arm_obj = created.add(bpy.data.objects, bpy.data.objects.new(rig.armature_name, armature))

    def make_bones(edit_bones: Any) -> None:
        bones = []
        for j, name in enumerate(rig.bone_names):
            bone = edit_bones.new(name)
            bone.head = rig.bone_heads[j].tolist()
            bone.tail = rig.bone_tails[j].tolist()
            bone.roll = 0.0
            bone.use_connect = False
            bones.append(bone)
        for j, parent in enumerate(rig.bone_parents):
            if parent >= 0:
                bones[j].parent = bones[parent]

    _in_edit_mode(arm_obj, make_bones)
    collection.objects.link(arm_obj)
    arm_obj[RIG_PROPERTY] = rig.person_id
    arm_obj["staf_source"] = str(source.get("name", ""))
    arm_obj["staf_fps"] = [int(source.get("fps_num", 0)), int(source.get("fps_den", 1))]
    arm_obj["staf_root_motion"] = root_motion
    arm_obj["staf_foot_lock"] = rig.foot_locked
    if len(rig.check_frames):
        arm_obj["staf_frames_to_check"] = [int(f) for f in rig.check_frames]
    for pose_bone in arm_obj.pose.bones:
        pose_bone.rotation_mode = 'QUATERNION'
    _write_keys(arm_obj, rig, created)

    mesh = created.add(bpy.data.meshes, bpy.data.meshes.new(rig.mesh_name))
    mesh.from_pydata(rig.vertices, [], rig.faces)
    mesh.update()
    mesh.shade_smooth()
    mesh_obj = created.add(bpy.data.objects, bpy.data.objects.new(rig.mesh_name, mesh))
    _add_skin(mesh_obj, rig)
    if rig.shape_keys:
        mesh_obj.shape_key_add(name="Basis", from_mix=False)
        for name, coords in rig.shape_keys:
            key = mesh_obj.shape_key_add(name=name, from_mix=False)
            key.data.foreach_set("co", np.ascontiguousarray(coords, np.float32).ravel())
            key.slider_min, key.slider_max, key.value = -5.0, 5.0, 0.0
    mesh_obj.parent = arm_obj
    modifier = mesh_obj.modifiers.new("Armature", 'ARMATURE')
    modifier.object = arm_obj
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    modifier.use_deform_preserve_volume = False  # plain linear blend skinning, as SMPL
    collection.objects.link(mesh_obj)
    return arm_obj, mesh_obj


def _add_skin(mesh_obj: Any, rig: RigPlan) -> None:
    """One vertex group per bone with SMPL's skinning weights (non-zero entries only)."""
    weights = rig.weights
    for j, name in enumerate(rig.bone_names):
        group = mesh_obj.vertex_groups.new(name=name)
        column = weights[:, j]
        for index in np.nonzero(column)[0].tolist():
            group.add((index,), float(column[index]), 'REPLACE')


def _write_keys(arm_obj: Any, rig: RigPlan, created: _Created) -> None:
    channels = new_object_action(arm_obj, rig.action_name)
    created.add(bpy.data.actions, channels.action)
    keys = KeyWriter(channels, rig.frames.astype(np.float32))

    def path(bone: str) -> str:
        return f'pose.bones["{bpy.utils.escape_identifier(bone)}"]'

    root = rig.bone_parents.index(-1)
    for j, bone in enumerate(rig.bone_names):
        for k in range(4):
            keys.curve(f"{path(bone)}.rotation_quaternion", k, bone, rig.rotations[:, j, k])
        if j == root:
            for k in range(3):
                keys.curve(f"{path(bone)}.location", k, bone, rig.root_location[:, k])
    if rig.contacts is None:
        return
    # One integer custom property per heel and toe (1 = on the ground), keyed with constant steps.
    for column, (joint, prop) in enumerate(CONTACT_CHANNELS):
        bone = rig.bone_names[joint]
        pose_bone = arm_obj.pose.bones[bone]
        pose_bone[prop] = int(rig.contacts[0, column])
        part = "heel" if "heel" in prop else "toe"
        pose_bone.id_properties_ui(prop).update(min=0, max=1, description=f"1 while this foot's {part} is on the "
                                                "ground (the motion file's contacts)")
        keys.curve(f'{path(bone)}["{prop}"]', 0, bone, rig.contacts[:, column].astype(np.float32), 'CONSTANT')


def _build_camera(plan: ImportPlan, collection: Any, created: _Created) -> Any:
    cam = plan.camera
    data = created.add(bpy.data.cameras, bpy.data.cameras.new(cam.name))
    data.type = 'PERSP'
    data.lens_unit = 'MILLIMETERS'
    data.sensor_fit = 'HORIZONTAL'
    data.sensor_width = cam.sensor_width_mm
    data.lens = cam.lens_mm
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.01, 1000.0
    clip = _load_clip(cam.clip_path) if cam.clip_path else None
    if clip is not None:
        created.add(bpy.data.movieclips, clip)
        clip.frame_start = plan.options.frame_offset  # clip frame 0 at the plan's frame of clip frame 0
        clip.frame_offset = 0
        background = data.background_images.new()
        background.source = 'MOVIE_CLIP'
        background.clip = clip
        background.alpha = 1.0
        background.display_depth = 'BACK'
        background.frame_method = 'STRETCH'
        data.show_background_images = True
    obj = created.add(bpy.data.objects, bpy.data.objects.new(cam.name, data))
    if cam.motion is None:
        obj.location = cam.location
        obj.rotation_mode = 'XYZ'
        obj.rotation_euler = cam.rotation_euler
    else:  # the world frame's camera: posed from camera_to_world, keyed when it moves
        motion = cam.motion
        obj.rotation_mode = 'QUATERNION'
        obj.rotation_quaternion = motion.rotations[0].tolist()
        obj.location = motion.locations[0].tolist()
        if motion.animated:
            channels = new_object_action(obj, f"{cam.name}_motion")
            created.add(bpy.data.actions, channels.action)
            keys = KeyWriter(channels, motion.frames.astype(np.float32))
            for k in range(4):
                keys.curve("rotation_quaternion", k, "Object Transforms", motion.rotations[:, k])
            for k in range(3):
                keys.curve("location", k, "Object Transforms", motion.locations[:, k])
    collection.objects.link(obj)
    return obj


def _build_ground(plan: ImportPlan, collection: Any, created: _Created) -> Any:
    """A rectangle at z = 0 centred under the motion (the file's ground plane)."""
    ground = plan.ground
    hx, hy = ground.size[0] / 2.0, ground.size[1] / 2.0
    mesh = created.add(bpy.data.meshes, bpy.data.meshes.new(ground.name))
    mesh.from_pydata([(-hx, -hy, 0.0), (hx, -hy, 0.0), (hx, hy, 0.0), (-hx, hy, 0.0)], [], [(0, 1, 2, 3)])
    mesh.update()
    obj = created.add(bpy.data.objects, bpy.data.objects.new(ground.name, mesh))
    obj.location = (ground.centre[0], ground.centre[1], 0.0)
    obj["staf_ground"] = True
    collection.objects.link(obj)
    return obj


def _load_clip(path: str) -> Any | None:
    """The clip at ``path`` as a Movie Clip, or None where there is no readable video (the motion
    file names the clip it came from; it may have moved, or not be a video at all)."""
    try:
        if not Path(path).is_file():
            return None
        return bpy.data.movieclips.load(path, check_existing=False)
    except (OSError, ValueError, RuntimeError):  # a name the system refuses, or not a movie
        return None


def _match_scene(scene: Any, plan: ImportPlan, camera: Any | None) -> None:
    settings = plan.scene
    scene.render.fps = settings.fps
    scene.render.fps_base = settings.fps_base
    scene.frame_start = settings.frame_start
    scene.frame_end = settings.frame_end
    if settings.width and settings.height:
        scene.render.resolution_x = settings.width
        scene.render.resolution_y = settings.height
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    if camera is not None:
        scene.camera = camera
