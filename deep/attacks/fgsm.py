"""Fast gradient sign method (Goodfellow, Shlens, Szegedy 2015, SPEC §4): x + ε·sign(∇ₓ CE(x, y)).

Distance ℓ∞ ≤ eps, clipped to [0, 1]. Targeted: x − ε·sign(∇ₓ CE(x, t)).
Shapes: x float [N, C, H, W] in [0, 1], y integer [N] → x_adv like x.
Defaults (torchattacks): eps 8/255.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from deep.units import check_eps

from .base import Attack, check_nonneg
from .objectives import attack_objective
from .pgd import PGD
from .registry import AttackSpec, register_attack


class FGSM(Attack):
    """One signed gradient step of size eps on the cross-entropy (ascent; descent toward targets).

    Args:
        model: maps [N, C, H, W] in [0, 1] to logits [N, K].
        eps: ℓ∞ radius in pixel units (default 8/255, as torchattacks); 0 returns x exactly.
        targeted: step toward y (= targets) instead of away from it.
        bf16: bfloat16 autocast for forward/backward (fp32 where bf16's gradient is unusable: base.py).

    Call: ``atk(x, y) -> x_adv`` (x of the model's float dtype, y of any integer dtype).
    """

    def __init__(self, model: nn.Module, eps: float = 8 / 255, *, targeted: bool = False, bf16: bool = False) -> None:
        super().__init__(model, targeted=targeted, bf16=bf16)
        self.eps = check_eps(check_nonneg("eps", eps), "linf")

    def _hyperparameters(self) -> dict[str, object]:
        return {"eps": self.eps, "norm": "linf", **super()._hyperparameters()}

    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if self.eps == 0:
            return x.clone()
        grad, _, _ = self._gradient(x, lambda logits: attack_objective(logits, y, "ce", targeted=self.targeted))
        return (x + self.eps * grad.sign()).clamp(0.0, 1.0)


@register_attack("fgsm", alpha_rule=lambda spec, eps, alpha: eps,
                 description="one signed step of size ε (ℓ∞ FGSM); for ℓ2 one normalised step of length ε "
                             "(FGM)")
def _build(spec: AttackSpec, model: nn.Module, *, eps: float, norm: str, seed: int, bf16: bool = False):
    if norm == "linf":
        return FGSM(model, eps, bf16=bf16)
    # ℓ2: the fast gradient method, one normalised step of length ε from x
    return PGD(model, eps, eps, 1, norm, random_start=False, bf16=bf16, generator=torch.Generator().manual_seed(seed))
