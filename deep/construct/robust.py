"""D̂_R / D̂_NR (Ilyas et al. 2019, §3.1 and App. C; SPEC §5): robust-feature inversion.

For each training pair (x, y) a start image x₀ is another training image chosen independently of y
(a seeded random derangement of the indices: a permutation without fixed points, so x₀ ≠ x), and
    x_r = argmin_{z ∈ [0,1]^d} ‖g(z) − g(x)‖₂
is found by normalised gradient descent from x₀ (deep.attacks.RepresentationMatch: step 0.1,
1000 iterations in the paper), with g the penultimate representation of the robust model (D̂_R)
or of the standard model (D̂_NR). The pair (x_r, y) keeps the label y.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from deep.attacks import RepresentationMatch


def derangement(n: int, seed: int) -> np.ndarray:
    """Uniform random permutation of range(n) without fixed points (rejection sampling; ~e tries)."""
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2 examples, got n={n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    idx = np.arange(n)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == idx):
            return perm


def invert_batch(model: nn.Module, x_target: Tensor, x_start: Tensor, *, step: float,
                 steps: int) -> tuple[Tensor, dict[str, np.ndarray]]:
    """x_r for one batch plus its per-example statistics (representation and pixel distances)."""
    rm = RepresentationMatch(model, step=step, steps=steps)
    z, before, after = rm.run(x_start, x_target)
    z = z.detach().cpu()
    stats = {
        "rep_dist_before": before.detach().cpu().numpy().astype(np.float32),
        "rep_dist_after": after.detach().cpu().numpy().astype(np.float32),
        "pixel_dist_from_start": (z - x_start.cpu()).flatten(1).norm(dim=1).numpy().astype(np.float32),
        "pixel_dist_from_target": (z - x_target.cpu()).flatten(1).norm(dim=1).numpy().astype(np.float32),
    }
    return z, stats


def summarise(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Provenance statistics for D̂_R / D̂_NR."""
    out: dict[str, float] = {}
    for key in ("rep_dist_before", "rep_dist_after", "pixel_dist_from_start", "pixel_dist_from_target"):
        v = arrays[key].astype(np.float64)
        out[f"{key}_mean"] = float(v.mean())
        out[f"{key}_median"] = float(np.median(v))
    out["start_label_equals_label"] = float(np.mean(arrays["start_label"] == arrays["source_label"]))
    return out

