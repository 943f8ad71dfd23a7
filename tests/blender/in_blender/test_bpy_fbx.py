"""FBX export: every exporter option set by each preset, round trips through Blender's importer,
the units written in the file, and failures that leave nothing behind."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_checks import add_user_content, evaluated_vertices, snapshot
from ufbx_reader import fbx_tree

from staf_blender.errors import AddonError
from staf_blender.fbx_export import export_characters, export_fbx, find_rigs
from staf_blender.fbx_presets import PRESETS
from staf_blender.influences import keep_strongest, rig_deviation
from staf_blender.motion_io import load_motion
from staf_blender.plan import ImportOptions, plan_import
from staf_blender.rig import import_motion_file
from staf_blender.rotations import CAMERA_TO_WORLD

ROOT = Path(__file__).resolve().parents[3]
FRAMES = (1, 13, 24, 48)  # Blender frames; the walk has no keys at 21-24 (a detection gap)
BONES = ("pelvis", "left_knee", "right_ankle", "head", "left_wrist")  # those the independent reader checks
JOINT_INDEX = {"pelvis": 0, "left_knee": 4, "right_ankle": 8, "head": 15, "left_wrist": 20}  # SMPL's joint order


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


def skin_matrices(arm, bones: list[str]) -> np.ndarray:
    """Blender's skinning matrices (J, 4, 4) of ``arm`` at the current frame, world space."""
    world = np.array(arm.matrix_world)
    posed = np.array([np.array(arm.pose.bones[b].matrix) for b in bones])
    rest = np.array([np.array(arm.data.bones[b].matrix_local) for b in bones])
    return world @ posed @ np.linalg.inv(rest) @ np.linalg.inv(world)


def lbs(vertices: np.ndarray, weights: np.ndarray, skins: np.ndarray) -> np.ndarray:
    """Linear blend skinning of world-space ``vertices`` (V, 3)."""
    v = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1)
    return np.einsum("vj,jab,vb->va", weights, skins[:, :3, :], v)


def mesh_weights(mesh, bones: list[str]) -> np.ndarray:
    """Vertex group weights (V, J) of ``mesh``, the columns in ``bones`` order."""
    column = {mesh.vertex_groups[b].index: j for j, b in enumerate(bones) if b in mesh.vertex_groups}
    weights = np.zeros((len(mesh.data.vertices), len(bones)))
    for vertex in mesh.data.vertices:
        for entry in vertex.groups:
            weights[vertex.index, column[entry.group]] = entry.weight
    return weights


