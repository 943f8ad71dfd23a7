"""The last decoder block evaluated only at the pixels stage 2 samples.

Stage 2 reads the 56 x 56 map of the third transposed convolution at the four bilinear neighbours
of 431 mesh points, about a third to a half of the map; the dense block is STAF's largest single
cost. A stride-2, 4 x 4, padding-1 transposed convolution gives output pixel (y, x) from the 2 x 2
input pixels rows {m + p, m + p - 1} (m = y // 2, p = y % 2) with kernel rows {1 - p, 3 - p}, and
likewise for columns, so each output pixel is one product of its gathered 2 x 2 x 256 input with the
(1024 x 256) weights of its parity class. Batch norm and ReLU then act per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.model.sampling import at_least_float32, bilinear_taps, gather_taps

__all__ = ["decode_at_points"]


def _class_weights(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """(4, 4 * C_in, C_out): for parity class 2 * py + px, the kernel taps of its four input pixels,
    in the order (row tap, column tap) = (a, a), (a, b), (b, a), (b, b) with tap a = 1 - p, b = 3 - p."""
    w = conv.weight  # (C_in, C_out, 4, 4)
    stamp = (w.data_ptr(), w._version, w.dtype, w.device)
    cached = getattr(conv, "_staf_class_weights", None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    classes = []
    for py in (0, 1):
        for px in (0, 1):
            taps = [w[:, :, ky, kx] for ky in (1 - py, 3 - py) for kx in (1 - px, 3 - px)]
            classes.append(torch.cat(taps, 0))
    stacked = torch.stack(classes).contiguous()
    conv._staf_class_weights = (stamp, stacked)
    return stacked


def decode_at_points(conv: nn.ConvTranspose2d, norm: nn.BatchNorm2d, x: torch.Tensor,
                     points: torch.Tensor) -> torch.Tensor:
    """ReLU(BN(conv(x))) sampled bilinearly at points: x (B, C, H, W), points (B, N, 2) in [-1, 1]
    -> (B, N, C_out), at least float32. Equal to decoding the whole (2H x 2W) map and sampling it
    (corners aligned, zero padding), to float rounding. Inference only (``norm`` in eval mode)."""
    b, c, h, w = x.shape
    oh, ow = 2 * h, 2 * w
    index, weight = bilinear_taps(points, oh, ow)
    flat = index + (torch.arange(b, device=x.device) * (oh * ow))[:, None, None]
    pixels, inverse = torch.unique(flat, return_inverse=True)
    image, yx = pixels // (oh * ow), pixels % (oh * ow)
    y, xx = yx // ow, yx % ow
    py, px = y % 2, xx % 2
    klass = 2 * py + px
    order = torch.argsort(klass, stable=True)
    image, y, xx, py, px = image[order], y[order], xx[order], py[order], px[order]
    # The 2 x 2 input pixels of each output pixel: rows m + p (tap a) and m + p - 1 (tap b).
    rows = torch.stack((y // 2 + py, y // 2 + py - 1), 1)
    cols = torch.stack((xx // 2 + px, xx // 2 + px - 1), 1)
    iy = rows[:, :, None].expand(-1, 2, 2).reshape(-1, 4)
    ix = cols[:, None, :].expand(-1, 2, 2).reshape(-1, 4)
    # Input pixels run from -1 to h (and w): a zero border around each map stands for the ones outside.
    table = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).reshape(-1, c)  # (b * (h+2) * (w+2), c)
    source = image[:, None] * ((h + 2) * (w + 2)) + (iy + 1) * (w + 2) + (ix + 1)
    gathered = table.index_select(0, source.reshape(-1)).reshape(-1, 4 * c)
    weights = _class_weights(conv)
    counts = torch.bincount(klass, minlength=4).tolist()
    parts = [part @ weights[k] for k, part in enumerate(gathered.split(counts)) if counts[k]]
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    out = F.relu(F.batch_norm(out, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0,
                              norm.eps))
    # Back to the order of ``pixels``, which ``inverse`` indexes.
    values = torch.empty_like(out)
    values[order] = out
    return gather_taps(at_least_float32(values), inverse, weight)
