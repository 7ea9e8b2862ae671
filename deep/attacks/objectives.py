"""Per-example attack objectives (the quantity an attack *maximises*) and the success test.

Objectives, per example, for logits z, label (or target) y:
- ``ce``: cross-entropy CE(z, y) (Madry et al. 2018); targeted: −CE(z, t).
- ``cw``: Carlini–Wagner margin max_{j≠y} z_j − z_y; targeted: z_t − max_{j≠t} z_j.
  On a linear model this is linear in x, so sign/normalised steps reach the closed-form worst case.
- ``kl``: KL(p(x) ‖ p(x')) with p(x) the clean softmax (TRADES inner maximisation, Zhang et al. 2019);
  y is unused and there is no notion of success.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES: tuple[str, ...] = ("ce", "cw", "kl")


def _margin_to_others(logits: Tensor, y: Tensor) -> Tensor:
    """z_y − max_{j≠y} z_j per example (positive iff y is the unique arg-max)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(dim=1)


def attack_objective(logits: Tensor, y: Tensor, loss: str, *, targeted: bool,
                     p_clean: Tensor | None = None) -> Tensor:
    """Per-example objective [N] that the attack ascends; computed in float32 (bf16-safe)."""
    z = logits.float()
    if loss == "ce":
        ce = F.cross_entropy(z, y, reduction="none")
        return -ce if targeted else ce
    if loss == "cw":
        margin = _margin_to_others(z, y)
        return margin if targeted else -margin
    if loss == "kl":
        if p_clean is None:
            raise ValueError("loss='kl' needs the clean probabilities p_clean")
        # KL(p ‖ q) = Σ p (log p − log q); xlogy makes 0·log 0 = 0.
        log_q = F.log_softmax(z, dim=1)
        return (torch.xlogy(p_clean, p_clean) - p_clean * log_q).sum(dim=1)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def attack_success(logits: Tensor, y: Tensor, loss: str, *, targeted: bool) -> Tensor:
    """Bool [N]: targeted → predicts y (the target); untargeted → does not predict y; kl → never."""
    if loss == "kl":
        return torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
    pred = logits.argmax(dim=1)
    return pred == y if targeted else pred != y
