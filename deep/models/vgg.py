"""VGG-16 with BatchNorm (Simonyan & Zisserman 2015) sized for CIFAR: 13 conv3×3 layers in five
groups (64, 128, 256, 512, 512), a max-pool after each while the map is at least 2×2, then global
average pooling to a 512-d representation (the usual CIFAR variant drops the 4096-wide FC layers)."""
from __future__ import annotations

from torch import nn

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    c, size = in_shape[0], min(in_shape[1:])
    for v in VGG16:
        if v == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        layers += [nn.Conv2d(c, int(v), 3, padding=1, bias=False), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
        c = int(v)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
