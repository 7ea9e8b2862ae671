"""A fully-connected maxout network (Goodfellow et al. 2013), the MNIST model of Goodfellow et al. 2015
(SPEC §4): each hidden unit is the max of ``pieces`` affine functions of the layer below. Being a max
of affine maps, the network is piecewise linear in its input, which is what GF's linearity argument
is about. GF trained it with dropout; ``dropout`` (default 0) is applied to each layer's input."""
from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn


class Maxout(nn.Module):
    """Linear(in, units·pieces) followed by the max over each unit's ``pieces`` outputs: [N, in] → [N, units]."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = int(units), int(pieces)
        self.linear = nn.Linear(in_features, self.units * self.pieces)

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x).view(x.shape[0], self.units, self.pieces)
        return z.amax(dim=2)


def maxout_body(in_shape: tuple[int, int, int], hidden: Sequence[int] = (240, 240), pieces: int = 5,
                dropout: float = 0.0) -> tuple[nn.Module, int]:
    """Flatten → [Dropout → Maxout(units, pieces)] per hidden size; GF's MNIST net is 2 × 240 units × 5 pieces."""
    sizes = [int(h) for h in hidden]
    if not sizes or any(h < 1 for h in sizes):
        raise ValueError(f"maxout hidden sizes must be a non-empty list of positive integers, got {hidden!r}")
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise ValueError(f"maxout pieces must be an integer >= 1, got {pieces!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"maxout dropout must lie in [0, 1), got {dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in sizes:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(Maxout(width, h, pieces))
        width = h
    return nn.Sequential(*layers), width


__all__ = ["Maxout", "maxout_body"]
