"""GF §6's control for FGSM training: α-mixed like fgsm, on x + ε·random signs (noise-sign) or
x + U(−ε, ε) (noise-uniform), clipped to [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deep.losses import goodfellow_loss

from .base import MethodConfig, StepOutput, TrainingMethod, knob, register_method
from .fgsm import ALPHA_HELP, check_alpha


class NoisePerturbation:
    """x + ε·s, s uniform on {−1, +1}^d ("sign") or on [−1, 1]^d ("uniform"), clipped to [0, 1]; no
    gradient is used, so it is not an attack."""

    def __init__(self, eps: float, kind: str, generator: torch.Generator) -> None:
        if kind not in ("sign", "uniform"):
            raise ValueError(f"noise kind must be 'sign' or 'uniform', got {kind!r}")
        self.eps, self.kind, self.generator = float(eps), kind, generator

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        u = torch.rand(x.shape, generator=self.generator, dtype=torch.float32).to(x.device, x.dtype)
        s = torch.where(u < 0.5, -1.0, 1.0).to(x.dtype) if self.kind == "sign" else 2 * u - 1
        return (x + self.eps * s).clamp(0.0, 1.0)


@dataclass(frozen=True)
class NoiseSignConfig(MethodConfig):
    alpha: float = knob(0.5, ALPHA_HELP, kind=float, flat="fgsm_alpha")

    def __post_init__(self) -> None:
        check_alpha(self.alpha)


@dataclass(frozen=True)
class NoiseUniformConfig(NoiseSignConfig):
    pass


class _Noise(TrainingMethod):
    kind = ""

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> NoisePerturbation:
        return NoisePerturbation(self.recipe.threat.eps, self.kind, generator)

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        logits_nat, logits_adv = self.two_views(model, attack, x, y)
        loss = goodfellow_loss(logits_nat.float(), logits_adv.float(), y, self.config.alpha)
        return StepOutput(loss, logits_nat, logits_adv)


@register_method
class NoiseSign(_Noise):
    """GF §6's control: α-mixed like fgsm, on x + ε·random signs."""

    name, kind, Config = "noise-sign", "sign", NoiseSignConfig
    summary = "GF's control for fgsm: α-mixed, on x + ε·random signs"


@register_method
class NoiseUniform(_Noise):
    """GF §6's control: α-mixed like fgsm, on x + U(−ε, ε)."""

    name, kind, Config = "noise-uniform", "uniform", NoiseUniformConfig
    summary = "GF's control for fgsm: α-mixed, on x + U(−ε, ε)"
