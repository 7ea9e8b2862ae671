"""The common shape of every classifier: normalise inside, a body giving the penultimate
representation g(x) ∈ R^D (Ilyas et al. §3 use it for representation matching), and a linear head.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _stat(values: Sequence[float], channels: int, label: str) -> Tensor:
    t = torch.as_tensor([float(v) for v in values], dtype=torch.float32)
    if t.dim() != 1 or t.numel() not in (1, channels):
        raise ValueError(f"{label} must have 1 or {channels} values (one per channel), got {list(values)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{label} must be finite, got {list(values)}")
    return t.expand(channels).clone().view(1, channels, 1, 1)


def check_in_shape(in_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(in_shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"in_shape must be (C, H, W) of positive integers, got {in_shape!r}")
    return shape  # type: ignore[return-value]


class ImageClassifier(nn.Module):
    """forward(x) = head(features(x)); features(x) = body((x - mean) / std) flattened to [N, D].

    Inputs are images in [0, 1] (pixel space, where ε is measured); mean and std are buffers, so
    they travel with the state_dict.
    """

    def __init__(
        self,
        body: nn.Module,
        feature_dim: int,
        *,
        num_classes: int,
        in_shape: Sequence[int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.in_shape = check_in_shape(in_shape)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        c = self.in_shape[0]
        mean_t = _stat(mean if mean is not None else (0.0,), c, "mean")
        std_t = _stat(std if std is not None else (1.0,), c, "std")
        if (std_t <= 0).any():
            raise ValueError(f"std must be > 0, got {list(std or ())}")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        self.num_classes = num_classes
        self.feature_dim = int(feature_dim)
        self.body = body
        self.head = nn.Linear(self.feature_dim, num_classes)

    def _check(self, x: Tensor) -> None:
        # cheap shape check only (hot path): NaNs and range are the caller's business (check_images)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"{type(self).__name__} expects input [N, {', '.join(map(str, self.in_shape))}], got {tuple(x.shape)}"
            )

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def features(self, x: Tensor) -> Tensor:
        """Penultimate representation [N, D] of images in [0, 1]."""
        self._check(x)
        return self.body(self.normalize(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def output_dim(body: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """D of a body on in_shape, found by one forward pass on a zero image (BatchNorm in eval mode)."""
    from deep.attacks.base import eval_mode  # late: deep.attacks imports deep.data, which must not need models

    with eval_mode(body):
        d = body(torch.zeros(1, *in_shape)).flatten(1).shape[1]
    return int(d)
