"""Wide ResNet (Zagoruyko & Komodakis 2016), WRN-34-10 by default: the model of Madry et al.'s
CIFAR-10 experiments, TRADES and MART. Pre-activation basic blocks, (depth − 4)/6 per group,
widths 16·k, 32·k, 64·k."""
from __future__ import annotations

from torch import Tensor, nn
import torch


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None if (stride == 1 and c_in == c_out) else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + skip


def wide_resnet_body(in_shape: tuple[int, int, int], depth: int = 34, widen: int = 10, dropout: float = 0.0) -> tuple[nn.Module, int]:
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ValueError(f"wide resnet depth must be 6n + 4 with n >= 1, got {depth}")
    if widen < 1:
        raise ValueError(f"wide resnet widen factor must be >= 1, got {widen}")
    n = (depth - 4) // 6
    widths = (16 * widen, 32 * widen, 64 * widen)
    layers: list[nn.Module] = [nn.Conv2d(in_shape[0], 16, 3, stride=1, padding=1, bias=False)]
    c = 16
    for g, w in enumerate(widths):
        for i in range(n):
            layers.append(WideBlock(c, w, (1 if g == 0 else 2) if i == 0 else 1, dropout))
            c = w
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
