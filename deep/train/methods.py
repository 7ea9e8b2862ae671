"""Per-method training objective: inner maximisation (attack, in eval mode) then the outer loss.

| method   | inner maximisation                                   | outer loss                      |
|----------|------------------------------------------------------|---------------------------------|
| standard | none                                                 | CE(p(x), y)                     |
| pgd      | PGD on CE from a uniform start (Madry et al.)        | CE(p(x̂′), y)                    |
| fgsm     | FGSM, x + ε·sign ∇ₓCE (Goodfellow et al.)           | α·CE(x) + (1 − α)·CE(x_fgsm)    |
| noise-sign / noise-uniform | x + ε·(random ±1) / x + U(−ε, ε) (GF §6 control) | α·CE(x) + (1 − α)·CE(x_noise) |
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


class NoisePerturbation:
    """GF §6's control for adversarial training: x + ε·s, s uniform on {−1, +1}^d ("sign") or on
    [−1, 1]^d ("uniform"), clipped to [0, 1]; no gradient is used, so it is not an attack."""

    def __init__(self, eps: float, kind: str, generator: torch.Generator) -> None:
        if kind not in ("sign", "uniform"):
            raise ValueError(f"noise kind must be 'sign' or 'uniform', got {kind!r}")
        self.eps, self.kind, self.generator = float(eps), kind, generator

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        u = torch.rand(x.shape, generator=self.generator, dtype=torch.float32).to(x.device, x.dtype)
        s = torch.where(u < 0.5, -1.0, 1.0).to(x.dtype) if self.kind == "sign" else 2 * u - 1
        return (x + self.eps * s).clamp(0.0, 1.0)


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
    if m in ("noise-sign", "noise-uniform"):
        return NoisePerturbation(eps, m.split("-")[1], generator)
    if m == "fast":
        if norm != "linf":
            raise ValueError("method 'fast' (random-start FGSM) is an ℓ∞ method; recipe.norm must be 'linf'")
        return FastFGSM(model, eps, alpha, bf16=bf16, generator=generator)
    if m == "trades":
        return PGD(model, eps, alpha, steps, norm, random_start="normal", loss="kl", bf16=bf16, generator=generator)
    if m == "mart":
        return PGD(model, eps, alpha, steps, norm, random_start="normal", loss="ce", bf16=bf16, generator=generator)
    raise ValueError(f"unknown method {m!r}")


def inner_radius_factor(recipe: Recipe, t_epochs: float) -> float:
    """Fraction of recipe.eps the training attack uses after t_epochs of training: a linear ramp
    0 → 1 over the first recipe.eps_warmup epochs (1 throughout when eps_warmup is 0)."""
    if recipe.eps_warmup <= 0:
        return 1.0
    return min(1.0, max(0.0, t_epochs / recipe.eps_warmup))


def set_inner_radius(recipe: Recipe, attack, t_epochs: float) -> None:
    """Scale the training attack's ε and step by inner_radius_factor (both, so that the same number
    of steps still spans the ball). A no-op without warm-up, so runs without it are unchanged."""
    if attack is None or recipe.eps_warmup <= 0:
        return
    f = inner_radius_factor(recipe, t_epochs)
    attack.eps = recipe.eps * f
    if hasattr(attack, "alpha") and attack.alpha is not None:
        attack.alpha = recipe.step_size() * f


def perturb_subset(recipe: Recipe, model: nn.Module, attack, x: Tensor, y: Tensor) -> Tensor:
    """[MART] §3's experiment: adversarial versions for one set only, natural images for the other.

    S⁺ / S⁻ are the examples the current model classifies correctly / wrongly on the natural batch
    (eval mode, as the attack sees the model); recipe.perturb names the set that is attacked."""
    with torch.no_grad(), autocast(recipe.bf16, x.device):
        was_training = model.training
        model.eval()
        try:
            correct = model(x).argmax(dim=1) == y
        finally:
            model.train(was_training)
    chosen = correct if recipe.perturb == "correct" else ~correct
    x_out = x.clone()
    if bool(chosen.any()):
        x_out[chosen] = attack(x[chosen], y[chosen]).to(x_out.dtype)
    return x_out


def training_step(recipe: Recipe, model: nn.Module, attack, x: Tensor, y: Tensor) -> StepOutput:
    """Loss of one batch (model in train mode), per recipe.method."""
    m = recipe.method
    if m == "pgd" and recipe.perturb != "all":
        x_adv = perturb_subset(recipe, model, attack, x, y)
    else:
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
    if m in ("fgsm", "noise-sign", "noise-uniform"):
        loss = goodfellow_loss(logits_nat.float(), logits_adv.float(), y, recipe.fgsm_alpha)
    elif m == "trades":
        loss = trades_loss(logits_nat.float(), logits_adv.float(), y, recipe.beta)
    else:
        ab = recipe.mart_ablation
        loss = mart_loss(logits_nat.float(), logits_adv.float(), y, recipe.lam, weight=ab != "no-weight",
                         kl=ab != "no-kl", bce=ab != "ce")
    return StepOutput(loss, logits_nat, logits_adv)
