"""Export characters to FBX with a preset (unity, unreal, generic), written atomically.

The exporter runs over a scratch scene that holds only copies of the rigs to export and their
meshes, so the user's scene, selection and current frame are never touched. The copies carry what
the file should hold: the originals' names (the Unreal preset's armature is named "Armature", the
node Unreal skips), keys moved so the first frame is at time 0, centimetres and a real ``root``
bone for Unreal, and at most the preset's bone influences per vertex (the strongest,
renormalised; the largest mesh deviation that causes is measured and reported). A user's
data-block holding one of those names lends it for the export and gets it back. The scratch scene,
named after the take, and the copies are removed afterwards. The file is written beside the
target under a temporary name and renamed over it at the end: a failed export leaves nothing on
disk.

Several characters go into one file (one take spanning all of their frames: a character who
appears later holds their first pose until then), or with ``split`` into one file per person,
``OUT_p<ID>.fbx``, each spanning that person's own frames; all targets are checked first.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from .compat import action_fcurves, copy_action_to
from .errors import EXIT_USAGE, AddonError
from .fbx_presets import FbxPreset, export_frame_rate, get_preset, take_name
from .files import check_all_writable, check_writable, publish, split_targets, temp_beside
from .influences import InfluenceLimit, influence_counts, keep_strongest, skinning_deviation
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


def frame_range(rigs: Iterable[Any]) -> tuple[int, int]:
    """The first and last keyed frame over ``rigs``' actions; raises AddonError if none has keys."""
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


class _LentNames:
    """Names the exported copies borrow from the user's own data-blocks: the copies must carry the
    names the file should hold (the character's, or "Armature"), which Blender keeps unique, so a
    local block holding one is renamed for the export and gets its name back afterwards."""

    def __init__(self) -> None:
        self._lent: list[tuple[Any, str]] = []

    def give(self, collection: Any, block: Any, name: str) -> None:
        """Name ``block`` exactly ``name`` in ``collection`` (a ``bpy.data`` collection)."""
        holder = collection.get((name, None))  # linked blocks have names of their own library
        if holder is not None and holder != block:
            spare = next(f".staf_lent_{i}" for i in range(len(collection) + 1) if f".staf_lent_{i}" not in collection)
            self._lent.append((holder, holder.name))
            holder.name = spare
        block.name = name
        if block.name != name:
            raise AddonError(f"cannot give the exported copy the name '{name}'")

    def restore(self) -> None:
        """Every lender's name back (call once the copies are gone)."""
        while self._lent:
            holder, name = self._lent.pop()
            holder.name = name


def _retime(curve: Any, shift: float, scale: float) -> None:
    """Move ``curve``'s keys (and handles) by ``shift`` frames and scale their values by ``scale``."""
    points = curve.keyframe_points
    values = np.empty(2 * len(points), np.float64)
    for attr in ("co", "handle_left", "handle_right"):
        points.foreach_get(attr, values)
        values[0::2] += shift
        values[1::2] *= scale
        points.foreach_set(attr, values)
    curve.update()


def _export_copy(rig: Any, preset: FbxPreset, scratch: Any, made: list[tuple[Any, Any]], names: _LentNames,
                 first_frame: int) -> tuple[Any, list[Any]]:
    """Link into ``scratch`` a copy of ``rig`` and its meshes as the file should hold them: keys
    moved so ``first_frame`` is frame 0, scaled by ``preset.data_scale``, ``preset.root_bone``
    added above the rig's root bones, named as the originals (the armature
    ``preset.armature_node`` where set). Returns the armature copy and its mesh copies."""
    scale = preset.data_scale
    matrix = Matrix.Scale(scale, 4)
    arm = rig.copy()
    made.append((bpy.data.objects, arm))
    names.give(bpy.data.objects, arm, preset.armature_node or rig.name)
    arm.data = rig.data.copy()
    made.append((bpy.data.armatures, arm.data))
    action = copy_action_to(rig, arm)
    if action is not None:
        made.append((bpy.data.actions, action))
    scratch.collection.objects.link(arm)
    if scale != 1.0:
        arm.data.transform(matrix)
        arm.location = arm.location * scale
    for curve in action_fcurves(arm):
        location = curve.data_path == "location" or curve.data_path.endswith(".location")
        _retime(curve, -float(first_frame), scale if location else 1.0)
    if preset.root_bone and preset.root_bone not in arm.data.bones:
        _add_root_bone(arm, scratch, preset.root_bone, 0.1 * scale)
    meshes = []
    for mesh in rig_meshes(rig):
        copy = mesh.copy()
        made.append((bpy.data.objects, copy))
        names.give(bpy.data.objects, copy, mesh.name)
        copy.data = mesh.data.copy()
        made.append((bpy.data.meshes, copy.data))
        names.give(bpy.data.meshes, copy.data, mesh.data.name)  # the file's Geometry and BindPose names
        copy.parent = arm
        if scale != 1.0:
            copy.data.transform(matrix, shape_keys=True)
            copy.location = copy.location * scale
            copy.matrix_parent_inverse = matrix @ mesh.matrix_parent_inverse @ matrix.inverted()
        for modifier in copy.modifiers:
            if modifier.type == 'ARMATURE' and modifier.object == rig:
                modifier.object = arm
        scratch.collection.objects.link(copy)
        meshes.append(copy)
    return arm, meshes


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


