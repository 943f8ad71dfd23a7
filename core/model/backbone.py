"""ResNet-50 feature extractor in torchvision's module layout, without torchvision.

The layout (``conv1``, ``bn1``, ``layer1``..``layer4``, ``downsample.0/1``) matches torchvision and
the STAF release's ``base_model.pt``, so both load strictly. There is no ``fc``: the network returns
``layer4``'s map, 2048 x 7 x 7 for a 224 x 224 crop, which STAF consumes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["Bottleneck", "ResNet50Features", "fold_batch_norms"]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 residual block, expansion 4 (torchvision's ResNet v1.5)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y += identity  # in place: one 4-byte pass over the block's output fewer (autograd-safe here)
        return self.relu(y)


class ResNet50Features(nn.Module):
    """ResNet-50 trunk: images (B, 3, 224, 224), ImageNet-normalised -> features (B, 2048, 7, 7)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(in_channels, width, stride=stride if b == 0 else 1))
                in_channels = width * Bottleneck.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def fold_batch_norms(net: nn.Module, *, in_place: bool = False) -> nn.Module:
    """Inference version of ``net`` (eval mode) with every batch norm that follows a convolution folded
    into it: one pass over memory fewer per layer, about 8-12 % faster on CPU. Its state dict is no
    longer the release's layout, so load weights first and fold after. A copy unless ``in_place``
    (which spares copying 25 M weights when the caller keeps only the folded network)."""
    import copy
    import itertools

    folded = (net if in_place else copy.deepcopy(net)).eval()

    def fold(module: nn.Module) -> None:
        names = list(module._modules)
        for conv_name, norm_name in itertools.pairwise(names):
            conv, norm = module._modules[conv_name], module._modules[norm_name]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, norm)
                module._modules[norm_name] = nn.Identity()
        for child in module.children():
            fold(child)

    fold(folded)
    return folded
