"""The STAF network's structure, its TCFM batch semantics and its forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.model.backbone import ResNet50Features
from core.model.fusion import TCFM
from core.model.staf import Staf

KEYS_TSV = Path(__file__).parent / "data" / "staf-checkpoint-keys.tsv"


def release_network_keys() -> dict[str, tuple[int, ...]]:
    """The release's state-dict names and shapes, less the SMPL copies inside the regressors."""
    rows = [line.split("\t") for line in KEYS_TSV.read_text().splitlines()[1:]]
    return {
        key: tuple(int(d) for d in shape.strip("()").split(",") if d)
        for key, shape, *_ in rows
        if ".smpl." not in key
    }


def test_parameter_counts():
    assert sum(p.numel() for p in Staf().parameters()) == 31_988_035
    assert sum(p.numel() for p in ResNet50Features().parameters()) == 23_508_032


def test_state_dict_matches_the_release_exactly():
    ours = {k: tuple(v.shape) for k, v in Staf().state_dict().items()}
    assert ours == release_network_keys()


def test_points_grid_is_ij_indexed_x_slowest():
    grid = Staf().points_grid[0]
    assert grid.shape == (2, 441)
    assert torch.equal(grid[:, 0], torch.tensor([-1.0, -1.0]))
    assert torch.equal(grid[:, 1], torch.tensor([-1.0, -0.9]))  # y varies fastest
    assert torch.equal(grid[:, 21], torch.tensor([-0.9, -1.0]))


def _tcfm(mix: bool) -> TCFM:
    torch.manual_seed(3)
    module = TCFM(64, mix_across_batch=mix).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)
    return module


def test_tcfm_window_does_not_depend_on_its_batch():
    tcfm = _tcfm(mix=False)
    windows = torch.randn(3, 9, 64)
    with torch.no_grad():
        together = tcfm(windows)
        alone = torch.cat([tcfm(w[None]) for w in windows])
        reordered = tcfm(windows.flip(0)).flip(0)
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(together, reordered, atol=1e-5)


def test_tcfm_release_compatibility_mixes_windows_across_the_batch():
    paper, release = _tcfm(mix=False), _tcfm(mix=True)
    # Small inputs keep softmax(X^T X) away from the identity, so the mixing is visible.
    windows = 0.1 * torch.randn(3, 9, 64)
    with torch.no_grad():
        # One window alone: the release's reshape is harmless and both agree.
        assert torch.allclose(release(windows[:1]), paper(windows[:1]), atol=1e-6)
        mixed = release(windows)
        assert (mixed[0] - paper(windows[:1])[0]).abs().max() > 1e-4
        # The release's window 0 is built from the raw affinities of windows 0 and 1: changing
        # window 1 changes window 0's output in the release's mode only.
        other = windows.clone()
        other[1] = 0.1 * torch.randn(9, 64)
        assert (release(other)[0] - mixed[0]).abs().max() > 1e-4
        assert torch.allclose(paper(other)[0], paper(windows)[0], atol=1e-6)


def test_forward_gives_finite_smpl_for_each_window(models):
    feats = torch.relu(torch.randn(2, 9, 2048, 7, 7))
    with torch.no_grad():
        out = models.staf(feats, models.body)
    assert out.rotmat.shape == (2, 24, 3, 3)
    assert out.pose6d.shape == (2, 144)
    assert out.betas.shape == (2, 10)
    assert out.cam.shape == (2, 3)
    assert out.vertices.shape == (2, 6890, 3)
    assert out.joints.shape == (2, 24, 3)
    for t in (out.rotmat, out.betas, out.cam, out.vertices, out.joints):
        assert torch.isfinite(t).all()
    with pytest.raises(ValueError, match="9 frames"):
        models.staf(feats[:, :5], models.body)


def test_folded_backbone_equals_the_plain_one():
    from core.model.backbone import fold_batch_norms

    torch.manual_seed(5)
    net = ResNet50Features().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
        folded = fold_batch_norms(net)
        x = torch.randn(2, 3, 224, 224)
        plain, fast = net(x), folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is untouched
    assert (fast - plain).abs().max().item() <= 1e-4 * plain.abs().max().item()


def test_features_in_cpu_chunks_equal_one_crop_at_a_time(models):
    from core.model.load import CPU_BACKBONE_CHUNK

    n = 2 * CPU_BACKBONE_CHUNK + 3  # two whole chunks and a short one
    crops = torch.randn(n, 3, 224, 224)
    with torch.no_grad():
        chunked = models.features(crops)
        alone = torch.cat([models.backbone(crops[i:i + 1].contiguous(memory_format=torch.channels_last))
                           for i in range(n)])
    assert chunked.shape == (n, 2048, 7, 7)
    assert (chunked - alone).abs().max().item() <= 1e-4 * alone.abs().max().item()
