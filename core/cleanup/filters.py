"""Optional smoothing of a motion: One-Euro and Savitzky-Golay filters, rotation-correct, per gap-free run.

Rotations are filtered as unit quaternions made sign-continuous in time; every filter here is linear
with the same weights for the four components, and the result is renormalised. Why this and not the
alternatives:

- axis-angle components jump where the angle passes pi (the vector flips to the opposite side), so
  any average across that wrap is wrong; raw matrices average to non-rotations with shrunken scale;
- a sign-continuous quaternion curve is smooth wherever the rotation is (the wrap at pi is just w
  passing through 0), and left or right multiplication by a fixed unit quaternion is an orthogonal
  linear map of R^4, so a linear filter followed by renormalisation gives the same result whatever
  the world frame or the joint's rest frame: it has no special rotation, no singularity;
- over the short windows used here (a fraction of a second) the normalised weighted sum is the
  chordal mean of the rotations in the window, within a fraction of a degree of the geodesic mean;
  a log map around a local reference would need one reference per sample and per window and does
  not fit a recursive filter such as One-Euro, for the same result.

Translation is filtered per axis with the same weights for x, y and z (the One-Euro speed is the
norm of the velocity vector, so the result does not depend on the axes either).

Frame gaps (a jump in the frame numbers) split the motion into runs that are filtered separately.
Cutoffs are in Hz and windows in seconds, so the same settings mean the same at 24, 30 or 60 fps;
with per-frame ``times`` (variable frame rate) One-Euro uses the real time steps, while
Savitzky-Golay assumes evenly spaced frames within a run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.signal import savgol_filter
from scipy.spatial.transform import Rotation

__all__ = [
    "ONE_EURO_DEFAULTS",
    "SAVGOL_DEFAULTS",
    "continuous_quaternions",
    "frame_runs",
    "one_euro",
    "rotvec_near",
    "savgol",
    "slerp",
    "smooth_motion",
    "smooth_rotations",
    "smooth_translation",
]

#: One-Euro defaults, chosen for STAF's output at 30 fps, which is already smooth (acceleration error
#: 8.2 mm/frame^2 on 3DPW), so the filter must not add error through lag or lost amplitude. A
#: minimum cutoff of 3 Hz keeps human motion's main band and takes the jitter above it; beta raises
#: the cutoff with speed (per rad/s for rotations, per m/s for translation: 1 rad/s of a joint moves
#: its 0.4 m limb about 0.4 m/s) so fast swings pass nearly untouched; the derivative cutoff of 1 Hz
#: is the filter authors' default. The offline clip is known in full, so by default (``two_way``)
#: the standard causal filter runs forward and then backward over each run: the two delays cancel.
#: Measured on a 1 Hz sine of 0.3 rad at 30 fps (tests/test_cleanup_filters.py): two-way lag under
#: 1 ms, amplitude 97 %; one-way (``two_way=0``) lag 27 ms (bound: 1/(2 pi 3 Hz) = 53 ms), 98 %.
#: On a 1-3 Hz swing of 0.5 rad with 0.5 deg noise (0.4 m lever) the acceleration error went from
#: 6.2 to 3.1 mm/frame^2 (one-way: 4.1); Savitzky-Golay's defaults: 1.2.
ONE_EURO_DEFAULTS: dict[str, float] = {"min_cutoff": 3.0, "beta": 0.5, "d_cutoff": 1.0,
                                       "trans_min_cutoff": 3.0, "trans_beta": 1.0, "two_way": 1}
#: Savitzky-Golay defaults: a 0.3 s window (9 frames at 30 fps), cubic fit: zero lag (centred), keeps
#: motion up to about 6 Hz at 30 fps.
SAVGOL_DEFAULTS: dict[str, float] = {"window_s": 0.3, "polyorder": 3}

_METHODS = ("one-euro", "savgol", "none")


def frame_runs(frames: np.ndarray) -> list[slice]:
    """Row slices of the gap-free runs of ``frames`` (consecutive frame numbers)."""
    frames = np.asarray(frames)
    if frames.ndim != 1:
        raise ValueError("frames must be a 1-D array of frame numbers")
    if len(frames) == 0:
        return []
    if np.any(np.diff(frames) <= 0):
        raise ValueError("frame numbers must be strictly increasing")
    starts = np.flatnonzero(np.r_[True, np.diff(frames) != 1])
    stops = np.r_[starts[1:], len(frames)]
    return [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip quaternion signs along axis 0 so consecutive ones are in the same hemisphere (q, -q: same rotation)."""
    q = np.array(q, np.float64)
    if len(q) < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
    q[1:] *= flips[..., None]
    return q


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) by ``t`` (broadcast), the short way round."""
    q0, q1 = np.asarray(q0, np.float64), np.asarray(q1, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    a = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    b = np.where(small, t, np.sin(t * theta) / safe)
    out = a * q0 + b * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def rotvec_near(rotvec: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The axis-angle vector equivalent to ``rotvec`` (angle +- 2 pi) closest to ``reference``.

    Keeps a processed pose in the same branch as the input, so a joint near 180 degrees does not
    come back with its vector flipped to the other side."""
    rotvec = np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.where(angle > 1e-12, angle, 1.0)
    candidates = rotvec[..., None, :] + (2 * np.pi * np.array([-1.0, 0.0, 1.0]))[:, None] * axis[..., None, :]
    dist = np.linalg.norm(candidates - np.asarray(reference, np.float64)[..., None, :], axis=-1)
    best = np.argmin(dist, axis=-1)
    return np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]


