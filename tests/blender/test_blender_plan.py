"""The add-on's planning math without Blender: axes, quaternions, root motion, scene settings.

The rig is checked by simulating Blender's armature evaluation in numpy (bone rest matrices,
parent chain, linear blend skinning with the vertex weights) and comparing against the engine's
own SMPL from smplx with the pose correctives zeroed; the Blender tests then check that Blender
evaluates the same thing (tests/blender/in_blender).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.smpl import BodyModel, load_smpl_data
from core.standins.motion import synthetic_motion
from staf_blender.errors import AddonError
from staf_blender.plan import ImportOptions, camera_lens_mm, frame_rate, plan_import, sanitize_name
from staf_blender.rotations import (
    CAMERA_TO_WORLD,
    ROOT_CORRECTION,
    ROOT_CORRECTION_QUATERNION,
    SMPL_TO_ARMATURE,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    continuous_quaternions,
    quaternion_multiply,
    quaternion_to_matrix,
)


@pytest.fixture(scope="module")
def smpl(standin_assets):
    return load_smpl_data(standin_assets / "SMPL_NEUTRAL.pkl")


@pytest.fixture(scope="module")
def motion(smpl):
    return synthetic_motion(smpl, n_frames=30, n_people=2, gap=(8, 12), seed=5)


def simulate_blender(rig, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Blender's pose evaluation for frame row ``f``: bone k's rest matrix B_k = [A | head_k];
    pose P_k = P_parent B_parent^-1 B_k L_k (root: B_root L_root) with L the pose bone's
    quaternion and location; vertices = sum_k w_k P_k B_k^-1 v. Returns world vertices and heads."""
    n = len(rig.bone_names)
    rest = []
    for k in range(n):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = SMPL_TO_ARMATURE, rig.bone_heads[k]
        rest.append(m)
    pose: list[np.ndarray] = [np.eye(4)] * n
    for k in range(n):  # parents come before children
        local = np.eye(4)
        local[:3, :3] = quaternion_to_matrix(rig.rotations[f, k])
        if rig.bone_parents[k] < 0:
            local[:3, 3] = rig.root_location[f]
            pose[k] = rest[k] @ local
        else:
            p = rig.bone_parents[k]
            pose[k] = pose[p] @ np.linalg.inv(rest[p]) @ rest[k] @ local
    skin = np.stack([pose[k] @ np.linalg.inv(rest[k]) for k in range(n)])
    v = np.concatenate([rig.vertices.astype(np.float64), np.ones((len(rig.vertices), 1))], 1)
    per_bone = np.einsum("kab,vb->vka", skin, v)[..., :3]
    return (rig.weights[..., None] * per_bone).sum(1), np.stack([pose[k][:3, 3] for k in range(n)])


def engine_body(smpl, person):
    body = BodyModel(dataclasses.replace(smpl, posedirs=np.zeros_like(smpl.posedirs)))
    with torch.no_grad():
        out = body.forward_axis_angle(torch.tensor(np.tile(person.shape, (len(person), 1))),
                                      torch.tensor(person.pose), torch.tensor(person.translation))
    return out.vertices.numpy().astype(np.float64), out.joints.numpy().astype(np.float64)


def test_axis_conventions_are_proper_rotations():
    for m in (CAMERA_TO_WORLD, SMPL_TO_ARMATURE, ROOT_CORRECTION):
        assert np.allclose(m @ m.T, np.eye(3)) and np.isclose(np.linalg.det(m), 1.0)
    assert np.allclose(CAMERA_TO_WORLD @ [0, 1, 0], [0, 0, -1])  # image down -> world down
    assert np.allclose(CAMERA_TO_WORLD @ [0, 0, 1], [0, 1, 0])  # camera forward -> +Y
    assert np.allclose(SMPL_TO_ARMATURE @ [0, 1, 0], [0, 0, 1])  # SMPL up -> Z up
    assert np.allclose(ROOT_CORRECTION, np.diag([1.0, -1.0, -1.0]))
    assert np.allclose(quaternion_to_matrix(ROOT_CORRECTION_QUATERNION), ROOT_CORRECTION)


