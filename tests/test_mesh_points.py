"""Skinning only the sampled vertices gives the points the whole mesh gives."""

from __future__ import annotations

import torch

from core.model.heads import SmplEstimate
from core.model.mesh_points import support_of


def _estimate(n: int, seed: int = 0) -> SmplEstimate:
    g = torch.Generator().manual_seed(seed)
    return SmplEstimate(pose6d=torch.randn(n, 144, generator=g), shape=torch.randn(n, 10, generator=g),
                        cam=torch.rand(n, 3, generator=g) + 0.5)


def test_support_is_the_columns_read():
    dmap = torch.zeros(3, 10)
    dmap[0, 7], dmap[1, 2], dmap[2, 7] = 1.0, 0.5, 0.5
    assert support_of(dmap).tolist() == [2, 7]
    assert support_of(torch.ones(3, 10)) is None  # reads everything: no subset


def test_subset_points_equal_the_downsampled_full_mesh(models):
    staf, body = models.staf, models.body
    assert staf.maf_extractor[1].support().numel() == 431
    est = _estimate(5)
    with torch.inference_mode():
        for stage in (1, 2):
            fast = staf.mesh_points(body, est, stage)
            full = staf.maf_extractor[stage].downsample(staf.posed_vertices(body, est))
            assert fast.shape == (5, 431, 3)
            torch.testing.assert_close(fast, full, atol=2e-6, rtol=0)


def test_subset_points_in_float64(standin_assets):
    from core.model.load import load_models

    fresh = load_models(standin_assets, device="cpu", with_backbone=False)
    staf, body = fresh.staf.double(), fresh.body.double()
    est = _estimate(3, seed=1)
    est = SmplEstimate(est.pose6d.double(), est.shape.double(), est.cam.double())
    with torch.inference_mode():
        fast = staf.mesh_points(body, est, 1)
        full = staf.maf_extractor[1].downsample(staf.posed_vertices(body, est))
    torch.testing.assert_close(fast, full, atol=1e-12, rtol=0)


def test_subset_points_under_bf16_autocast(models):
    """Under mixed precision the body stays in float32 (its first use may come under autocast)."""

    models.body._subset = None
    est = _estimate(4, seed=2)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast = models.staf.mesh_points(models.body, est, 1)
    with torch.inference_mode():
        full = models.staf.maf_extractor[1].downsample(models.staf.posed_vertices(models.body, est))
    assert models.body._subset.j_shapedirs.dtype == torch.float32
    torch.testing.assert_close(fast.float(), full, atol=0.05, rtol=0)
