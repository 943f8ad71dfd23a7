"""BVH and glTF export: round trips through Blender's own BVH and glTF importers (evaluated bone
heads against the source rig within 1e-4 m), what the files say (BVH header, glTF animations,
skin, key times), several people, the batch flags, and bad targets that leave everything as it was.

The walk is 30000/1001 fps. Blender's glTF importer turns seconds into frames with
``fps * fps_base`` (the exporter's own inverse mistake, undone on export): the re-import scene is
given ``fps * fps_base`` = 30000/1001 so its keys land back on whole frames."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_checks import add_user_content, bone_heads, evaluated_vertices, snapshot

from staf_blender import batch
from staf_blender.bvh_export import Y_UP, export_bvh
from staf_blender.errors import EXIT_OUTPUT, AddonError
from staf_blender.gltf_export import GLTF_SETTINGS, export_gltf
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file

FRAMES = (1, 13, 24, 48)  # Blender frames of the walk (no keys at 21-24: a gap, interpolated)
RATE = 30000 / 1001
TRIO = {0: (1, 40), 1: (13, 40), 2: (1, 30)}  # Blender frames of each person of the trio


def walk(ref):
    """The walk imported, with its bone names and evaluated world bone heads at FRAMES."""
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    (arm,) = result.armatures
    names = [b.name for b in arm.data.bones]
    heads = {}
    for frame in FRAMES:
        bpy.context.scene.frame_set(frame)
        heads[frame] = bone_heads(arm, names)
    return result, names, heads


def heads_at(arm, names, frame: float) -> np.ndarray:
    bpy.context.scene.frame_set(int(np.floor(frame)), subframe=float(frame - np.floor(frame)))
    return bone_heads(arm, names)


def read_bvh_header(path: Path) -> tuple[dict, list[str], dict]:
    """Joints in file order with OFFSET and CHANNELS, and the MOTION lines (Frames, Frame Time)."""
    joints, order, motion, current = {}, [], {}, None
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if words[:1] in (["ROOT"], ["JOINT"]):
            current = words[1]
            order.append(current)
        elif words[:1] == ["OFFSET"] and current is not None:
            joints[current] = {"offset": np.array([float(w) for w in words[1:]])}
        elif words[:1] == ["CHANNELS"] and current is not None:
            joints[current]["channels"] = words[2:]
            current = None  # the End Site OFFSET that may follow is not the joint's
        elif line.startswith("Frames:"):
            motion["frames"] = int(words[1])
        elif line.startswith("Frame Time:"):
            motion["frame_time"] = words[2]
            motion["rows"] = [row.split() for row in lines[i + 1:]]
            break
    return joints, order, motion


def gltf_json(path: Path) -> dict:
    """The JSON of a .gltf, or of a .glb's first chunk."""
    data = path.read_bytes()
    if path.suffix == ".gltf":
        return json.loads(data)
    magic, version, length = struct.unpack_from("<4sII", data)
    size, kind = struct.unpack_from("<I4s", data, 12)
    assert (magic, version, length, kind) == (b"glTF", 2, len(data), b"JSON")
    return json.loads(data[20:20 + size])


def test_gltf_settings_cover_every_exporter_option():
    rna = bpy.ops.export_scene.gltf.get_rna_type()
    options = {p.identifier: p for p in rna.properties
               if p.identifier not in ("rna_type", "filepath", "filter_glob", "export_format", "export_action_filter")}
    assert set(GLTF_SETTINGS) == set(options)
    for key, value in GLTF_SETTINGS.items():
        if options[key].type == 'ENUM':
            assert value in {i.identifier for i in options[key].enum_items}, (key, value)


@pytest.mark.parametrize("order", ["ZXY", "YZX"])
def test_bvh_round_trip_through_blenders_importer(ref, tmp_path, order):
    result, names, expected = walk(ref)
    (arm,) = result.armatures
    add_user_content()
    before, window_scene = snapshot(), bpy.context.window.scene
    (path,) = export_bvh(bpy.context, [arm], tmp_path / "walk.bvh", rotation_order=order)
    assert snapshot() == before and bpy.context.window.scene == window_scene
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.bvh"]

    joints, written, motion = read_bvh_header(path)
    assert sorted(written) == sorted(names) and written[0] == "pelvis"
    bones = arm.data.bones
    for name in written:
        bone, offset = bones[name], joints[name]["offset"]
        rest = np.zeros(3) if bone.parent is None else Y_UP @ (np.array(bone.head_local) - bone.parent.head_local)
        assert np.abs(offset - rest).max() <= 6e-7, name  # exact at the file's 1e-6 m
        channels = [f"{axis}rotation" for axis in order]
        assert joints[name]["channels"] == (["Xposition", "Yposition", "Zposition"] if bone.parent is None
                                            else []) + channels
    assert motion["frames"] == 48 and len(motion["rows"]) == 48
    assert all(len(row) == 3 + 3 * len(names) for row in motion["rows"])
    assert motion["frame_time"] == "0.03336666667"  # 1001/30000 s, not Blender's own 0.033367

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=True, rotate_mode='NATIVE',
                                   frame_start=1) == {'FINISHED'}
    scene = bpy.context.scene
    assert scene.render.fps / scene.render.fps_base == pytest.approx(RATE, rel=1e-7)
    (back,) = [o for o in bpy.data.objects if o.type == 'ARMATURE']
    assert tuple(back.animation_data.action.frame_range) == (1.0, 48.0)
    worst = max(np.abs(heads_at(back, names, f) - expected[f]).max() for f in FRAMES)
    assert worst < 1e-4, f"BVH {order}: re-imported bones are {worst:.2e} m off"


