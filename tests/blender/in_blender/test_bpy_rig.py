"""Rig import as Blender evaluates it: against the engine's smplx mesh and 2D projection, keys in
bulk, scene settings, and a file left exactly as it was after any bad input."""

from __future__ import annotations

import json
import math

import bpy
import numpy as np
import pytest
from blender_checks import add_user_content, bone_heads, evaluated_vertices, snapshot
from bpy_extras.object_utils import world_to_camera_view

from staf_blender.compat import action_fcurves
from staf_blender.errors import AddonError
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file
from staf_blender.rotations import CAMERA_TO_WORLD, SMPL_TO_ARMATURE

JOINTS = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
          "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
          "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
          "right_hand")


@pytest.mark.parametrize("clip", ["walk", "crowd"])
def test_evaluated_mesh_and_projected_joints_match_the_engine(ref, clip):
    result = import_motion_file(bpy.context, ref / f"{clip}.npz", ImportOptions())
    expected = np.load(ref / f"reference_{clip}.npz")
    scene = bpy.context.scene
    width, height = scene.render.resolution_x, scene.render.resolution_y
    assert result.camera is not None and scene.camera == result.camera
    worst_v = worst_j = worst_px = 0.0
    for arm, mesh in zip(result.armatures, result.meshes, strict=True):
        pid = arm["staf_person_id"]
        for i, frame in enumerate(expected[f"p{pid}_frames"]):
            verts = evaluated_vertices(mesh, int(frame) + 1)  # Blender frame = clip frame + 1
            worst_v = max(worst_v, np.abs(verts - expected[f"p{pid}_vertices"][i] @ CAMERA_TO_WORLD.T).max())
            heads = bone_heads(arm, list(JOINTS))
            worst_j = max(worst_j, np.abs(heads - expected[f"p{pid}_joints"][i] @ CAMERA_TO_WORLD.T).max())
            ndc = np.array([list(world_to_camera_view(scene, result.camera, _vec(h)))[:2] for h in heads])
            pixels = np.stack([ndc[:, 0] * width, (1.0 - ndc[:, 1]) * height], axis=1)  # image y points down
            worst_px = max(worst_px, np.abs(pixels - expected[f"p{pid}_joints2d"][i]).max())
    assert worst_v < 1e-4, f"evaluated mesh is {worst_v:.2e} m from smplx"
    assert worst_j < 1e-4, f"bone heads are {worst_j:.2e} m from smplx's joints"
    assert worst_px < 1.0, f"projected joints are {worst_px:.3f} px from the engine's projection"


def _vec(values):
    from mathutils import Vector

    return Vector(tuple(float(v) for v in values))


def test_rig_structure_keys_and_scene(ref):
    motion = np.load(ref / "walk.npz")
    frames = motion["person_0/frame"]
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    (arm,), (mesh,) = result.armatures, result.meshes
    assert [b.name for b in arm.data.bones] and {b.name for b in arm.data.bones} == set(JOINTS)
    for bone in arm.data.bones:  # every bone frame is SMPL's joint frame
        assert np.allclose(np.array(bone.matrix_local)[:3, :3], SMPL_TO_ARMATURE, atol=1e-6), bone.name
    assert arm.data.bones["left_knee"].parent.name == "left_hip" and arm.data.bones["pelvis"].parent is None
    assert len(mesh.data.vertices) == 6890 and len(mesh.data.polygons) == 13776
    assert {g.name for g in mesh.vertex_groups} == set(JOINTS) and mesh.parent == arm
    (modifier,) = mesh.modifiers
    assert modifier.type == 'ARMATURE' and modifier.object == arm and not modifier.use_deform_preserve_volume

    anim = arm.animation_data
    assert anim.action is not None and (bpy.app.version < (4, 4) or anim.action_slot is not None)
    curves = list(action_fcurves(arm))
    assert len(curves) == 24 * 4 + 3
    for curve in curves:
        keys = np.empty(2 * len(curve.keyframe_points))
        curve.keyframe_points.foreach_get("co", keys)
        assert np.array_equal(keys[0::2], frames + 1)  # gap frames 20-23 have no keys
        assert {k.interpolation for k in curve.keyframe_points} == {'LINEAR'}
    for bone in JOINTS:
        quat = np.stack([_curve_values(curves, f'pose.bones["{bone}"].rotation_quaternion', k) for k in range(4)], 1)
        assert (np.sum(quat[1:] * quat[:-1], axis=1) >= 0).all(), f"{bone} flips hemisphere"

    scene = bpy.context.scene
    assert (scene.render.fps, scene.render.fps_base) == (30, pytest.approx(1.001))
    assert (scene.frame_start, scene.frame_end) == (1, 48)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 1080)
    crowd = import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions(match_scene=False))
    assert len(crowd.armatures) == 2 and scene.render.fps == 30  # match_scene off: the scene keeps its settings


def _curve_values(curves, path: str, index: int) -> np.ndarray:
    (curve,) = [c for c in curves if c.data_path == path and c.array_index == index]
    keys = np.empty(2 * len(curve.keyframe_points))
    curve.keyframe_points.foreach_get("co", keys)
    return keys[1::2]


