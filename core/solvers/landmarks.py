"""The landmark solver: SMPL joint rotations and root translation fitted to BlazePose's landmarks over a
whole track, with no licensed download.

One batched optimisation (torch, Adam, every frame of the track at once) of
- 2D error: the model's points (``core.solvers.correspondence``) projected through the clip's pinhole
  camera (principal point at the image centre) against the 2D landmarks, in units of 1 % of the
  person's height in the image, weighted by visibility;
- 3D error: the same points relative to their hip centre against BlazePose's world landmarks
  (hip-centred, camera-aligned axes, rescaled once per track to the body's size), in units of 3 % of
  the body's height, weighted by 0.2 + 0.8 x visibility (BlazePose still guesses hidden points in 3D);
  both robust (Cauchy, beyond 5 % and 8 %), so a landmark BlazePose got badly wrong pulls little;
- the pose prior of ``core.solvers.objective`` (hinged knees and elbows, anatomical limits, twist);
- temporal smoothness: squared second differences of the local rotation matrices and of the
  translation (in body heights), scaled by (fps / 30)^4 so it damps the same motion alike at any rate.
Rotations are 6D (two columns of the matrix), started from the analytic fit of ``core.solvers.initial``.

Gaps: a frame whose landmarks are missing (any NaN: the person was not analysed there, or not found)
is never fitted and never ``valid``. Within a gap of at most ``max_gap`` seconds between observed
frames the smoothness term alone carries pose and translation across (``carried``: started by linear
interpolation, then moved only by the smoothness of the frames around); in longer gaps and before the
first or after the last observation, pose, translation and joints are NaN.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.model.geometry import rot6d_to_rotmat, rotmat_to_axis_angle
from core.solvers.correspondence import CORRESPONDENCE, body_scale, rest_points
from core.solvers.initial import initial_rotations, local_fk, solve_translation
from core.solvers.objective import Kinematics, PriorTables, cauchy, pose_prior, second_difference_matrix

__all__ = ["LandmarkFit", "LandmarkOptions", "fit_landmarks"]

_SIGMA_2D, _SIGMA_3D = 0.01, 0.03  # the data terms' units: typical landmark errors (see above)


@dataclass(frozen=True)
class LandmarkOptions:
    """Weights and schedule of the fit. ``max_gap``: longest gap (s) the smoothness carries the pose
    across; smoothness weights are those at 30 fps; ``threads``: torch threads during the fit (the
    problem is small: one thread is fastest on a busy machine), None leaves torch's setting."""

    iterations: int = 150
    lr: float = 0.03
    w2d: float = 1.0
    w3d: float = 0.5
    w_prior: float = 1.0
    w_smooth_rot: float = 1.0
    w_smooth_trans: float = 300.0
    max_gap: float = 0.25
    robust_2d: float = 0.05  # of the person's height in the image
    robust_3d: float = 0.08  # of the body's height
    threads: int | None = 1


@dataclass(frozen=True)
class LandmarkFit:
    """The solver's result for F input frames (float64; NaN where neither fitted nor carried).

    pose (F, 24, 3) axis-angle, joint 0 in camera axes; translation (F, 3) camera axes (camera-space
    body = FK/LBS(pose) + translation, as in the motion file); joints (F, 24, 3) camera-space joints;
    residual_3d (F,) m and residual_2d (F,) px: visibility-weighted mean distance of the model's points
    to the (rescaled) world landmarks and to the image landmarks, NaN where not observed; valid (F,):
    observed and fitted; carried (F,): inside a short gap, pose carried by smoothness only (not valid);
    world_scale: the factor applied to BlazePose's world landmarks; seconds: time the fit took.
    """

    pose: np.ndarray
    translation: np.ndarray
    joints: np.ndarray
    residual_3d: np.ndarray
    residual_2d: np.ndarray
    valid: np.ndarray
    carried: np.ndarray
    world_scale: float
    seconds: float


def _carried(frames: np.ndarray, observed: np.ndarray, max_gap: int) -> np.ndarray:
    """Rows between two observed rows at most ``max_gap`` + 1 frames apart that are not observed themselves."""
    carried = np.zeros(len(frames), bool)
    for a, b in itertools.pairwise(np.flatnonzero(observed)):
        if b > a + 1 and frames[b] - frames[a] <= max_gap + 1:
            carried[a + 1:b] = True
    return carried