def test_quaternions_match_rodrigues():
    from smplx.lbs import batch_rodrigues

    rng = np.random.default_rng(0)
    aa = np.concatenate([rng.normal(0, 1.5, (200, 3)), np.zeros((1, 3)), [[1e-10, 0, 0], [np.pi, 0, 0]]])
    expected = batch_rodrigues(torch.tensor(aa, dtype=torch.float64)).numpy()
    assert np.allclose(axis_angle_to_matrix(aa), expected, atol=1e-7)  # smplx adds 1e-8 to every angle
    q = axis_angle_to_quaternion(aa)
    assert np.allclose(np.linalg.norm(q, axis=-1), 1.0)
    a, b = rng.normal(size=(2, 50, 4))
    assert np.allclose(quaternion_to_matrix(quaternion_multiply(a, b)),
                       quaternion_to_matrix(a) @ quaternion_to_matrix(b))


def test_quaternions_stay_on_one_hemisphere():
    rng = np.random.default_rng(1)
    q = axis_angle_to_quaternion(np.cumsum(rng.normal(0, 0.3, (300, 5, 3)), axis=0))
    flipped = q * rng.choice([-1.0, 1.0], size=(300, 5, 1))
    fixed = continuous_quaternions(flipped)
    assert (np.sum(fixed[1:] * fixed[:-1], axis=-1) >= 0).all()
    assert np.allclose(np.abs(np.sum(fixed * q, axis=-1)), 1.0)  # same rotations (q or -q)
    assert np.array_equal(fixed[0], flipped[0])
    assert (np.sum(flipped[1:] * flipped[:-1], axis=-1) < 0).any()  # the test had something to fix


