"""Foot points, contacts, ground plane, world frame and the depth-consistent trajectory (core.cleanup).

The truth comes from core.cleanup.synthetic's procedural walk (known contacts, known camera),
spoiled by its STAF-like noise.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.cleanup import metrics
from core.cleanup.contacts import detect_contacts, frame_segments, point_speeds, rough_up
from core.cleanup.feet import foot_points, foot_vertex_indices, joint_positions, pelvis_rays, to_cam0
from core.cleanup.ground import (
    camera_to_world_per_frame,
    fit_ground_plane,
    motion_to_world,
    world_frame,
)
from core.cleanup.synthetic import SyntheticWalk, add_staf_noise, make_walk, walk_body
from core.cleanup.trajectory import clean_trajectory, solve_depth
from core.posing import posed_joints_and_vertices


@pytest.fixture(scope="module")
def straight() -> SyntheticWalk:
    return make_walk(seconds=8.0)


@pytest.fixture(scope="module")
def turning() -> SyntheticWalk:
    return make_walk(seconds=10.0, turn_deg=90.0)


@pytest.fixture(scope="module")
def panning() -> SyntheticWalk:
    return make_walk(seconds=12.0, turn_deg=90.0, panning=True)


def _noisy(walk: SyntheticWalk, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return add_staf_noise(walk.pose, walk.translation, walk.rest_joints, walk.fps, seed=seed)


def _feet_cam0(walk: SyntheticWalk, pose: np.ndarray, translation: np.ndarray) -> np.ndarray:
    pts = foot_points(pose, translation, walk.rest_vertices, walk.rest_joints, walk.skin_weights, walk.parents,
                      walk.foot_indices)
    return to_cam0(pts, walk.r_rel)


def _clean(walk: SyntheticWalk, pose: np.ndarray, translation: np.ndarray):
    return clean_trajectory(pose, translation, walk.rest_vertices, walk.rest_joints, walk.skin_weights, walk.parents,
                            walk.frames, walk.fps, walk.r_rel)


def _to_world(walk: SyntheticWalk, points: np.ndarray) -> np.ndarray:
    """Camera-f points (F, K, 3) -> true world."""
    t = walk.camera_to_world
    return np.einsum("fab,fkb->fka", t[:, :3, :3], points) + t[:, None, :3, 3]


# --- foot points ------------------------------------------------------------------------------


def test_foot_points_sit_on_the_soles_heel_behind_toe():
    from core.standins.body import make_body

    body = make_body(3)
    ids = foot_vertex_indices(body.v_template, body.lbs_weights)
    v = body.v_template
    assert len(set(ids.tolist())) == 4
    for side, (heel, toe), joints in ((1, ids[:2], (7, 10)), (-1, ids[2:], (8, 11))):
        assert v[toe, 2] - v[heel, 2] > 0.15  # heel well behind the toe
        assert side * v[heel, 0] > 0.03 and side * v[toe, 0] > 0.03  # on that side's foot
        foot = body.lbs_weights[:, list(joints)].sum(1) > 0.5
        lowest = v[foot, 1].min()
        assert v[heel, 1] - lowest < 0.02 and v[toe, 1] - lowest < 0.02  # on the sole
        assert body.lbs_weights[[heel, toe]][:, list(joints)].sum(1).min() > 0.5


def test_foot_points_equal_full_skinning():
    verts, joints, weights, parents = walk_body(0)
    rng = np.random.default_rng(0)
    pose = rng.normal(0.0, 0.4, (5, 24, 3))
    trans = rng.normal(0.0, 1.0, (5, 3))
    ids = foot_vertex_indices(verts, weights)
    fast = foot_points(pose, trans, verts, joints, weights, parents, ids)
    full_j, full_v = posed_joints_and_vertices(pose, verts, joints, parents, weights)
    np.testing.assert_allclose(fast, full_v[:, ids] + trans[:, None], atol=1e-10)
    np.testing.assert_allclose(joint_positions(pose, trans, joints, parents), full_j + trans[:, None], atol=1e-10)


# --- the synthetic walk ---------------------------------------------------------------------


def test_walk_plants_feet_exactly_and_agrees_with_its_cameras(panning):
    walk = panning
    both = walk.contacts[1:] & walk.contacts[:-1]
    step = np.linalg.norm(np.diff(walk.world_feet, axis=0), axis=-1)
    assert both.sum() > 300 and step[both].max() < 1e-9
    assert np.abs(walk.world_feet[..., 2][walk.contacts]).max() < 1e-9
    assert walk.world_feet[..., 2].min() > -1e-9  # no foot point below the floor
    swing = ~walk.contacts
    assert np.percentile(step[swing[1:] & swing[:-1]], 50) * walk.fps > 1.0  # swinging feet move
    cam = foot_points(walk.pose, walk.translation, walk.rest_vertices, walk.rest_joints, walk.skin_weights,
                      walk.parents, walk.foot_indices)
    np.testing.assert_allclose(_to_world(walk, cam), walk.world_feet, atol=1e-9)
    t0 = walk.camera_to_world[0]
    np.testing.assert_allclose(to_cam0(cam, walk.r_rel) @ t0[:3, :3].T + t0[:3, 3], walk.world_feet, atol=1e-9)
    assert np.degrees(np.arccos(np.clip(walk.r_rel[:, 2, 2], -1, 1))).max() > 20.0  # the camera really pans
    assert 12.0 < walk.distance_walked < 14.0
    # The knees bend forward only, within a human range.
    knee = np.degrees(np.linalg.norm(walk.pose[:, [4, 5]], axis=-1))
    assert knee.min() > 5.0 and knee.max() < 100.0


def test_noise_is_along_the_ray_mostly_and_slow(straight):
    pose, trans = _noisy(straight)
    ray = pelvis_rays(straight.translation, straight.rest_joints)
    diff = trans - straight.translation
    along = np.sum(diff * ray, axis=1)
    assert 0.03 < along.std() < 0.08
    assert np.linalg.norm(diff - along[:, None] * ray, axis=1).std() < 0.01
    angle = (Rotation.from_rotvec(pose.reshape(-1, 3)).inv() * Rotation.from_rotvec(
        straight.pose.reshape(-1, 3))).magnitude()
    assert 0.5 < np.degrees(np.sqrt(np.mean(angle ** 2))) < 2.5
    assert np.abs(np.diff(along, 2)).mean() < 0.005  # correlated in time, not white


# --- contacts ---------------------------------------------------------------------------------


def test_contacts_match_the_truth_without_noise(straight, panning):
    for walk in (straight, panning):
        pts = _feet_cam0(walk, walk.pose, walk.translation)
        first = detect_contacts(pts, walk.frames, walk.fps, up=rough_up(walk.pose, walk.r_rel))
        assert np.mean(first == walk.contacts) >= 0.95
        heights = _to_world(walk, foot_points(walk.pose, walk.translation, walk.rest_vertices, walk.rest_joints,
                                              walk.skin_weights, walk.parents, walk.foot_indices))[..., 2]
        second = detect_contacts(pts, walk.frames, walk.fps, heights=heights)
        assert np.mean(second == walk.contacts) >= 0.95


def _runs(mask: np.ndarray) -> int:
    return int(np.sum(np.diff(mask.astype(np.int8), axis=0) == 1) + np.sum(mask[0]))


def test_contacts_on_noisy_walk_do_not_flicker(straight):
    pose, trans = _noisy(straight, seed=4)
    pts = _feet_cam0(straight, pose, trans)
    rays = to_cam0(pelvis_rays(trans, straight.rest_joints), straight.r_rel)
    found = detect_contacts(pts, straight.frames, straight.fps, up=rough_up(pose, straight.r_rel), rays=rays)
    assert np.mean(found == straight.contacts) >= 0.93
    assert _runs(found) <= _runs(straight.contacts) + 2
    # Without the depth-noise handling the same noise breaks contacts up or misses them.
    plain = detect_contacts(pts, straight.frames, straight.fps, up=rough_up(pose, straight.r_rel))
    assert np.mean(plain == straight.contacts) < np.mean(found == straight.contacts)


def test_no_speed_across_a_frame_gap():
    frames = np.array([0, 1, 2, 10, 20, 21])
    pts = np.zeros((6, 1, 3))
    pts[3:, 0, 0] = 5.0  # a jump across the gap
    speed = point_speeds(pts, frames, 30.0)
    assert np.all(speed[[0, 1, 2, 5]] == 0.0)
    assert np.isinf(speed[3, 0])  # alone between two gaps: unknown, never a contact
    assert frame_segments(frames) == [(0, 3), (3, 4), (4, 6)]
    found = detect_contacts(pts, frames, 30.0, heights=np.zeros((6, 1)))
    assert not found[3, 0] and found[0, 0]


# --- ground plane and world frame ---------------------------------------------------------------


def _normal_error_deg(walk: SyntheticWalk, normal: np.ndarray) -> float:
    true_up = walk.camera_to_world[0, :3, :3].T @ np.array([0.0, 0.0, 1.0])
    return float(np.degrees(np.arccos(np.clip(normal @ true_up, -1.0, 1.0))))


def test_plane_from_the_noisy_walk_matches_the_camera(turning):
    result = _clean(turning, *_noisy(turning, seed=2))
    plane = result.plane
    assert plane is not None, result.reason
    assert _normal_error_deg(turning, plane.normal) < 2.0
    assert abs(plane.camera_height - turning.camera_height) < 0.03
    assert abs(plane.pitch_deg - turning.camera_pitch_deg) < 1.0
    assert abs(plane.roll_deg) < 1.0
    assert plane.inlier_fraction > 0.9
    np.testing.assert_allclose(plane.camera_to_world, turning.camera_to_world[0], atol=0.04)


def test_world_frame_axes():
    pitch = np.radians(15.0)
    up = np.array([0.0, -np.cos(pitch), -np.sin(pitch)])  # camera pitched down 15 deg
    plane = world_frame(up, 2.0)
    rot = plane.camera_to_world[:3, :3]
    assert np.isclose(np.linalg.det(rot), 1.0)
    np.testing.assert_allclose(plane.to_world(np.zeros(3)), [0.0, 0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(rot @ [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], atol=1e-12)  # camera right = world x
    assert (rot @ [0.0, 0.0, 1.0])[1] > 0.9  # looking along world +y
    assert np.isclose(plane.pitch_deg, 15.0) and np.isclose(plane.roll_deg, 0.0)
    np.testing.assert_allclose(plane.heights(-2.0 * up + [0.3, 0.0, 0.0]), 0.0, atol=1e-12)
    rel = Rotation.from_euler("y", [[0.0], [30.0]], degrees=True).as_matrix()
    per = camera_to_world_per_frame(plane.camera_to_world, rel)
    np.testing.assert_allclose(per[0], plane.camera_to_world)
    np.testing.assert_allclose(per[1][:3, 3], [0.0, 0.0, 2.0], atol=1e-12)  # turns about its centre


def test_motion_to_world_keeps_the_body(panning):
    w = panning
    pose_w, trans_w = motion_to_world(w.pose, w.translation, w.rest_joints, w.camera_to_world)
    np.testing.assert_allclose(joint_positions(pose_w, trans_w, w.rest_joints, w.parents), w.world_joints, atol=1e-9)


@pytest.mark.parametrize("case", ["none", "few", "one spot", "line", "wall", "below"])
def test_plane_refused_with_a_reason(case):
    rng = np.random.default_rng(0)
    floor = np.array([0.0, 1.5, 0.0])  # camera 1.5 m above a level floor: floor points have y = 1.5
    points = {
        "none": np.zeros((0, 3)),
        "few": floor + rng.uniform(-1, 1, (10, 3)) * [1, 0, 1] + [0, 0, 5],
        "one spot": floor + rng.normal(0, 0.02, (200, 3)) * [1, 0.3, 1] + [0, 0, 4],
        "line": floor + np.outer(rng.uniform(-2, 2, 300), [1.0, 0.0, 0.3]) + [0, 0, 5],
        "wall": np.c_[rng.uniform(-2, 2, (300, 2)), np.full(300, 4.0)],
        "below": -floor + rng.uniform(-2, 2, (300, 3)) * [1, 0, 1] + [0, 0, 5],
    }[case]
    plane, reason = fit_ground_plane(points)
    assert plane is None
    assert reason.startswith("no ground plane") and "\n" not in reason
    # A real floor patch of the same size is accepted.
    ok, why = fit_ground_plane(floor + rng.uniform(-1, 1, (300, 3)) * [1, 0.005, 1] + [0, 0, 5])
    assert ok is not None and why == "" and abs(ok.camera_height - 1.5) < 0.01


def _still_clip(walk: SyntheticWalk, hip_deg: float, knee_deg: float, feet_apart: float, frames: int = 90):
    """A person holding one pose, soles flat on the floor, facing the camera 3 m away, with noise:
    camera-axes (pose, translation). ``feet_apart``: each hip's abduction (deg, negative closes)."""
    pose = np.zeros((frames, 24, 3))
    for hip, knee, ankle, side in ((1, 4, 7, 1.0), (2, 5, 8, -1.0)):
        abduct = Rotation.from_euler("z", side * feet_apart, degrees=True)
        flex = Rotation.from_euler("x", -hip_deg, degrees=True)
        pose[:, hip] = (abduct * flex).as_rotvec()
        pose[:, knee, 0] = np.radians(knee_deg)
        pose[:, ankle] = (Rotation.from_euler("x", hip_deg - knee_deg, degrees=True) * abduct.inv()).as_rotvec()
    body_to_world = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]).T  # facing the camera
    pose[:, 0] = Rotation.from_matrix(body_to_world).as_rotvec()
    feet = foot_points(pose, np.zeros((frames, 3)), walk.rest_vertices, walk.rest_joints, walk.skin_weights,
                       walk.parents, walk.foot_indices)
    assert np.ptp(feet[0, :, 2]) < 0.003  # all four foot points at one height
    trans = np.array([0.0, 3.0, -feet[0, 0, 2]]) + np.zeros((frames, 3))
    world_to_cam = np.linalg.inv(walk.camera_to_world[0])
    cam_pose, cam_t = motion_to_world(pose, trans, walk.rest_joints, world_to_cam)
    return add_staf_noise(cam_pose, cam_t, walk.rest_joints, walk.fps, depth_sd=0.02, rotation_sd_deg=1.0, seed=3)


