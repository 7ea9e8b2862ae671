"""Fast adversarial training (Wong et al. 2020): FGSM from a uniform start with step 1.25·ε, CE(p(x̂′), y)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from deep.attacks import FastFGSM

from .base import MethodConfig, StepOutput, TrainingMethod, register_method

if TYPE_CHECKING:
    from deep.train.recipe import ThreatConfig


@dataclass(frozen=True)
class FastConfig(MethodConfig):
    """No knobs (the step is recipe.alpha, default 1.25·ε)."""


@register_method
class Fast(TrainingMethod):
    """"Fast is better than free": one random-start FGSM step per batch (an ℓ∞ method)."""

    name = "fast"
    summary = "random-start FGSM, Wong et al."
    Config = FastConfig
    linf_only = True

    @classmethod
    def default_step_size(cls, threat: ThreatConfig) -> float:
        return 1.25 * threat.eps

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> FastFGSM:
        return FastFGSM(model, self.recipe.threat.eps, self.recipe.step_size(), bf16=self.recipe.bf16,
                        generator=generator)

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        return self.cross_entropy(model, attack(x, y), y, adversarial=True)
