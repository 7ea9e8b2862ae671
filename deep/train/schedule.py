"""Learning-rate schedules as a pure function of training progress (epochs, fractional).

Stepped once per batch through ``torch.optim.lr_scheduler.LambdaLR``, so the scheduler's state is a
step count only and resumes exactly.
- step:     γ^(number of milestones ≤ t)           (Madry, TRADES, MART: ×0.1 at fixed epochs)
- cyclic:   linear 0 → 1 at 40% of training → 0    (Wong et al. 2020, "Fast is better than free")
- constant: 1
- onecycle: cosine 1/25 → 1 over the first 30%, then cosine 1 → 1/(25·10⁴)  (Smith's one-cycle)
"""
from __future__ import annotations

import math

from .recipe import OptimConfig


def _cos(a: float, b: float, frac: float) -> float:
    """Cosine interpolation from a (frac = 0) to b (frac = 1)."""
    return b + (a - b) * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))) / 2


def lr_factor(optim: OptimConfig, t: float) -> float:
    """Multiplier of optim.lr at progress t epochs (0 ≤ t ≤ optim.epochs)."""
    e = float(optim.epochs)
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "step":
        return optim.gamma ** sum(1 for m in optim.milestones if m <= t + 1e-9)
    if optim.schedule == "cyclic":
        peak = 0.4 * e
        return t / peak if t <= peak else max(0.0, (e - t) / (e - peak))
    if optim.schedule == "onecycle":
        warm = 0.3 * e
        if t <= warm:
            return _cos(1 / 25, 1.0, t / warm)
        return _cos(1.0, 1 / (25 * 1e4), (t - warm) / (e - warm))
    raise ValueError(f"unknown schedule {optim.schedule!r}")


def factor_at_step(optim: OptimConfig, k: int, steps_per_epoch: int) -> float:
    """Multiplier for optimiser step k (0-based). Step drops happen at epoch boundaries; the
    continuous schedules are read at the end of the batch (as Wong et al. do), so no step has lr 0."""
    if optim.schedule == "step":
        return lr_factor(optim, k / steps_per_epoch)
    return lr_factor(optim, (k + 1) / steps_per_epoch)
