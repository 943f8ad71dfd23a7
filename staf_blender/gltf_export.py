"""Export characters to glTF 2.0 with Blender's bundled exporter: skin, one animation per person.

``OUT.glb`` (the default: one file) or ``OUT.gltf`` with its ``OUT.bin`` beside it. Every
exporter option is set here (a test checks the table against the operator in each supported
Blender). What the exporter gets wrong, and what is done about it:

- It switches the exported objects' actions and NLA state, resets pose bones and sets the
  window's scene to the one it exported. It runs over copies of the rigs and meshes in a scratch
  scene (:func:`scratch_copies`), the window's scene is put back, and the copies are removed.
- Copies carry Blender's unique names (``walk_p0.001``): the names in the written file (scene,
  nodes, meshes, skins, animations) are set back to the characters' own, and each person's
  animation is named after the character (``walk_p0``).
- It converts frames to seconds as ``frame / (fps * fps_base)`` (29.97 fps comes out as 30.03):
  the scratch scene gets ``fps * fps_base`` equal to the clip's rate, so key times are exact.
- Keys start at the export's first frame: the copies' keys are shifted so it is at t = 0.

Written under temporary names and renamed into place at the end (``files.write_staged``).
"""

from __future__ import annotations

import contextlib
import json
import struct
import urllib.parse
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

import bpy
import numpy as np

from .compat import action_fcurves, copy_action_to
from .errors import AddonError
from .fbx_export import frame_range
from .files import check_writable, split_targets, temp_beside, write_staged
from .rig import RIG_PROPERTY, remove_datablocks

__all__ = ["GLTF_SETTINGS", "GLTF_SUFFIXES", "check_gltf_targets", "clip_rate", "export_gltf", "frame_range",
           "gltf_groups", "rig_bodies", "scratch_copies", "stage_gltf", "write_gltf_file"]

GLTF_SUFFIXES = (".glb", ".gltf")

#: Every ``export_scene.gltf`` keyword except filepath, filter_glob, export_format (set per file)
#: and export_action_filter (off by default; setting it runs a callback that fails outside the UI).
GLTF_SETTINGS = MappingProxyType({
    "check_existing": False,
    "gltf_export_id": "",
    "ui_tab": "GENERAL",
    "will_save_settings": False,
    "export_loglevel": -1,
    "export_copyright": "",
    "export_import_convert_lighting_mode": "SPEC",
    # what is exported: the scratch scene (the context's), nothing chosen by selection
    "use_active_scene": True,
    "use_selection": False,
    "use_visible": False,
    "use_renderable": False,
    "use_active_collection": False,
    "use_active_collection_with_nested": True,
    "collection": "",
    "at_collection_center": False,
    "export_hierarchy_full_collections": False,
    "export_hierarchy_flatten_objs": False,
    "export_cameras": False,
    "export_lights": False,
    "export_extras": False,
    "export_gpu_instances": False,
    "export_yup": True,  # glTF is Y up
    # meshes: the skinned body as it is at rest, no modifier applied (the armature stays a skin)
    "export_apply": False,
    "export_texcoords": True,
    "export_normals": True,
    "export_tangents": False,
    "export_attributes": False,
    "export_gn_mesh": False,
    "use_mesh_edges": False,
    "use_mesh_vertices": False,
    "export_shared_accessors": False,
    "export_vertex_color": "NONE",
    "export_all_vertex_colors": False,
    "export_active_vertex_color_when_no_material": False,
    "export_vertex_color_name": "Color",
    "export_materials": "EXPORT",
    "export_image_format": "AUTO",
    "export_image_add_webp": False,
    "export_image_webp_fallback": False,
    "export_texture_dir": "",
    "export_jpeg_quality": 75,
    "export_image_quality": 75,
    "export_keep_originals": False,
    "export_unused_images": False,
    "export_unused_textures": False,
    "export_original_specular": False,
    "export_draco_mesh_compression_enable": False,
    "export_draco_mesh_compression_level": 6,
    "export_draco_position_quantization": 14,
    "export_draco_normal_quantization": 10,
    "export_draco_texcoord_quantization": 12,
    "export_draco_color_quantization": 10,
    "export_draco_generic_quantization": 12,
    "export_use_gltfpack": False,
    "export_gltfpack_tc": True,
    "export_gltfpack_tq": 8,
    "export_gltfpack_si": 1.0,
    "export_gltfpack_sa": False,
    "export_gltfpack_slb": False,
    "export_gltfpack_vp": 14,
    "export_gltfpack_vt": 12,
    "export_gltfpack_vn": 8,
    "export_gltfpack_vc": 8,
    "export_gltfpack_vpi": "Integer",
    "export_gltfpack_noq": True,
    "export_gltfpack_kn": False,
    # skin: 24 joints, 4 influences per vertex (the one set every glTF reader takes; SMPL has up
    # to 9: the exporter keeps the 4 strongest and renormalises)
    "export_skins": True,
    "export_def_bones": True,
    "export_leaf_bone": False,
    "export_hierarchy_flatten_bones": False,
    "export_armature_object_remove": False,
    "export_rest_position_armature": True,
    "export_influence_nb": 4,
    "export_all_influences": False,
    "export_morph": True,  # the body-shape keys, when the character has them
    "export_morph_normal": True,
    "export_morph_tangent": False,
    "export_morph_animation": True,
    "export_morph_reset_sk_data": True,
    "export_try_sparse_sk": True,
    "export_try_omit_sparse_sk": False,
    # animation: each character's own action only, one key per frame, nothing thinned
    "export_animations": True,
    "export_animation_mode": "ACTIONS",
    "export_merge_animation": "ACTION",
    "export_nla_strips": False,
    "export_nla_strips_merged_animation_name": "Animation",
    "export_anim_single_armature": False,  # True would add every action of the file that fits the rig
    "export_extra_animations": False,
    "export_pointer_animation": False,
    "export_convert_animation_pointer": False,
    "export_frame_range": False,
    "export_frame_step": 1,
    "export_force_sampling": True,
    "export_sampling_interpolation_fallback": "LINEAR",
    "export_bake_animation": False,
    "export_optimize_animation_size": False,
    "export_optimize_animation_keep_anim_armature": True,
    "export_optimize_animation_keep_anim_object": False,
    "export_optimize_disable_viewport": False,
    "export_negative_frame": "SLIDE",
    "export_anim_slide_to_zero": False,
    "export_anim_scene_split_object": True,
    "export_reset_pose_bones": True,
    "export_current_frame": False,
})


