"""TRADES (Zhang et al. 2019): CE(p(x), y) + β·KL(p(x) ‖ p(x′)), x′ = PGD on the KL from x + 0.001·N(0, 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deep.attacks import PGD
from deep.losses import trades_loss

from .base import MethodConfig, StepOutput, TrainingMethod, is_number, knob, register_method, require


@dataclass(frozen=True)
class TRADESConfig(MethodConfig):
    beta: float = knob(6.0, "TRADES weight β of KL(p(x) ‖ p(x′))", kind=float)

    def __post_init__(self) -> None:
        require(is_number(self.beta) and self.beta >= 0, "beta", self.beta, "must be a finite number >= 0")


@register_method
class TRADES(TrainingMethod):
    """The clean loss plus β times the KL between clean and adversarial predictions."""

    name = "trades"
    summary = "Zhang et al., β"
    Config = TRADESConfig

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> PGD:
        return self.threat_pgd(model, generator, random_start="normal", loss="kl")

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        logits_nat, logits_adv = self.two_views(model, attack, x, y)
        return StepOutput(trades_loss(logits_nat.float(), logits_adv.float(), y, self.config.beta), logits_nat,
                          logits_adv)
