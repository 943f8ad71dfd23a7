"""Whole-clip inference: per-frame reuse equals the per-window definition; edge padding."""

from __future__ import annotations

import pytest
import torch

from core.model.sequence import SequenceRunner, run_per_window, window_indices
from core.standins.weights import make_staf

TOL = 1e-5


def _close(a, b, tol=TOL):
    for name in ("rotmat", "betas", "cam", "joints", "vertices"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert (x - y).abs().max().item() <= tol, f"{name}: {(x - y).abs().max().item():.3g}"


@pytest.fixture(scope="module")
def full_scale_staf(models):
    """Stand-in weights without the demo's damping of the regressor heads: larger corrections,
    so rounding differences between the two paths would show."""
    net = make_staf(7, mean_pose=models.staf.regressor[0].init_pose[0].numpy(),
                    mean_shape=models.staf.regressor[0].init_shape[0].numpy(),
                    mean_cam=models.staf.regressor[0].init_cam[0].numpy(),
                    dmap=models.staf.maf_extractor[0].Dmap.numpy())
    with torch.no_grad():
        for reg in net.regressor:
            for head in (reg.decpose, reg.decshape, reg.deccam):
                head.weight.mul_(25)
    return net


def _features(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, 2048, 7, 7, generator=g))


def test_window_indices_repeat_the_nearest_real_frame():
    idx = window_indices(torch.tensor([0, 1, 10, 11]), 12)
    assert idx[0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4]
    assert idx[1].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5]
    assert idx[2].tolist() == [6, 7, 8, 9, 10, 11, 11, 11, 11]
    assert idx[3].tolist() == [7, 8, 9, 10, 11, 11, 11, 11, 11]
    assert window_indices(torch.tensor([0]), 1)[0].tolist() == [0] * 9


# 23 and 40 frames pass through the frame cache's ring (22 and 18 slots) once and twice.
@pytest.mark.parametrize("n_frames, per_batch", [(23, 8), (40, 4), (5, 16), (1, 16)])
def test_reuse_equals_per_window_evaluation(models, full_scale_staf, n_frames, per_batch):
    feats = _features(n_frames)
    naive = run_per_window(full_scale_staf, models.body, feats, windows_per_batch=per_batch)
    reused = SequenceRunner(full_scale_staf, models.body, windows_per_batch=per_batch,
                            frames_per_batch=6).run(feats)
    assert len(reused) == n_frames
    _close(naive, reused)


def test_streaming_in_uneven_chunks_gives_the_same_result(models):
    feats = _features(30, seed=1)
    runner = models.runner(windows_per_batch=4, frames_per_batch=5, keep_vertices=False)
    whole = runner.run(feats)
    parts = list(runner.stream([feats[:3], feats[3:4], feats[4:17], feats[17:]]))
    assert [p.start for p in parts] == list(range(0, 30, 4))
    assert parts[0].vertices is None
    joined = torch.cat([p.joints for p in parts])
    assert torch.allclose(joined, whole.joints, atol=TOL)


def test_frame_cache_keeps_its_buffers_however_long_the_clip(models):
    runner = models.runner(windows_per_batch=4, frames_per_batch=5, keep_vertices=False)
    feats = _features(60, seed=2)
    with torch.inference_mode():
        segment = runner.segment()
        got = segment.feed(feats[:7])
        buffers = [t.data_ptr() for t in (segment._cache.pre14, segment._cache.grid, segment._cache.pre28)]
        for first in range(7, 60, 7):
            got += segment.feed(feats[first:first + 7])
        got += segment.finish()
        cache = segment._cache
        assert [t.data_ptr() for t in (cache.pre14, cache.grid, cache.pre28)] == buffers
        assert cache.pre28.shape[0] == 4 + 8 + 5
    assert torch.allclose(torch.cat([p.joints for p in got]), runner.run(feats).joints, atol=TOL)


def test_edge_frames_use_windows_padded_with_the_nearest_frame(models):
    feats = _features(12, seed=2)
    out = models.runner().run(feats)
    with torch.no_grad():
        first = models.staf(feats[[0, 0, 0, 0, 0, 1, 2, 3, 4]][None], models.body)
        last = models.staf(feats[[7, 8, 9, 10, 11, 11, 11, 11, 11]][None], models.body)
    assert torch.allclose(out.vertices[0], first.vertices[0], atol=TOL)
    assert torch.allclose(out.vertices[11], last.vertices[0], atol=TOL)
    # Not the release's tail window (frames N-3, N-2, N-1 and 0 mixed in).
    assert out.vertices[11].isfinite().all()


def test_empty_clip_is_refused(models):
    with pytest.raises(ValueError, match="N>0"):
        models.runner().run(torch.zeros(0, 2048, 7, 7))