def one_euro(x: np.ndarray, times: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float = 1.0,
             unit: bool = False) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) of one run ``x`` (T, G, D) sampled at ``times`` (T,) seconds.

    Each group of D components (a joint's quaternion, a translation) shares one adaptive cutoff
    ``min_cutoff + beta * speed``, speed being the norm of the low-passed derivative (for ``unit``
    quaternions twice that norm, the angular speed in rad/s). ``unit`` also renormalises each output.
    Each step's smoothing factor is the exact one of a first-order low-pass over that step,
    1 - exp(-2 pi cutoff dt) (the paper's 1 / (1 + 1 / (2 pi cutoff dt)) is its first-order
    approximation, which smooths more at low frame rates), so a cutoff means the same at any rate.
    """
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    out[0] = x[0]
    dx_hat = np.zeros_like(x[0])
    speed_scale = 2.0 if unit else 1.0
    for i in range(1, len(x)):
        dt = float(times[i] - times[i - 1])
        a_d = 1.0 - math.exp(-2 * math.pi * d_cutoff * dt)
        dx_hat += a_d * ((x[i] - out[i - 1]) / dt - dx_hat)
        cutoff = min_cutoff + beta * speed_scale * np.linalg.norm(dx_hat, axis=-1, keepdims=True)
        alpha = 1.0 - np.exp(-2 * math.pi * cutoff * dt)
        y = out[i - 1] + alpha * (x[i] - out[i - 1])
        out[i] = y / np.linalg.norm(y, axis=-1, keepdims=True) if unit else y
    return out


def savgol(x: np.ndarray, window: int, polyorder: int, unit: bool = False) -> np.ndarray:
    """Savitzky-Golay smoothing of one run ``x`` (T, ...) along time; a run too short for the window
    gets the longest odd window that fits, and one too short for any fit comes back unchanged."""
    x = np.asarray(x, np.float64)
    window = min(int(window), len(x) if len(x) % 2 else len(x) - 1)
    if window <= polyorder:
        return x.copy()
    y = savgol_filter(x, window, polyorder, axis=0, mode="interp")
    return y / np.linalg.norm(y, axis=-1, keepdims=True) if unit else y


def _one_euro_run(x: np.ndarray, times: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float,
                  two_way: bool, unit: bool) -> np.ndarray:
    y = one_euro(x, times, min_cutoff, beta, d_cutoff, unit)
    if two_way:
        y = one_euro(y[::-1], -times[::-1], min_cutoff, beta, d_cutoff, unit)[::-1]
    return y


def _params(method: str, params: dict[str, Any]) -> dict[str, float]:
    if method not in _METHODS:
        raise ValueError(f"smoothing method must be one of {', '.join(_METHODS)}, not {method!r}")
    defaults = {"one-euro": ONE_EURO_DEFAULTS, "savgol": SAVGOL_DEFAULTS, "none": {}}[method]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {method} smoothing parameter(s): {', '.join(unknown)}")
    merged = {**defaults, **params}
    for key, value in merged.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{method} smoothing parameter {key} must be a finite number >= 0, not {value!r}")
    if method == "one-euro" and (merged["min_cutoff"] <= 0 or merged["trans_min_cutoff"] <= 0
                                 or merged["d_cutoff"] <= 0):
        raise ValueError("one-euro cutoffs must be > 0 Hz")
    if method == "one-euro" and merged["two_way"] not in (0, 1):
        raise ValueError("one-euro two_way must be 0 or 1")
    if method == "savgol" and merged["polyorder"] != int(merged["polyorder"]):
        raise ValueError("savgol polyorder must be a whole number")
    return merged


def _times(frames: np.ndarray, fps: float, times: np.ndarray | None) -> np.ndarray:
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, not {fps!r}")
    if times is None:
        return np.asarray(frames, np.float64) / fps
    times = np.asarray(times, np.float64)
    if times.shape != np.shape(frames) or not np.all(np.isfinite(times)):
        raise ValueError("times must be finite, one per frame")
    return times


def _window(window_s: float, fps: float, polyorder: int) -> int:
    window = max(round(window_s * fps), polyorder + 1)
    return window + 1 - window % 2


def smooth_rotations(pose: np.ndarray, frames: np.ndarray, fps: float, method: str = "one-euro",
                     times: np.ndarray | None = None, **params: float) -> np.ndarray:
    """Smooth joint rotations ``pose`` (F, J, 3) axis-angle, rotation-correct, each gap-free run apart."""
    p = _params(method, params)
    pose = np.asarray(pose)
    runs, t = frame_runs(frames), _times(frames, fps, times)
    if len(pose) != len(t):
        raise ValueError("pose and frames must have one row per frame")
    if method == "none" or len(pose) == 0:
        return pose.copy()
    f, j = pose.shape[:2]
    q = Rotation.from_rotvec(pose.reshape(-1, 3).astype(np.float64)).as_quat().reshape(f, j, 4)
    out = np.empty_like(q)
    for run in runs:
        qr = continuous_quaternions(q[run])
        if method == "one-euro":
            out[run] = _one_euro_run(qr, t[run], p["min_cutoff"], p["beta"], p["d_cutoff"], bool(p["two_way"]), True)
        else:
            out[run] = savgol(qr, _window(p["window_s"], fps, int(p["polyorder"])), int(p["polyorder"]), unit=True)
    rotvec = Rotation.from_quat(out.reshape(-1, 4)).as_rotvec().reshape(f, j, 3)
    return rotvec_near(rotvec, pose).astype(pose.dtype)


def smooth_translation(translation: np.ndarray, frames: np.ndarray, fps: float, method: str = "one-euro",
                       times: np.ndarray | None = None, **params: float) -> np.ndarray:
    """Smooth a root translation (F, 3), each gap-free run apart."""
    p = _params(method, params)
    translation = np.asarray(translation)
    runs, t = frame_runs(frames), _times(frames, fps, times)
    if len(translation) != len(t):
        raise ValueError("translation and frames must have one row per frame")
    if method == "none":
        return translation.copy()
    x = translation.astype(np.float64)
    out = np.empty_like(x)
    for run in runs:
        if method == "one-euro":
            out[run] = _one_euro_run(x[run, None], t[run], p["trans_min_cutoff"], p["trans_beta"], p["d_cutoff"],
                                     bool(p["two_way"]), False)[:, 0]
        else:
            out[run] = savgol(x[run], _window(p["window_s"], fps, int(p["polyorder"])), int(p["polyorder"]))
    return out.astype(translation.dtype)


def smooth_motion(pose: np.ndarray, translation: np.ndarray, frames: np.ndarray, fps: float,
                  method: str = "one-euro", times: np.ndarray | None = None,
                  **params: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth a person's pose (F, 24, 3) and root translation (F, 3): method "one-euro", "savgol" or "none".

    ``params`` override ``ONE_EURO_DEFAULTS`` or ``SAVGOL_DEFAULTS``; unknown or negative ones raise
    ValueError before any work. Run it before the foot lock: filtering afterwards would let planted
    feet slide again.
    """
    _params(method, params)
    return (smooth_rotations(pose, frames, fps, method, times, **params),
            smooth_translation(translation, frames, fps, method, times, **params))
