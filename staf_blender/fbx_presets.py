"""FBX export presets (no bpy): every keyword of ``bpy.ops.export_scene.fbx`` given explicitly.

Blender's defaults are wrong for game engines (leaf bones added, every action and NLA strip
exported, curves thinned); each preset sets all of the exporter's options, so a Blender update
that changes a default changes nothing here. A test checks the table against the operator's
properties in each supported Blender version.

Beyond the operator, a preset says what the exported copies look like: their scale, a root bone,
the name of the armature node (Unreal drops the node above the root bone only when it is named
"Armature", Blender's default, and otherwise imports it as an extra bone; Blender's exporter
itself writes the object's name as it is), and how many bone influences a vertex keeps.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["PRESETS", "PRESET_NAMES", "UNREAL_ARMATURE", "FbxPreset", "export_frame_rate", "get_preset", "take_name"]

#: The armature node name Unreal's FBX importer skips (it never becomes a bone).
UNREAL_ARMATURE = "Armature"
#: The longest data-block name, in UTF-8 bytes, Blender 4.5 holds (5.0 holds more).
MAX_NAME_BYTES = 63

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
    root in that copy (None: none added); armature_node: the name of the armature node in the
    file (None: the character's own name; set, a file holds one character); max_influences: the
    bone influences a vertex keeps, the strongest, renormalised (None: all)."""

    name: str
    description: str
    operator_settings: MappingProxyType = field(repr=False)
    data_scale: float = 1.0
    root_bone: str | None = None
    armature_node: str | None = None
    max_influences: int | None = None


def _preset(name: str, description: str, data_scale: float = 1.0, root_bone: str | None = None,
            armature_node: str | None = None, max_influences: int | None = None, **settings: Any) -> FbxPreset:
    return FbxPreset(name, description, MappingProxyType({**_COMMON, **settings}), data_scale, root_bone,
                     armature_node, max_influences)


PRESETS: dict[str, FbxPreset] = {
    p.name: p
    for p in (
        _preset(
            "unity", "Unity: metres, Y up, 4 bone influences per vertex; tick 'Bake Axis Conversion' in the "
            "model's import settings", max_influences=4,
            global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL",
        ),
        _preset(
            "unreal", "Unreal Engine: centimetres in the data, a real 'root' bone at the origin under an "
            "armature node Unreal skips, 4 bone influences per vertex; one character per file",
            data_scale=100.0, root_bone="root", armature_node=UNREAL_ARMATURE, max_influences=4,
            global_scale=1.0, apply_unit_scale=True, apply_scale_options="FBX_SCALE_NONE",
        ),
        _preset(
            "generic", "Other tools: metres declared in the file, Y up, no scale on any node, every bone "
            "influence kept",
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


def take_name(rig_names: list[str], person_ids: list[int]) -> str:
    """The name of the file's one take: the character's name for one, else the clip's name their
    names share (``walk_p0``, ``walk_p2`` -> ``walk``), else their names joined by ``+`` (cut to
    the longest name Blender holds)."""
    if not rig_names:
        raise ValueError("no characters")
    if len(rig_names) == 1:
        return rig_names[0]
    bases = []
    for name, pid in zip(rig_names, person_ids, strict=True):
        suffix = f"_p{int(pid)}"
        bases.append(name[:-len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name)
    name = bases[0] if len(set(bases)) == 1 else "+".join(rig_names)
    return name.encode()[:MAX_NAME_BYTES].decode(errors="ignore")  # Blender's longest name (4.5)


def export_frame_rate(fps: int, fps_base: float, exact: tuple[int, int] | None) -> tuple[int, float]:
    """The (fps, fps_base) to export with: the scene's, or where it is the rate ``exact``
    (numerator, denominator; the clip's) an equal pair Blender stores without rounding, so the
    exporter's key times are exact: 30 / 1.001 (fps_base is a 32-bit float, 1.00100004...) ->
    30000 / 1001."""
    if not exact or exact[0] <= 0 or exact[1] <= 0 or fps <= 0 or fps_base <= 0:
        return fps, fps_base
    num, den = (int(v) for v in exact)
    if not math.isclose(fps / fps_base, num / den, rel_tol=1e-6):
        return fps, fps_base
    common = math.gcd(num, den)
    num, base = num // common, float(den // common)
    while num > 32767 and num % 2 == 0:  # Blender's largest fps
        num, base = num // 2, base / 2.0
    if num > 32767 or struct.unpack("f", struct.pack("f", base))[0] != base:
        return fps, fps_base
    return num, base
