"""DenseNet-BC (Huang et al. 2017) sized for CIFAR: a 3×3 stem of 2·growth channels, dense blocks of
bottleneck layers (BN-ReLU-conv1×1(4·growth)-BN-ReLU-conv3×3(growth), concatenated), transitions
halving channels (compression 0.5) and resolution. Default: DenseNet-121's blocks (6, 12, 24, 16),
growth 32."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.net(x)], dim=1)


def densenet_body(
    in_shape: tuple[int, int, int], blocks: Sequence[int] = (6, 12, 24, 16), growth: int = 32
) -> tuple[nn.Module, int]:
    if not blocks or any(int(b) < 1 for b in blocks) or growth < 1:
        raise ValueError(f"densenet blocks and growth must be positive, got blocks={blocks!r}, growth={growth}")
    c, size = 2 * growth, min(in_shape[1:])
    layers: list[nn.Module] = [nn.Conv2d(in_shape[0], c, 3, padding=1, bias=False)]
    for i, n in enumerate(blocks):
        for _ in range(int(n)):
            layers.append(DenseLayer(c, growth))
            c += growth
        if i < len(blocks) - 1:
            c_out = c // 2
            layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c_out, 1, bias=False)]
            if size >= 2:
                layers.append(nn.AvgPool2d(2))
                size //= 2
            c = c_out
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
