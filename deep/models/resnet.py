"""ResNet-18/50 (He et al. 2016) with the CIFAR stem (3×3 conv, stride 1, no max-pool), built from
torchvision's BasicBlock/Bottleneck, and PreAct-ResNet-18 (He et al. 2016b, BN-ReLU before each conv,
the model of Wong et al.'s fast adversarial training)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

_STAGE_WIDTHS = (64, 128, 256, 512)


def _stage(block: type[BasicBlock] | type[Bottleneck], c_in: int, width: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    c_out = width * block.expansion
    down = None
    if stride != 1 or c_in != c_out:
        down = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    layers = [block(c_in, width, stride, down)]
    layers += [block(c_out, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), c_out


def _resnet(in_shape: tuple[int, int, int], block, blocks: Sequence[int]) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
    ]
    c = 64
    for i, (width, n) in enumerate(zip(_STAGE_WIDTHS, blocks)):
        stage, c = _stage(block, c, width, n, 1 if i == 0 else 2)
        layers.append(stage)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c


def resnet18_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    return _resnet(in_shape, BasicBlock, (2, 2, 2, 2))


def resnet50_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    return _resnet(in_shape, Bottleneck, (3, 4, 6, 3))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus the identity (a 1×1 conv when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(x))
        # the projection reads the pre-activated input, as in the pre-activation paper
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


def preact_resnet18_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = [nn.Conv2d(in_shape[0], 64, 3, stride=1, padding=1, bias=False)]
    c = 64
    for i, width in enumerate(_STAGE_WIDTHS):
        stride = 1 if i == 0 else 2
        layers += [PreActBlock(c, width, stride), PreActBlock(width, width)]
        c = width
    # pre-activation nets end with BN-ReLU before pooling
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
