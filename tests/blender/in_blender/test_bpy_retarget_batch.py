"""``scripts/batch.py --retarget``: a user's character from an FBX (Mixamo naming, as Blender's FBX
importer leaves it) or a .blend (UE5 naming, two people), retargeted and written out; the FBX read
back with ufbx (an independent reader) against what Blender evaluates; bad characters refused in
one line with nothing written."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from retarget_checks import heads, make_armature
from test_bpy_batch import batch, error_lines
from ufbx_reader import fbx_tree

from staf_blender.retarget import PRESETS, SMPL_AIM_CHILD


def add_body(arm: bpy.types.Object) -> bpy.types.Object:
    """A small skinned mesh: one triangle at each bone's head, weighted fully to that bone."""
    heads = [arm.matrix_world @ b.head_local for b in arm.data.bones]
    verts, faces = [], []
    for i, head in enumerate(heads):
        verts += [tuple(head), tuple(head + type(head)((0.02, 0, 0))), tuple(head + type(head)((0, 0, 0.02)))]
        faces.append((3 * i, 3 * i + 1, 3 * i + 2))
    mesh = bpy.data.meshes.new(f"{arm.name}_body")
    mesh.from_pydata(verts, [], faces)
    body = bpy.data.objects.new(f"{arm.name}_body", mesh)
    bpy.context.scene.collection.objects.link(body)
    for i, bone in enumerate(arm.data.bones):
        body.vertex_groups.new(name=bone.name).add([3 * i, 3 * i + 1, 3 * i + 2], 1.0, 'REPLACE')
    body.parent = arm
    body.matrix_parent_inverse = arm.matrix_world.inverted()
    body.modifiers.new("Armature", 'ARMATURE').object = arm
    return body


def hero_fbx(path) -> None:
    arm = make_armature("Hero", "mixamo", turned=True)
    add_body(arm)
    bpy.context.view_layer.update()
    assert bpy.ops.export_scene.fbx(filepath=str(path), add_leaf_bones=False, bake_anim=False) == {'FINISHED'}


def hero_blend(path, preset: str = "ue5", name: str = "Mannequin") -> None:
    arm = make_armature(name, preset)
    add_body(arm)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)


def test_fbx_character_through_batch_and_back_through_ufbx(ref, tmp_path):
    hero_fbx(tmp_path / "hero.fbx")
    out = tmp_path / "out"
    out.mkdir()
    proc = batch("--motion", ref / "gait.npz", "--retarget", tmp_path / "hero.fbx", "--fbx", out / "gait.fbx",
                 "--blend", out / "gait.blend", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "retgt  gait_p0: retargeted onto 'Hero' (mixamo mapping" in proc.stdout
    table = PRESETS["mixamo"]
    bones = [table[j] for j in ("pelvis", "left_knee", "left_ankle", "right_wrist", "head")]
    bpy.ops.wm.open_mainfile(filepath=str(out / "gait.blend"))
    hero, source = bpy.data.objects["Hero"], bpy.data.objects["gait_p0"]
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    start, end = (int(x) for x in hero.animation_data.action.frame_range)
    frames = [start, (start + end) // 2, end]
    tree = fbx_tree(out / "gait.fbx", bones, [(f - start) / fps for f in frames])
    assert tree["take_name"] == "Hero" and tree["take"][0] == pytest.approx(0.0, abs=1e-9)
    assert set(tree["top_nodes"]) == {"Hero", "Hero_body"} and tree["rigs"] == {"Hero": len(hero.data.bones)}
    assert tree["meshes"]["Hero_body"]["skinned_to"] == ["Hero"]
    limbs = [(j, c) for j, c in SMPL_AIM_CHILD.items() if j in table and c in table and not j.endswith(("hip", "knee"))]
    worst_fbx = worst_limb = 0.0
    for i, frame in enumerate(frames):
        bpy.context.scene.frame_set(frame)
        here = heads(hero, bones)
        worst_fbx = max(worst_fbx, np.abs(np.array([tree["positions"][b][i] for b in bones]) - here).max())
        src = heads(source, [j for limb in limbs for j in limb])
        tgt = heads(hero, [table[j] for limb in limbs for j in limb])
        a, b = src[1::2] - src[0::2], tgt[1::2] - tgt[0::2]
        cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        worst_limb = max(worst_limb, np.degrees(np.arccos(np.clip(cos, -1, 1))).max())
    assert worst_fbx < 1e-4, f"ufbx puts the character's bones {worst_fbx:.2e} m from where Blender does"
    assert worst_limb < 2.0, f"a limb of the character is {worst_limb:.2f} degrees off the person's"


def test_blend_character_for_two_people_and_bvh(ref, tmp_path):
    hero_blend(tmp_path / "hero.blend")
    proc = batch("--motion", ref / "crowd.npz", "--retarget", tmp_path / "hero.blend", "--mapping", "ue5",
                 "--bvh", tmp_path / "crowd.bvh", "--blend", tmp_path / "crowd.blend", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("crowd_p*.bvh")) == ["crowd_p0.bvh", "crowd_p1.bvh"]
    assert "ROOT root" in (tmp_path / "crowd_p0.bvh").read_text()  # the character's skeleton, not SMPL's
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "crowd.blend"))
    heroes = [bpy.data.objects[f"Mannequin_p{i}"] for i in (0, 1)]
    assert heroes[0].animation_data.action != heroes[1].animation_data.action
    assert [h["staf_person_id"] for h in heroes] == [0, 1]
    for hero in heroes:
        (body,) = [c for c in hero.children if c.type == 'MESH']
        assert body.modifiers["Armature"].object == hero


@pytest.mark.parametrize(("make", "args", "message"), [
    (lambda p: hero_blend(p, "vrm", "Prop"), ["--mapping", "mixamo"],
     "armature 'Prop' has no recognisable humanoid bones for"),
    (lambda p: p.write_bytes(b"not a blend file"), [], "cannot read"),
])
def test_bad_characters_are_one_line_and_write_nothing(ref, tmp_path, make, args, message):
    make(tmp_path / "hero.blend")
    proc = batch("--motion", ref / "gait.npz", "--retarget", tmp_path / "hero.blend", *args,
                 "--fbx", tmp_path / "out.fbx", "--blend", tmp_path / "out.blend", cwd=tmp_path)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    (line,) = error_lines(proc)
    assert message in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.fbx").exists() and not (tmp_path / "out.blend").exists()
