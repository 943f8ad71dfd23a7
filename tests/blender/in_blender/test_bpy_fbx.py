"""FBX export: every exporter option set by each preset, round trips through Blender's importer,
the units written in the file, and failures that leave nothing behind."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_checks import add_user_content, evaluated_vertices, snapshot

from staf_blender.errors import AddonError
from staf_blender.fbx_export import export_fbx, find_rigs
from staf_blender.fbx_presets import PRESETS
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file

FRAMES = (1, 13, 24, 48)  # Blender frames; the walk has no keys at 21-24 (a detection gap)


def parse_fbx():
    """Blender's own FBX parser (pure Python, ships with the FBX add-on)."""
    for path in importlib.import_module("addon_utils").paths():  # importable once bpy is
        if path not in sys.path:
            sys.path.append(path)
    return importlib.import_module("io_scene_fbx.parse_fbx")


def fbx_settings(path) -> tuple[dict, dict]:
    """GlobalSettings properties and each model's Lcl Scaling, from the file itself."""
    root, _ = parse_fbx().parse(str(path))

    def props(elem):
        found = {}
        for block in (e for e in elem.elems if e.id == b"Properties70"):
            for p in block.elems:
                found[p.props[0].decode()] = p.props[4:]
        return found

    settings = props(next(e for e in root.elems if e.id == b"GlobalSettings"))
    objects = next(e for e in root.elems if e.id == b"Objects")
    scales = {m.props[1].split(b"\x00")[0].decode(): props(m).get("Lcl Scaling", [1.0, 1.0, 1.0])
              for m in objects.elems if m.id == b"Model"}
    return settings, scales


def test_presets_set_every_exporter_option():
    rna = bpy.ops.export_scene.fbx.get_rna_type()
    options = {p.identifier: p for p in rna.properties if p.identifier not in ("rna_type", "filepath", "filter_glob")}
    for preset in PRESETS.values():
        assert set(preset.operator_settings) == set(options), preset.name
        for key, value in preset.operator_settings.items():
            prop = options[key]
            if prop.type == 'ENUM':
                items = {i.identifier for i in prop.enum_items}
                assert (set(value) if prop.is_enum_flag else {value}) <= items, (preset.name, key, value)


@pytest.mark.parametrize("preset, bones", [("unity", 24), ("unreal", 25), ("generic", 24)])
def test_round_trip_through_blenders_importer(ref, tmp_path, preset, bones):
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    (mesh,) = result.meshes
    expected = {f: evaluated_vertices(mesh, f) for f in FRAMES}
    add_user_content()
    before = snapshot()
    path = export_fbx(bpy.context, list(result.armatures), tmp_path / "walk.fbx", preset)
    assert snapshot() == before  # the scratch scene and copies are gone, nothing else moved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.fbx"]

    settings, scales = fbx_settings(path)
    unit_cm = settings["UnitScaleFactor"][0]  # centimetres per file unit
    assert unit_cm == (1.0 if preset == "unreal" else 100.0)
    if preset in ("unreal", "generic", "unity"):
        assert all(np.allclose(s, 1.0) for s in scales.values()), scales  # no node carries a scale

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    (arm,) = [o for o in bpy.data.objects if o.type == 'ARMATURE']
    (body,) = [o for o in bpy.data.objects if o.type == 'MESH']
    assert len(arm.data.bones) == bones and ("root" in arm.data.bones) == (preset == "unreal")
    # Blender's FBX importer converts key times with the integer frame rate (30, not 29.97): its keys
    # land at frame * 30 / 29.97. The file itself is exact; undo the importer's stretch to compare.
    scene = bpy.context.scene
    stretch = scene.render.fps / (scene.render.fps / scene.render.fps_base)
    start, end = arm.animation_data.action.frame_range
    assert (start / stretch, end / stretch) == (pytest.approx(1.0), pytest.approx(48.0))
    worst = max(np.abs(evaluated_vertices(body, f * stretch) - expected[f]).max() for f in FRAMES)
    assert worst < 1e-4, f"{preset}: re-imported mesh is {worst:.2e} m off"


def test_export_operator_and_bad_targets(ref, tmp_path, addon):
    with pytest.raises(AddonError, match="no character made by STAF"):
        find_rigs(bpy.context)
    result = import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions())
    assert set(find_rigs(bpy.context)) == set(result.armatures)  # nothing selected: every character
    result.meshes[1].select_set(True)
    assert find_rigs(bpy.context) == [result.armatures[1]]
    assert bpy.ops.staf.export_fbx(filepath=str(tmp_path / "one.fbx"), preset='generic') == {'FINISHED'}
    assert (tmp_path / "one.fbx").stat().st_size > 0
    (tmp_path / "a_file").write_text("x")
    before = snapshot()
    for target, message in ((tmp_path / "a_file" / "x.fbx", "does not exist"),
                            (tmp_path / "missing" / "x.fbx", "does not exist"),
                            (tmp_path / "x.obj", r"must end in \.fbx"),
                            (tmp_path, "is a folder"),
                            (Path("/proc/staf-test.fbx"), "cannot write")):  # refused even to root
        with pytest.raises(AddonError, match=message):
            export_fbx(bpy.context, list(result.armatures), target, "unity")
        with pytest.raises(RuntimeError, match=message):  # the operator reports the same line
            bpy.ops.staf.export_fbx(filepath=str(target), preset='unity')
    with pytest.raises(AddonError, match="unknown FBX preset"):
        export_fbx(bpy.context, list(result.armatures), tmp_path / "y.fbx", "godot")
    assert snapshot() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "one.fbx"]
