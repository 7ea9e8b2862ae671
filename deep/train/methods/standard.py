"""Standard training: CE(p(x), y) on the natural images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .base import MethodConfig, StepOutput, TrainingMethod, register_method


@dataclass(frozen=True)
class StandardConfig(MethodConfig):
    """No knobs."""


@register_method
class Standard(TrainingMethod):
    """Empirical risk minimisation: no inner maximisation, outer loss CE(p(x), y)."""

    name = "standard"
    summary = "no attack"
    Config = StandardConfig
    adversarial = False

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        return self.cross_entropy(model, x, y, adversarial=False)
