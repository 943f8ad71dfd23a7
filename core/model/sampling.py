"""Bilinear sampling of feature maps at a few hundred points, as gathers of channel rows.

STAF samples its decoder maps where mesh points project (``grid_sample`` with
``align_corners=True`` and zero padding). On CPU, ``grid_sample`` walks every channel of every
point separately and is slow for the 197-256 channels and ~431 points per frame STAF reads; here a
map is a table of channel rows (pixels of a channels-last map) and each point is the weighted sum
of its four neighbours' rows (``embedding_bag``), one pass over contiguous memory. Same values to
float rounding; no gradient reaches the points, so :func:`sample_points` keeps ``grid_sample``
whenever autograd is recording.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["at_least_float32", "bilinear_taps", "gather_taps", "map_rows", "sample_points"]


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or float64 when it already is (as ``grid_sample`` computes under autocast)."""
    return t if t.dtype == torch.float64 else t.float()


def bilinear_taps(points: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbours of points (..., 2) in [-1, 1] (x, y) on an ``height`` x ``width`` map, corners aligned.

    Returns pixel indices (..., 4) into the flattened map (row-major) and their weights (..., 4),
    float32 (float64 for float64 points). A neighbour outside the map has weight 0 (zero padding) and index 0.
    """
    points = at_least_float32(points)
    x = (points[..., 0] + 1) * (0.5 * (width - 1))
    y = (points[..., 1] + 1) * (0.5 * (height - 1))
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    xs = torch.stack((x0, x0 + 1, x0, x0 + 1), -1)
    ys = torch.stack((y0, y0, y0 + 1, y0 + 1), -1)
    weight = torch.stack(((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy), -1)
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    return torch.where(inside, ys * width + xs, 0), torch.where(inside, weight, 0)


def map_rows(feature_map: torch.Tensor) -> torch.Tensor:
    """Map (B, C, H, W) -> rows (B * H * W, C), at least float32; free for a channels-last float32 map."""
    b, c, h, w = feature_map.shape
    return at_least_float32(feature_map.permute(0, 2, 3, 1)).reshape(b * h * w, c).contiguous()


def gather_taps(rows: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted sums of rows (M, C): index and weight (..., 4) -> (..., C)."""
    lead = index.shape[:-1]
    out = F.embedding_bag(index.reshape(-1, 4), rows, per_sample_weights=weight.reshape(-1, 4).to(rows.dtype),
                          mode="sum")
    return out.reshape(*lead, rows.shape[1])


def sample_points(feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a map (B, C, H, W) at points (B, N, 2) in [-1, 1] (x, y) -> (B, N, C), at least float32."""
    if torch.is_grad_enabled() and (feature_map.requires_grad or points.requires_grad):
        sampled = F.grid_sample(at_least_float32(feature_map), at_least_float32(points).unsqueeze(2),
                                align_corners=True)
        return sampled.squeeze(-1).transpose(1, 2)
    b, _, h, w = feature_map.shape
    index, weight = bilinear_taps(points, h, w)
    index = index + (torch.arange(b, device=index.device) * (h * w))[:, None, None]
    return gather_taps(map_rows(feature_map), index, weight)
