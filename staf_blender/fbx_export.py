"""Export characters to FBX with a preset (unity, unreal, generic), written atomically.

The exporter runs over a scratch scene that holds only the rigs to export (their meshes with
them), so the user's scene, selection and current frame are never touched. The Unreal preset
exports a scaled copy (centimetres in the data) with a real ``root`` bone at the origin; the
copies and the scratch scene are removed afterwards. The file is written beside the target under a
temporary name and renamed over it at the end: a failed export leaves nothing on disk.

Several characters go into one file (one take spanning all of their frames: a character who
appears later holds their first pose until then), or with ``split`` into one file per person,
``OUT_p<ID>.fbx``, each spanning that person's own frames; all targets are checked first.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix

from .compat import action_fcurves, copy_action_to
from .errors import AddonError
from .fbx_presets import FbxPreset, get_preset
from .files import check_all_writable, check_writable, publish, split_targets, temp_beside
from .rig import RIG_PROPERTY, is_staf_rig, remove_datablocks

__all__ = ["export_characters", "export_fbx", "find_rigs", "rig_meshes", "write_fbx_file"]


def find_rigs(context: Any) -> list[Any]:
    """The STAF armatures to export: those selected (or the armature of a selected body), else the
    active one, else every one in the scene; raises AddonError if there is none."""
    def rig_of(obj: Any) -> Any:
        if is_staf_rig(obj):
            return obj
        parent = getattr(obj, "parent", None)
        return parent if is_staf_rig(parent) else None

    picked = [rig_of(o) for o in getattr(context, "selected_objects", None) or ()]
    rigs = list(dict.fromkeys(r for r in picked if r is not None))
    if not rigs and rig_of(getattr(context, "active_object", None)) is not None:
        rigs = [rig_of(context.active_object)]
    if not rigs:
        rigs = [o for o in context.scene.objects if is_staf_rig(o)]
    if not rigs:
        raise AddonError("no character made by STAF is in this scene: import or reconstruct one first")
    return rigs


def rig_meshes(rig: Any) -> list[Any]:
    """The meshes deformed by ``rig`` (its children with an armature modifier pointing at it)."""
    return [o for o in rig.children if o.type == 'MESH'
            and any(m.type == 'ARMATURE' and m.object == rig for m in o.modifiers)]


def _frame_range(rigs: Iterable[Any]) -> tuple[int, int]:
    starts, ends = [], []
    for rig in rigs:
        anim = rig.animation_data
        if anim is not None and anim.action is not None:
            start, end = anim.action.frame_range
            starts.append(math.floor(start + 0.5))
            ends.append(math.floor(end + 0.5))
    if not starts:
        raise AddonError("the character has no animation to export")
    return min(starts), max(ends)


def _scaled_copy(rig: Any, preset: FbxPreset, scratch: Any, made: list[tuple[Any, Any]]) -> None:
    """Link into ``scratch`` a copy of ``rig`` and its meshes scaled by ``preset.data_scale``, with
    ``preset.root_bone`` added above the rig's root bones."""
    scale = preset.data_scale
    matrix = Matrix.Scale(scale, 4)
    arm = rig.copy()
    made.append((bpy.data.objects, arm))
    arm.name = f"{rig.name}_{preset.name}"
    arm.data = rig.data.copy()
    made.append((bpy.data.armatures, arm.data))
    action = copy_action_to(rig, arm)
    if action is not None:
        made.append((bpy.data.actions, action))
    scratch.collection.objects.link(arm)
    arm.data.transform(matrix)
    arm.location = arm.location * scale
    for curve in action_fcurves(arm):
        if curve.data_path == "location" or curve.data_path.endswith(".location"):
            for point in curve.keyframe_points:
                point.co.y *= scale
                point.handle_left.y *= scale
                point.handle_right.y *= scale
            curve.update()
    if preset.root_bone and preset.root_bone not in arm.data.bones:
        _add_root_bone(arm, scratch, preset.root_bone, 0.1 * scale)
    for mesh in rig_meshes(rig):
        copy = mesh.copy()
        made.append((bpy.data.objects, copy))
        copy.name = f"{mesh.name}_{preset.name}"
        copy.data = mesh.data.copy()
        made.append((bpy.data.meshes, copy.data))
        copy.data.transform(matrix, shape_keys=True)
        copy.parent = arm
        copy.location = copy.location * scale
        copy.matrix_parent_inverse = matrix @ mesh.matrix_parent_inverse @ matrix.inverted()
        for modifier in copy.modifiers:
            if modifier.type == 'ARMATURE' and modifier.object == rig:
                modifier.object = arm
        scratch.collection.objects.link(copy)


