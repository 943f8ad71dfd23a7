"""Root motion "world" as Blender evaluates it: a file with the clean-up's world frame (a rotating
camera, contacts, a foot-locked pose) against the engine's smplx mesh placed by the file's arrays,
the ground plane, the contact keys, the camera following camera_to_world, and refusals."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from blender_checks import bone_heads, evaluated_vertices, snapshot

from staf_blender.compat import action_fcurves
from staf_blender.errors import AddonError
from staf_blender.plan import ImportOptions
from staf_blender.rig import import_motion_file
from staf_blender.root_motion import CONTACT_CHANNELS

FEET = ("pelvis", "left_ankle", "right_ankle", "left_foot", "right_foot")
JOINT_INDEX = {"pelvis": 0, "left_ankle": 7, "right_ankle": 8, "left_foot": 10, "right_foot": 11}


@pytest.fixture()
def world(ref):
    with np.load(ref / "world.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, np.load(ref / "reference_world.npz")


def test_feet_and_mesh_are_where_the_world_frame_says(ref, world):
    _, expected = world
    result = import_motion_file(bpy.context, ref / "world.npz", ImportOptions())
    assert result.root_motion == "world" and "rotating camera" in result.world
    (arm,), (mesh,) = result.armatures, result.meshes
    assert arm["staf_root_motion"] == "world" and arm["staf_foot_lock"]
    worst_feet = worst_mesh = 0.0
    for i, frame in enumerate(expected["p0_frames"]):
        verts = evaluated_vertices(mesh, int(frame) + 1)  # also sets the frame
        worst_mesh = max(worst_mesh, np.abs(verts - expected["p0_world_vertices"][i]).max())
        heads = bone_heads(arm, list(FEET))
        want = expected["p0_world_joints"][i][[JOINT_INDEX[n] for n in FEET]]
        worst_feet = max(worst_feet, np.abs(heads - want).max())
    assert worst_feet < 1e-4, f"foot bones are {worst_feet:.2e} m from the world-frame joints"
    assert worst_mesh < 1e-4, f"evaluated mesh is {worst_mesh:.2e} m from the world-frame mesh"


def test_ground_plane_contacts_and_camera(ref, world):
    arrays, _ = world
    result = import_motion_file(bpy.context, ref / "world.npz", ImportOptions())
    ground = result.ground
    assert ground is not None and ground.name == "world_ground" and ground.name in result.collection.objects
    bpy.context.view_layer.update()  # matrix_world of the new objects
    co = np.empty(3 * len(ground.data.vertices))
    ground.data.vertices.foreach_get("co", co)
    m = np.array(ground.matrix_world)
    world_co = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    assert np.abs(world_co[:, 2]).max() < 1e-9 and ground.location.z == 0.0
    low, high = world_co[:, :2].min(0), world_co[:, :2].max(0)
    pelvis = []
    for frame in (1, 20, 40):
        bpy.context.scene.frame_set(frame)
        pelvis.append(bone_heads(result.armatures[0], ["pelvis"])[0, :2])
    assert (np.array(pelvis) > low).all() and (np.array(pelvis) < high).all()

    (arm,) = result.armatures
    curves = list(action_fcurves(arm))
    frames = arrays["person_0/frame"]
    contacts = arrays["person_0/contacts"]
    for column, (joint, prop) in enumerate(CONTACT_CHANNELS):
        bone = str(arrays["joint_names"][joint])
        (curve,) = [c for c in curves if c.data_path == f'pose.bones["{bone}"]["{prop}"]']
        keys = np.empty(2 * len(curve.keyframe_points))
        curve.keyframe_points.foreach_get("co", keys)
        assert np.array_equal(keys[0::2], frames + 1) and np.array_equal(keys[1::2], contacts[:, column])
        assert {k.interpolation for k in curve.keyframe_points} == {'CONSTANT'}
        for row in (0, 13, len(frames) - 1):
            bpy.context.scene.frame_set(int(frames[row]) + 1)
            assert arm.pose.bones[bone][prop] == contacts[row, column]
    assert contacts.min() == 0 and contacts.max() == 1  # the test saw both states

    camera = result.camera
    assert camera is not None and bpy.context.scene.camera == camera
    to_world = arrays["camera_to_world"]
    for row in (0, 17, len(arrays["frame_index"]) - 1):
        bpy.context.scene.frame_set(int(arrays["frame_index"][row]) + 1)
        matrix = np.array(camera.matrix_world)
        assert np.abs(matrix[:3, :3] - to_world[row, :3, :3] @ np.diag([1.0, -1.0, -1.0])).max() < 1e-5
        assert np.abs(matrix[:3, 3] - to_world[row, :3, 3]).max() < 1e-5


def test_camera_keeps_the_clip_overlay(ref, world, tmp_path):
    arrays, _ = world
    image = bpy.data.images.new("clip", width=16, height=9)
    image.filepath_raw = str(tmp_path / "clip.png")
    image.file_format = 'PNG'
    image.save()
    bpy.data.images.remove(image)
    meta = json.loads(str(arrays["meta"]))
    meta["source"]["path"] = str(tmp_path / "clip.png")
    np.savez(tmp_path / "with_clip.npz", **{**arrays, "meta": np.array(json.dumps(meta))})
    result = import_motion_file(bpy.context, tmp_path / "with_clip.npz", ImportOptions(root_motion="world"))
    cam = result.camera.data
    assert cam.show_background_images and cam.background_images[0].source == 'MOVIE_CLIP'


def test_foot_lock_off_and_other_modes(ref):
    locked = import_motion_file(bpy.context, ref / "world.npz", ImportOptions(name="a"))
    free = import_motion_file(bpy.context, ref / "world.npz", ImportOptions(name="b", foot_lock=False))
    ground = import_motion_file(bpy.context, ref / "world.npz", ImportOptions(name="c", root_motion="ground"))
    camera = import_motion_file(bpy.context, ref / "world.npz", ImportOptions(name="d", root_motion="camera"))
    assert not free.armatures[0]["staf_foot_lock"]
    bpy.context.scene.frame_set(10)
    feet = {r.collection.name: bone_heads(r.armatures[0], ["left_foot", "right_foot"])
            for r in (locked, free, ground)}
    assert np.abs(feet["a"] - feet["b"]).max() > 1e-3  # the locked pose moved the legs
    assert ground.ground is not None and ground.camera is None
    assert camera.ground is None and any("no ground plane" in n for n in camera.notes)


def test_world_on_a_file_without_one_changes_nothing(ref):
    before = snapshot()
    with pytest.raises(AddonError, match="no ground plane") as err:
        import_motion_file(bpy.context, ref / "walk.npz", ImportOptions(root_motion="world"))
    assert "\n" not in str(err.value) and snapshot() == before


def test_operator_reports_the_world_frame_in_the_panel(addon, ref):
    assert bpy.ops.staf.import_motion(filepath=str(ref / "world.npz")) == {'FINISHED'}
    settings = bpy.context.scene.staf
    assert "ground plane" in settings.tracks_world and "world_ground" in bpy.data.objects
    assert settings.root_motion == 'auto' and settings.foot_lock and settings.ground_plane
