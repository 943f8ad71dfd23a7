"""Network input crops: square, centred on the person box, 224 x 224, ImageNet-normalised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.camera import CROP_SCALE, CROP_SIZE

if TYPE_CHECKING:
    import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "crop_person", "normalise"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_person(rgb: np.ndarray, box: np.ndarray, *, crop_scale: float = CROP_SCALE,
                size: int = CROP_SIZE) -> np.ndarray:
    """Cut the square of side ``crop_scale * max(w, h)`` centred on box (cx, cy, w, h) from an RGB
    image (H, W, 3) uint8 and resize it to (size, size, 3); outside the image is black.

    Source pixel (cx + dx, cy + dy) goes to crop pixel (size/2 + dx * scale, size/2 + dy * scale), with
    scale = size / side, in OpenCV's convention (integer coordinates at pixel centres)."""
    cx, cy, w, h = (float(v) for v in box)
    side = crop_scale * max(w, h)
    scale = size / side
    # The box centre lands on crop pixel size/2 (112 of 224), as in the published release, whose
    # weights were trained on crops cut that way (the pixel-centre midpoint would be 111.5).
    m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def normalise(crops: np.ndarray) -> torch.Tensor:
    """Crops (N, S, S, 3) uint8 RGB -> network input (N, 3, S, S) float32, ImageNet mean/std."""
    import torch  # here, so that cutting crops (in the decoding worker) does not load torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std