def _add_root_bone(arm: Any, scratch: Any, name: str, length: float) -> None:
    layer = scratch.view_layers[0]
    layer.objects.active = arm
    with bpy.context.temp_override(scene=scratch, view_layer=layer, active_object=arm, object=arm):
        bpy.ops.object.mode_set(mode='EDIT')
        try:
            bones = arm.data.edit_bones
            orphans = [b for b in bones if b.parent is None]
            root = bones.new(name)
            root.head, root.tail, root.roll = (0.0, 0.0, 0.0), (0.0, 0.0, length), 0.0
            for bone in orphans:
                bone.parent = root
        finally:
            bpy.ops.object.mode_set(mode='OBJECT')


def export_fbx(context: Any, rigs: list[Any], path: str | Path, preset_name: str, *, overwrite: bool = True) -> Path:
    """Write ``rigs`` (STAF armatures, with their meshes) into one FBX at ``path``; returns the path."""
    return export_characters(context, rigs, path, preset_name, overwrite=overwrite)[0]


def export_characters(context: Any, rigs: list[Any], path: str | Path, preset_name: str, *, split: bool = False,
                      overwrite: bool = True) -> list[Path]:
    """Write ``rigs`` into one FBX at ``path``, or with ``split`` one file per person beside it
    (``OUT_p<ID>.fbx``); returns the files written.

    Every target is checked before any is written, each file is written under a temporary name,
    and the files are renamed into place only once all of them were written: a failure leaves
    every target as it was."""
    preset = _preset(preset_name)
    if str(path).startswith("//"):
        path = bpy.path.abspath(str(path))
    if not rigs:
        raise AddonError("nothing to export")
    if split:
        targets = split_targets(path, [int(rig[RIG_PROPERTY]) for rig in rigs])
        check_writable(path, suffix=".fbx")  # the name, folder and permission the split names share
        groups = [[rig] for rig in rigs]
        paths = check_all_writable(targets.values(), suffix=".fbx", overwrite=overwrite)
    else:
        groups = [list(rigs)]
        paths = check_all_writable([path], suffix=".fbx", overwrite=overwrite)
    staged: list[tuple[Path, Path]] = []
    try:
        for target, group in zip(paths, groups, strict=True):
            staged.append((temp_beside(target), target))
            write_fbx_file(context, group, staged[-1][0], preset)
        for tmp, target in staged:
            publish(tmp, target)
        staged.clear()
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return paths


def _preset(name: str) -> FbxPreset:
    try:
        return get_preset(name)
    except ValueError as err:
        raise AddonError(str(err)) from None


def write_fbx_file(context: Any, rigs: list[Any], file: str | Path, preset: FbxPreset | str) -> Path:
    """Write ``rigs`` to exactly ``file`` (the caller's temporary name: no checks, no rename) through
    a scratch scene spanning every rig's frames; raises AddonError if the exporter fails."""
    preset = _preset(preset) if isinstance(preset, str) else preset
    if not rigs:
        raise AddonError("nothing to export")
    file = Path(file)
    start, end = _frame_range(rigs)
    user_scene = context.scene
    scratch = bpy.data.scenes.new(".staf_fbx_export")
    made: list[tuple[Any, Any]] = []
    try:
        # The rigs are in metres whatever the user's unit settings; a scaled copy is in 1/data_scale m.
        scratch.unit_settings.system = 'METRIC'
        scratch.unit_settings.scale_length = 1.0 / preset.data_scale
        scratch.render.fps = user_scene.render.fps
        scratch.render.fps_base = user_scene.render.fps_base
        scratch.frame_start, scratch.frame_end = start, end
        scratch.frame_current = start
        for rig in rigs:
            if preset.data_scale != 1.0 or preset.root_bone:
                _scaled_copy(rig, preset, scratch, made)
            else:
                scratch.collection.objects.link(rig)
                for mesh in rig_meshes(rig):
                    scratch.collection.objects.link(mesh)
        with context.temp_override(scene=scratch, view_layer=scratch.view_layers[0]):
            result = bpy.ops.export_scene.fbx(filepath=str(file), **dict(preset.operator_settings))
        if result != {'FINISHED'} or not file.is_file() or file.stat().st_size == 0:
            raise AddonError(f"Blender's FBX exporter failed to write {file}")
        return file
    finally:
        remove_datablocks(made)
        bpy.data.scenes.remove(scratch)
