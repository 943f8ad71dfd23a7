"""Foot lock (core.cleanup.foot_lock): planted feet stay put, knees behave, everything else is untouched."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from core.cleanup.foot_lock import lock_feet
from core.posing import axis_angle_to_matrix
from core.standins.body import make_body

BODY = make_body(0)
REST = np.asarray(BODY.joints, np.float64)
# Heel and toe points below and around each ankle (rest pose), as feet.py would pick them.
POINTS = np.stack([REST[7] + [0.0, -0.07, -0.05], REST[10] + [0.0, -0.03, 0.07],
                   REST[8] + [0.0, -0.07, -0.05], REST[11] + [0.0, -0.03, 0.07]])
L1 = np.linalg.norm(REST[4] - REST[1])
L2 = np.linalg.norm(REST[7] - REST[4])
LEG_JOINTS = [1, 2, 4, 5, 7, 8]


def _world(pose: np.ndarray, root: np.ndarray, chain=(0, 1, 4, 7)):
    """World rotations and positions of the joints of one chain (pelvis ... ankle)."""
    r = np.eye(3)[None].repeat(len(pose), 0)
    pos = root + REST[0]
    rots, positions = [], []
    prev = chain[0]
    for j in chain:
        if j != chain[0]:
            pos = pos + np.einsum("fab,b->fa", r, REST[j] - REST[prev])
        r = r @ axis_angle_to_matrix(pose[:, j])
        rots.append(r)
        positions.append(pos)
        prev = j
    return rots, positions


def _foot_points(pose, root, side=0):
    chain = (0, 1, 4, 7) if side == 0 else (0, 2, 5, 8)
    rots, pos = _world(pose, root, chain)
    a = chain[-1]
    return np.stack([pos[-1] + np.einsum("fab,b->fa", rots[-1], POINTS[2 * side + i] - REST[a]) for i in (0, 1)], 1)


def _angle_deg(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(np.swapaxes(ra, -1, -2) @ rb).magnitude())


def _knee_side(hip, knee, ankle):
    axis = (ankle - hip) / np.linalg.norm(ankle - hip, axis=1, keepdims=True)
    v = knee - hip
    return v - np.sum(v * axis, axis=1, keepdims=True) * axis


def _bend_deg(hip, knee, ankle):
    t = (knee - hip) / np.linalg.norm(knee - hip, axis=1, keepdims=True)
    s = (ankle - knee) / np.linalg.norm(ankle - knee, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(t * s, axis=1), -1, 1)))


def _leg_sequence(n=60, hip0=0.5, hip_rate=0.0015, knee0=0.8, knee_rate=-0.001, pitch=None, camera=False):
    """A left leg whose hip and knee angles creep (the ankle drifts a few cm) under a foot that keeps
    one world orientation (or pitches by ``pitch`` rad per frame); the right leg swings a little."""
    t = np.arange(n)
    pose = np.zeros((n, 24, 3))
    root = np.zeros((n, 3))
    pose[:, 0] = [0.05, 0.4, 0.02]
    pose[:, 1, 0] = -(hip0 + hip_rate * t)
    pose[:, 4, 0] = knee0 + knee_rate * t
    pose[:, 2, 0] = -0.2 + 0.01 * np.sin(t / 5)
    pose[:, 5, 0] = 0.4
    pose[:, 3] = [0.05, 0.0, 0.0]
    foot = Rotation.from_rotvec([0.1, 0.4, 0.05])
    if pitch is not None:
        foot = Rotation.from_rotvec(np.outer(pitch, [1.0, 0.0, 0.0])) * foot
    if camera:  # the same motion in camera axes: 180 degrees about x (y down)
        g = Rotation.from_rotvec([np.pi, 0, 0])
        pose[:, 0] = (g * Rotation.from_rotvec(pose[:, 0])).as_rotvec()
        root = g.apply(root + REST[0]) - REST[0] + [0.2, 0.1, 4.0]
        foot = g * foot
    rots, _ = _world(pose, root, (0, 1, 4))
    pose[:, 7] = (Rotation.from_matrix(rots[-1]).inv() * foot).as_rotvec() if pitch is not None else \
        (Rotation.from_matrix(rots[-1]).inv() * Rotation.from_matrix(np.tile(foot.as_matrix(), (n, 1, 1)))).as_rotvec()
    return pose, root


def _contacts(n, rows, cols=(0, 1)):
    c = np.zeros((n, 4), bool)
    for col in cols:
        c[rows, col] = True
    return c


@pytest.mark.parametrize("camera", [False, True])
def test_planted_foot_stays_within_a_millimetre_and_keeps_its_orientation(camera):
    pose, root = _leg_sequence(camera=camera)
    contacts = _contacts(60, slice(10, 40))
    up = np.array([0.0, -1.0, 0.0]) if camera else np.array([0.0, 1.0, 0.0])
    res = lock_feet(pose, root, REST, contacts, POINTS, np.arange(60), up=up, blend=5)

    before, after = _foot_points(pose, root), _foot_points(res.pose, root)
    drift = np.linalg.norm(before[10:40] - before[10], axis=-1).max()
    assert drift > 0.02  # the input foot slides by a few cm
    spread = np.linalg.norm(after[10:40] - after[10:40].mean(axis=0), axis=-1).max()
    assert spread < 1e-3
    # Held at the middle of the drift, not at one end of it.
    assert np.linalg.norm(after[25] - before[10:40].mean(axis=0), axis=-1).max() < 0.005
    r_in, r_out = _world(pose, root)[0][-1], _world(res.pose, root)[0][-1]
    assert _angle_deg(r_in, r_out).max() < 1.0
    assert res.segments.tolist() == [[0, 10, 39]]
    assert res.max_ankle_correction_m > 0.01 and res.max_lock_error_m < 1e-6
    assert res.max_vertical_correction_m <= res.max_ankle_correction_m


def test_frames_without_contact_and_other_joints_are_bit_exact():
    pose, root = _leg_sequence()
    pose = pose.astype(np.float32)
    res = lock_feet(pose, root, REST, _contacts(60, slice(10, 40)), POINTS, blend=5)
    assert res.pose.dtype == np.float32
    free = res.weights.max(axis=1) == 0
    assert free.sum() == 60 - 40  # 30 planted + 2 x 5 blend frames
    assert np.array_equal(res.pose[free], pose[free])
    others = [j for j in range(24) if j not in LEG_JOINTS]
    assert np.array_equal(res.pose[:, others], pose[:, others])
    assert np.array_equal(res.pose[:, [2, 5, 8]], pose[:, [2, 5, 8]])  # the right foot never touched


def test_blend_is_continuous():
    pose, root = _leg_sequence()
    contacts = _contacts(60, slice(10, 40))

    def largest_step(p):
        joints = np.concatenate([np.stack(_world(p, root)[1], 1), _foot_points(p, root)], axis=1)
        return np.linalg.norm(np.diff(joints, axis=0), axis=-1).max()

    res = lock_feet(pose, root, REST, contacts, POINTS, blend=5)
    # A smoothstep over 6 steps moves the correction by at most 1.5 / 6 of it per frame.
    bound = largest_step(pose) + 0.3 * res.max_ankle_correction_m + 1e-4
    assert largest_step(res.pose) < bound
    snap = lock_feet(pose, root, REST, contacts, POINTS, blend=0)
    assert largest_step(snap.pose) > bound  # the bound does catch a lock without blending


def test_out_of_reach_target_never_straightens_or_overextends_the_knee():
    # A nearly straight leg whose pelvis rises by 4 cm while the foot is planted: the target gets out of reach.
    pose, root = _leg_sequence(hip0=0.1, hip_rate=0.0, knee0=0.15, knee_rate=0.0)
    root[:, 1] += np.clip(np.arange(60) - 10, 0, 30) * 0.04 / 30
    res = lock_feet(pose, root, REST, _contacts(60, slice(10, 40)), POINTS, min_knee_bend_deg=4.0)
    hip, knee, ankle = _world(res.pose, root)[1][1:]
    hip0, knee0, ankle0 = _world(pose, root)[1][1:]
    assert np.all(np.linalg.norm(ankle - hip, axis=1) < L1 + L2 - 1e-4)
    assert _bend_deg(hip, knee, ankle)[10:40].min() > 4.0 - 1e-6
    assert np.all(np.sum(_knee_side(hip, knee, ankle) * _knee_side(hip0, knee0, ankle0), axis=1) > 0)
    assert 0.005 < res.max_lock_error_m < 0.03  # short of the target, by the soft limit
    # While the pelvis rises the knee straightens gradually (soft limit), never in one snap.
    bend = _bend_deg(hip, knee, ankle)[10:40]
    assert bend[0] - bend[-1] > 5.0 and np.abs(np.diff(bend)).max() < 1.5


def test_straight_input_leg_bends_forward_whichever_way_the_target_moves():
    for rate in (0.0015, -0.0015):  # ankle drifting forward, then backward, under a straight leg
        pose, root = _leg_sequence(hip0=0.3, hip_rate=rate, knee0=0.0, knee_rate=0.0)
        res = lock_feet(pose, root, REST, _contacts(60, slice(10, 40)), POINTS)
        _, hip, knee, ankle = _world(res.pose, root)[1]
        thigh_forward = np.einsum("fab,b->fa", _world(pose, root)[0][1], [0.0, 0.0, 1.0])
        side = _knee_side(hip, knee, ankle)
        assert np.all(np.sum(side[10:40] * thigh_forward[10:40], axis=1) > 0)
        assert np.linalg.norm(np.diff(_foot_points(res.pose, root)[10:40], axis=0), axis=-1).max() < 1e-3


def test_heel_strike_and_toe_off_roll_about_the_planted_point():
    # Toes up at heel strike (heel only, rows 10-17), flat (18-29), heel rising (toe only, 30-39).
    pitch = np.r_[np.zeros(10), np.linspace(-0.3, 0.0, 8), np.zeros(12), np.linspace(0.0, 0.4, 10), np.zeros(20)]
    pitch[40:] = 0.4
    pose, root = _leg_sequence(pitch=pitch)
    contacts = np.zeros((60, 4), bool)
    contacts[10:30, 0] = True
    contacts[18:40, 1] = True
    res = lock_feet(pose, root, REST, contacts, POINTS)
    pts = _foot_points(res.pose, root)
    assert np.linalg.norm(pts[10:30, 0] - pts[18, 0], axis=-1).max() < 1e-3  # heel: strike to heel off
    assert np.linalg.norm(pts[18:40, 1] - pts[18, 1], axis=-1).max() < 1e-3  # toe: flat to toe off
    r_in, r_out = _world(pose, root)[0][-1], _world(res.pose, root)[0][-1]
    assert _angle_deg(r_out[18:30], r_out[18]).max() < 1e-6  # one planted orientation while flat
    # The roll is the input's own, relative to the flat phase.
    for rows, ref in ((slice(10, 18), 18), (slice(30, 40), 29)):
        rel_in = r_in[rows] @ r_in[ref].T
        rel_out = r_out[rows] @ r_out[ref].T
        assert _angle_deg(rel_in, rel_out).max() < 1e-6


def test_input_orientation_mode_keeps_each_frames_foot_orientation():
    pitch = 0.05 * np.sin(np.arange(60) / 3.0)  # a wobbling foot
    pose, root = _leg_sequence(pitch=pitch)
    res = lock_feet(pose, root, REST, _contacts(60, slice(10, 40)), POINTS, orientation="input")
    r_in, r_out = _world(pose, root)[0][-1], _world(res.pose, root)[0][-1]
    assert _angle_deg(r_in, r_out)[10:40].max() < 1e-6
    assert _angle_deg(r_in, r_out).max() < 0.01  # blend frames: slerped local rotations, nearly exact
    mid_in = _foot_points(pose, root)[10:40].mean(axis=1)
    mid_out = _foot_points(res.pose, root)[10:40].mean(axis=1)
    assert np.ptp(mid_out, axis=0).max() < 0.2 * np.ptp(mid_in, axis=0).max()


def test_runs_split_at_frame_gaps_and_blending_does_not_cross_them():
    pose, root = _leg_sequence()
    frames = np.r_[0:30, 50:80]
    res = lock_feet(pose, root, REST, _contacts(60, slice(20, 36)), POINTS, frames)
    assert res.segments.tolist() == [[0, 20, 29], [0, 30, 35]]
    pts = _foot_points(res.pose, root)
    for rows in (slice(20, 30), slice(30, 36)):
        assert np.linalg.norm(pts[rows] - pts[rows].mean(axis=0), axis=-1).max() < 1e-3
    assert not np.allclose(res.targets[0], res.targets[1], atol=1e-3)  # each its own mean
    ends = lock_feet(pose, root, REST, _contacts(60, slice(22, 30)), POINTS, frames)
    assert np.all(ends.weights[30:, 0] == 0) and ends.weights[29, 0] == 1
    assert np.array_equal(ends.pose[30:], pose[30:])


def test_close_runs_blend_into_each_other_without_a_jump():
    pose, root = _leg_sequence()
    contacts = _contacts(60, slice(10, 25)) | _contacts(60, slice(28, 45))
    res = lock_feet(pose, root, REST, contacts, POINTS, blend=5)
    assert len(res.segments) == 2 and np.all(res.weights[25:28, 0] > 0.5)
    pts = _foot_points(res.pose, root)
    for rows in (slice(10, 25), slice(28, 45)):
        assert np.linalg.norm(pts[rows] - pts[rows].mean(axis=0), axis=-1).max() < 1e-3
    # Between the plants the foot travels from one anchor to the next: no faster than twice the
    # even pace over the 3 free frames (4 steps), on top of the input's own motion.
    hop = np.linalg.norm(pts[28] - pts[24], axis=-1).max()
    step = np.linalg.norm(np.diff(pts, axis=0), axis=-1).max()
    assert step < np.linalg.norm(np.diff(_foot_points(pose, root), axis=0), axis=-1).max() + 2 * hop / 4


def test_a_target_the_input_already_meets_changes_nothing():
    pose, root = _leg_sequence()
    contacts = np.zeros((60, 4), bool)
    contacts[[5, 20, 33], 0] = True  # one-frame runs: the target is the input itself
    res = lock_feet(pose, root, REST, contacts, POINTS, blend=3)
    assert np.abs(res.pose - pose).max() < 1e-9
    assert res.max_knee_change_deg < 1e-6


def test_bad_arguments_are_refused():
    pose, root = _leg_sequence(n=10)
    c = _contacts(10, slice(2, 5))
    with pytest.raises(ValueError, match="contacts"):
        lock_feet(pose, root, REST, c[:, :2], POINTS)
    with pytest.raises(ValueError, match="frames"):
        lock_feet(pose, root, REST, c, POINTS, np.r_[0:5, 3:8])
    with pytest.raises(ValueError, match="blend"):
        lock_feet(pose, root, REST, c, POINTS, blend=-1)
    with pytest.raises(ValueError, match="orientation"):
        lock_feet(pose, root, REST, c, POINTS, orientation="world")
    empty = lock_feet(pose[:0], root[:0], REST, c[:0], POINTS)
    assert empty.pose.shape == (0, 24, 3) and len(empty.segments) == 0


def test_ten_thousand_frames_under_a_second():
    pose, root = _leg_sequence()
    contacts = _contacts(60, slice(10, 40)) | _contacts(60, slice(25, 55), cols=(2, 3))
    reps = 10_000 // 60 + 1
    pose, root, contacts = (np.tile(x, (reps,) + (1,) * (x.ndim - 1))[:10_000] for x in (pose, root, contacts))
    start = time.perf_counter()
    res = lock_feet(pose, root, REST, contacts, POINTS)
    assert time.perf_counter() - start < 1.0
    assert len(res.segments) == 2 * reps - 1 or len(res.segments) == 2 * reps


def test_synthetic_walk_skate_is_cut():
    synthetic = pytest.importorskip("core.cleanup.synthetic")
    from core.cleanup.feet import foot_points

    walk = synthetic.make_walk(seconds=4.0)
    pose, trans = synthetic.add_staf_noise(walk.pose, walk.translation, walk.rest_joints, walk.fps)

    def skate(p):
        pts = foot_points(p, trans, walk.rest_vertices, walk.rest_joints, walk.skin_weights, walk.parents,
                          walk.foot_indices)
        held = walk.contacts[1:] & walk.contacts[:-1]
        return np.linalg.norm(np.diff(pts, axis=0), axis=-1)[held].mean()

    res = lock_feet(pose, trans, walk.rest_joints, walk.contacts, walk.rest_vertices[walk.foot_indices],
                    walk.frames)
    before, after = skate(pose), skate(res.pose)
    assert after < 0.2 * before and after < 0.005
    clean = lock_feet(walk.pose, walk.translation, walk.rest_joints, walk.contacts,
                      walk.rest_vertices[walk.foot_indices], walk.frames)
    assert np.abs(clean.pose - walk.pose).max() < 1e-6  # a walk already planted right is left alone


def test_heel_only_run_pins_the_heel_and_keeps_the_input_orientation():
    pitch = np.linspace(-0.2, 0.1, 60)  # the foot turns about the heel all along
    pose, root = _leg_sequence(pitch=pitch)
    res = lock_feet(pose, root, REST, _contacts(60, slice(10, 40), cols=(0,)), POINTS)
    heel = _foot_points(res.pose, root)[10:40, 0]
    assert np.linalg.norm(heel - heel.mean(axis=0), axis=-1).max() < 1e-3
    assert np.isnan(res.targets[0, 1]).all() and np.isfinite(res.targets[0, 0]).all()  # the toe never touched
    r_in, r_out = _world(pose, root)[0][-1], _world(res.pose, root)[0][-1]
    assert _angle_deg(r_in, r_out)[10:40].max() < 1e-6