@pytest.mark.parametrize("preset, bones", [("unity", 24), ("unreal", 25), ("generic", 24)])
def test_round_trip_through_blenders_importer(ref, tmp_path, preset, bones):
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    (arm,), (mesh,) = result.armatures, result.meshes
    names = [b.name for b in arm.data.bones]
    full = mesh_weights(mesh, names)
    limit = PRESETS[preset].max_influences
    kept = keep_strongest(full, limit) if limit else full
    co = np.empty(3 * len(mesh.data.vertices))
    mesh.data.vertices.foreach_get("co", co)
    rest = co.reshape(-1, 3) @ np.array(mesh.matrix_world)[:3, :3].T + np.array(mesh.matrix_world)[:3, 3]
    expected = {}
    for f in FRAMES:
        blender = evaluated_vertices(mesh, f)
        skins = skin_matrices(arm, names)
        assert np.abs(lbs(rest, full, skins) - blender).max() < 1e-5  # the numpy model is Blender's
        expected[f] = lbs(rest, kept, skins)  # what the file's (limited) weights make of the mesh
    slot = arm.animation_data.action_slot.identifier if arm.animation_data.action_slot else None
    add_user_content()
    lenders = (bpy.data.objects.new("Armature", None), bpy.data.scenes.new("walk_p0"))  # names the file needs
    bpy.context.scene.collection.objects.link(lenders[0])
    before = snapshot()
    path = export_fbx(bpy.context, list(result.armatures), tmp_path / "walk.fbx", preset)
    assert snapshot() == before  # the scratch scene and copies are gone, the lent names are back
    assert [b.name for b in lenders] == ["Armature", "walk_p0"] and arm.name == "walk_p0"
    assert mesh.data.name == "walk_p0_body" and mesh_weights(mesh, names).tolist() == full.tolist()
    assert (arm.animation_data.action_slot.identifier if arm.animation_data.action_slot else None) == slot
    assert arm.animation_data.action.frame_range[:] == pytest.approx((1.0, 48.0))  # the user's keys never moved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.fbx"]

    settings, scales = fbx_settings(path)
    unit_cm = settings["UnitScaleFactor"][0]  # centimetres per file unit
    assert unit_cm == (1.0 if preset == "unreal" else 100.0)
    assert all(np.allclose(s, 1.0) for s in scales.values()), scales  # no node carries a scale

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    (arm,) = [o for o in bpy.data.objects if o.type == 'ARMATURE']
    (body,) = [o for o in bpy.data.objects if o.type == 'MESH']
    assert arm.name == ("Armature" if preset == "unreal" else "walk_p0")
    assert (body.name, body.data.name) == ("walk_p0_body", "walk_p0_body")
    assert len(arm.data.bones) == bones and ("root" in arm.data.bones) == (preset == "unreal")
    assert arm.animation_data.action.name.endswith("|walk_p0")  # Blender names it OBJECT|TAKE
    counts = [len(v.groups) for v in body.data.vertices]
    assert max(counts) == (limit or 9)
    sums = np.array([sum(g.weight for g in v.groups) for v in body.data.vertices])
    assert np.abs(sums - 1.0).max() < 1e-5
    # Blender's FBX importer converts key times with the integer frame rate (30, not 29.97): its keys
    # land at frame * 30 / 29.97. The file itself is exact; undo the importer's stretch to compare.
    scene = bpy.context.scene
    stretch = scene.render.fps / (scene.render.fps / scene.render.fps_base)
    start, end = arm.animation_data.action.frame_range
    assert (start / stretch, end / stretch) == (pytest.approx(0.0, abs=1e-6), pytest.approx(47.0))
    worst = max(np.abs(evaluated_vertices(body, (f - 1) * stretch) - expected[f]).max() for f in FRAMES)
    assert worst < 1e-4, f"{preset}: re-imported mesh is {worst:.2e} m off"


@pytest.mark.parametrize("preset", ["unity", "unreal", "generic"])
def test_an_independent_reader_sees_what_engines_need(ref, tmp_path, preset):
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    path = export_fbx(bpy.context, list(result.armatures), tmp_path / "walk.fbx", preset)
    expected = np.load(ref / "reference_walk.npz")
    frame_time = 1001 / 30000  # the clip is 30000/1001 fps; clip frame k is at k * 1001/30000 s
    times = [int(k) * frame_time for k in expected["p0_frames"]]
    tree = fbx_tree(path, BONES, times)

    assert (tree["take_name"], tree["takes"]) == ("walk_p0", 1)  # the person, not the scratch scene
    assert tree["take"] == pytest.approx([0.0, 47 * frame_time], abs=1e-9)  # the first frame at t = 0
    assert tree["key_range"] == pytest.approx([0.0, 47 * frame_time], abs=1e-9)
    assert len(tree["keys"]) == 48 and np.abs(np.diff(tree["keys"]) - frame_time).max() < 1e-9
    assert tree["time_mode"] == ufbx_time_mode_ntsc() and tree["frame_rate"] == pytest.approx(30000 / 1001, abs=1e-12)
    armature = "Armature" if preset == "unreal" else "walk_p0"
    assert tree["top_nodes"] == sorted([armature, "walk_p0_body"])
    assert tree["rigs"] == {armature: 25 if preset == "unreal" else 24}
    assert tree["rig_roots"] == {armature: ["root" if preset == "unreal" else "pelvis"]}  # nothing above root
    assert tree["unit_meters"] == pytest.approx(0.01 if preset == "unreal" else 1.0)
    (body,) = tree["meshes"].values()
    assert tree["meshes"].keys() == {"walk_p0_body"} and body["geometry"] == "walk_p0_body"  # no .001
    assert body["skinned_to"] == [armature] and body["vertices"] == 6890
    assert body["max_influences"] == (9 if preset == "generic" else 4)
    assert body["weight_sum_error"] < 1e-5
    worst = 0.0
    for bone in BONES:
        got = np.array(tree["positions"][bone])
        want = expected["p0_joints"][:, JOINT_INDEX[bone]] @ CAMERA_TO_WORLD.T
        worst = max(worst, np.abs(got - want).max())
    assert worst < 1e-4, f"{preset}: ufbx puts the bones {worst:.2e} m from the engine's joints"


