"""D̂_rand / D̂_det (Ilyas et al. 2019, §3.2, Table 1; SPEC §5): non-robust features alone.

For each (x, y) a target t is chosen, x_adv = argmin_{‖x′ − x‖₂ ≤ ε} L(x′, t) is found by targeted
ℓ2 PGD on the STANDARD model starting at x (ε = 0.5, step 0.1, 100 iterations in the paper), and the
pair is relabelled (x_adv, t).

Target rules:
- rand: t uniform over ALL C classes, independent of y. The paper says "chosen uniformly at random
  among classes" (§3.2), and its argument needs E[robust feature · t] = 0, which holds exactly when t
  is independent of y; excluding y would make t anti-correlated with y (P(t = y) = 0 instead of 1/C).
  So about 1/C of D̂_rand keeps its own label, as in the paper.
- det: t = (y + 1) mod C (a fixed permutation of the labels).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from deep.attacks import PGD
from deep.attacks.base import eval_mode

TARGET_RULES = {"rand": "uniform over all C classes, independent of y", "det": "(y + 1) mod C"}


def choose_targets(kind: str, y: Tensor, num_classes: int, generator: torch.Generator) -> Tensor:
    """Targets t for labels y (int64 [N]) by the rule of `kind` ('rand' uses `generator`)."""
    if kind == "det":
        return (y + 1) % num_classes
    if kind == "rand":
        return torch.randint(0, num_classes, y.shape, generator=generator, dtype=torch.int64)
    raise ValueError(f"kind must be 'rand' or 'det' here, got {kind!r}")


def perturb_batch(model: nn.Module, x: Tensor, t: Tensor, *, eps: float, step: float,
                  steps: int) -> tuple[Tensor, dict[str, np.ndarray]]:
    """Targeted ℓ2 PGD toward t from x (no random start, as in the paper) and per-example statistics."""
    attack = PGD(model, eps=eps, alpha=step, steps=steps, norm="l2", random_start=False, targeted=True)
    x_adv = attack(x, t)
    with torch.no_grad(), eval_mode(model):
        pred = model(x_adv).argmax(dim=1).cpu()
    x_adv = x_adv.detach().cpu()
    stats = {
        "target_hit": (pred == t.cpu()).numpy(),
        "l2": (x_adv - x.cpu()).flatten(1).norm(dim=1).numpy().astype(np.float32),
    }
    return x_adv, stats


def summarise(arrays: dict[str, np.ndarray], num_classes: int) -> dict[str, object]:
    """Provenance statistics for D̂_rand / D̂_det."""
    l2 = arrays["l2"].astype(np.float64)
    return {
        "target_rate": float(np.mean(arrays["target_hit"])),
        "l2_mean": float(l2.mean()),
        "l2_max": float(l2.max()),
        "label_histogram": np.bincount(arrays["y"], minlength=num_classes).tolist(),
        "target_equals_source_label": float(np.mean(arrays["y"] == arrays["source_label"])),
    }
