"""STAF's two fusion modules: TCFM over a window's frames and SAFM's attention over frame groups."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SAFM", "TCFM"]


class _NonLocal(nn.Module):
    """TCFM's weights: theta, phi, g (C -> C/2), the output projection and the 2 -> 1 matrix mixer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = channels // 2
        self.conv_phi = nn.Conv1d(channels, inner, 1, bias=False)
        self.conv_theta = nn.Conv1d(channels, inner, 1, bias=False)
        self.conv_g = nn.Conv1d(channels, inner, 1, bias=False)
        self.conv_mask = nn.Conv1d(inner, channels, 1, bias=False)
        self.conv_mask_forR = nn.Conv2d(2, 1, 1, bias=False)


class TCFM(nn.Module):
    """Temporal coherence fusion: a non-local block over the T frame vectors of each window.

    Two T x T affinities are built per window, ``softmax(X^T X)`` (raw self-similarity) and
    ``softmax(theta^T phi)`` (learned); a 1x1 convolution mixes them into one attention ``Y``
    (softmax over the last axis) and the output is ``conv_mask((Y g)^T) + X``.

    By default every window uses only its own two matrices, as the paper defines it. With
    ``mix_across_batch=True`` it reproduces the public release, which concatenates the matrices
    along the batch axis and reshapes to (B, 2, T, T): for B > 1 window b then mixes the matrices
    of windows 2b and 2b+1 of that concatenation, so its output depends on the rest of the batch.
    """

    def __init__(self, channels: int = 2205, *, mix_across_batch: bool = False) -> None:
        super().__init__()
        self.nonlocalblock = _NonLocal(channels)
        self.mix_across_batch = mix_across_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) frame vectors -> (B, T, C)."""
        nl = self.nonlocalblock
        xc = x.transpose(1, 2)  # B x C x T
        b, _, t = xc.shape
        raw = torch.softmax(x @ xc, dim=-1)  # B x T x T
        theta = nl.conv_theta(xc).transpose(1, 2)  # B x T x C/2
        phi = nl.conv_phi(xc)  # B x C/2 x T
        learned = torch.softmax(theta @ phi, dim=-1)
        if self.mix_across_batch:
            pair = torch.cat((raw, learned), dim=0).reshape(b, 2, t, t)
        else:
            pair = torch.stack((raw, learned), dim=1)
        attn = torch.softmax(nl.conv_mask_forR(pair).reshape(b, t, t), dim=-1)
        g = nl.conv_g(xc).transpose(1, 2)  # B x T x C/2
        return nl.conv_mask((attn @ g).transpose(1, 2)).transpose(1, 2) + x


class _GroupAttention(nn.Module):
    """Scores K frame vectors jointly and returns their softmax-weighted sum."""

    def __init__(self, channels: int, group: int, hidden: int = 256) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, hidden)
        self.attention = nn.Sequential(
            nn.Linear(hidden * group, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, group),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, K, C) -> (B, C)."""
        scores = torch.softmax(self.attention(self.fc(x).flatten(1)), dim=-1)
        return (x * scores.unsqueeze(-1)).sum(1)


class _SAFMWeights(nn.Module):
    def __init__(self, channels: int, group: int) -> None:
        super().__init__()
        self.attention = _GroupAttention(channels, group)


class SAFM(nn.Module):
    """Spatial alignment fusion: 9 mesh-aligned frame vectors -> one vector for the middle frame.

    Frames are fused in groups of three ([0,1,2], [3,4,5], [6,7,8]) and the three results fused
    again, all by the same attention weights.
    """

    def __init__(self, channels: int = 2155, group: int = 3) -> None:
        super().__init__()
        self.group = group
        self.nonlocalblock = _SAFMWeights(channels, group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, group**2, C) -> (B, C)."""
        b, t, c = x.shape
        if t != self.group**2:
            raise ValueError(f"SAFM expects {self.group ** 2} frames per window, got {t}")
        attend = self.nonlocalblock.attention
        groups = attend(x.reshape(b * self.group, self.group, c)).reshape(b, self.group, c)
        return attend(groups)
