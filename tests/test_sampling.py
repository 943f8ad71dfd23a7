"""Point sampling by gathered rows and the sparse last decoder block equal their dense definitions."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from core.model.sampling import bilinear_taps, sample_points
from core.model.sparse_decode import decode_at_points


def _points(b: int, n: int, seed: int, reach: float = 1.15) -> torch.Tensor:
    """Random points past the map's edges, plus corners, edge midpoints and exact pixel centres."""
    g = torch.Generator().manual_seed(seed)
    pts = (torch.rand(b, n, 2, generator=g, dtype=torch.float64) * 2 - 1) * reach
    special = torch.tensor([[-1, -1], [1, 1], [1, -1], [-1, 1], [0, 1], [1, 0], [0, 0], [-1.2, 0], [0, 3.0]],
                           dtype=torch.float64)
    pts[:, : len(special)] = special
    return pts


def _grid_sample(feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(feature_map, points.unsqueeze(2), align_corners=True).squeeze(-1).transpose(1, 2)


def test_taps_by_hand():
    # x = 0.25 on a 5-wide map is pixel 2.5; y = -1 is row 0.
    index, weight = bilinear_taps(torch.tensor([[0.25, -1.0]]), 3, 5)
    assert index[0].tolist() == [2, 3, 7, 8]
    assert torch.allclose(weight[0], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    # Past the right edge only the inside neighbours count (zero padding).
    index, weight = bilinear_taps(torch.tensor([[1.0 + 0.125, 1.0]]), 3, 5)  # pixel x = 4.25, y = 2
    assert torch.allclose(weight[0], torch.tensor([0.75, 0.0, 0.0, 0.0]))
    assert index[0, 0].item() == 2 * 5 + 4


def test_gathered_sampling_equals_grid_sample_in_float64():
    g = torch.Generator().manual_seed(1)
    feature_map = torch.randn(3, 7, 11, 13, generator=g, dtype=torch.float64)
    points = _points(3, 200, seed=2)
    with torch.no_grad():
        fast = sample_points(feature_map, points)
    assert fast.dtype == torch.float64
    assert (fast - _grid_sample(feature_map, points)).abs().max().item() < 1e-12
    # Channels-last maps (what the decoder makes) give the same values.
    with torch.no_grad():
        cl = sample_points(feature_map.contiguous(memory_format=torch.channels_last), points)
    assert (cl - fast).abs().max().item() < 1e-12


def test_sampling_with_autograd_keeps_the_gradient_to_the_points():
    feature_map = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    points = _points(1, 20, seed=3, reach=0.9).requires_grad_()
    sample_points(feature_map, points).sum().backward()
    assert points.grad is not None and points.grad.abs().sum() > 0


def _decoder_block(seed: int) -> tuple[nn.ConvTranspose2d, nn.BatchNorm2d]:
    torch.manual_seed(seed)
    conv = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, bias=False).double()
    norm = nn.BatchNorm2d(8).double().eval()
    with torch.no_grad():
        norm.running_mean.normal_(0, 0.5)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
    return conv, norm


def test_sparse_decoding_equals_the_dense_block_then_sampling():
    conv, norm = _decoder_block(4)
    x = torch.randn(2, 16, 6, 7, dtype=torch.float64)
    points = _points(2, 300, seed=5)  # every parity class, the borders and beyond them
    with torch.no_grad():
        dense = _grid_sample(F.relu(norm(conv(x))), points)
        sparse = decode_at_points(conv, norm, x, points)
        sparse_cl = decode_at_points(conv, norm, x.contiguous(memory_format=torch.channels_last), points)
    assert (sparse - dense).abs().max().item() < 1e-12
    assert (sparse_cl - dense).abs().max().item() < 1e-12
    # A point on the map's corner reads one output pixel, made from one input pixel (the padding's zeros).
    assert torch.allclose(sparse[:, 0], F.relu(norm(conv(x)))[:, :, 0, 0])


def test_sparse_decoding_follows_changed_weights():
    conv, norm = _decoder_block(6)
    x = torch.randn(1, 16, 4, 4, dtype=torch.float64)
    points = _points(1, 50, seed=7)
    with torch.no_grad():
        before = decode_at_points(conv, norm, x, points)
        conv.weight.mul_(-1)
        after = decode_at_points(conv, norm, x, points)
        dense = _grid_sample(F.relu(norm(conv(x))), points)
    assert (after - before).abs().max().item() > 1e-3
    assert (after - dense).abs().max().item() < 1e-12


def test_staf_forward_without_autograd_equals_the_dense_definition(models):
    """The whole network in float64: inference (gathers, sparse stage 2) against the release's
    computation order (grid_sample on whole maps), which autograd selects."""
    net, body = copy.deepcopy(models.staf).double(), copy.deepcopy(models.body).double()
    g = torch.Generator().manual_seed(8)
    windows = torch.relu(torch.randn(2, 9, 2048, 7, 7, generator=g, dtype=torch.float64))
    dense = net(windows.clone().requires_grad_(), body)
    with torch.no_grad():
        fast = net(windows, body)
    for name in ("rotmat", "cam", "betas", "vertices"):
        assert (getattr(fast, name) - getattr(dense, name)).abs().max().item() < 1e-10, name
