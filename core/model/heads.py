"""Per-stage heads of STAF: the point-feature MLP (with its sampling) and the iterative regressor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.model.geometry import project_to_crop
from core.model.sampling import at_least_float32, bilinear_taps, gather_taps, sample_points

__all__ = ["PointFeatures", "Regressor", "SmplEstimate"]

N_JOINTS = 24
POSE_DIM = N_JOINTS * 6
SHAPE_DIM = 10
CAM_DIM = 3


class PointFeatures(nn.Module):
    """Samples a decoder map at points and shrinks each point's 256 channels to 5.

    1x1 convolutions 256 -> 128 -> 64 -> 5, the 256-d sampled feature concatenated back before the
    second and third; leaky ReLU between layers and ReLU at the end. Output is flattened
    channel-major (index c * N + point). ``Dmap`` (431 x 6890) reduces a full mesh to the points
    sampled at stages 1 and 2.
    """

    def __init__(self, in_channels: int = 256, widths: tuple[int, ...] = (128, 64, 5), n_vertices: int = 6890,
                 n_points: int = 431) -> None:
        super().__init__()
        self.register_buffer("Dmap", torch.zeros(n_points, n_vertices))
        previous = 0
        for i, width in enumerate(widths):
            setattr(self, f"conv{i}", nn.Conv1d(previous + in_channels, width, 1))
            previous = width
        self.n_layers = len(widths)

    def reduce(self, sampled: torch.Tensor) -> torch.Tensor:
        """(B, N, 256) sampled features, point-major -> (B, 5 N), channel-major."""
        y = sampled
        for i in range(self.n_layers):
            conv = getattr(self, f"conv{i}")
            y = F.linear(y if i == 0 else torch.cat((y, sampled), dim=-1), conv.weight[:, :, 0], conv.bias)
            y = self._activation(i, y)
        return y.transpose(1, 2).flatten(1)

    def _activation(self, i: int, y: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(y, 0.01) if i < self.n_layers - 1 else F.relu(y)

    def at_points(self, feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Features at fixed points: map (B, 256, H, W), points (B, N, 2) -> (B, 5 N)."""
        return self.reduce(sample_points(feature_map, points))

    def downsample(self, vertices: torch.Tensor) -> torch.Tensor:
        """Full meshes (B, 6890, 3) -> the 431 sampling vertices (B, 431, 3), as one matrix product."""
        b, v, _ = vertices.shape
        flat = vertices.transpose(0, 1).reshape(v, b * 3)
        return (self.Dmap @ flat).reshape(-1, b, 3).transpose(0, 1)

    def downsample_from(self, vertices: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """:meth:`downsample` from only the vertices ``index`` it reads: (B, len(index), 3) -> (B, 431, 3)."""
        b, v, _ = vertices.shape
        flat = vertices.transpose(0, 1).reshape(v, b * 3)
        return (self.Dmap[:, index] @ flat).reshape(-1, b, 3).transpose(0, 1)

    def support(self) -> torch.Tensor | None:
        """The mesh vertices :meth:`downsample` reads (None when it reads most), cached per buffer state."""
        from core.model.mesh_points import support_of

        stamp = (self.Dmap.data_ptr(), self.Dmap._version, self.Dmap.device)
        if getattr(self, "_support_stamp", None) != stamp:
            self._support, self._support_stamp = support_of(self.Dmap), stamp
        return self._support

    def on_mesh(self, feature_map: torch.Tensor, vertices: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Features where the downsampled mesh (B, 6890, 3) projects under crop cameras (B, 3) -> (B, 5 * 431)."""
        return self.on_points(feature_map, self.downsample(vertices), cam)

    def on_points(self, feature_map: torch.Tensor, points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        """Features where the 431 mesh points (B, 431, 3) project under crop cameras (B, 3) -> (B, 5 * 431)."""
        return self.at_points(feature_map, project_to_crop(points, cam))

    # Bilinear sampling (zero padding included) is linear in the map, and so is the part of each
    # 1x1 convolution that reads the sampled 256 channels. Applying those parts to a whole map
    # first lets a frame's map be shared by every window that samples it.

    def premultiply(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Map (B, 256, H, W) -> at least float32 (B, H, W, 128 + 64 + 5): each layer's weights on the sampled input."""
        c = self.conv0.in_channels
        w = torch.cat([getattr(self, f"conv{i}").weight[:, -c:, 0] for i in range(self.n_layers)])
        return at_least_float32(F.linear(feature_map.permute(0, 2, 3, 1), w))

    def sample_premultiplied(self, premultiplied: torch.Tensor, frame: torch.Tensor, points: torch.Tensor,
                             cam: torch.Tensor) -> torch.Tensor:
        """Premultiplied maps (F, H, W, C) sampled where mesh points (P, N, 3) project under crop
        cameras (P, 3), row p on map ``frame[p]`` -> (P, N, C)."""
        n, h, w, c = premultiplied.shape
        index, weight = bilinear_taps(project_to_crop(points, cam), h, w)
        index = index + (frame * (h * w))[:, None, None]
        return gather_taps(premultiplied.reshape(n * h * w, c), index, weight)

    def finish_premultiplied(self, sampled: torch.Tensor) -> torch.Tensor:
        """The point features (P, 5 N) from sampled premultiplied channels (P, N, C)."""
        y = None
        offset = 0
        for i in range(self.n_layers):
            conv = getattr(self, f"conv{i}")
            part = sampled[..., offset:offset + conv.out_channels] + conv.bias
            offset += conv.out_channels
            if y is not None:
                part = part + F.linear(y, conv.weight[:, : y.shape[-1], 0])
            y = self._activation(i, part)
        return y.transpose(1, 2).flatten(1)


@dataclass(frozen=True)
class SmplEstimate:
    """A stage's SMPL parameters: pose (B, 144) as 24 6D rotations, shape (B, 10), crop camera (B, 3)."""

    pose6d: torch.Tensor
    shape: torch.Tensor
    cam: torch.Tensor

    def select(self, index: torch.Tensor | slice | int) -> SmplEstimate:
        """Rows of every field."""
        return SmplEstimate(self.pose6d[index], self.shape[index], self.cam[index])


class Regressor(nn.Module):
    """One iteration of residual SMPL regression: [features, pose, shape, cam] -> corrected estimate.

    fc1 -> dropout -> fc2 -> dropout (no nonlinearity), then three linear heads whose outputs are
    added to the incoming estimate. ``init_*`` buffers hold the mean parameters a first stage
    starts from.
    """

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("init_pose", torch.zeros(1, POSE_DIM))
        self.register_buffer("init_shape", torch.zeros(1, SHAPE_DIM))
        self.register_buffer("init_cam", torch.zeros(1, CAM_DIM))
        width = in_features + POSE_DIM + SHAPE_DIM + CAM_DIM
        self.fc1 = nn.Linear(width, hidden)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(hidden, POSE_DIM)
        self.decshape = nn.Linear(hidden, SHAPE_DIM)
        self.deccam = nn.Linear(hidden, CAM_DIM)

    def initial(self, batch: int) -> SmplEstimate:
        """The mean-parameter starting point repeated for ``batch`` rows."""
        return SmplEstimate(self.init_pose.expand(batch, -1), self.init_shape.expand(batch, -1),
                            self.init_cam.expand(batch, -1))

    def forward(self, features: torch.Tensor, start: SmplEstimate) -> SmplEstimate:
        """features (B, F) and a starting estimate -> the corrected estimate."""
        h = torch.cat((features, start.pose6d, start.shape, start.cam), dim=1)
        h = self.drop2(self.fc2(self.drop1(self.fc1(h))))
        return SmplEstimate(self.decpose(h) + start.pose6d, self.decshape(h) + start.shape,
                            self.deccam(h) + start.cam)
