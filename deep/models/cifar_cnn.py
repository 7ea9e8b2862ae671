"""A fast small conv net for CPU work: four conv3×3-BatchNorm-ReLU-maxpool blocks (32-64-128-256
channels, ≈0.39M parameters; MEASURED.md: ≈72% on the 5k CIFAR-10 subset in 15 epochs), global
max-pooled to a 256-d representation. Works on 1×28×28 (MNIST) as well as 3×32×32."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def _block(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    return layers + ([nn.MaxPool2d(2)] if pool else [])


def cifar_cnn_body(in_shape: tuple[int, int, int], widths: Sequence[int] = (32, 64, 128, 256)) -> tuple[nn.Module, int]:
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"cifar-cnn widths must be positive integers, got {widths!r}")
    layers: list[nn.Module] = []
    c, size = in_shape[0], min(in_shape[1:])
    for w in widths:
        pool = size >= 2  # stop halving at 1×1 so small inputs still work
        layers += _block(c, w, pool)
        c, size = w, size // 2 if pool else size
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c