def test_sitting_and_feet_together_get_no_plane(straight):
    def clean(pose: np.ndarray, trans: np.ndarray):
        w = straight
        return clean_trajectory(pose, trans, w.rest_vertices, w.rest_joints, w.skin_weights, w.parents,
                                np.arange(len(pose)), w.fps)

    sitting = clean(*_still_clip(straight, hip_deg=90.0, knee_deg=90.0, feet_apart=8.0))
    assert sitting.plane is None and "sitting" in sitting.reason
    assert sitting.translation_world is None and sitting.camera_to_world is None
    assert sitting.contacts.mean() > 0.9  # the feet are down, only no floor is made from them
    together = clean(*_still_clip(straight, hip_deg=0.0, knee_deg=0.0, feet_apart=-5.5))
    assert together.plane is None and "span only" in together.reason
    apart = clean(*_still_clip(straight, hip_deg=0.0, knee_deg=0.0, feet_apart=10.0))
    assert apart.plane is not None, apart.reason  # a wide stance is a floor (see ground.py)
    assert abs(apart.plane.camera_height - straight.camera_height) < 0.1


# --- trajectory ---------------------------------------------------------------------------------


def _skates(walk: SyntheticWalk, pose: np.ndarray, before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    def feet(trans: np.ndarray) -> np.ndarray:
        return _to_world(walk, foot_points(pose, trans, walk.rest_vertices, walk.rest_joints, walk.skin_weights,
                                           walk.parents, walk.foot_indices))

    return (metrics.foot_skate(feet(before), walk.contacts, walk.frames),
            metrics.foot_skate(feet(after), walk.contacts, walk.frames))


def test_trajectory_pins_depth_on_a_panning_walk(panning):
    pose, trans = _noisy(panning, seed=5)
    result = _clean(panning, pose, trans)
    assert result.plane is not None, result.reason
    before, after = _skates(panning, pose, trans, result.translation)
    assert after < 0.5 * before and after < 5.0
    root = result.translation_world + panning.rest_joints[0]
    err = metrics.trajectory_error(root, panning.world_joints[:, 0], panning.frames, panning.fps)
    assert err["length_error"] < 0.1 and err["rte"] < 0.1 and err["mean_m"] < 0.1
    assert np.mean(result.contacts == panning.contacts) > 0.93
    np.testing.assert_allclose(result.camera_to_world[:, :3, 3], panning.camera_to_world[:, :3, 3], atol=0.03)
    depth = np.sum((result.translation - panning.translation) * pelvis_rays(trans, panning.rest_joints), axis=1)
    assert np.abs(depth).mean() < 0.5 * np.abs(np.sum((trans - panning.translation) * pelvis_rays(
        trans, panning.rest_joints), axis=1)).mean()


def test_trajectory_without_contacts_only_smooths(straight):
    _, trans = _noisy(straight, seed=6)
    feet = np.zeros((len(trans), 4, 3))
    rays = pelvis_rays(trans, straight.rest_joints)
    pelvis = trans + straight.rest_joints[0]
    d = solve_depth(feet, rays, pelvis, np.zeros((len(trans), 4), bool), straight.frames)
    fixed = pelvis + d[:, None] * rays
    assert np.abs(np.diff(fixed, 2, axis=0)).mean() < np.abs(np.diff(pelvis, 2, axis=0)).mean()
    assert np.abs(d).max() < 0.2


def test_trajectory_across_a_gap(straight):
    rows = np.r_[0:100, 130:len(straight.frames)]
    walk = straight.subset(rows)
    pose, trans = _noisy(walk, seed=7)
    result = _clean(walk, pose, trans)
    assert result.plane is not None, result.reason
    before, after = _skates(walk, pose, trans, result.translation)
    assert after < 0.5 * before
    root = result.translation_world + walk.rest_joints[0]
    assert np.linalg.norm(root - walk.world_joints[:, 0], axis=1).max() < 0.2


def test_ten_thousand_frames_are_fast():
    walk = make_walk(seconds=10000 / 30.0, direction_deg=0.0)
    pose, trans = _noisy(walk, seed=8)
    start = time.perf_counter()
    result = _clean(walk, pose, trans)
    whole = time.perf_counter() - start
    assert result.plane is not None
    feet0 = _feet_cam0(walk, pose, trans)
    rays = pelvis_rays(trans, walk.rest_joints)
    start = time.perf_counter()
    solve_depth(feet0, rays, trans + walk.rest_joints[0], result.contacts, walk.frames, result.plane)
    solve = time.perf_counter() - start
    assert solve < 0.5, solve
    assert whole < 3.0, whole


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_on_known_motions():
    frames = np.arange(40)
    line = np.outer(frames / 30.0, [1.0, 0.0, 0.0])[:, None, :]  # 1 m/s, constant velocity
    assert metrics.jitter(line, 30.0, frames) < 1e-9
    assert np.isclose(metrics.path_length(line[:, 0], frames, 30.0), 39 / 30.0)
    contacts = np.ones((40, 1), bool)
    assert np.isclose(metrics.foot_skate(line, contacts, frames), 1000.0 / 30.0)
    still = np.zeros((40, 1, 3))
    assert metrics.foot_skate(still, contacts, frames) == 0.0
    assert np.isnan(metrics.foot_skate(still, np.zeros((40, 1), bool), frames))
    err = metrics.trajectory_error(line[:, 0] * 1.05, line[:, 0], frames, 30.0)
    assert np.isclose(err["length_error"], 0.05) and err["rte"] < 0.05
    assert np.isclose(metrics.joint_error(still + np.array([0.0, 0.003, 0.004]), still), 5.0)


@pytest.mark.parametrize("count", [0, 1, 5])
def test_tiny_clips_get_no_plane_and_keep_their_translation(straight, count):
    w = straight
    result = clean_trajectory(w.pose[:count], w.translation[:count], w.rest_vertices, w.rest_joints, w.skin_weights,
                              w.parents, w.frames[:count], w.fps, w.r_rel[:count])
    assert result.plane is None and result.reason.startswith("no ground plane")
    assert result.translation.shape == (count, 3) and result.contacts.shape == (count, 4)
    np.testing.assert_allclose(result.translation, w.translation[:count], atol=0.05)
