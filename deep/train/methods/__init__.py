"""Training methods (SPEC §4, §6): one registered class per objective, each with its own config.

| method        | knobs (flat key)        | inner maximisation                         | outer loss             |
|---------------|-------------------------|--------------------------------------------|------------------------|
| standard      | —                       | none                                       | CE(p(x), y)            |
| pgd           | perturb                 | PGD on CE, uniform start (Madry et al.)    | CE(p(x̂′), y)           |
| fgsm          | alpha (fgsm_alpha)      | FGSM x + ε·sign ∇ₓCE (Goodfellow et al.)   | α·CE(x) + (1−α)·CE(x̂)  |
| noise-sign    | alpha (fgsm_alpha)      | x + ε·(random ±1) (GF §6 control)          | α·CE(x) + (1−α)·CE(x̂)  |
| noise-uniform | alpha (fgsm_alpha)      | x + U(−ε, ε) (GF §6 control)               | α·CE(x) + (1−α)·CE(x̂)  |
| fast          | —                       | FGSM, uniform start, step 1.25ε (Wong)     | CE(p(x̂′), y)           |
| trades        | beta                    | PGD on KL(p(x) ‖ p(x′)), x + 0.001·N(0, 1) | CE(p(x), y) + β·KL     |
| mart          | lam, mart_ablation      | PGD on CE, x + 0.001·N(0, 1)               | BCE + λ·KL·(1−p_y(x))  |

The threat model of the inner maximisation (eps, norm, alpha, steps, eps_warmup) is shared by all
adversarial methods and lives in ``recipe.threat``. To add a method: a module with a frozen
``MethodConfig`` dataclass and a ``@register_method`` ``TrainingMethod`` subclass (see base.py);
the Recipe, its ``--flags`` and recipe.json pick it up from the registry.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

# Importing the modules registers the built-in methods, in this order (the order of --help and errors).
from . import standard, pgd, fgsm, fast, trades, mart, noise  # noqa: F401,I001
from .base import (MethodConfig, StepOutput, TrainingMethod, autocast, method_class, method_names, method_of,
                   register_method)
from .fast import FastConfig
from .fgsm import FGSMConfig
from .mart import MART_ABLATIONS, MARTConfig
from .noise import NoisePerturbation, NoiseSignConfig, NoiseUniformConfig
from .pgd import PERTURB_SETS, PGDConfig, perturb_subset
from .standard import StandardConfig
from .trades import TRADESConfig
from .warmup import inner_radius_factor, set_inner_radius

if TYPE_CHECKING:
    from deep.train.recipe import Recipe

# Every recipe.json lists these methods' knobs (they were flat Recipe fields before the registry);
# a method registered later (a plugin, a test) adds its knobs only to the recipes that use it.
BUILTIN_METHODS: tuple[str, ...] = method_names()


def build_method(recipe: Recipe) -> TrainingMethod:
    """The registered method object for recipe.method."""
    return method_of(recipe.method)(recipe)


def make_inner_attack(recipe: Recipe, model: nn.Module, generator: torch.Generator) -> Any:
    """The attack that generates this recipe's training examples (None for standard training)."""
    return build_method(recipe).make_attack(model, generator)


def training_step(recipe: Recipe, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
    """Loss of one batch (model in train mode), per recipe.method."""
    return build_method(recipe).step(model, attack, x, y)


__all__ = ["BUILTIN_METHODS", "MethodConfig", "TrainingMethod", "StepOutput", "register_method", "method_names",
           "method_class", "method_of", "build_method", "make_inner_attack", "training_step", "autocast",
           "perturb_subset", "inner_radius_factor", "set_inner_radius", "NoisePerturbation", "StandardConfig",
           "PGDConfig", "FGSMConfig", "FastConfig", "TRADESConfig", "MARTConfig", "NoiseSignConfig",
           "NoiseUniformConfig", "PERTURB_SETS", "MART_ABLATIONS"]
