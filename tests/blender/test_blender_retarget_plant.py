"""Planted feet on a retargeted rig (staf_blender/retarget/plant.py): where the source's foot is on
the ground the target's ankle holds still although its legs are longer and its arms in an A-pose,
the foot keeps its orientation, nothing else changes, and the hold eases out without a jump."""

from __future__ import annotations

import numpy as np
import pytest
from retarget_rigs import SMPL_REST, build_target, fk, smpl_source

from staf_blender.errors import AddonError
from staf_blender.retarget import PRESETS, retarget, world_rotations
from staf_blender.retarget.plant import EASE_FRAMES, ankle_goals
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
    source, target = smpl_source(), build_target(name)
    result = retarget(source, target, PRESETS[name], world_rotations(source, quats), path, planted=planted)
    posed = fk(target, dict(zip(result.bones, np.moveaxis(result.rotations, 1, 0), strict=True)),
               {result.root_bone: result.root_location}, quats.shape[0])
    return target, posed


@pytest.mark.parametrize("name", ["ue5", "rigify", "mixamo"])
def test_the_planted_ankle_stays_put_on_longer_legs(name):
    quats, path = _sway()
    target, free = _solve(name, None, quats, path)
    _, held = _solve(name, {"left": _planted()}, quats, path)
    ankle = target.index(PRESETS[name]["left_ankle"])
    for start, end in RUNS:
        drift_free = np.linalg.norm(free[start:end, ankle, :3, 3] - free[start, ankle, :3, 3], axis=-1).max()
        drift = np.linalg.norm(held[start:end, ankle, :3, 3] - held[start, ankle, :3, 3], axis=-1).max()
        assert drift_free > 0.02, "the test motion should make the unplanted ankle slide"
        assert drift < 1e-3, f"planted ankle moved {drift * 1000:.2f} mm in frames {start}-{end}"
    # The foot's orientation is the free solve's; the other leg and every frame away from a hold are too.
    np.testing.assert_allclose(held[:, ankle, :3, :3], free[:, ankle, :3, :3], atol=1e-9)
    right = target.index(PRESETS[name]["right_ankle"])
    np.testing.assert_allclose(held[:, right], free[:, right], atol=1e-9)
    away = ~_planted()
    for _, end in RUNS:
        away[end:end + EASE_FRAMES] = False
    np.testing.assert_allclose(held[away], free[away], atol=1e-9)
    # The knee stays in front: the leg bends the way it bent, not backwards.
    knee = target.index(PRESETS[name]["left_knee"])
    hip = target.index(PRESETS[name]["left_hip"])
    bend_free = np.cross(free[:, knee, :3, 3] - free[:, hip, :3, 3], free[:, ankle, :3, 3] - free[:, knee, :3, 3])
    bend_held = np.cross(held[:, knee, :3, 3] - held[:, hip, :3, 3], held[:, ankle, :3, 3] - held[:, knee, :3, 3])
    assert np.all(np.sum(bend_free * bend_held, -1) > 0)


def test_the_hold_eases_out_without_a_jump():
    quats, path = _sway()
    target, free = _solve("ue5", None, quats, path)
    _, held = _solve("ue5", {"left": _planted()}, quats, path)
    ankle = target.index("foot_l")
    for _, end in RUNS:
        window = slice(end - 1, end + EASE_FRAMES + 1)
        steps_held = np.linalg.norm(np.diff(held[window, ankle, :3, 3], axis=0), axis=-1)
        apart = np.linalg.norm(free[window, ankle, :3, 3] - held[end - 1, ankle, :3, 3], axis=-1).max()
        steps_free = np.linalg.norm(np.diff(free[window, ankle, :3, 3], axis=0), axis=-1)
        # Each step moves at most a fifth of the way back, plus the free motion: no one-frame jump.
        assert steps_held.max() <= steps_free.max() + apart / (EASE_FRAMES + 1) + 1e-6
        assert steps_held.max() < 0.5 * apart


def test_ankle_goals_hold_and_fade():
    free = np.cumsum(np.full((20, 3), 0.01), axis=0)
    planted = np.zeros(20, bool)
    planted[3:8] = True
    planted[10:12] = True  # a second contact two frames after the first: its fade stops there
    goal, weight = ankle_goals(free, planted, ease=4)
    np.testing.assert_allclose(goal[3:8], np.broadcast_to(free[3], (5, 3)))
    assert weight[3:8].tolist() == [1.0] * 5 and weight[:3].tolist() == [0.0] * 3
    assert weight[8] == pytest.approx(0.8) and weight[9] == pytest.approx(0.6)
    np.testing.assert_allclose(goal[8], free[8] + 0.8 * (free[3] - free[8]))
    np.testing.assert_allclose(goal[10:12], np.broadcast_to(free[10], (2, 3)))
    assert weight[12:16].tolist() == pytest.approx([0.8, 0.6, 0.4, 0.2]) and weight[16:].sum() == 0
    np.testing.assert_allclose(goal[16:], free[16:])


def test_a_straight_leg_bends_forward():
    """From straight legs (the rest pose), lowering the pelvis with the feet planted bends the knees
    toward the front (-Y), the way knees bend."""
    frames = 20
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (frames, 24, 1))
    path = SMPL_REST["pelvis"] + np.outer(np.linspace(0.0, 0.1, frames), [0.0, 0.0, -1.0])
    planted = np.ones(frames, bool)
    target, held = _solve("vrm", {"left": planted, "right": planted}, quats, path)
    for side in ("left", "right"):
        knee, ankle = target.index(f"{side}LowerLeg"), target.index(f"{side}Foot")
        np.testing.assert_allclose(held[:, ankle, :3, 3], np.broadcast_to(held[0, ankle, :3, 3], (frames, 3)),
                                   atol=1e-6)
        assert held[-1, knee, 1, 3] < held[0, knee, 1, 3] - 0.05  # the knee went forward


def test_contacts_of_the_wrong_length_give_one_line():
    quats, path = _sway(30)
    with pytest.raises(AddonError, match="left foot contacts: expected 30 frames"):
        _solve("ue5", {"left": np.ones(29, bool)}, quats, path)