@pytest.mark.parametrize("suffix, all_influences", [(".glb", False), (".gltf", True)])
def test_gltf_round_trip_through_blenders_importer(ref, tmp_path, suffix, all_influences):
    result, names, expected = walk(ref)
    (arm,), (body,) = result.armatures, result.meshes
    mesh = {f: evaluated_vertices(body, f) for f in FRAMES}
    add_user_content()
    bpy.data.scenes.new("A second scene")  # where the window would go when the exported scene is removed
    before, window_scene = snapshot(), bpy.context.window.scene
    paths = export_gltf(bpy.context, [arm], tmp_path / f"walk{suffix}", all_influences=all_influences)
    assert snapshot() == before and bpy.context.window.scene == window_scene  # the exporter moves the window
    files = ["walk.glb"] if suffix == ".glb" else ["walk.bin", "walk.gltf"]
    assert sorted(p.name for p in paths) == files == sorted(p.name for p in tmp_path.iterdir())

    doc = gltf_json(tmp_path / f"walk{suffix}")
    (animation,) = doc["animations"]
    assert animation["name"] == "walk_p0" and len(animation["channels"]) == 3 * 24  # T, R, S per joint
    (skin,) = doc["skins"]
    assert len(skin["joints"]) == 24 and {doc["nodes"][j]["name"] for j in skin["joints"]} == set(names)
    named = [item["name"] for key in ("scenes", "nodes", "meshes", "skins", "animations") for item in doc[key]]
    assert {"Scene", "walk_p0", "walk_p0_body"} <= set(named) and not any("." in n for n in named)
    times = {s["input"] for s in animation["samplers"]}
    for accessor in (doc["accessors"][i] for i in times):
        assert accessor["count"] == 48 and accessor["min"] == [0]  # the first frame at t = 0
        assert accessor["max"][0] == pytest.approx(47 / RATE, rel=1e-7)
    attributes = doc["meshes"][0]["primitives"][0]["attributes"]
    assert ("JOINTS_1" in attributes) == all_influences
    if suffix == ".gltf":
        assert [b["uri"] for b in doc["buffers"]] == ["walk.bin"]

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1000 / 1001  # fps * fps_base = 30000/1001
    assert bpy.ops.import_scene.gltf(filepath=str(tmp_path / f"walk{suffix}")) == {'FINISHED'}
    back, back_body = bpy.data.objects["walk_p0"], bpy.data.objects["walk_p0_body"]
    start, end = back.animation_data.action.frame_range
    assert (start, end) == (pytest.approx(0.0, abs=1e-4), pytest.approx(47.0, abs=1e-4))
    worst = max(np.abs(heads_at(back, names, f - 1) - expected[f]).max() for f in FRAMES)
    assert worst < 1e-4, f"glTF: re-imported bones are {worst:.2e} m off"
    skin_error = max(np.abs(evaluated_vertices(back_body, f - 1) - mesh[f]).max() for f in FRAMES)
    if all_influences:
        assert skin_error < 1e-4, f"glTF: re-imported mesh is {skin_error:.2e} m off"
    else:  # SMPL has up to 9 influences per vertex; the 4 strongest, renormalised, move some vertices
        assert 1e-3 < skin_error < 0.05, skin_error


