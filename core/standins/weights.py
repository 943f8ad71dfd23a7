"""Seeded stand-ins for the licensed STAF weight files, in the release's formats.

They let tests and the demo run the real loading code. Their outputs stay close to the mean
pose (the regressor heads are scaled down), so a body built from them looks like a person.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.model.backbone import ResNet50Features
from core.model.checkpoint import BACKBONE_PREFIX, BACKBONE_STATE_KEY, atomic_torch_save, save_staf_checkpoint
from core.model.staf import Staf

__all__ = ["make_backbone", "make_staf", "write_backbone_checkpoint", "write_staf_checkpoint"]

# Keeps the stand-in regressors' corrections small, so the output stays near the mean pose.
_HEAD_SCALE = 0.02


def make_backbone(seed: int = 0) -> ResNet50Features:
    """A ResNet-50 with seeded random weights and batch-norm statistics."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNet50Features()
        _randomise_norms(model)
    return model.eval()


def make_staf(seed: int = 0, *, mean_pose: np.ndarray, mean_shape: np.ndarray, mean_cam: np.ndarray,
              dmap: np.ndarray) -> Staf:
    """A STAF with seeded random weights, the given mean parameters and (431, 6890) downsampling."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Staf()
        _randomise_norms(model)
        with torch.no_grad():
            for reg in model.regressor:
                reg.init_pose.copy_(torch.as_tensor(mean_pose, dtype=torch.float32).reshape(1, -1))
                reg.init_shape.copy_(torch.as_tensor(mean_shape, dtype=torch.float32).reshape(1, -1))
                reg.init_cam.copy_(torch.as_tensor(mean_cam, dtype=torch.float32).reshape(1, -1))
                for head in (reg.decpose, reg.decshape, reg.deccam):
                    head.weight.mul_(_HEAD_SCALE)
                    head.bias.mul_(_HEAD_SCALE)
            for extractor in model.maf_extractor:
                extractor.Dmap.copy_(torch.as_tensor(dmap, dtype=torch.float32))
    return model.eval()


def _randomise_norms(model: torch.nn.Module) -> None:
    """Give every batch norm non-trivial statistics and affine parameters, so tests see them used."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(1000)


def write_staf_checkpoint(path: Path, model: Staf) -> Path:
    """Write ``model`` as the release's ``3dpw_model_best.pth.tar``, with its bookkeeping keys and a
    few of the SMPL copies its regressors carry (loading must ignore those)."""
    copies = {
        "betas": torch.zeros(64, 10),
        "global_orient": torch.zeros(64, 3),
        "body_pose": torch.zeros(64, 69),
        "parents": torch.tensor([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]),
    }
    save_staf_checkpoint(model, path, extra={"epoch": 0, "performance": 0.0}, smpl_copies=copies)
    return Path(path)


def write_backbone_checkpoint(path: Path, model: ResNet50Features) -> Path:
    """Write ``model`` as the release's ``base_model.pt``: ``{'model': {'feature_extractor.*': ...}}``."""
    state = {BACKBONE_PREFIX + k: v for k, v in model.state_dict().items()}
    atomic_torch_save({BACKBONE_STATE_KEY: state, "epoch": 0}, Path(path))
    return Path(path)
