"""FBX with several characters: all of them in one file (one take spanning everyone), or one file
per person (``OUT_p<ID>.fbx``, each spanning that person's frames, its first frame at time 0);
every target checked before any is written. Each file is read back by Blender's importer and by
an independent reader (ufbx, tests/blender/fbx_tree.py). The mesh round trips keep every bone
influence (``max_influences=0``): limiting them is checked in test_bpy_fbx.py."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_checks import evaluated_vertices, snapshot
from ufbx_reader import fbx_tree

import staf_blender.fbx_export as fbx_export
from staf_blender.errors import AddonError
from staf_blender.fbx_export import export_characters
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file

SPANS = {0: (1, 40), 1: (13, 40), 2: (1, 30)}  # Blender frames of each person of the trio
FRAMES = (5, 13, 20, 35)  # person 0's gap is 17..22; person 1 starts at 13; person 2 ends at 30


def reimport(path: Path) -> dict[str, tuple[object, object]]:
    """Blender's importer on ``path`` in an empty file: armature name -> (armature, its mesh)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    found = {}
    for arm in (o for o in bpy.data.objects if o.type == 'ARMATURE'):
        (mesh,) = [o for o in bpy.data.objects if o.type == 'MESH' and any(
            m.type == 'ARMATURE' and m.object == arm for m in o.modifiers)]
        found[arm.name] = (arm, mesh)
    return found


def action_range(arm) -> tuple[float, float]:
    start, end = arm.animation_data.action.frame_range
    return round(start, 3), round(end, 3)


@pytest.fixture()
def trio(ref):
    """The trio imported, with every person's evaluated mesh at FRAMES."""
    result = import_motion_file(bpy.context, ref / "trio.npz", ImportOptions())
    expected = {arm.name: {f: evaluated_vertices(mesh, f) for f in FRAMES}
                for arm, mesh in zip(result.armatures, result.meshes, strict=True)}
    return result, expected


def test_one_fbx_holds_every_character(trio, tmp_path):
    result, expected = trio
    before = snapshot()
    (path,) = export_characters(bpy.context, list(result.armatures), tmp_path / "trio.fbx", "unity", max_influences=0)
    assert snapshot() == before and sorted(p.name for p in tmp_path.iterdir()) == ["trio.fbx"]
    rigs = reimport(path)
    assert sorted(rigs) == ["trio_p0", "trio_p1", "trio_p2"]
    for name, (arm, mesh) in rigs.items():
        assert len(arm.data.bones) == 24 and mesh.name == f"{name}_body"
        assert action_range(arm) == (0.0, 39.0)  # one take spans everyone (a late person holds their first pose)
        worst = max(np.abs(evaluated_vertices(mesh, f - 1) - expected[name][f]).max() for f in FRAMES)
        assert worst < 1e-4, f"{name}: re-imported mesh is {worst:.2e} m off"


def test_one_file_per_person(trio, tmp_path):
    result, expected = trio
    paths = export_characters(bpy.context, list(result.armatures), tmp_path / "trio.fbx", "unity", split=True,
                              max_influences=0)
    assert paths == [tmp_path / f"trio_p{i}.fbx" for i in (0, 1, 2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio_p0.fbx", "trio_p1.fbx", "trio_p2.fbx"]
    for pid, path in enumerate(paths):
        rigs = reimport(path)
        assert sorted(rigs) == [f"trio_p{pid}"]
        arm, mesh = rigs[f"trio_p{pid}"]
        first, last = SPANS[pid]
        assert action_range(arm) == (0.0, last - first)  # each file spans its person's own frames, from 0
        own = [f for f in FRAMES if first <= f <= last]
        worst = max(np.abs(evaluated_vertices(mesh, f - first) - expected[arm.name][f]).max() for f in own)
        assert worst < 1e-4, f"{arm.name}: re-imported mesh is {worst:.2e} m off"


def test_an_independent_reader_sees_each_person(trio, tmp_path):
    result, _ = trio
    rigs = list(result.armatures)
    (one,) = export_characters(bpy.context, rigs, tmp_path / "trio.fbx", "unity")
    tree = fbx_tree(one)
    assert tree["rigs"] == {"trio_p0": 24, "trio_p1": 24, "trio_p2": 24} and tree["unit_meters"] == 1.0
    assert {name: (m["geometry"], m["vertices"], m["skinned_to"]) for name, m in tree["meshes"].items()} == {
        f"trio_p{i}_body": (f"trio_p{i}_body", 6890, [f"trio_p{i}"]) for i in range(3)}
    assert tree["take"] == pytest.approx([0.0, 39 / 25]) and tree["take_name"] == "trio"  # the clip
    for pid, path in zip((0, 1, 2), export_characters(bpy.context, rigs, tmp_path / "u.fbx", "unreal", split=True),
                         strict=True):
        tree = fbx_tree(path)
        assert tree["rigs"] == {"Armature": 25} and tree["unit_meters"] == pytest.approx(0.01)
        assert {name: (m["geometry"], m["skinned_to"]) for name, m in tree["meshes"].items()} == {
            f"trio_p{pid}_body": (f"trio_p{pid}_body", ["Armature"])}
        assert tree["take"] == pytest.approx([0.0, (SPANS[pid][1] - SPANS[pid][0]) / 25])
        assert tree["take_name"] == f"trio_p{pid}"


def test_targets_are_checked_before_any_file_is_written(trio, ref, tmp_path, monkeypatch):
    result, _ = trio
    rigs = list(result.armatures)
    (tmp_path / "trio_p1.fbx").write_text("mine")
    with pytest.raises(AddonError, match=r"trio_p1\.fbx exists"):
        export_characters(bpy.context, rigs, tmp_path / "trio.fbx", "unity", split=True, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio_p1.fbx"]

    calls = []
    real = fbx_export.write_fbx_file

    def fail_second(context, group, file, preset, **options):
        calls.append(file)
        if len(calls) == 2:
            raise AddonError("Blender's FBX exporter failed (test)")
        return real(context, group, file, preset, **options)

    monkeypatch.setattr(fbx_export, "write_fbx_file", fail_second)
    with pytest.raises(AddonError, match="exporter failed"):
        export_characters(bpy.context, rigs, tmp_path / "trio.fbx", "unity", split=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio_p1.fbx"]  # the first file was not published
    assert (tmp_path / "trio_p1.fbx").read_text() == "mine"
    monkeypatch.undo()

    other = import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions())
    with pytest.raises(AddonError, match="several characters have person id 0"):
        export_characters(bpy.context, rigs + list(other.armatures), tmp_path / "all.fbx", "unity", split=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio_p1.fbx"]


def test_export_operator_one_file_or_one_per_person(trio, tmp_path, addon):
    result, _ = trio
    assert bpy.ops.staf.export_fbx(filepath=str(tmp_path / "all.fbx"), preset='unity') == {'FINISHED'}
    assert bpy.ops.staf.export_fbx(filepath=str(tmp_path / "each.fbx"), preset='generic', split=True) == {'FINISHED'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.fbx", "each_p0.fbx", "each_p1.fbx", "each_p2.fbx"]
    result.armatures[2].select_set(True)  # a selection narrows it to the selected character
    assert bpy.ops.staf.export_fbx(filepath=str(tmp_path / "sel.fbx"), split=True) == {'FINISHED'}
    assert (tmp_path / "sel_p2.fbx").is_file() and not (tmp_path / "sel_p0.fbx").exists()
    assert sorted(reimport(tmp_path / "all.fbx")) == ["trio_p0", "trio_p1", "trio_p2"]
