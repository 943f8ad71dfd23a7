"""FBX export presets (no bpy): every keyword of ``bpy.ops.export_scene.fbx`` given explicitly.

Blender's defaults are wrong for game engines (leaf bones added, every action and NLA strip
exported, curves thinned); each preset sets all of the exporter's options, so a Blender update
that changes a default changes nothing here. A test checks the table against the operator's
properties in each supported Blender version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["PRESETS", "PRESET_NAMES", "FbxPreset", "get_preset"]

# Options shared by every preset. The exporter runs over a temporary scene holding only the rigs
# to export (so use_selection is off and the user's selection is never touched).
_COMMON: dict[str, Any] = {
    "check_existing": False,
    "use_selection": False,
    "use_visible": False,
    "use_active_collection": False,
    "collection": "",
    "object_types": {"ARMATURE", "MESH"},
    "use_mesh_modifiers": False,  # keep the armature modifier as skinning, never bake it into the mesh
    "use_mesh_modifiers_render": False,
    "mesh_smooth_type": "FACE",
    "colors_type": "NONE",
    "prioritize_active_color": False,
    "use_subsurf": False,
    "use_mesh_edges": False,
    "use_tspace": False,
    "use_triangles": False,
    "use_custom_props": False,
    "add_leaf_bones": False,  # 24 bones stay 24
    "primary_bone_axis": "Y",
    "secondary_bone_axis": "X",
    "use_armature_deform_only": True,
    "armature_nodetype": "NULL",
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,  # one key per frame, nothing thinned
    "path_mode": "AUTO",
    "embed_textures": False,
    "batch_mode": "OFF",
    "use_batch_own_dir": False,
    "use_metadata": True,
    "axis_forward": "-Z",
    "axis_up": "Y",
    "use_space_transform": True,
    "bake_space_transform": False,
}


@dataclass(frozen=True)
class FbxPreset:
    """One target. operator_settings: every ``export_scene.fbx`` keyword except ``filepath``;
    data_scale: factor applied to a temporary copy of the rig (bone positions, mesh, location
    keys) before export, the export scene then declaring 1 unit = 1 m / data_scale (so the file
    says centimetres for 100); root_bone: name of a bone added at the origin above the rig's
    root in that copy (None: none added)."""

    name: str
    description: str
    operator_settings: MappingProxyType = field(repr=False)
    data_scale: float = 1.0
    root_bone: str | None = None


def _preset(name: str, description: str, data_scale: float = 1.0, root_bone: str | None = None,
            **settings: Any) -> FbxPreset:
    return FbxPreset(name, description, MappingProxyType({**_COMMON, **settings}), data_scale, root_bone)


PRESETS: dict[str, FbxPreset] = {
    p.name: p
    for p in (
        _preset(
            "unity", "Unity: metres, Y up; tick 'Bake Axis Conversion' in the model's import settings",
            global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL",
        ),
        _preset(
            "unreal", "Unreal Engine: centimetres in the data, a real 'root' bone at the origin",
            data_scale=100.0, root_bone="root",
            global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_NONE",
        ),
        _preset(
            "generic", "Other tools: metres declared in the file, Y up, no scale on any node",
            global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_UNITS",
        ),
    )
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> FbxPreset:
    """The preset called ``name``; raises ValueError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown FBX preset '{name}': use one of {', '.join(PRESET_NAMES)}") from None
