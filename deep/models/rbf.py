"""A shallow radial-basis-function network, the "RBF network" of Goodfellow et al. 2015 §7 (SPEC §4).

Hidden unit h responds exp(−(1/d)·Σⱼ γ_hj (x_j − μ_hj)²) ∈ (0, 1] to the normalised image x ∈ R^d
(GF's exp((x − μ)ᵀβ(x − μ)) with a diagonal β): near 1 close to its prototype μ_h, near 0 far from
every prototype. The head is linear on these responses, so an input far from all prototypes gets
logits ≈ the head's bias and a spread-out softmax: the model is not linear in x, which is GF's
explanation of why RBF units resist adversarial examples. The mean over pixels (not the sum) keeps
the exponent O(1) at initialisation, so the units start with non-vanishing gradients.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Cap on log γ. Without it, full-data SGD at lr 0.1 drove precisions so high that every response
# underflowed to 0 and the network died (measured: 13% accuracy); γ ≤ e⁴ keeps the units alive.
MAX_LOG_PRECISION = 4.0


class RBFLayer(nn.Module):
    """[N, d] → [N, units] Gaussian responses with a learned centre and per-pixel precision per unit."""

    def __init__(self, in_features: int, units: int, init_scale: float = 0.5, precision: float = 1.0) -> None:
        super().__init__()
        # Each per-pixel parameter gets a gradient ∝ 1/d from the mean over pixels, so plain SGD would
        # barely move it; storing it divided by √d (and multiplying back in forward) scales its
        # effective learning rate by d, the usual learning-rate-multiplier reparameterisation.
        self.scale = math.sqrt(in_features)
        self.centers_raw = nn.Parameter(init_scale * torch.randn(units, in_features) / self.scale)
        self.log_precision_raw = nn.Parameter(torch.full((units, in_features), math.log(precision) / self.scale))

    @property
    def centers(self) -> Tensor:
        return self.centers_raw * self.scale

    @property
    def precision(self) -> Tensor:
        return (self.log_precision_raw * self.scale).clamp(max=MAX_LOG_PRECISION).exp()

    def forward(self, x: Tensor) -> Tensor:
        gamma, mu = self.precision, self.centers  # [H, d] each
        # Σⱼ γ_hj (x_j − μ_hj)² expanded so no [N, H, d] tensor is formed: γ·x² − 2γμ·x + γμ².
        sq = (x * x) @ gamma.T - 2 * x @ (gamma * mu).T + (gamma * mu * mu).sum(1)
        return torch.exp(-sq.clamp_min(0) / x.shape[1])


def rbf_body(in_shape: tuple[int, int, int], units: int = 100, precision: float = 1.0) -> tuple[nn.Module, int]:
    """Flatten → RBFLayer(units, initial precision); the representation is the units' responses in (0, 1]."""
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"rbf units must be an integer >= 1, got {units!r}")
    if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not (
            math.isfinite(precision) and 0 < precision <= math.exp(MAX_LOG_PRECISION)):
        raise ValueError(f"rbf precision must be a number in (0, e^{MAX_LOG_PRECISION:g}], got {precision!r}")
    return nn.Sequential(nn.Flatten(), RBFLayer(math.prod(in_shape), units, precision=float(precision))), units


__all__ = ["MAX_LOG_PRECISION", "RBFLayer", "rbf_body"]
