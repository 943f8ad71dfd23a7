"""Planted feet on a retargeted rig (staf_blender/retarget/plant.py): where the source's foot is on
the ground the target's ankle moves exactly as the source's (still where it is still) although its
legs are longer and its arms in an A-pose, the foot keeps its orientation, nothing else changes,
and the correction eases in and out without a jump."""

from __future__ import annotations

import numpy as np
import pytest
from retarget_rigs import SMPL_REST, build_target, fk, smpl_source

from staf_blender.errors import AddonError
from staf_blender.retarget import PRESETS, retarget, world_rotations
from staf_blender.retarget.plant import EASE_FRAMES, ankle_goals, plant_feet, posed_heads
from staf_blender.retarget.presets import SMPL_JOINT_NAMES
from staf_blender.rotations import axis_angle_to_quaternion

FRAMES = 120
RUNS = ((10, 45), (70, 100))  # frames [start, end) with the left foot on the ground


def _sway(frames: int = FRAMES, dip: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """A standing sway: bent knees, the pelvis turning and moving a few centimetres, legs and arms
    moving a little (local quaternions (F, 24, 4), pelvis head path (F, 3))."""
    rng = np.random.default_rng(3)
    t = np.arange(frames)[:, None] / 30.0
    aa = np.zeros((frames, 24, 3))
    for joint, axis, rest in (("left_hip", 0, -0.4), ("right_hip", 0, -0.4), ("left_knee", 0, 0.7),
                              ("right_knee", 0, 0.7), ("left_ankle", 0, -0.3), ("right_ankle", 0, -0.3)):
        aa[:, SMPL_JOINT_NAMES.index(joint), axis] = rest
    aa += 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, (1, 24, 3)) * t[:, :, None] + rng.uniform(0, 6, (1, 24, 3)))
    aa[:, 0, 2] += 0.25 * np.sin(2 * np.pi * 0.4 * t[:, 0])  # pelvis yaw, +-15 degrees
    path = SMPL_REST["pelvis"] + np.stack([0.05 * np.sin(2 * np.pi * 0.5 * t[:, 0]), 0.03 * np.sin(t[:, 0]),
                                           -dip + 0.02 * np.sin(2 * np.pi * 0.7 * t[:, 0])], -1)
    return axis_angle_to_quaternion(aa), path


def _planted(frames: int = FRAMES) -> np.ndarray:
    flags = np.zeros(frames, bool)
    for start, end in RUNS:
        flags[start:end] = True
    return flags


def _solve(name: str, planted: dict | None, quats: np.ndarray, path: np.ndarray):
    """(target, its posed bone matrices (F, B, 4, 4), the source's, the translation scale)."""
    source, target = smpl_source(), build_target(name)
    src = fk(source, dict(zip(SMPL_JOINT_NAMES, np.moveaxis(quats, 1, 0), strict=True)),
             {"pelvis": (path - SMPL_REST["pelvis"]) @ source.matrices[0]}, quats.shape[0])
    result = retarget(source, target, PRESETS[name], world_rotations(source, quats), src[:, 0, :3, 3],
                      planted=planted)
    posed = fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
               {result.root_bone: result.root_location}, quats.shape[0])
    return target, posed, src, result.scale


@pytest.mark.parametrize("name", ["ue5", "rigify", "mixamo"])
def test_the_planted_ankle_moves_as_the_source_ankle_on_longer_legs(name):
    """Over a contact the target's ankle moves as the source's (scaled): still where it is still."""
    quats, path = _sway()
    target, free, src, scale = _solve(name, None, quats, path)
    _, held, _, _ = _solve(name, {"left": _planted()}, quats, path)
    ankle = target.index(PRESETS[name]["left_ankle"])
    source_ankle = scale * src[:, SMPL_JOINT_NAMES.index("left_ankle"), :3, 3]
    for start, end in RUNS:
        def slip(posed, start=start, end=end):
            moved = posed[start:end, ankle, :3, 3] - posed[start, ankle, :3, 3]
            return np.linalg.norm(moved - (source_ankle[start:end] - source_ankle[start]), axis=-1).max()

        assert slip(free) > 0.005, "the test's proportions should make the unplanted ankle slide"
        assert slip(held) < 1e-3, f"planted ankle slid {slip(held) * 1000:.2f} mm in frames {start}-{end}"
    # The foot's orientation is the free solve's; the other leg and every frame away from a contact are too.
    np.testing.assert_allclose(held[:, ankle, :3, :3], free[:, ankle, :3, :3], atol=1e-9)
    right = target.index(PRESETS[name]["right_ankle"])
    np.testing.assert_allclose(held[:, right], free[:, right], atol=1e-9)
    away = ~_planted()
    for start, end in RUNS:
        away[start - EASE_FRAMES:end + EASE_FRAMES] = False
    np.testing.assert_allclose(held[away], free[away], atol=1e-9)
    # The knee stays in front: the leg bends the way it bent, not backwards.
    knee = target.index(PRESETS[name]["left_knee"])
    hip = target.index(PRESETS[name]["left_hip"])
    bend_free = np.cross(free[:, knee, :3, 3] - free[:, hip, :3, 3], free[:, ankle, :3, 3] - free[:, knee, :3, 3])
    bend_held = np.cross(held[:, knee, :3, 3] - held[:, hip, :3, 3], held[:, ankle, :3, 3] - held[:, knee, :3, 3])
    assert np.all(np.sum(bend_free * bend_held, -1) > 0)