def _vertex_weights(mesh: Any, bones: list[str]) -> np.ndarray:
    """The weights (V, J) of ``mesh``'s vertex groups named after ``bones``."""
    column = {mesh.vertex_groups[b].index: j for j, b in enumerate(bones) if b in mesh.vertex_groups}
    weights = np.zeros((len(mesh.data.vertices), len(bones)))
    for vertex in mesh.data.vertices:
        for entry in vertex.groups:
            j = column.get(entry.group)
            if j is not None:
                weights[vertex.index, j] = entry.weight
    return weights


def _write_weights(mesh: Any, bones: list[str], before: np.ndarray, after: np.ndarray) -> None:
    for j, bone in enumerate(bones):
        if bone not in mesh.vertex_groups:
            continue
        group = mesh.vertex_groups[bone]
        gone = np.nonzero((before[:, j] > 0.0) & (after[:, j] <= 0.0))[0]
        if len(gone):
            group.remove(gone.tolist())
        for index in np.nonzero(after[:, j] > 0.0)[0].tolist():
            group.add((index,), float(after[index, j]), 'REPLACE')


def _keyed_frames(arm: Any, most: int = 200) -> list[int]:
    """The frames the armature's action has keys on, at most ``most`` of them spread evenly."""
    frames: set[float] = set()
    for curve in action_fcurves(arm):
        co = np.empty(2 * len(curve.keyframe_points))
        curve.keyframe_points.foreach_get("co", co)
        frames.update(co[0::2].tolist())
    ordered = sorted({math.floor(f + 0.5) for f in frames})
    if len(ordered) > most:
        ordered = sorted({ordered[i] for i in np.linspace(0, len(ordered) - 1, most).round().astype(int)})
    return ordered


def _limit_influences(context: Any, scratch: Any, arm: Any, mesh: Any, limit: int,
                      data_scale: float) -> InfluenceLimit | None:
    """Keep the ``limit`` strongest bone influences of each of ``mesh``'s vertices (a copy) and
    measure the largest deviation that causes at the armature's keyed frames (None: nothing to
    drop). Runs inside a context override on ``scratch``."""
    bones = [b.name for b in arm.data.bones if b.use_deform]
    before = _vertex_weights(mesh, bones)
    counts = influence_counts(before)
    most = int(counts.max(initial=0))
    if most <= limit:
        return None
    after = keep_strongest(before, limit)
    _write_weights(mesh, bones, before, after)
    rest_inv = np.linalg.inv(np.array([np.array(arm.data.bones[b].matrix_local) for b in bones]))
    frames = _keyed_frames(arm)
    skins = np.empty((len(frames), len(bones), 4, 4))
    to_armature = np.eye(4)
    for i, frame in enumerate(frames):
        scratch.frame_set(frame)
        graph = context.evaluated_depsgraph_get()
        posed = arm.evaluated_get(graph)
        if i == 0:
            to_armature = np.linalg.inv(np.array(posed.matrix_world)) @ np.array(mesh.evaluated_get(graph).matrix_world)
        skins[i] = np.array([np.array(posed.pose.bones[b].matrix) for b in bones]) @ rest_inv
    co = np.empty(3 * len(mesh.data.vertices))
    mesh.data.vertices.foreach_get("co", co)
    rest = co.reshape(-1, 3) @ to_armature[:3, :3].T + to_armature[:3, 3]
    worst = skinning_deviation(rest, before, after, skins).max(initial=0.0) if frames else 0.0
    return InfluenceLimit(mesh.name, limit, most, int(np.count_nonzero(counts > limit)), len(counts),
                          float(worst) / data_scale, len(frames))


def export_fbx(context: Any, rigs: list[Any], path: str | Path, preset_name: str, *, overwrite: bool = True,
               max_influences: int | None = None, report: Callable[[InfluenceLimit], None] | None = None) -> Path:
    """Write ``rigs`` (STAF armatures, with their meshes) into one FBX at ``path``; returns the path."""
    return export_characters(context, rigs, path, preset_name, overwrite=overwrite, max_influences=max_influences,
                             report=report)[0]


