"""FGSM from a random start (Wong, Rice, Kolter 2020, "Fast is better than free").

δ₀ ~ U(−ε, ε) (kept inside the [0, 1] box), one signed step of size alpha (default 1.25·ε) on the
cross-entropy, projection onto the ℓ∞ ball, clip to [0, 1].
Shapes: x float [N, C, H, W] in [0, 1], y integer [N] → x_adv like x.
Defaults (torchattacks FFGSM): eps 8/255, alpha 1.25·eps = 10/255.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from deep.units import check_eps

from .base import Attack, check_nonneg
from .objectives import attack_objective


class FastFGSM(Attack):
    """Random-start FGSM (torchattacks: FFGSM).

    Args:
        model: maps [N, C, H, W] in [0, 1] to logits [N, K].
        eps: ℓ∞ radius in pixel units (default 8/255); 0 returns x exactly.
        alpha: step size; None means 1.25·eps (the paper's choice; 10/255 at the default eps).
        targeted: step toward y (= targets) instead of away from it.
        bf16: bfloat16 autocast for forward/backward (fp32 where bf16's gradient is unusable: base.py).
        generator: torch.Generator (CPU) for the random start; None uses the global RNG.

    Call: ``atk(x, y) -> x_adv`` (x of the model's float dtype, y of any integer dtype).
    """

    def __init__(self, model: nn.Module, eps: float = 8 / 255, alpha: float | None = None, *, targeted: bool = False,
                 bf16: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(model, targeted=targeted, bf16=bf16, generator=generator)
        self.eps = check_eps(check_nonneg("eps", eps), "linf")
        self.alpha = 1.25 * self.eps if alpha is None else check_nonneg("alpha", alpha)

    def _hyperparameters(self) -> dict[str, object]:
        return {"eps": self.eps, "alpha": self.alpha, "norm": "linf", "random_start": True,
                **super()._hyperparameters()}

    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if self.eps == 0:
            return x.clone()
        delta = (2 * self._rand(x.shape, x, "uniform") - 1) * self.eps
        x_start = (x + delta).clamp(0.0, 1.0)
        grad, _, _ = self._gradient(x_start, lambda logits: attack_objective(logits, y, "ce", targeted=self.targeted))
        delta = (x_start + self.alpha * grad.sign() - x).clamp(-self.eps, self.eps)
        return (x + delta).clamp(0.0, 1.0)
