"""STAF's training losses, as the release weights them, with masks for missing labels.

Only the supervised frame's final estimate is compared with labels (the window's middle frame in
stage 2, the image in stage 1):

- 2D keypoints: the 49 SPIN joints projected with the crop camera vs. labels in crop coordinates
  [-1, 1], squared error weighted by each label's confidence (0 where a joint is unlabelled),
  averaged over every coordinate of the batch;
- 3D keypoints: the 14 common joints, both centred on their hips' midpoint, squared error weighted
  by confidence, averaged over the samples that have 3D labels;
- SMPL pose: squared error of the 24 rotation matrices; SMPL shape: squared error of the betas;
  both averaged over the samples that have SMPL labels.

A term whose labels no sample in the batch has is zero.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from core.datasets.joints import COMMON14_IN_SPIN49
from core.model.geometry import project_to_crop
from core.model.staf import StafOutput

__all__ = ["LossTerms", "LossWeights", "Targets", "staf_losses"]

_HIPS = (2, 3)  # in the 14 common joints


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the release's values)."""

    kp2d: float = 300.0
    kp3d: float = 300.0
    shape: float = 0.06
    pose: float = 60.0


@dataclass(frozen=True, eq=False)
class Targets:
    """Labels of B supervised frames.

    kp2d (B, 49, 3): SPIN joints in crop coordinates [-1, 1] and confidence; kp3d (B, 49, 4): metres
    and confidence; pose (B, 72) SMPL axis-angle; shape (B, 10); has_3d, has_smpl (B,) bool.
    """

    kp2d: torch.Tensor
    kp3d: torch.Tensor
    pose: torch.Tensor
    shape: torch.Tensor
    has_3d: torch.Tensor
    has_smpl: torch.Tensor

    def to(self, device: torch.device) -> Targets:
        return Targets(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))


@dataclass(frozen=True)
class LossTerms:
    """The weighted total and each unweighted term (scalar tensors)."""

    total: torch.Tensor
    kp2d: torch.Tensor
    kp3d: torch.Tensor
    pose: torch.Tensor
    shape: torch.Tensor


def _centre(joints: torch.Tensor) -> torch.Tensor:
    return joints - joints[:, list(_HIPS)].mean(1, keepdim=True)


def staf_losses(out: StafOutput, joints49: torch.Tensor, targets: Targets,
                weights: LossWeights | None = None) -> LossTerms:
    """Losses of the estimate ``out`` (B frames) whose SPIN joints are ``joints49`` (B, 49, 3);
    ``weights`` default to the release's (:class:`LossWeights`)."""
    from smplx.lbs import batch_rodrigues

    weights = weights or LossWeights()
    zero = out.cam.new_zeros(())
    pred2d = project_to_crop(joints49, out.cam)
    kp2d = (targets.kp2d[..., 2:] * (pred2d - targets.kp2d[..., :2]) ** 2).mean()

    kp3d = zero
    if targets.has_3d.any():
        common = list(COMMON14_IN_SPIN49)
        pred = _centre(joints49[targets.has_3d][:, common])
        label = targets.kp3d[targets.has_3d][:, common]
        kp3d = (label[..., 3:] * (pred - _centre(label[..., :3])) ** 2).mean()

    pose = shape = zero
    if targets.has_smpl.any():
        keep = targets.has_smpl
        gt_rot = batch_rodrigues(targets.pose[keep].reshape(-1, 3)).reshape(-1, 24, 3, 3)
        pose = ((out.rotmat[keep] - gt_rot) ** 2).mean()
        shape = ((out.betas[keep] - targets.shape[keep]) ** 2).mean()

    total = weights.kp2d * kp2d + weights.kp3d * kp3d + weights.pose * pose + weights.shape * shape
    return LossTerms(total, kp2d, kp3d, pose, shape)
