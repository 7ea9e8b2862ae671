"""ε warm-up of the training attack (recipe.eps_warmup; used for ℓ∞ 0.3 MNIST fine-tuning at CPU scale)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deep.train.recipe import Recipe


def inner_radius_factor(recipe: Recipe, t_epochs: float) -> float:
    """Fraction of recipe.eps the training attack uses after t_epochs of training: a linear ramp
    0 → 1 over the first recipe.eps_warmup epochs (1 throughout when eps_warmup is 0)."""
    warm = recipe.threat.eps_warmup
    if warm <= 0:
        return 1.0
    return min(1.0, max(0.0, t_epochs / warm))


def set_inner_radius(recipe: Recipe, attack: Any, t_epochs: float) -> None:
    """Scale the training attack's ε and step by inner_radius_factor (both, so that the same number
    of steps still spans the ball). A no-op without warm-up, so runs without it are unchanged."""
    if attack is None or recipe.threat.eps_warmup <= 0:
        return
    f = inner_radius_factor(recipe, t_epochs)
    attack.eps = recipe.threat.eps * f
    if hasattr(attack, "alpha") and attack.alpha is not None:
        attack.alpha = recipe.step_size() * f