def test_several_people(ref, tmp_path):
    result = import_motion_file(bpy.context, ref / "trio.npz", ImportOptions())
    bpy.context.view_layer.update()  # the new camera's matrix evaluated, so snapshots compare like with like
    before = snapshot()
    bvh = export_bvh(bpy.context, list(result.armatures), tmp_path / "trio.bvh")  # one skeleton per file
    (glb,) = export_gltf(bpy.context, list(result.armatures), tmp_path / "trio.glb")
    assert snapshot() == before
    assert sorted(p.name for p in bvh) == ["trio_p0.bvh", "trio_p1.bvh", "trio_p2.bvh"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio.glb", "trio_p0.bvh", "trio_p1.bvh", "trio_p2.bvh"]
    for person, (first, last) in TRIO.items():
        _, _, motion = read_bvh_header(tmp_path / f"trio_p{person}.bvh")
        assert motion["frames"] == last - first + 1  # each person's own frames
    doc = gltf_json(glb)
    assert sorted(a["name"] for a in doc["animations"]) == ["trio_p0", "trio_p1", "trio_p2"]
    assert len(doc["skins"]) == 3 and all(len(s["joints"]) == 24 for s in doc["skins"])
    num, den = result.armatures[0]["staf_fps"]
    for animation in doc["animations"]:  # one clock for the file: t = 0 at the earliest first frame
        first, last = TRIO[int(animation["name"][-1])]
        times = doc["accessors"][animation["samplers"][0]["input"]]
        assert times["count"] == last - first + 1
        assert times["min"][0] == pytest.approx((first - 1) * den / num, abs=1e-6)
        assert times["max"][0] == pytest.approx((last - 1) * den / num, rel=1e-7)
    split = export_gltf(bpy.context, list(result.armatures), tmp_path / "one.gltf", split=True)
    assert sorted(p.name for p in split) == [f"one_p{i}.{ext}" for i in range(3) for ext in ("bin", "gltf")]


def test_bad_targets_change_nothing(ref, tmp_path, addon):
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    rigs = list(result.armatures)
    (tmp_path / "taken.bvh").write_text("mine")
    (tmp_path / "taken.glb").write_text("mine")
    (tmp_path / "taken.bin").write_text("mine")
    (tmp_path / "a_file").write_text("x")
    listing = sorted(p.name for p in tmp_path.iterdir())
    before = snapshot()
    for export, name, suffix in ((export_bvh, "walk.bvh", r"\.bvh"), (export_gltf, "walk.glb", r"\.glb or \.gltf")):
        for target, message, code in ((tmp_path / f"taken{Path(name).suffix}", "exists: pass --overwrite", EXIT_OUTPUT),
                                      (tmp_path / "missing" / name, "does not exist", EXIT_OUTPUT),
                                      (tmp_path / "a_file" / name, "does not exist", EXIT_OUTPUT),
                                      (Path("/proc") / name, "cannot write", EXIT_OUTPUT),  # refused even to root
                                      (tmp_path / "walk.obj", f"must end in {suffix}", 5),
                                      (tmp_path, "is a folder", 5)):
            with pytest.raises(AddonError, match=message) as err:
                export(bpy.context, rigs, target, overwrite=False)
            assert err.value.exit_code == code
    with pytest.raises(AddonError, match=r"taken\.bin exists"):  # a .gltf's buffer is checked too
        export_gltf(bpy.context, rigs, tmp_path / "taken.gltf", overwrite=False)
    with pytest.raises(AddonError, match="unknown BVH rotation order"):
        export_bvh(bpy.context, rigs, tmp_path / "walk.bvh", rotation_order="XXY")
    assert snapshot() == before and sorted(p.name for p in tmp_path.iterdir()) == listing
    assert all((tmp_path / n).read_text() == "mine" for n in ("taken.bvh", "taken.glb", "taken.bin"))

    for operator, name in ((bpy.ops.staf.export_bvh, "walk.bvh"), (bpy.ops.staf.export_gltf, "walk.glb")):
        with pytest.raises(RuntimeError, match="does not exist"):  # the operators report the same line
            operator(filepath=str(tmp_path / "missing" / name))
        assert operator(filepath=str(tmp_path / name)) == {'FINISHED'}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*listing, "walk.bvh", "walk.glb"])


def test_batch_flags(ref, tmp_path, capsys):
    out = [tmp_path / "walk.bvh", tmp_path / "walk.glb"]
    args = ["--motion", str(ref / "walk.npz"), "--bvh", str(out[0]), "--gltf", str(out[1])]
    assert batch.main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.bvh", "walk.glb"]
    written = {p: p.read_bytes() for p in out}
    assert gltf_json(out[1])["animations"][0]["name"] == "walk_p0"
    capsys.readouterr()
    assert batch.main(args) == EXIT_OUTPUT  # exists, no --overwrite: refused before any work
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "exists: pass --overwrite" in errors[0]
    assert {p: p.read_bytes() for p in out} == written
    assert batch.main(["--motion", str(ref / "walk.npz"), "--gltf", str(tmp_path / "walk.obj")]) == 5
    assert "must end in .glb or .gltf" in capsys.readouterr().err
    (tmp_path / "trio_p1.bvh").write_text("mine")  # a per-person file of an earlier run: several people may come
    assert batch.main(["--motion", str(ref / "trio.npz"), "--bvh", str(tmp_path / "trio.bvh")]) == EXIT_OUTPUT
    assert "trio_p1.bvh exists" in capsys.readouterr().err
    assert batch.main(["--motion", str(ref / "trio.npz"), "--bvh", str(tmp_path / "trio.bvh"), "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trio_p0.bvh", "trio_p1.bvh", "trio_p2.bvh", "walk.bvh",
                                                          "walk.glb"]
