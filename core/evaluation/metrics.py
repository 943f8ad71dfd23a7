"""Per-frame error metrics of human mesh recovery: MPJPE, PA-MPJPE, PVE and acceleration error.

Pure tensor functions, unit-agnostic: they return distances in the unit of their inputs (the
protocol in :mod:`core.evaluation.protocol` feeds metres and multiplies by 1000 for mm). Point
sets are always (B, N, D) -- batch, points, coordinates -- and nothing is ever transposed based on
a guess from the shape: a widely copied Procrustes routine transposes its input when the *first*
dimension is 2 or 3, which silently breaks PA-MPJPE for batches of exactly 2 or 3 frames.

Acceleration error is in (input unit) per frame squared: the norm of the difference between the
second differences ``x[t-1] - 2 x[t] + x[t+1]`` of prediction and ground truth. To compare with
papers that report m/s^2 (WHAM, GVHMR), multiply mm/frame^2 by ``fps^2 / 1000``
(:func:`accel_to_m_per_s2`; at 30 fps, 1 mm/frame^2 = 0.9 m/s^2).
"""

from __future__ import annotations

import torch

__all__ = [
    "accel_error",
    "accel_to_m_per_s2",
    "accel_triplets_valid",
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "pve",
    "second_difference",
]


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(f"expected two (B, N, D) point sets of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Best similarity transform (scale, rotation, translation) of each ``pred`` onto its ``target``.

    pred, target: (B, N, D) -> (B, N, D), ``pred`` aligned. Least squares over the N points of each
    item (Umeyama): with centred X, Y and K = X^T Y = U S V^T, the rotation is R = V Z U^T,
    Z = diag(1, ..., 1, sign det(V U^T)) (a proper rotation, never a reflection), the scale
    trace(Z S) / |X|^2. Computed in float64; returned in ``pred``'s dtype.
    """
    _check_pair(pred, target)
    x = pred.to(torch.float64)
    y = target.to(torch.float64)
    mu_x, mu_y = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    x0, y0 = x - mu_x, y - mu_y
    k = x0.transpose(1, 2) @ y0  # (B, D, D): sum over points of x_i y_i^T
    u, s, vh = torch.linalg.svd(k)
    v = vh.transpose(1, 2)
    z = torch.ones_like(s)
    z[:, -1] = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    z[:, -1] = torch.where(z[:, -1] == 0, torch.ones_like(z[:, -1]), z[:, -1])
    rot = v @ torch.diag_embed(z) @ u.transpose(1, 2)
    var_x = (x0**2).sum((1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    scale = (z * s).sum(1) / var_x
    aligned = scale[:, None, None] * x0 @ rot.transpose(1, 2) + mu_y
    return aligned.to(pred.dtype)


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error of each item: (B, N, D) twice -> (B,), mean Euclidean distance."""
    _check_pair(pred, target)
    return (pred - target).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE after :func:`procrustes_align` of each item: (B, N, D) twice -> (B,)."""
    return mpjpe(procrustes_align(pred, target), target)


def pve(pred_vertices: torch.Tensor, target_vertices: torch.Tensor) -> torch.Tensor:
    """Per-vertex error: mean vertex distance of each mesh, (B, V, 3) twice -> (B,). No alignment:
    both meshes are expected in the same (body) frame, as the protocol compares them."""
    return mpjpe(pred_vertices, target_vertices)


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """``x[t-1] - 2 x[t] + x[t+1]`` along the first axis: (T, ...) -> (T-2, ...)."""
    return x[:-2] - 2 * x[1:-1] + x[2:]


def accel_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Acceleration error of a sequence, per middle frame: joints (T, J, 3) twice -> (T-2,).

    Entry i belongs to frame i + 1: the mean over joints of
    ``|second_difference(pred) - second_difference(target)|``, in input units per frame^2.
    """
    _check_pair(pred, target)
    if pred.shape[0] < 3:
        return pred.new_zeros(0)
    return (second_difference(pred) - second_difference(target)).norm(dim=-1).mean(-1)


def accel_triplets_valid(valid: torch.Tensor) -> torch.Tensor:
    """Which entries of :func:`accel_error` to count: (T,) bool -> (T-2,) bool, true where frames
    t-1, t and t+1 are all valid."""
    if valid.shape[0] < 3:
        return valid.new_zeros(0, dtype=torch.bool)
    v = valid.to(torch.bool)
    return v[:-2] & v[1:-1] & v[2:]


def accel_to_m_per_s2(mm_per_frame2: float, fps: float) -> float:
    """mm/frame^2 -> m/s^2 at ``fps`` frames per second: times fps^2, divided by 1000."""
    return mm_per_frame2 * fps**2 / 1000.0
