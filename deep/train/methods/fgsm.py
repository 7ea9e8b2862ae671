"""Goodfellow et al. 2015 adversarial training: α·CE(x) + (1 − α)·CE(x + ε·sign ∇ₓCE)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deep.attacks import FGSM
from deep.losses import goodfellow_loss

from .base import MethodConfig, StepOutput, TrainingMethod, is_number, knob, register_method, require

ALPHA_HELP = "Goodfellow's mixing weight α of the clean loss: α·J(x) + (1−α)·J(x_fgsm)"


def check_alpha(alpha: float) -> None:
    require(is_number(alpha) and 0 <= alpha <= 1, "fgsm_alpha", alpha, "must lie in [0, 1]")


@dataclass(frozen=True)
class FGSMConfig(MethodConfig):
    alpha: float = knob(0.5, ALPHA_HELP, kind=float, flat="fgsm_alpha")

    def __post_init__(self) -> None:
        check_alpha(self.alpha)


@register_method
class GoodfellowFGSM(TrainingMethod):
    """FGSM training, α-mixed with the clean loss (an ℓ∞ method)."""

    name = "fgsm"
    summary = "Goodfellow et al., α-mixed"
    Config = FGSMConfig
    linf_only = True

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> FGSM:
        return FGSM(model, self.recipe.threat.eps, bf16=self.recipe.bf16)

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        logits_nat, logits_adv = self.two_views(model, attack, x, y)
        loss = goodfellow_loss(logits_nat.float(), logits_adv.float(), y, self.config.alpha)
        return StepOutput(loss, logits_nat, logits_adv)
