"""The STAF network: APM, decoder, mesh-aligned point features, TCFM, SAFM and three regressors.

Input is a batch of 9-frame windows of backbone features, (B, 9, 2048, 7, 7); output is the SMPL
estimate of each window's middle frame. The module's state dict has exactly the release's
network keys (``staf-checkpoint-keys.tsv`` less the ``regressor.*.smpl.*`` copies). The body
model is not part of it: it is passed to :meth:`Staf.forward`, so the same SMPL serves every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from core.model.fusion import SAFM, TCFM
from core.model.geometry import project_to_crop, rot6d_to_rotmat
from core.model.heads import N_JOINTS, PointFeatures, Regressor, SmplEstimate
from core.model.sparse_decode import decode_at_points

__all__ = ["SEQ_LEN", "TARGET", "Body", "Staf", "StafOutput"]

SEQ_LEN = 9
TARGET = SEQ_LEN // 2
GRID_SIZE = 21
DECODER_CHANNELS = 256
FEATURE_CHANNELS = 2048
GRID_FEATURES = GRID_SIZE * GRID_SIZE * 5  # 2205
MESH_FEATURES = 431 * 5  # 2155


class Body(Protocol):
    """What STAF needs of a body model: posed vertices and joints from shape and rotations."""

    def __call__(self, betas: torch.Tensor, rotmats: torch.Tensor):  # -> object with .vertices, .joints
        ...


@dataclass(frozen=True)
class StafOutput:
    """SMPL of the target frames. rotmat (B, 24, 3, 3), pose6d (B, 144), betas (B, 10),
    cam (B, 3) crop camera (s, tx, ty), vertices (B, 6890, 3), joints (B, 24, 3) in metres."""

    rotmat: torch.Tensor
    pose6d: torch.Tensor
    betas: torch.Tensor
    cam: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor


def make_points_grid(size: int = GRID_SIZE) -> torch.Tensor:
    """The fixed stage-0 sampling grid (1, 2, size^2): rows [x, y] over [-1, 1], x varying slowest."""
    line = torch.linspace(-1, 1, size)
    xv, yv = torch.meshgrid(line, line, indexing="ij")
    return torch.stack((xv.reshape(-1), yv.reshape(-1))).unsqueeze(0)


class Staf(nn.Module):
    """STAF heads over frozen ResNet-50 features.

    Args:
        mix_tcfm_across_batch: reproduce the release's TCFM, whose windows mix across the batch
            (see :class:`~core.model.fusion.TCFM`). Off by default: a window's output then never
            depends on what else is in its batch.
    """

    def __init__(self, *, mix_tcfm_across_batch: bool = False) -> None:
        super().__init__()
        self.register_buffer("points_grid", make_points_grid())
        layers: list[nn.Module] = []
        channels = FEATURE_CHANNELS
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(channels, DECODER_CHANNELS, 4, stride=2, padding=1, output_padding=0,
                                   bias=False),
                nn.BatchNorm2d(DECODER_CHANNELS),
                nn.ReLU(inplace=True),
            ]
            channels = DECODER_CHANNELS
        self.deconv_layers = nn.Sequential(*layers)
        self.maf_extractor = nn.ModuleList(PointFeatures() for _ in range(3))
        self.regressor = nn.ModuleList(
            [Regressor(GRID_FEATURES), Regressor(MESH_FEATURES), Regressor(MESH_FEATURES)]
        )
        self.tcfm = TCFM(GRID_FEATURES, mix_across_batch=mix_tcfm_across_batch)
        self.safm = SAFM(MESH_FEATURES)

    # -- building blocks, shared by forward() and the whole-sequence runner --------------------

    def deconv(self, block: int, x: torch.Tensor) -> torch.Tensor:
        """Decoder block ``block``'s transposed convolution alone (linear: it commutes with means)."""
        layer = self.deconv_layers[3 * block]
        if layer.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return layer(x)

    def use_channels_last(self) -> Staf:
        """Store the decoder in channels-last layout (faster transposed convolutions on CPU and GPU)."""
        self.deconv_layers.to(memory_format=torch.channels_last)
        return self

    def activate(self, block: int, y: torch.Tensor) -> torch.Tensor:
        """Decoder block ``block``'s batch norm and ReLU."""
        return self.deconv_layers[3 * block + 2](self.deconv_layers[3 * block + 1](y))

    def decode(self, block: int, x: torch.Tensor) -> torch.Tensor:
        """One decoder block: (N, C, H, W) -> (N, 256, 2H, 2W)."""
        return self.activate(block, self.deconv(block, x))

    def grid_features(self, map14: torch.Tensor) -> torch.Tensor:
        """Stage-0 point features at the fixed grid: (N, 256, 14, 14) -> (N, 2205)."""
        points = self.points_grid.transpose(1, 2).expand(map14.shape[0], -1, -1)
        return self.maf_extractor[0].at_points(map14, points)

    def posed_vertices(self, body: Body, estimate: SmplEstimate) -> torch.Tensor:
        """Vertices (N, 6890, 3) of an estimate, detached: they only choose where to sample."""
        rotmat = rot6d_to_rotmat(estimate.pose6d.reshape(-1, N_JOINTS, 6))
        return body(estimate.shape, rotmat).vertices.detach()

    def mesh_points(self, body: Body, estimate: SmplEstimate, stage: int) -> torch.Tensor:
        """The 431 points (N, 431, 3) stage ``stage`` samples at, detached: the downsampled posed mesh,
        skinning only the vertices the downsampling reads when the body model can."""
        extractor = self.maf_extractor[stage]
        index = extractor.support()
        posed_subset = getattr(body, "posed_subset", None)
        if index is None or posed_subset is None:
            return extractor.downsample(self.posed_vertices(body, estimate))
        rotmat = rot6d_to_rotmat(estimate.pose6d.reshape(-1, N_JOINTS, 6))
        return extractor.downsample_from(posed_subset(estimate.shape, rotmat, index), index).detach()

    def finish(self, body: Body, estimate: SmplEstimate) -> StafOutput:
        """Final SMPL of an estimate."""
        rotmat = rot6d_to_rotmat(estimate.pose6d.reshape(-1, N_JOINTS, 6))
        out = body(estimate.shape, rotmat)
        return StafOutput(rotmat, estimate.pose6d, estimate.shape, estimate.cam, out.vertices, out.joints)

    def stage0(self, body: Body, grid: torch.Tensor) -> tuple[SmplEstimate, torch.Tensor]:
        """TCFM and regressor 0 for windows of grid features (B, 9, 2205).

        Returns the estimate of every frame (B*9 rows, window-major) and the points stage 1 samples at.
        """
        b, t, _ = grid.shape
        fused = self.tcfm(grid).reshape(b * t, -1)
        estimate = self.regressor[0](fused, self.regressor[0].initial(b * t))
        return estimate, self.mesh_points(body, estimate, 1)

    def stage2_features(self, map28: torch.Tensor, points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Stage-2 point features (B, 2155): the third decoder block on the second maps (B, 256, 28, 28),
        sampled where points (B, 431, 3) project under crop cameras (B, 3). Without autograd only the
        pixels sampled are decoded (:mod:`core.model.sparse_decode`); with it, the whole map."""
        extractor = self.maf_extractor[2]
        if torch.is_grad_enabled() or self.deconv_layers[7].training:
            return extractor.on_points(self.decode(2, map28), points, cam)
        conv = self.deconv_layers[6]
        if conv.weight.is_contiguous(memory_format=torch.channels_last):
            map28 = map28.contiguous(memory_format=torch.channels_last)
        return extractor.reduce(decode_at_points(conv, self.deconv_layers[7], map28, project_to_crop(points, cam)))

    def stages12(self, body: Body, mesh_feats: torch.Tensor, stage0_target: SmplEstimate,
                 map28: torch.Tensor) -> StafOutput:
        """SAFM, regressor 1, stage-2 sampling of the target's third decoder map and regressor 2.

        mesh_feats: (B, 9, 2155) stage-1 features; stage0_target: the target frames' stage-0
        estimate; map28: (B, 256, 28, 28) the target frames' second decoder map.
        """
        est1 = self.regressor[1](self.safm(mesh_feats), stage0_target)
        feats2 = self.stage2_features(map28, self.mesh_points(body, est1, 2), est1.cam)
        est2 = self.regressor[2](feats2, est1)
        return self.finish(body, est2)

    # -- the per-window definition ----------------------------------------------------------

    def forward(self, features: torch.Tensor, body: Body) -> StafOutput:
        """Windows of backbone features (B, 9, 2048, 7, 7) -> SMPL of each window's middle frame."""
        b, t = features.shape[:2]
        if t != SEQ_LEN:
            raise ValueError(f"STAF takes windows of {SEQ_LEN} frames, got {t}")
        # APM: the target frame's feature becomes the window's mean.
        x = torch.cat((features[:, :TARGET], features.mean(1, keepdim=True), features[:, TARGET + 1:]), 1)
        map14 = self.decode(0, x.flatten(0, 1))
        est0, points0 = self.stage0(body, self.grid_features(map14).reshape(b, t, -1))
        map28 = self.decode(1, map14)
        mesh1 = self.maf_extractor[1].on_points(map28, points0, est0.cam).reshape(b, t, -1)
        target28 = map28.reshape(b, t, *map28.shape[1:])[:, TARGET]
        return self.stages12(body, mesh1, est0.select(slice(TARGET, None, t)), target28)
