"""Linear and fully-connected models: softmax/logistic regression and an MLP."""
from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


def logreg_body(in_shape: tuple[int, int, int]) -> tuple[nn.Module, int]:
    """Logistic (K = 2) / softmax regression: the representation is the normalised pixel vector,
    so the model is z = W·((x − μ)/σ) + b, the linear classifier of Goodfellow et al. §4."""
    return nn.Flatten(), math.prod(in_shape)


def mlp_body(in_shape: tuple[int, int, int], hidden: Sequence[int] = (256, 256)) -> tuple[nn.Module, int]:
    """Flatten → [Linear → ReLU] per hidden size; the last hidden layer is the representation."""
    sizes = [int(h) for h in hidden]
    if not sizes or any(h < 1 for h in sizes):
        raise ValueError(f"mlp hidden sizes must be a non-empty list of positive integers, got {hidden!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in sizes:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    return nn.Sequential(*layers), width