def test_nothing_but_the_new_objects_changes(ref):
    add_user_content()
    before = snapshot()
    result = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions(match_scene=False))
    after = snapshot()
    new_objects = {o.name for o in result.collection.objects}
    assert new_objects == {"walk_p0", "walk_p0_body", "walk_camera"}
    assert {k: v for k, v in after["objects"].items() if k not in new_objects} == before["objects"]
    assert after["scene"] == before["scene"] and after["active"] == before["active"]
    for name in ("scenes", "images", "movieclips"):
        assert after["data"][name] == before["data"][name]
    # With match_scene only the documented settings change: fps, range, resolution, scene camera.
    import_motion_file(bpy.context, ref / "walk.npz", ImportOptions(name="again"))
    scene = bpy.context.scene
    assert scene.camera.name == "again_camera" and scene.frame_current == 7
    assert bpy.context.view_layer.objects.active.name == "UserObject"


def _rewrite(src, dst, **changes):
    with np.load(src) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(dst, **arrays)


def test_bad_motion_files_change_nothing(ref, tmp_path):
    add_user_content()
    import_motion_file(bpy.context, ref / "walk.npz", ImportOptions())
    pose = np.load(ref / "walk.npz")["person_0/pose"].copy()
    pose[3, 2, 1] = np.nan
    _rewrite(ref / "walk.npz", tmp_path / "nan.npz", **{"person_0/pose": pose})
    _rewrite(ref / "walk.npz", tmp_path / "newer.npz", version=np.array(99))
    data = (ref / "walk.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.npz").write_text("not a motion file")
    cases = [
        (tmp_path / "absent.npz", ImportOptions(name="x"), "not found"),
        (tmp_path / "nan.npz", ImportOptions(name="x"), "NaN"),
        (tmp_path / "newer.npz", ImportOptions(name="x"), "update the add-on"),
        (tmp_path / "cut.npz", ImportOptions(name="x"), "cut.npz"),
        (tmp_path / "text.npz", ImportOptions(name="x"), "not a motion file"),
        (ref / "walk.npz", ImportOptions(), "names already taken in this file: walk, walk_p0"),
        (ref / "crowd.npz", ImportOptions(people=(4,)), "no person 4"),
    ]
    before = snapshot()
    for path, options, message in cases:
        with pytest.raises(AddonError, match=message) as err:
            import_motion_file(bpy.context, path, options)
        assert "\n" not in str(err.value)
        assert snapshot() == before, f"{path.name} changed the file"


def test_an_error_part_way_removes_what_was_created(ref, monkeypatch):
    import staf_blender.rig as rig

    before = snapshot()

    def fail(*args, **kwargs):
        raise RuntimeError("simulated failure while building the camera")

    monkeypatch.setattr(rig, "_build_camera", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions())
    assert snapshot() == before


def test_root_motion_modes_shape_keys_and_people(ref):
    in_place = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions(root_motion="in_place", name="a"))
    ground = import_motion_file(bpy.context, ref / "walk.npz", ImportOptions(root_motion="ground", name="b"))
    assert in_place.camera is None and any("camera" in n for n in in_place.notes)
    paths = {"a": [], "b": []}
    for frame in (1, 10, 30, 48):
        bpy.context.scene.frame_set(frame)
        paths["a"].append(bone_heads(in_place.armatures[0], ["pelvis"])[0])
        paths["b"].append(bone_heads(ground.armatures[0], ["pelvis"])[0])
    a, b = np.array(paths["a"]), np.array(paths["b"])
    assert np.ptp(a, axis=0).max() < 1e-5 and np.ptp(b[:, 2]) < 1e-5 and np.ptp(b[:, :2]) > 0.01
    assert np.allclose(a[0], b[0], atol=1e-5)
    feet = evaluated_vertices(in_place.meshes[0], 1)[:, 2].min()
    assert abs(feet) < 0.1  # standing on the ground, not floating at the camera's height

    keyed = import_motion_file(bpy.context, ref / "crowd.npz", ImportOptions(shape_keys=True, people=(1,), name="c"))
    (mesh,) = keyed.meshes
    keys = mesh.data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis"] + [f"beta_{i:02d}" for i in range(10)]
    assert keyed.armatures[0].name == "c_p1"
    with np.load(ref / "crowd.npz") as data:
        direction = data["shape_dirs"][:, :, 2].astype(np.float64) @ SMPL_TO_ARMATURE.T
    keyed.armatures[0].data.pose_position = 'REST'  # compare in the rest pose: the key adds the direction there
    rest = evaluated_vertices(mesh, 1)
    keys["beta_02"].value = 1.0
    moved = evaluated_vertices(mesh, 1)
    assert np.abs((moved - rest) - direction).max() < 1e-6 and np.abs(direction).max() > 1e-4


def test_camera_shows_the_clip_as_background(ref, tmp_path):
    image = bpy.data.images.new("clip", width=16, height=9)
    image.filepath_raw = str(tmp_path / "clip.png")
    image.file_format = 'PNG'
    image.save()
    bpy.data.images.remove(image)
    with np.load(ref / "walk.npz") as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["source"]["path"] = str(tmp_path / "clip.png")
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "with_clip.npz", **arrays)
    result = import_motion_file(bpy.context, tmp_path / "with_clip.npz", ImportOptions())
    cam = result.camera.data
    assert cam.show_background_images and len(cam.background_images) == 1
    background = cam.background_images[0]
    assert background.source == 'MOVIE_CLIP' and background.clip.frame_start == 1
    assert cam.sensor_fit == 'HORIZONTAL'
    focal = meta["camera"]["focal_length_px"]
    assert cam.lens == pytest.approx(focal * cam.sensor_width / 1920, rel=1e-6)
    assert tuple(result.camera.rotation_euler) == pytest.approx((math.pi / 2, 0.0, 0.0))