def _world_scale(world: np.ndarray, rest: np.ndarray) -> float:
    """Factor taking BlazePose's world landmarks to the body's size: median ratio of limb and torso lengths."""
    pairs = ((23, 25, 1, 4), (24, 26, 2, 5), (25, 27, 4, 7), (26, 28, 5, 8), (11, 13, 16, 18), (12, 14, 17, 19),
             (13, 15, 18, 20), (14, 16, 19, 21))
    ratios = [np.linalg.norm(rest[b] - rest[a]) / np.linalg.norm(world[:, lb] - world[:, la], axis=-1)
              for la, lb, a, b in pairs]
    torso = np.linalg.norm(rest[16] + rest[17] - rest[1] - rest[2]) / 2
    ratios.append(torso / (np.linalg.norm(world[:, 11] + world[:, 12] - world[:, 23] - world[:, 24], axis=-1) / 2))
    ratio = np.concatenate(ratios)
    ratio = ratio[np.isfinite(ratio)]
    return float(np.clip(np.median(ratio), 0.6, 1.6)) if ratio.size else 1.0


def _interpolate(values: np.ndarray, known: np.ndarray, rows: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``values`` (F, ...) with ``rows`` filled linearly in frame number from the ``known`` rows."""
    out = values.copy()
    k = np.flatnonzero(known)
    flat = values.reshape(len(values), -1)
    filled = np.stack([np.interp(frames[rows], frames[k], flat[k, c]) for c in range(flat.shape[1])], -1)
    out[rows] = filled.reshape(-1, *values.shape[1:])
    return out


def _person_size(marks: np.ndarray) -> np.ndarray:
    """The person's size in the image per frame (F,): the longer side of the visible landmarks' extent."""
    seen = marks[..., 2] > 0.5
    pts = np.where(seen[..., None], marks[..., :2], np.nan)
    with np.errstate(all="ignore"):
        ext = np.nanmax(pts, 1) - np.nanmin(pts, 1)
        size = np.nanmax(ext, 1) if np.isfinite(ext).any() else np.zeros(len(marks))
    size = np.where(np.isfinite(size), size, 0.0)
    typical = float(np.median(size[size > 0])) if np.any(size > 0) else 100.0
    return np.maximum(size, 0.3 * typical) + 1.0


def _adam(params: torch.Tensor, loss: Callable[[], torch.Tensor], iterations: int, lr: float, depth: slice) -> None:
    """Adam (beta 0.9 / 0.999) with a cosine-decaying step, written out: torch.optim's first step imports
    about a second of compiler machinery, longer than the fit of a short clip."""
    m = torch.zeros_like(params)
    v = torch.zeros_like(params)
    for i in range(iterations):
        params.grad = None
        loss().backward()
        with torch.no_grad():
            g = params.grad
            g[depth] *= 4.0  # depth moves the image least per metre: let it move faster
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            step = lr * 0.5 * (1 + math.cos(math.pi * i / iterations))
            params.sub_(step * (m / (1 - 0.9 ** (i + 1))) / ((v / (1 - 0.999 ** (i + 1))).sqrt() + 1e-8))


def _empty(n: int, observed: np.ndarray, carried: np.ndarray, start: float) -> LandmarkFit:
    nan = np.full(n, np.nan)
    return LandmarkFit(np.full((n, 24, 3), np.nan), np.full((n, 3), np.nan), np.full((n, 24, 3), np.nan), nan,
                       nan.copy(), observed, carried, 1.0, time.perf_counter() - start)


def fit_landmarks(world_landmarks: np.ndarray, landmarks_2d: np.ndarray, frames: np.ndarray, fps: float,
                  rest_joints: np.ndarray, parents: np.ndarray, focal_px: float, width: int, height: int, *,
                  options: LandmarkOptions | None = None) -> LandmarkFit:
    """Fit SMPL's skeleton (``rest_joints`` (24, 3) of the body in use, ``parents`` (24,)) to one track.

    world_landmarks (F, 33, 3): BlazePose's world landmarks (m, hip-centred, camera-aligned axes);
    landmarks_2d (F, 33, 3): pixel x, y and visibility; frames (F,) strictly increasing frame numbers;
    a frame with any NaN landmark is a gap. ``focal_px``, ``width``, ``height``: the clip's camera.
    """
    opts = options or LandmarkOptions()
    start = time.perf_counter()
    world = np.asarray(world_landmarks, np.float64)
    marks = np.asarray(landmarks_2d, np.float64)
    frames = np.asarray(frames, np.int64).reshape(-1)
    rest = np.asarray(rest_joints, np.float64)
    n = len(frames)
    if world.shape != (n, 33, 3) or marks.shape != (n, 33, 3):
        raise ValueError(f"need world and 2D landmarks (F, 33, 3) for F={n} frames, got {world.shape}, {marks.shape}")
    if rest.shape != (24, 3) or len(parents) != 24:
        raise ValueError(f"need rest joints (24, 3) and 24 parents, got {rest.shape} and {len(parents)}")
    if n > 1 and np.any(np.diff(frames) <= 0):
        raise ValueError("frame numbers must be strictly increasing")
    observed = np.isfinite(world).all((1, 2)) & np.isfinite(marks).all((1, 2))
    gap = max(0, round(opts.max_gap * fps))
    carried = _carried(frames, observed, gap)
    if not observed.any():
        return _empty(n, observed, carried, start)
    threads = torch.get_num_threads()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    try:
        pose, translation, joints, res3, res2, scale = _fit(world, marks, frames, fps, rest, np.asarray(parents),
                                                            focal_px, width, height, observed, carried, gap, opts)
    finally:
        torch.set_num_threads(threads)
    return LandmarkFit(pose, translation, joints, res3, res2, observed, carried, scale, time.perf_counter() - start)


def _fit(world: np.ndarray, marks: np.ndarray, frames: np.ndarray, fps: float, rest: np.ndarray,
         parents: np.ndarray, focal: float, width: int, height: int, observed: np.ndarray, carried: np.ndarray,
         gap: int, opts: LandmarkOptions) -> tuple[np.ndarray, ...]:
    """The fit itself (see the module's description); NaN outside the observed and carried rows."""
    n = len(frames)
    lm_idx, carrier, points_rest = rest_points(rest, parents)
    weight = np.array([p.weight for p in CORRESPONDENCE])
    scale = _world_scale(world[observed], rest)
    w_obs = world[observed] * scale
    body_h = 1.7 * body_scale(rest)
    vis = np.clip(marks[observed][:, lm_idx, 2], 0.0, 1.0)
    uv_obs = marks[observed][:, lm_idx, :2]

    # Start: analytic rotations, translation by least squares (depth from the person's size if that fails).
    local0 = initial_rotations(w_obs, rest, dict(zip(lm_idx.tolist(), points_rest, strict=True)))
    wr, wt = local_fk(local0, rest, parents)
    model = wt[:, carrier] + np.einsum("fkab,kb->fka", wr[:, carrier], points_rest - rest[carrier])
    t0 = solve_translation(model, uv_obs, np.maximum(vis, 0.05) * weight, focal, width, height)
    size_px = _person_size(marks[observed])
    bad = ~np.isfinite(t0).all(1) | (t0[:, 2] < 0.3)
    t0[bad] = np.stack([np.zeros(bad.sum()), np.zeros(bad.sum()), focal * body_h / size_px[bad]], 1)
    rows = np.flatnonzero(observed | carried)
    six = np.zeros((n, 24, 6))
    six[observed] = local0[..., :2].reshape(-1, 24, 6)
    trans = np.zeros((n, 3))
    trans[observed] = t0
    if carried.any():
        six = _interpolate(six, observed, carried, frames)
        trans = _interpolate(trans, observed, carried, frames)

    dt = torch.float32
    r = len(rows)
    kin = Kinematics(rest, parents, dt)  # rotations are kept in its order (by depth in the tree)
    n6 = r * 24 * 6
    # Toes and fingers start at rest and stay there: nothing in the loss depends on them (zero gradient).
    params = torch.tensor(np.concatenate([six[rows][:, kin.order].ravel(), trans[rows].ravel()]), dtype=dt,
                          requires_grad=True)
    carrier_t = torch.as_tensor(kin.position[carrier])
    offsets = torch.tensor(points_rest - rest[carrier], dtype=dt)
    obs_rows = torch.as_tensor(np.flatnonzero(observed[rows]))
    uv = torch.tensor(uv_obs, dtype=dt)
    w2 = torch.tensor(vis * weight, dtype=dt)
    w3 = torch.tensor((0.2 + 0.8 * vis) * weight, dtype=dt)
    hips = [lm_idx.tolist().index(23), lm_idx.tolist().index(24)]
    target3 = torch.tensor(w_obs[:, lm_idx] - (w_obs[:, 23:24] + w_obs[:, 24:25]) / 2, dtype=dt)
    unit_px = torch.tensor(_SIGMA_2D * size_px, dtype=dt)[:, None, None]
    centre = torch.tensor([width / 2, height / 2], dtype=dt)
    tables = PriorTables(dt, kin.position)
    diff2 = torch.tensor(second_difference_matrix(frames[rows], gap), dtype=dt)
    lam = (fps / 30.0) ** 4 / max(1, len(diff2))
    c2, c3 = opts.robust_2d / _SIGMA_2D, opts.robust_3d / _SIGMA_3D

    def unpack(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rot6d_to_rotmat(x[:n6].view(r, 24, 6)), x[n6:].view(r, 3)

    def points(rot: torch.Tensor) -> torch.Tensor:
        world_r, world_t = kin(rot)
        return world_t[:, carrier_t] + torch.einsum("fkab,kb->fka", world_r[:, carrier_t], offsets)

    def loss() -> torch.Tensor:
        rot, t = unpack(params)
        rel = points(rot[obs_rows])
        cam = rel + t[obs_rows][:, None, :]
        proj = cam[..., :2] / cam[..., 2:3].clamp_min(1e-3) * focal + centre
        e2 = ((proj - uv) / unit_px).square().sum(-1)
        rel = rel - rel[:, hips].mean(1, keepdim=True)
        e3 = ((rel - target3) / (_SIGMA_3D * body_h)).square().sum(-1)
        data = (opts.w2d * (w2 * cauchy(e2, c2)).sum() / w2.sum().clamp_min(1e-9)
                + opts.w3d * (w3 * cauchy(e3, c3)).sum() / w3.sum().clamp_min(1e-9))
        smooth = lam * (opts.w_smooth_rot * (diff2 @ rot.reshape(r, -1)).square().sum()
                        + opts.w_smooth_trans * (diff2 @ t).square().sum() / body_h ** 2)
        return data + opts.w_prior * pose_prior(rot, tables).mean() + smooth

    _adam(params, loss, opts.iterations, opts.lr, depth=slice(n6 + 2, None, 3))

    with torch.no_grad():
        rot, t = unpack(params.detach())
        _, joints_t = kin(rot)
        rel = points(rot).numpy()
        pose_rows = rotmat_to_axis_angle(rot[:, kin.position]).numpy()
    pose, translation, joints = np.full((n, 24, 3), np.nan), np.full((n, 3), np.nan), np.full((n, 24, 3), np.nan)
    pose[rows], translation[rows] = pose_rows, t.numpy()
    joints[rows] = joints_t.numpy()[:, kin.position] + translation[rows][:, None]
    sub = observed[rows]
    cam = rel[sub] + translation[observed][:, None]
    proj = cam[..., :2] / cam[..., 2:3] * focal + np.array([width / 2, height / 2])
    res2, res3 = np.full(n, np.nan), np.full(n, np.nan)
    w = vis * weight
    res2[observed] = (np.linalg.norm(proj - uv_obs, axis=-1) * w).sum(1) / np.maximum(w.sum(1), 1e-9)
    rel_obs = rel[sub] - rel[sub][:, hips].mean(1, keepdims=True)
    w = (0.2 + 0.8 * vis) * weight
    res3[observed] = (np.linalg.norm(rel_obs - target3.numpy(), axis=-1) * w).sum(1) / w.sum(1)
    return pose, translation, joints, res3, res2, scale