def test_planned_rig_deforms_like_the_engines_smpl(smpl, motion):
    plan = plan_import(motion, ImportOptions())
    assert [r.armature_name for r in plan.rigs] == ["synthetic_p0", "synthetic_p1"]
    for rig, person in zip(plan.rigs, motion.people, strict=True):
        verts, joints = engine_body(smpl, person)
        for f in (0, len(person) // 2, len(person) - 1):
            world_v, heads = simulate_blender(rig, f)
            assert np.abs(world_v - verts[f] @ CAMERA_TO_WORLD.T).max() < 1e-5
            assert np.abs(heads - joints[f] @ CAMERA_TO_WORLD.T).max() < 1e-5
        assert np.array_equal(rig.frames, person.frame + 1)
        assert (np.sum(rig.rotations[1:] * rig.rotations[:-1], axis=-1) >= 0).all()


def test_in_place_and_ground_root_motion(motion):
    person = motion.people[0]
    in_place = plan_import(motion, ImportOptions(root_motion="in_place", people=(0,))).rigs[0]
    ground = plan_import(motion, ImportOptions(root_motion="ground", people=(0,))).rigs[0]
    camera = plan_import(motion, ImportOptions(people=(0,))).rigs[0]
    pelvis = {name: np.stack([simulate_blender(r, f)[1][0] for f in range(len(person))])
              for name, r in (("in_place", in_place), ("ground", ground), ("camera", camera))}
    assert np.ptp(pelvis["in_place"], axis=0).max() < 1e-9  # never moves
    assert np.allclose(pelvis["ground"][0, :2], pelvis["in_place"][0, :2])  # starts where in_place stays
    assert np.ptp(pelvis["ground"][:, 2]) < 1e-9  # no vertical motion
    assert np.allclose(np.diff(pelvis["ground"][:, :2], axis=0), np.diff(pelvis["camera"][:, :2], axis=0))
    rest_feet = person.rest_vertices[:, 1].min()
    assert np.isclose(pelvis["in_place"][0, 2], person.rest_joints[0, 1] - rest_feet)  # feet of the rest pose at z=0


def test_scene_camera_and_names(motion):
    plan = plan_import(motion, ImportOptions(name="My clip.v2", frame_offset=1))
    assert plan.collection_name == "My clip_v2"
    assert (plan.scene.fps, plan.scene.fps_base) == (30, pytest.approx(1.001))
    assert (plan.scene.frame_start, plan.scene.frame_end) == (1, 30)
    assert (plan.scene.width, plan.scene.height) == (1920, 1080)
    focal = motion.meta["camera"]["focal_length_px"]
    assert plan.camera is not None and plan.camera.lens_mm == pytest.approx(focal * 36 / 1920)
    assert plan.object_names() == ["My clip_v2_p0", "My clip_v2_p0_body", "My clip_v2_p1", "My clip_v2_p1_body",
                                   "My clip_v2_camera"]
    no_cam = plan_import(motion, ImportOptions(root_motion="ground"))
    assert no_cam.camera is None and any("camera" in note for note in no_cam.notes)
    keys = plan_import(motion, ImportOptions(shape_keys=True, people=(1,))).rigs[0].shape_keys
    assert [k for k, _ in keys] == [f"beta_{i:02d}" for i in range(10)]
    base = motion.people[1].rest_vertices.astype(np.float64)
    assert np.allclose(keys[3][1], (base + motion.shape_dirs[:, :, 3]) @ SMPL_TO_ARMATURE.T, atol=1e-6)


@pytest.mark.parametrize("num, den, fps, base", [
    (30000, 1001, 30, 1.001), (24000, 1001, 24, 1.001), (60000, 1001, 60, 1.001), (25, 1, 25, 1.0),
    (25, 2, 12, 0.96),
])
def test_frame_rates_are_exact(num, den, fps, base):
    got_fps, got_base = frame_rate(num, den)
    assert (got_fps, got_base) == (fps, pytest.approx(base))
    assert got_fps / got_base == pytest.approx(num / den, rel=1e-12)


def test_bad_requests_are_one_line_errors(motion):
    with pytest.raises(AddonError, match="no person 7"):
        plan_import(motion, ImportOptions(people=(7,)))
    with pytest.raises(AddonError, match="unknown root motion"):
        ImportOptions(root_motion="flying")
    with pytest.raises(AddonError, match="holds no people"):
        plan_import(dataclasses.replace(motion, people=()), ImportOptions())
    with pytest.raises(AddonError, match="invalid frame rate"):
        frame_rate(0, 1)
    assert sanitize_name("...") == "staf" and len(sanitize_name("x" * 100)) == 40
    assert camera_lens_mm(1000.0, 2000) == pytest.approx(18.0)


# --- World frame (the clean-up stage's ground plane, contacts and foot lock) -----------------------

@pytest.fixture(scope="module")
def world_motion(smpl):
    return synthetic_motion(smpl, n_frames=30, n_people=2, gap=(8, 12), seed=5, world="rotating")


def engine_world_body(smpl, motion, person, pose):
    """Independently of the planner: smplx's mesh and joints for ``pose`` without translation,
    turned by camera_to_world's rotation at each frame and moved by the world translation."""
    body = BodyModel(dataclasses.replace(smpl, posedirs=np.zeros_like(smpl.posedirs)))
    with torch.no_grad():
        out = body.forward_axis_angle(torch.tensor(np.tile(person.shape, (len(person), 1))), torch.tensor(pose),
                                      torch.zeros((len(person), 3)))
    rot = motion.camera_to_world[np.searchsorted(motion.frame_index, person.frame), :3, :3]
    shift = person.world_translation.astype(np.float64)[:, None]
    return (np.einsum("fab,fvb->fva", rot, out.vertices.numpy().astype(np.float64)) + shift,
            np.einsum("fab,fjb->fja", rot, out.joints.numpy().astype(np.float64)) + shift)


def test_world_mode_puts_the_body_where_the_world_frame_says(smpl, world_motion):
    plan = plan_import(world_motion, ImportOptions())
    assert plan.options.root_motion == "world"  # auto: the file has a world frame for everyone
    for rig, person in zip(plan.rigs, world_motion.people, strict=True):
        assert rig.in_world and rig.foot_locked
        verts, joints = engine_world_body(smpl, world_motion, person, person.pose_locked)
        for f in (0, 7, len(person) // 2, len(person) - 1):
            world_v, heads = simulate_blender(rig, f)
            assert np.abs(world_v - verts[f]).max() < 1e-5
            assert np.abs(heads - joints[f]).max() < 1e-5  # pelvis, ankles, feet (7, 8, 10, 11) among them
        assert np.abs(rig.pelvis_positions() - joints[:, 0]).max() < 1e-5
        assert (np.sum(rig.rotations[1:] * rig.rotations[:-1], axis=-1) >= 0).all()
        assert np.array_equal(rig.contacts, person.contacts)


def test_foot_lock_picks_the_locked_pose(smpl, world_motion, motion):
    person = world_motion.people[0]
    locked = plan_import(world_motion, ImportOptions(people=(0,))).rigs[0]
    free = plan_import(world_motion, ImportOptions(people=(0,), foot_lock=False)).rigs[0]
    assert locked.foot_locked and not free.foot_locked
    for rig, pose in ((locked, person.pose_locked), (free, person.pose)):
        expected = axis_angle_to_quaternion(pose[:, 1:])
        assert np.allclose(np.abs(np.sum(rig.rotations[:, 1:] * expected, axis=-1)), 1.0)
        verts, _ = engine_world_body(smpl, world_motion, person, pose)
        assert np.abs(simulate_blender(rig, 3)[0] - verts[3]).max() < 1e-5
    assert np.abs(simulate_blender(locked, 3)[1] - simulate_blender(free, 3)[1]).max() > 1e-3
    plain = plan_import(motion, ImportOptions(people=(0,))).rigs[0]  # no pose_locked in the file: pose
    assert not plain.foot_locked and plain.contacts is None


def test_world_without_a_world_frame_is_one_line(motion):
    from motion_samples import sample_motion

    with pytest.raises(AddonError, match=r"^this motion file has no ground plane \(.*\): use root motion camera, "
                                         r"in_place or ground$") as err:
        plan_import(motion, ImportOptions(root_motion="world"))
    assert "\n" not in str(err.value)
    with pytest.raises(AddonError, match="person 0 has no world translation"):
        plan_import(sample_motion(), ImportOptions(root_motion="world"))


def test_auto_picks_world_or_camera(motion, world_motion):
    from motion_samples import sample_motion

    assert plan_import(motion, ImportOptions()).options.root_motion == "camera"
    assert plan_import(world_motion, ImportOptions()).options.root_motion == "world"
    sample = sample_motion()  # a world frame, but person 0 has no world translation
    mixed = plan_import(sample, ImportOptions())
    assert mixed.options.root_motion == "camera" and any("person 0 has no world translation" in n for n in mixed.notes)
    assert plan_import(sample, ImportOptions(people=(1,))).options.root_motion == "world"
    assert ImportOptions().root_motion == "auto"


def test_camera_mode_on_a_world_file_is_unchanged(motion, world_motion):
    before = plan_import(motion, ImportOptions(root_motion="camera"))
    after = plan_import(world_motion, ImportOptions(root_motion="camera", foot_lock=False))
    for a, b in zip(before.rigs, after.rigs, strict=True):
        assert np.array_equal(a.rotations, b.rotations) and np.array_equal(a.root_location, b.root_location)
    assert after.camera.motion is None and after.ground is None
    assert any("no ground plane: root motion 'camera'" in n for n in after.notes)


def test_world_camera_follows_camera_to_world(smpl, world_motion):
    plan = plan_import(world_motion, ImportOptions(frame_offset=1))
    cam = plan.camera.motion
    assert cam.animated and np.array_equal(cam.frames, world_motion.frame_index + 1)
    expected = world_motion.camera_to_world[:, :3, :3] @ np.diag([1.0, -1.0, -1.0])  # looks along its -Z
    assert np.abs(quaternion_to_matrix(cam.rotations) - expected).max() < 1e-9
    assert np.allclose(cam.locations, world_motion.camera_to_world[:, :3, 3])
    assert (np.sum(cam.rotations[1:] * cam.rotations[:-1], axis=-1) >= 0).all()
    assert plan.camera.lens_mm == pytest.approx(world_motion.meta["camera"]["focal_length_px"] * 36 / 1920)
    static = synthetic_motion(smpl, n_frames=10, world="static")
    assert not plan_import(static, ImportOptions()).camera.motion.animated


def test_ground_plane_and_the_other_modes_on_a_world_file(motion, world_motion):
    plan = plan_import(world_motion, ImportOptions(name="clip"))
    ground = plan.ground
    assert ground.name == "clip_ground" and plan.object_names()[-1] == "clip_ground"
    points = np.concatenate([r.pelvis_positions() for r in plan.rigs] + [plan.camera.motion.locations])
    low = np.array(ground.centre) - np.array(ground.size) / 2
    high = np.array(ground.centre) + np.array(ground.size) / 2
    assert np.allclose(low, points[:, :2].min(0) - 1.0) and np.allclose(high, points[:, :2].max(0) + 1.0)
    assert plan_import(world_motion, ImportOptions(ground_plane=False)).ground is None
    assert plan_import(motion, ImportOptions()).ground is None  # no world frame: no plane
    assert "rotating camera" in plan.world and "synthetic ground plane" in plan.world
    assert plan_import(motion, ImportOptions()).world is None

    world = plan.rigs[0].pelvis_positions()
    in_place = plan_import(world_motion, ImportOptions(root_motion="in_place", people=(0,)))
    ground_mode = plan_import(world_motion, ImportOptions(root_motion="ground", people=(0,)))
    assert in_place.ground is not None and in_place.camera is None
    p_in, p_gr = in_place.rigs[0].pelvis_positions(), ground_mode.rigs[0].pelvis_positions()
    assert np.ptp(p_in[:, :2], axis=0).max() < 1e-9 and np.allclose(p_in[:, 2], world[:, 2])  # height above the ground
    assert np.allclose(p_gr[:, 2], world[:, 2]) and np.allclose(p_gr[0, :2], p_in[0, :2])
    assert np.allclose(np.diff(p_gr[:, :2], axis=0), np.diff(world[:, :2], axis=0))
    assert np.allclose(in_place.rigs[0].rotations[:, 0], plan.rigs[0].rotations[:, 0])  # upright on the ground


def test_frames_to_check_come_from_the_reprojection_error():
    from motion_samples import sample_motion

    motion = sample_motion()
    person = motion.person(1)
    error = np.zeros(len(person), np.float32)
    error[[2, 5]] = 0.2 * person.box[[2, 5], 3]  # over a tenth of the box height
    error[7] = 0.05 * person.box[7, 3]  # under it
    error[8] = np.nan  # not observed
    motion = dataclasses.replace(motion, people=(motion.person(0), dataclasses.replace(person, reprojection_px=error)))
    plan = plan_import(motion, ImportOptions(root_motion="camera", frame_offset=10))
    rig = next(r for r in plan.rigs if r.person_id == 1)
    assert list(rig.check_frames) == [int(person.frame[2]) + 10, int(person.frame[5]) + 10]
    assert any(n.startswith("person 1: 2 frames to check") for n in plan.notes)
    assert len(next(r for r in plan.rigs if r.person_id == 0).check_frames) == 0  # no errors in the file
