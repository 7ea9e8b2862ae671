"""MART (Wang et al. 2020): BCE(p(x̂′), y) + λ·KL(p(x) ‖ p(x̂′))·(1 − p_y(x)), x̂′ = PGD on CE from
x + 0.001·N(0, 1); ``ablation`` switches off one part as in [MART] §4."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deep.attacks import PGD
from deep.losses import mart_loss

from .base import MethodConfig, StepOutput, TrainingMethod, is_number, knob, register_method, require

MART_ABLATIONS: tuple[str, ...] = ("none", "no-weight", "no-kl", "ce")  # [MART] §4 ablations


@dataclass(frozen=True)
class MARTConfig(MethodConfig):
    lam: float = knob(6.0, "MART weight λ of the misclassification-aware KL term", kind=float)
    ablation: str = knob("none", "MART ablation ([MART] §4): none | no-weight (drop the (1 − p_y(x)) factor) | "
                         "no-kl (drop the KL term) | ce (CE instead of BCE)", kind=str, flat="mart_ablation",
                         choices=MART_ABLATIONS, exclusive=True)

    def __post_init__(self) -> None:
        require(is_number(self.lam) and self.lam >= 0, "lam", self.lam, "must be a finite number >= 0")
        require(self.ablation in MART_ABLATIONS, "mart_ablation", self.ablation, f"must be one of {MART_ABLATIONS}")


@register_method
class MART(TrainingMethod):
    """Misclassification-aware adversarial training."""

    name = "mart"
    summary = "Wang et al., λ"
    Config = MARTConfig

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> PGD:
        return self.threat_pgd(model, generator, random_start="normal", loss="ce")

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        logits_nat, logits_adv = self.two_views(model, attack, x, y)
        ab = self.config.ablation
        loss = mart_loss(logits_nat.float(), logits_adv.float(), y, self.config.lam, weight=ab != "no-weight",
                         kl=ab != "no-kl", bce=ab != "ce")
        return StepOutput(loss, logits_nat, logits_adv)
