"""The small Inception network for CIFAR of Zhang et al. 2017 ("Understanding deep learning requires
rethinking generalization", Fig. 3): conv-BN-ReLU modules, Inception modules (a 1×1 and a 3×3 branch,
concatenated) and down-sample modules (a stride-2 3×3 conv beside a 3×3 max-pool, concatenated)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvModule(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 0, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c1: int, c3: int) -> None:
        super().__init__()
        self.b1 = ConvModule(c_in, c1, 1)
        self.b3 = ConvModule(c_in, c3, 3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b3(x)], dim=1)


class DownsampleModule(nn.Module):
    def __init__(self, c_in: int, c3: int) -> None:
        super().__init__()
        self.conv = ConvModule(c_in, c3, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


def inception_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    if min(in_shape[1:]) < 15:
        raise ValueError(f"inception needs images of at least 15×15 (two stride-2 down-samplings), got {in_shape}")
    layers: list[nn.Module] = [ConvModule(in_shape[0], 96, 3)]
    c = 96
    plan = [(32, 32), (32, 48), ("D", 80), (112, 48), (96, 64), (80, 80), (48, 96), ("D", 96), (176, 160), (176, 160)]
    for a, b in plan:
        if a == "D":
            layers.append(DownsampleModule(c, b))
            c = b + c
        else:
            layers.append(InceptionModule(c, a, b))
            c = a + b
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