def clip_rate(rigs: list[Any], scene: Any) -> Fraction:
    """The frame rate of the characters' clip, exactly (``staf_fps``, e.g. 30000/1001), else the
    scene's; raises AddonError if the characters' rates differ."""
    scene_rate = Fraction(scene.render.fps) / Fraction(scene.render.fps_base).limit_denominator(100000)
    rates = set()
    for rig in rigs:
        try:
            num, den = (int(v) for v in rig.get("staf_fps", (0, 0)))
        except (TypeError, ValueError):
            num = den = 0
        rates.add(Fraction(num, den) if num > 0 and den > 0 else scene_rate)
    if len(rates) != 1:
        listed = ", ".join(f"{float(r):g}" for r in sorted(rates))
        raise AddonError(f"the characters have different frame rates ({listed} fps): export them one at a time")
    return rates.pop()


def _shift_keys(obj: Any, frames: float) -> None:
    """Move every key (and its handles) of ``obj``'s action by ``frames``, in bulk."""
    for curve in action_fcurves(obj):
        points = curve.keyframe_points
        values = np.empty(2 * len(points), np.float32)
        for prop in ("co", "handle_left", "handle_right"):
            points.foreach_get(prop, values)
            values[0::2] += frames
            points.foreach_set(prop, values)
        curve.update()


def rig_bodies(rig: Any) -> list[Any]:
    """The meshes deformed by ``rig`` (its children with an armature modifier pointing at it)."""
    return [o for o in rig.children if o.type == 'MESH'
            and any(m.type == 'ARMATURE' and m.object == rig for m in o.modifiers)]


