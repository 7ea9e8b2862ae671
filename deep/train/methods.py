"""Per-method training objective: inner maximisation (attack, in eval mode) then the outer loss.

| method   | inner maximisation                                   | outer loss                      |
|----------|------------------------------------------------------|---------------------------------|
| standard | none                                                 | CE(p(x), y)                     |
| pgd      | PGD on CE from a uniform start (Madry et al.)        | CE(p(x̂′), y)                    |
| fgsm     | FGSM, x + ε·sign ∇ₓCE (Goodfellow et al.)           | α·CE(x) + (1 − α)·CE(x_fgsm)    |
| fast     | FGSM from a uniform start, step 1.25ε (Wong et al.)  | CE(p(x̂′), y)                    |
| trades   | PGD on KL(p(x) ‖ p(x′)) from x + 0.001·N(0, 1)       | CE(p(x), y) + β·KL              |
| mart     | PGD on CE from x + 0.001·N(0, 1)                     | BCE + λ·KL·(1 − p_y(x))         |

The attack classes switch the model to eval mode while they run and restore train mode after
(SPEC §0), so the outer forward passes below run in train mode.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks import FGSM, PGD, FastFGSM
from deep.losses import goodfellow_loss, mart_loss, trades_loss

from .recipe import Recipe


@dataclass
class StepOutput:
    loss: Tensor
    logits_clean: Tensor | None  # for the clean training accuracy, when the method computes it
    logits_adv: Tensor | None    # for the adversarial training accuracy, when the method computes it


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_inner_attack(recipe: Recipe, model: nn.Module, generator: torch.Generator):
    """The attack that generates this method's training examples (None for standard training)."""
    eps, alpha, steps, norm, bf16 = recipe.eps, recipe.step_size(), recipe.steps, recipe.norm, recipe.bf16
    m = recipe.method
    if m == "standard":
        return None
    if m == "pgd":
        return PGD(model, eps, alpha, steps, norm, random_start=True, loss="ce", bf16=bf16, generator=generator)
    if m == "fgsm":
        if norm != "linf":
            raise ValueError("method 'fgsm' (Goodfellow) is an ℓ∞ method; recipe.norm must be 'linf'")
        return FGSM(model, eps, bf16=bf16)
    if m == "fast":
        if norm != "linf":
            raise ValueError("method 'fast' (random-start FGSM) is an ℓ∞ method; recipe.norm must be 'linf'")
        return FastFGSM(model, eps, alpha, bf16=bf16, generator=generator)
    if m == "trades":
        return PGD(model, eps, alpha, steps, norm, random_start="normal", loss="kl", bf16=bf16, generator=generator)
    if m == "mart":
        return PGD(model, eps, alpha, steps, norm, random_start="normal", loss="ce", bf16=bf16, generator=generator)
    raise ValueError(f"unknown method {m!r}")


def training_step(recipe: Recipe, model: nn.Module, attack, x: Tensor, y: Tensor) -> StepOutput:
    """Loss of one batch (model in train mode), per recipe.method."""
    m = recipe.method
    x_adv = attack(x, y) if attack is not None else None
    with autocast(recipe.bf16, x.device):
        if m == "standard":
            logits = model(x)
            return StepOutput(F.cross_entropy(logits.float(), y), logits, None)
        if m in ("pgd", "fast"):
            logits_adv = model(x_adv)
            return StepOutput(F.cross_entropy(logits_adv.float(), y), None, logits_adv)
        # The two-view methods: one forward pass per view, as the official TRADES/MART code does.
        logits_nat, logits_adv = model(x), model(x_adv)
    if m == "fgsm":
        loss = goodfellow_loss(logits_nat.float(), logits_adv.float(), y, recipe.fgsm_alpha)
    elif m == "trades":
        loss = trades_loss(logits_nat.float(), logits_adv.float(), y, recipe.beta)
    else:
        loss = mart_loss(logits_nat.float(), logits_adv.float(), y, recipe.lam)
    return StepOutput(loss, logits_nat, logits_adv)