def test_the_hold_eases_in_and_out_without_a_jump():
    quats, path = _sway()
    target, free, _, _ = _solve("ue5", None, quats, path)
    _, held, _, _ = _solve("ue5", {"left": _planted()}, quats, path)
    ankle = target.index("foot_l")
    for start, end in RUNS:
        for window in (slice(start - EASE_FRAMES - 1, start + 1), slice(end - 1, end + EASE_FRAMES + 1)):
            steps_held = np.linalg.norm(np.diff(held[window, ankle, :3, 3], axis=0), axis=-1)
            apart = np.linalg.norm(free[window, ankle, :3, 3] - held[start, ankle, :3, 3], axis=-1).max()
            steps_free = np.linalg.norm(np.diff(free[window, ankle, :3, 3], axis=0), axis=-1)
            # Each step moves at most its share of the way, plus the free motion: no one-frame jump.
            assert steps_held.max() <= steps_free.max() + apart / (EASE_FRAMES + 1) + 1e-6
            assert steps_held.max() < 0.7 * apart


def test_ankle_goals_hold_and_fade():
    free = np.cumsum(np.full((24, 3), 0.01), axis=0)
    planted = np.zeros(24, bool)
    planted[6:11] = True
    planted[13:15] = True  # a second contact two frames after the first: the fades meet
    goal, weight = ankle_goals(free, planted, ease=4)
    first, second = np.median(free[6:11], axis=0), np.median(free[13:15], axis=0)
    np.testing.assert_allclose(goal[6:11], np.broadcast_to(first, (5, 3)))
    np.testing.assert_allclose(goal[13:15], np.broadcast_to(second, (2, 3)))
    assert weight[6:11].tolist() == [1.0] * 5 and weight[13:15].tolist() == [1.0] * 2
    assert weight[:6].tolist() == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8])  # easing in
    assert weight[11:13].tolist() == pytest.approx([0.8, 0.8])  # where fades meet, the stronger one
    np.testing.assert_allclose(goal[11], free[11] + 0.8 * (first - free[11]))
    np.testing.assert_allclose(goal[12], free[12] + 0.8 * (second - free[12]))
    assert weight[15:19].tolist() == pytest.approx([0.8, 0.6, 0.4, 0.2]) and weight[19:].sum() == 0
    np.testing.assert_allclose(goal[19:], free[19:])


def test_a_straight_leg_bends_forward():
    """Straight legs (the rest pose) with the pelvis rising 10 cm while the feet are held still:
    where the hold is above the straight leg's ankle the knees bend, toward the front (-Y)."""
    frames = 21
    target = build_target("vrm")
    rest = {i: np.broadcast_to(target.matrices[i], (frames, 3, 3)) for i in range(len(target.names))}
    hips = target.index("hips")
    rise = np.outer(np.linspace(-0.1, 0.0, frames), [0.0, 0.0, 1.0])
    legs = {side: (f"{side}UpperLeg", f"{side}LowerLeg", f"{side}Foot") for side in ("left", "right")}
    free = posed_heads(target, rest, hips, rise)
    wanted = dict(rest)
    plant_feet(target, legs, wanted, hips, rise, {side: np.ones(frames, bool) for side in legs},
               np.array([0.0, -1.0, 0.0]))
    held = posed_heads(target, wanted, hips, rise)
    for side in legs:
        knee, ankle = target.index(f"{side}LowerLeg"), target.index(f"{side}Foot")
        spot = np.median(free[:, ankle], axis=0)
        bent = slice(0, 9)  # frames whose straight leg ends more than 1 cm below the hold
        assert np.all(free[bent, ankle, 2] < spot[2] - 0.01)
        np.testing.assert_allclose(held[bent, ankle], np.broadcast_to(spot, (9, 3)), atol=1e-6)
        assert np.all(held[bent, knee, 1] < free[bent, knee, 1] - 0.01)  # the knee went forward


def test_contacts_of_the_wrong_length_give_one_line():
    quats, path = _sway(30)
    with pytest.raises(AddonError, match="left foot contacts: expected 30 frames"):
        _solve("ue5", {"left": np.ones(29, bool)}, quats, path)