@contextlib.contextmanager
def scratch_copies(context: Any, rigs: list[Any], *, name: str, meshes: bool = True, shift: float = 0.0,
                   rate: Fraction | None = None) -> Iterator[tuple[Any, list[tuple[Any, Any, list[tuple[Any, Any]]]]]]:
    """A scratch scene holding copies of ``rigs`` (own armature data and action, no NLA tracks,
    keys moved by ``shift`` frames) and, with ``meshes``, of their meshes skinned to the copies.

    Yields ``(scene, [(rig, rig_copy, [(mesh, mesh_copy), ...]), ...])``; afterwards the window's
    scene is what it was and every copy and the scene are removed. ``rate``: the scratch scene's
    ``fps * fps_base``, what Blender's glTF exporter divides frames by (default: the context
    scene's fps and fps_base)."""
    window = getattr(context, "window", None)
    window_scene, window_layer = (window.scene, window.view_layer) if window is not None else (None, None)
    scratch = bpy.data.scenes.new(name)
    made: list[tuple[Any, Any]] = []
    try:
        scratch.unit_settings.system = 'METRIC'
        scratch.unit_settings.scale_length = 1.0
        if rate is None:
            scratch.render.fps, scratch.render.fps_base = context.scene.render.fps, context.scene.render.fps_base
        else:
            scratch.render.fps = max(1, round(rate))
            scratch.render.fps_base = float(rate) / scratch.render.fps
        copies = []
        for rig in rigs:
            arm = rig.copy()
            made.append((bpy.data.objects, arm))
            arm.data = rig.data.copy()
            made.append((bpy.data.armatures, arm.data))
            arm.parent = None
            arm.matrix_world = rig.matrix_world
            if arm.animation_data is not None:
                for track in list(arm.animation_data.nla_tracks):
                    arm.animation_data.nla_tracks.remove(track)
            action = copy_action_to(rig, arm)
            if action is not None:
                made.append((bpy.data.actions, action))
                if shift:
                    _shift_keys(arm, shift)
            scratch.collection.objects.link(arm)
            bodies = []
            for mesh in rig_bodies(rig) if meshes else ():
                body = mesh.copy()
                made.append((bpy.data.objects, body))
                body.data = mesh.data.copy()
                made.append((bpy.data.meshes, body.data))
                body.parent = arm
                for modifier in body.modifiers:
                    if modifier.type == 'ARMATURE' and modifier.object == rig:
                        modifier.object = arm
                scratch.collection.objects.link(body)
                bodies.append((mesh, body))
            copies.append((rig, arm, bodies))
        yield scratch, copies
    finally:
        if window is not None and window.scene != window_scene:
            window.scene = window_scene  # the glTF exporter leaves the window on the scene it exported
            window.view_layer = window_layer
        remove_datablocks(made)
        bpy.data.scenes.remove(scratch)


def check_gltf_targets(path: str | Path, *, overwrite: bool = True) -> list[Path]:
    """The files one glTF target writes (``OUT.glb``; ``OUT.bin`` and ``OUT.gltf``), each checked
    like :func:`files.check_writable`; raises AddonError naming the problem."""
    path = check_writable(path, suffix=GLTF_SUFFIXES, overwrite=overwrite)
    if path.suffix.lower() == ".glb":
        return [path]
    return [check_writable(path.with_suffix(".bin"), suffix=".bin", overwrite=overwrite), path]


def gltf_groups(path: str | Path, rigs: list[Any], *, split: bool = False) -> list[tuple[list[Any], Path]]:
    """Which characters go into which file: all into ``path``, or with ``split`` one file per
    person beside it (``OUT_p<ID>.glb``)."""
    if not split:
        return [(list(rigs), Path(path))]
    targets = split_targets(path, [int(rig[RIG_PROPERTY]) for rig in rigs])
    return [([rig], targets[int(rig[RIG_PROPERTY])]) for rig in rigs]


def _edit_json(file: Path, edit: Callable[[dict], None]) -> None:
    """Apply ``edit`` to the glTF JSON of ``file`` (.gltf, or a .glb's JSON chunk) and rewrite it."""
    data = file.read_bytes()
    if file.suffix.lower() != ".glb":
        doc = json.loads(data)
        edit(doc)
        file.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        return
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    size, kind = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or kind != b"JSON":
        raise AddonError(f"Blender's glTF exporter wrote an unexpected file {file}")
    doc = json.loads(data[20:20 + size])
    edit(doc)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned, JSON padded with spaces
    rest = data[20 + size:]
    file.write_bytes(struct.pack("<4sII", magic, version, 20 + len(text) + len(rest))
                     + struct.pack("<I4s", len(text), kind) + text + rest)


