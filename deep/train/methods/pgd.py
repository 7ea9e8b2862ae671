"""PGD adversarial training (Madry et al. 2018): CE(p(x̂′), y), x̂′ = PGD on CE from a uniform start.

``perturb`` runs [MART] §3's experiment: attack only the examples the current model classifies
correctly (S⁺) or wrongly (S⁻), and train on the others' natural images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deep.attacks import PGD
from deep.attacks.base import eval_mode

from .base import MethodConfig, StepOutput, TrainingMethod, autocast, knob, register_method, require

PERTURB_SETS: tuple[str, ...] = ("all", "correct", "misclassified")  # [MART] §3 S⁺/S⁻ experiment


@dataclass(frozen=True)
class PGDConfig(MethodConfig):
    perturb: str = knob("all", "pgd only ([MART] §3 S⁻/S⁺ experiment): which training examples get "
                        "adversarial versions: all | correct (S⁺ only; the misclassified S⁻ stay natural) | "
                        "misclassified (S⁻ only); S⁻/S⁺ by the current model on the natural batch",
                        kind=str, choices=PERTURB_SETS, exclusive=True)

    def __post_init__(self) -> None:
        require(self.perturb in PERTURB_SETS, "perturb", self.perturb, f"must be one of {PERTURB_SETS}")


def perturb_subset(which: str, model: nn.Module, attack: Any, x: Tensor, y: Tensor, *, bf16: bool = False) -> Tensor:
    """Adversarial versions for one set only (``which``: "correct" = S⁺ or "misclassified" = S⁻),
    natural images for the other; the sets come from the current model in eval mode on the natural
    batch (as the attack sees the model)."""
    with torch.no_grad(), autocast(bf16, x.device), eval_mode(model):
        correct = model(x).argmax(dim=1) == y
    chosen = correct if which == "correct" else ~correct
    x_out = x.clone()
    if bool(chosen.any()):
        x_out[chosen] = attack(x[chosen], y[chosen]).to(x_out.dtype)
    return x_out


@register_method
class MadryPGD(TrainingMethod):
    """Madry et al.: min E[max CE], inner PGD on CE from a uniform random start."""

    name = "pgd"
    summary = "Madry et al."
    Config = PGDConfig

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> PGD:
        return self.threat_pgd(model, generator, random_start=True, loss="ce")

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        if self.config.perturb != "all":
            x_adv = perturb_subset(self.config.perturb, model, attack, x, y, bf16=self.recipe.bf16)
        else:
            x_adv = attack(x, y)
        return self.cross_entropy(model, x_adv, y, adversarial=True)