def ufbx_time_mode_ntsc() -> int:
    """FBX's time mode for 30000/1001 fps, full frame (ufbx TimeMode.NTSC_FULL_FRAME)."""
    return 9


def test_influence_limit_and_its_deviation(ref, tmp_path):
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    rigs = list(result.armatures)
    reports = []
    export_fbx(bpy.context, rigs, tmp_path / "four.fbx", "unity", report=reports.append)
    (change,) = reports
    rig = plan_import(load_motion(ref / "walk.npz"), ImportOptions(name="walk")).rigs[0]
    deviation, changed = rig_deviation(rig, 4)  # bpy-free, from the motion file alone
    assert (change.mesh, change.limit, change.most, change.vertices) == ("walk_p0_body", 4, 9, 6890)
    assert change.changed == changed and change.frames == 44  # every keyed frame
    assert change.deviation_m == pytest.approx(deviation, abs=1e-5) and change.deviation_m > 1e-3
    assert "largest mesh deviation" in str(change)

    reports.clear()
    export_fbx(bpy.context, rigs, tmp_path / "all.fbx", "unity", max_influences=0, report=reports.append)
    export_fbx(bpy.context, rigs, tmp_path / "six.fbx", "generic", max_influences=6, report=reports.append)
    assert [(r.limit, r.changed) for r in reports] == [(6, rig_deviation(rig, 6)[1])]
    assert fbx_tree(tmp_path / "all.fbx")["meshes"]["walk_p0_body"]["max_influences"] == 9
    assert fbx_tree(tmp_path / "six.fbx")["meshes"]["walk_p0_body"]["max_influences"] == 6
    before = snapshot()
    for bad in (-1, 2.5, True):
        with pytest.raises(AddonError, match="bone influences per vertex") as err:
            export_fbx(bpy.context, rigs, tmp_path / "bad.fbx", "unity", max_influences=bad)
        assert err.value.exit_code == 2
    assert snapshot() == before and not (tmp_path / "bad.fbx").exists()


def test_unreal_holds_one_character_per_file(ref, tmp_path):
    result = import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions())
    before = snapshot()
    with pytest.raises(AddonError, match=r"one character per file .* 'Armature'.*--split") as err:
        export_fbx(bpy.context, list(result.armatures), tmp_path / "crowd.fbx", "unreal")
    assert err.value.exit_code == 2 and snapshot() == before and list(tmp_path.iterdir()) == []
    paths = export_characters(bpy.context, list(result.armatures), tmp_path / "crowd.fbx", "unreal", split=True)
    assert [fbx_tree(p)["rig_roots"] for p in paths] == [{"Armature": ["root"]}] * 2
    assert [fbx_tree(p)["take_name"] for p in paths] == ["crowd_p0", "crowd_p1"]
    assert snapshot() == before


def test_batch_reports_the_deviation_and_refuses_several_unreal_characters(ref, tmp_path):
    def batch(*args):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_ENGINE_", "STAF_", "PYTHONPATH"))}
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "batch.py"), *map(str, args)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)

    proc = batch("--motion", ref / "walk.npz", "--fbx", tmp_path / "walk.fbx")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("fbx ")]
    assert "walk.npz: walk_p0_body: kept the 4 strongest of up to 9" in line and " mm over 44 frames" in line
    proc = batch("--motion", ref / "walk.npz", "--fbx", tmp_path / "all.fbx", "--max-influences", "0")
    assert proc.returncode == 0 and not [ln for ln in proc.stdout.splitlines() if ln.startswith("fbx ")], proc.stderr
    assert fbx_tree(tmp_path / "all.fbx")["meshes"]["walk_p0_body"]["max_influences"] == 9
    proc = batch("--motion", ref / "crowd.npz", "--fbx", tmp_path / "crowd.fbx", "--preset", "unreal")
    assert proc.returncode == 2 and [ln for ln in proc.stderr.splitlines() if ln.strip()] == [
        "error: crowd.npz: the unreal preset writes one character per file (its armature node must be named "
        "'Armature'): export one file per person (--split) or one character"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.fbx", "walk.fbx"]


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
