"""Motion filters (core.cleanup.filters): rotation-correct, gap-aware, lag as documented."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import savgol_filter
from scipy.spatial.transform import Rotation

from core.cleanup.filters import ONE_EURO_DEFAULTS, smooth_motion, smooth_rotations, smooth_translation

FPS = 30.0
METHODS = ["one-euro", "savgol"]


def _geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees((Rotation.from_rotvec(a.reshape(-1, 3)).inv() * Rotation.from_rotvec(b.reshape(-1, 3)))
                      .magnitude()).reshape(a.shape[:-1])


def _sine_lag_ms(out: np.ndarray, t: np.ndarray, amplitude: float, hz: float = 1.0) -> tuple[float, float]:
    """Delay (ms) and gain of a filtered sine, fitted on its second half (past the start-up)."""
    half = slice(len(t) // 2, None)
    basis = np.stack([np.sin(2 * np.pi * hz * t[half]), np.cos(2 * np.pi * hz * t[half])], axis=1)
    s, c = np.linalg.lstsq(basis, out[half], rcond=None)[0]
    return -np.arctan2(c, s) / (2 * np.pi * hz) * 1000.0, float(np.hypot(s, c) / amplitude)


@pytest.mark.parametrize("method", METHODS)
def test_rotation_through_the_axis_angle_wrap_does_not_flip(method):
    n = 90
    rng = np.random.default_rng(1)
    angle = np.linspace(2.6, 3.7, n)  # through pi: the axis-angle vector jumps to the other side
    axis = np.array([0.3, 0.9, -0.3]) / np.linalg.norm([0.3, 0.9, -0.3])
    rot = Rotation.from_rotvec(angle[:, None] * axis) * Rotation.from_rotvec(rng.normal(0, 0.01, (n, 3)))
    pose = rot.as_rotvec()[:, None, :]
    assert np.abs(np.diff(pose[:, 0], axis=0)).max() > 5.0  # the raw vectors do jump
    naive = savgol_filter(pose, 9, 3, axis=0)  # what averaging axis-angle components does
    assert _geodesic_deg(naive, pose).max() > 30.0
    out = smooth_rotations(pose, np.arange(n), FPS, method)
    assert _geodesic_deg(out, pose).max() < 3.0
    assert np.abs(np.diff(out[:, 0], axis=0)).max() > 5.0  # kept on the input's branch, flip for flip


@pytest.mark.parametrize("method", METHODS)
def test_constant_motion_comes_back_unchanged(method):
    rng = np.random.default_rng(2)
    rotvecs = Rotation.random(24, random_state=3).as_rotvec()
    rotvecs[0] = [0.0, 0.0, np.pi - 1e-4]  # near the wrap
    rotvecs[1] = [4.0, 0.0, 0.0]  # beyond pi: same rotation as -2.28 rad, its branch must be kept
    pose = np.tile(rotvecs, (50, 1, 1))
    trans = np.tile(rng.normal(0, 3, 3), (50, 1))
    out_pose, out_trans = smooth_motion(pose, trans, np.arange(50), FPS, method)
    assert np.abs(out_pose - pose).max() < 1e-9
    assert np.abs(out_trans - trans).max() < 1e-9


@pytest.mark.parametrize("method", METHODS)
def test_noise_is_reduced(method):
    n = 300
    rng = np.random.default_rng(4)
    t = np.arange(n) / FPS
    truth_angle = 0.4 * np.sin(2 * np.pi * 0.7 * t)
    truth = Rotation.from_rotvec(truth_angle[:, None] * [1.0, 0.0, 0.0]) * Rotation.from_rotvec([0.2, 1.0, 0.1])
    noisy = truth * Rotation.from_rotvec(rng.normal(0, np.radians(1.5), (n, 3)))
    pose = noisy.as_rotvec()[:, None]
    trans_truth = np.stack([np.sin(t), 0.1 * t, 4 + 0.2 * np.cos(2 * t)], axis=1)
    trans = trans_truth + rng.normal(0, 0.01, (n, 3))
    out_pose, out_trans = smooth_motion(pose, trans, np.arange(n), FPS, method)
    err_in = _geodesic_deg(pose, truth.as_rotvec()[:, None])
    err_out = _geodesic_deg(out_pose, truth.as_rotvec()[:, None])
    assert np.mean(err_out**2) < 0.4 * np.mean(err_in**2)
    assert np.mean((out_trans - trans_truth) ** 2) < 0.4 * np.mean((trans - trans_truth) ** 2)
    # Jitter (third difference) falls much further.
    assert np.abs(np.diff(out_trans, 3, axis=0)).mean() < 0.25 * np.abs(np.diff(trans, 3, axis=0)).mean()


@pytest.mark.parametrize("method", METHODS)
def test_result_does_not_depend_on_the_world_frame(method):
    rng = np.random.default_rng(5)
    n = 80
    rot = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0))
    turn = Rotation.from_rotvec([0.4, -2.5, 1.0])
    out = smooth_rotations(rot.as_rotvec()[:, None], np.arange(n), FPS, method)[:, 0]
    out_turned = smooth_rotations((turn * rot).as_rotvec()[:, None], np.arange(n), FPS, method)[:, 0]
    assert _geodesic_deg((turn * Rotation.from_rotvec(out)).as_rotvec(), out_turned).max() < 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_each_run_between_frame_gaps_is_filtered_on_its_own(method):
    frames = np.r_[0:40, 60:100, 130:132, 140]  # long runs, a 2-frame run and a lone frame
    n = len(frames)
    pose = np.zeros((n, 2, 3))
    trans = np.zeros((n, 3))
    pose[40:80, :, 2] = 1.0  # each run is constant, but different from its neighbour
    trans[40:80] = [0.0, 0.0, 2.0]
    pose[80:], trans[80:] = [0.5, 0.0, 0.0], [1.0, 1.0, 1.0]
    out_pose, out_trans = smooth_motion(pose, trans, frames, FPS, method)
    assert np.abs(out_pose - pose).max() < 1e-9 and np.abs(out_trans - trans).max() < 1e-9
    joined, _ = smooth_motion(pose, trans, np.arange(n), FPS, method)  # without the gaps: blurred
    assert np.abs(joined - pose).max() > 0.05


def test_phase_lag_on_a_sine_is_as_documented():
    t = np.arange(300) / FPS
    amplitude = 0.3
    pose = np.zeros((300, 1, 3))
    pose[:, 0, 0] = amplitude * np.sin(2 * np.pi * t)
    frames = np.arange(300)
    lag, gain = _sine_lag_ms(smooth_rotations(pose, frames, FPS, "one-euro")[:, 0, 0], t, amplitude)
    assert abs(lag) < 1.0 and gain > 0.9  # two-way by default: the delays cancel
    lag, gain = _sine_lag_ms(smooth_rotations(pose, frames, FPS, "one-euro", two_way=0)[:, 0, 0], t, amplitude)
    assert 0.0 < lag < 1000.0 / (2 * np.pi * ONE_EURO_DEFAULTS["min_cutoff"]) and gain > 0.95
    lag, gain = _sine_lag_ms(smooth_rotations(pose, frames, FPS, "savgol")[:, 0, 0], t, amplitude)
    assert abs(lag) < 1.0 and gain > 0.98
    trans = np.zeros((300, 3))
    trans[:, 1] = 0.2 * np.sin(2 * np.pi * t)
    lag, gain = _sine_lag_ms(smooth_translation(trans, frames, FPS, "one-euro", two_way=0)[:, 1], t, 0.2)
    assert 0.0 < lag < 1000.0 / (2 * np.pi * ONE_EURO_DEFAULTS["trans_min_cutoff"]) and gain > 0.95


def test_settings_mean_the_same_at_any_frame_rate():
    gains = {}
    for fps in (24.0, 30.0, 60.0):
        t = np.arange(int(10 * fps)) / fps
        trans = np.zeros((len(t), 3))
        trans[:, 0] = 0.2 * np.sin(2 * np.pi * 2.0 * t)
        for method in METHODS:
            out = smooth_translation(trans, np.arange(len(t)), fps, method)[:, 0]
            gains[method, fps] = _sine_lag_ms(out, t, 0.2, hz=2.0)[1]
    for method in METHODS:
        values = [gains[method, fps] for fps in (24.0, 30.0, 60.0)]
        assert max(values) - min(values) < 0.06, (method, values)


def test_variable_frame_rate_uses_the_real_time_steps():
    rng = np.random.default_rng(6)
    n = 600
    irregular = np.cumsum(rng.uniform(0.4, 1.6, n)) / FPS  # frame times of a variable-rate clip
    regular = np.arange(n) / FPS
    outputs, responses = {}, {}
    for name, times, given in (("timed", irregular, irregular), ("untimed", irregular, None),
                               ("regular", regular, regular)):
        trans = np.zeros((n, 3))
        trans[:, 0] = 0.2 * np.sin(2 * np.pi * times)
        out = smooth_translation(trans, np.arange(n), FPS, "one-euro", times=given, two_way=0, trans_beta=0.0)
        outputs[name], responses[name] = out[:, 0], _sine_lag_ms(out[:, 0], times, 0.2)
    # With the real time steps the filter responds as it does at an even rate, sample by sample;
    # pretending the frames are evenly spaced does not.
    lag, gain = responses["regular"]
    ideal = 0.2 * gain * np.sin(2 * np.pi * (irregular - lag / 1000.0))
    miss = {name: np.sqrt(np.mean((outputs[name] - ideal)[n // 2:] ** 2)) for name in ("timed", "untimed")}
    assert abs(responses["timed"][0] - lag) < 5.0 and abs(responses["timed"][1] - gain) < 0.02
    assert miss["timed"] < 0.5 * miss["untimed"], miss
    even = smooth_translation(np.tile(regular[:, None], 3), np.arange(n), FPS, "one-euro", times=regular)
    assert np.allclose(even, smooth_translation(np.tile(regular[:, None], 3), np.arange(n), FPS, "one-euro"))


def test_none_dtype_and_bad_settings():
    pose = np.zeros((10, 24, 3), np.float32)
    trans = np.ones((10, 3), np.float32)
    out_pose, out_trans = smooth_motion(pose, trans, np.arange(10), FPS, "none")
    assert np.array_equal(out_pose, pose) and out_pose is not pose
    out_pose, out_trans = smooth_motion(pose, trans, np.arange(10), FPS, "savgol")
    assert out_pose.dtype == np.float32 and out_trans.dtype == np.float32
    with pytest.raises(ValueError, match="method"):
        smooth_motion(pose, trans, np.arange(10), FPS, "kalman")
    with pytest.raises(ValueError, match="unknown"):
        smooth_motion(pose, trans, np.arange(10), FPS, "savgol", beta=1.0)
    with pytest.raises(ValueError, match="min_cutoff"):
        smooth_motion(pose, trans, np.arange(10), FPS, "one-euro", min_cutoff=-1.0)
    with pytest.raises(ValueError, match="fps"):
        smooth_motion(pose, trans, np.arange(10), 0.0)
    with pytest.raises(ValueError, match="increasing"):
        smooth_motion(pose, trans, np.r_[0:5, 2:7], FPS)