def export_characters(context: Any, rigs: list[Any], path: str | Path, preset_name: str, *, split: bool = False,
                      overwrite: bool = True, max_influences: int | None = None,
                      report: Callable[[InfluenceLimit], None] | None = None) -> list[Path]:
    """Write ``rigs`` into one FBX at ``path``, or with ``split`` one file per person beside it
    (``OUT_p<ID>.fbx``); returns the files written. ``max_influences`` and ``report``: as for
    :func:`write_fbx_file`.

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
        _check_group(preset, rigs)
        groups = [list(rigs)]
        paths = check_all_writable([path], suffix=".fbx", overwrite=overwrite)
    _influence_limit(preset, max_influences)
    staged: list[tuple[Path, Path]] = []
    try:
        for target, group in zip(paths, groups, strict=True):
            staged.append((temp_beside(target), target))
            write_fbx_file(context, group, staged[-1][0], preset, max_influences=max_influences, report=report)
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


def _check_group(preset: FbxPreset, rigs: list[Any]) -> None:
    if preset.armature_node and len(rigs) > 1:
        raise AddonError(f"the {preset.name} preset writes one character per file (its armature node must be named "
                         f"'{preset.armature_node}'): export one file per person (--split) or one character",
                         EXIT_USAGE)


def _influence_limit(preset: FbxPreset, max_influences: int | None) -> int | None:
    """The influences to keep: the preset's (None given), all (0), or ``max_influences``."""
    if max_influences is None:
        return preset.max_influences
    if isinstance(max_influences, bool) or not isinstance(max_influences, int) or max_influences < 0:
        raise AddonError(f"bone influences per vertex: give a whole number (0: all), not {max_influences!r}",
                         EXIT_USAGE)
    return max_influences or None


def write_fbx_file(context: Any, rigs: list[Any], file: str | Path, preset: FbxPreset | str, *,
                   max_influences: int | None = None, report: Callable[[InfluenceLimit], None] | None = None) -> Path:
    """Write ``rigs`` to exactly ``file`` (the caller's temporary name: no checks, no rename); raises
    AddonError if the exporter fails.

    The file holds copies of the rigs and their meshes, named as the originals, in one take named
    after the character (several: their clip) whose first frame is at time 0. ``max_influences``
    overrides the preset's bone influences per vertex (0: all); ``report`` is given, for each mesh
    whose influences were limited, what that changed and the largest mesh deviation it causes."""
    preset = _preset(preset) if isinstance(preset, str) else preset
    if not rigs:
        raise AddonError("nothing to export")
    _check_group(preset, rigs)
    limit = _influence_limit(preset, max_influences)
    file = Path(file)
    start, end = frame_range(rigs)
    user_scene = context.scene
    scratch = bpy.data.scenes.new(".staf_fbx_export")
    made: list[tuple[Any, Any]] = []
    names = _LentNames()
    try:
        names.give(bpy.data.scenes, scratch, take_name([r.name for r in rigs], [int(r[RIG_PROPERTY]) for r in rigs]))
        # The rigs are in metres whatever the user's unit settings; a scaled copy is in 1/data_scale m.
        scratch.unit_settings.system = 'METRIC'
        scratch.unit_settings.scale_length = 1.0 / preset.data_scale
        clip_rate = next((tuple(r["staf_fps"]) for r in rigs if len(r.get("staf_fps", ())) == 2), None)
        scratch.render.fps, scratch.render.fps_base = export_frame_rate(
            user_scene.render.fps, user_scene.render.fps_base, clip_rate)
        scratch.frame_start, scratch.frame_end = 0, end - start
        scratch.frame_current = 0
        copies = [_export_copy(rig, preset, scratch, made, names, start) for rig in rigs]
        with context.temp_override(scene=scratch, view_layer=scratch.view_layers[0]):
            changes = [] if limit is None else [
                _limit_influences(context, scratch, arm, mesh, limit, preset.data_scale)
                for arm, meshes in copies for mesh in meshes]
            scratch.frame_set(0)
            result = bpy.ops.export_scene.fbx(filepath=str(file), **dict(preset.operator_settings))
        if result != {'FINISHED'} or not file.is_file() or file.stat().st_size == 0:
            raise AddonError(f"Blender's FBX exporter failed to write {file}")
        for change in changes:
            if change is not None and report is not None:
                report(change)
        return file
    finally:
        remove_datablocks(made)
        bpy.data.scenes.remove(scratch)
        names.restore()