def write_gltf_file(context: Any, rigs: list[Any], file: str | Path, *, bin_name: str | None = None,
                    all_influences: bool = False) -> Path:
    """Write ``rigs`` (with their meshes) to exactly ``file`` (.glb, or .gltf whose buffer is
    ``<file stem>.bin`` beside it, referenced as ``bin_name`` when given): no checks, no rename.
    ``all_influences``: every bone influence of a vertex (sets of 4), not only the 4 strongest.
    Raises AddonError if the exporter fails."""
    if not rigs:
        raise AddonError("nothing to export")
    file = Path(file)
    binary = file.suffix.lower() == ".glb"
    start, _ = frame_range(rigs)
    rate = clip_rate(rigs, context.scene)
    user_scene = context.scene
    with scratch_copies(context, rigs, name=".staf_gltf_export", shift=-start, rate=rate) as (scratch, copies):
        names = {scratch.name: user_scene.name}
        for rig, arm, bodies in copies:
            names[arm.name] = rig.name
            names[arm.data.name] = rig.name
            if arm.animation_data is not None and arm.animation_data.action is not None:
                names[arm.animation_data.action.name] = rig.name  # the person's animation
            for mesh, body in bodies:
                names[body.name] = names[body.data.name] = mesh.name
        settings = dict(GLTF_SETTINGS, export_format='GLB' if binary else 'GLTF_SEPARATE',
                        export_image_format="AUTO" if binary else "NONE",  # .gltf: no image files to stage
                        export_all_influences=all_influences)
        layer = scratch.view_layers[0]
        with context.temp_override(scene=scratch, view_layer=layer):
            try:
                result = bpy.ops.export_scene.gltf(filepath=str(file), **settings)
            except RuntimeError as err:
                raise AddonError(f"Blender's glTF exporter failed: {' '.join(str(err).split())}") from None
    if result != {'FINISHED'} or not file.is_file() or file.stat().st_size == 0:
        raise AddonError(f"Blender's glTF exporter failed to write {file}")

    def rename(doc: dict) -> None:
        for key in ("scenes", "nodes", "meshes", "skins", "animations"):
            for item in doc.get(key, ()):
                if item.get("name") in names:
                    item["name"] = names[item["name"]]
        if not binary and bin_name is not None:
            for buffer in doc.get("buffers", ()):
                if buffer.get("uri") == urllib.parse.quote(f"{file.stem}.bin"):
                    buffer["uri"] = urllib.parse.quote(bin_name)

    _edit_json(file, rename)
    return file


def _stage_file(context: Any, rigs: list[Any], target: Path, staged: list[tuple[Path, Path]],
                all_influences: bool) -> None:
    tmp = temp_beside(target)
    if target.suffix.lower() != ".glb":
        staged.append((tmp.with_suffix(".bin"), target.with_suffix(".bin")))  # the .bin renamed before its .gltf
    staged.append((tmp, target))
    write_gltf_file(context, rigs, tmp, bin_name=target.with_suffix(".bin").name, all_influences=all_influences)


def stage_gltf(context: Any, rigs: list[Any], target: str | Path, staged: list[tuple[Path, Path]], *,
               split: bool = False, overwrite: bool = True, all_influences: bool = False) -> None:
    """Check every file for ``target`` (see :func:`gltf_groups`, :func:`check_gltf_targets`), then
    write them under temporary names beside it, appending each ``(temporary, target)`` pair to
    ``staged`` for the caller to rename."""
    groups = gltf_groups(target, rigs, split=split)
    for _, path in groups:
        check_gltf_targets(path, overwrite=overwrite)
    for group, path in groups:
        _stage_file(context, group, Path(path).expanduser().absolute(), staged, all_influences)


def export_gltf(context: Any, rigs: list[Any], path: str | Path, *, split: bool = False,
                overwrite: bool = True, all_influences: bool = False) -> list[Path]:
    """Write ``rigs`` into one glTF at ``path`` (.glb or .gltf), or with ``split`` one file per
    person beside it; returns the files written. Every target is checked before anything is
    written, and a failure leaves every target as it was."""
    if str(path).startswith("//"):
        path = bpy.path.abspath(str(path))
    if not rigs:
        raise AddonError("nothing to export")
    path = check_gltf_targets(path)[-1]  # the name, folder and permission the split names share
    return write_staged([lambda staged: stage_gltf(context, rigs, path, staged, split=split, overwrite=overwrite,
                                                   all_influences=all_influences)])
