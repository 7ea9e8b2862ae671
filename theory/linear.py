"""The linear explanation of adversarial examples and FGSM, Goodfellow et al. 2015, §3–5 (SPEC §4).

Labels are y ∈ {−1, +1}; logistic regression has P(y = 1 | x) = σ(wᵀx + b) and per-example loss
ζ(−y(wᵀx + b)) with the softplus ζ(z) = log(1 + e^z), computed stably as np.logaddexp(0, z).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from theory._validate import nonneg_scalar as _nonneg

__all__ = [
    "softplus",
    "logistic_loss",
    "logistic_input_gradient",
    "fgsm_logistic",
    "fgsm_linear",
    "max_linear_shift",
    "adversarial_logistic_loss",
    "brute_force_worst_logistic_loss",
    "l1_vs_adversarial",
    "train_logistic",
    "linear_shift_table",
]


# ------------------------------------------------------------------ validation


def _check(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Validate a linear model (w [d], b) and a batch (x [n, d], y [n] in {±1})."""
    w = np.asarray(w, dtype=float)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y)
    if w.ndim != 1:
        raise ValueError(f"w must be a vector [d], got shape {w.shape}")
    if x.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"x must have shape [n, {w.shape[0]}] to match w, got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape [{x.shape[0]}], got {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("y must hold only -1 and +1")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(x)) and math.isfinite(float(b))):
        raise ValueError("w, b and x must be finite (no NaN/inf)")
    return w, float(b), x, y.astype(float)


# --------------------------------------------------------------------- losses
def softplus(z: np.ndarray) -> np.ndarray:
    """ζ(z) = log(1 + e^z), exact for large |z| (no overflow)."""
    return np.logaddexp(0.0, z)


def logistic_loss(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example ζ(−y(wᵀx + b))."""
    w, b, x, y = _check(w, b, x, y)
    return softplus(-y * (x @ w + b))


def logistic_input_gradient(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇ₓ ζ(−y(wᵀx + b)) = −y·σ(−y(wᵀx + b))·w, per example [n, d]."""
    w, b, x, y = _check(w, b, x, y)
    return (-y * expit(-y * (x @ w + b)))[:, None] * w[None, :]


def fgsm_logistic(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """FGSM on logistic regression: x + eps·sign(∇ₓ J), J the logistic loss (no clipping: R^d inputs)."""
    eps = _nonneg("eps", eps)
    return np.asarray(x, dtype=float) + eps * np.sign(logistic_input_gradient(w, b, x, y))


def fgsm_linear(w: np.ndarray, x: np.ndarray, eps: float) -> np.ndarray:
    """FGSM raising a linear score wᵀx: x + eps·sign(w), which moves the score by eps·‖w‖₁."""
    eps = _nonneg("eps", eps)
    w = np.asarray(w, dtype=float)
    x = np.asarray(x, dtype=float)
    if w.ndim != 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"x's last axis must match w [{w.shape}], got x {x.shape}")
    return x + eps * np.sign(w)


def max_linear_shift(w: np.ndarray, eps: float) -> np.ndarray | float:
    """max_{‖η‖∞ ≤ eps} wᵀη = eps·‖w‖₁ (rows of a batch [k, d] separately)."""
    eps = _nonneg("eps", eps)
    w = np.asarray(w, dtype=float)
    if w.ndim not in (1, 2) or not np.all(np.isfinite(w)):
        raise ValueError(f"w must be a finite vector [d] or batch [k, d], got shape {w.shape}")
    out = eps * np.abs(w).sum(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def adversarial_logistic_loss(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """Exact worst-case logistic loss over ‖δ‖∞ ≤ eps, per example: ζ(eps·‖w‖₁ − y(wᵀx + b)).

    ζ is increasing, so the worst δ minimises the margin y·wᵀ(x+δ): δ = −eps·y·sign(w), which is
    exactly FGSM's step (GF §5), and −y·wᵀ(x+δ) = −y·wᵀx + eps·‖w‖₁ because y² = 1.
    GF (and SPEC §4) print ζ(y(ε‖w‖₁ − wᵀx − b)): the same for y = +1, but for y = −1 it would
    *subtract* the penalty; the brute-force test over the cube's corners confirms the form used here.
    """
    w, b, x, y = _check(w, b, x, y)
    eps = _nonneg("eps", eps)
    return softplus(eps * np.abs(w).sum() - y * (x @ w + b))


def brute_force_worst_logistic_loss(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """max over the 2^d corners of the ℓ∞ ball of the logistic loss (an independent check; d ≤ 16).

    The loss is convex in δ, so its maximum over the cube is attained at a corner.
    """
    w, b, x, y = _check(w, b, x, y)
    eps = _nonneg("eps", eps)
    d = w.shape[0]
    if d > 16:
        raise ValueError(f"brute force enumerates 2^d corners; d must be <= 16, got {d}")
    bits = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    corners = eps * (2.0 * bits - 1.0)  # [2^d, d]
    scores = (x @ w + b)[:, None] + (corners @ w)[None, :]  # [n, 2^d]
    return softplus(-y[:, None] * scores).max(axis=1)


def l1_vs_adversarial(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> dict[str, np.ndarray]:
    """Per-example losses showing GF's contrast between L1 weight decay and adversarial training.

    plain:       ζ(−y(wᵀx+b))
    l1:          ζ(−y(wᵀx+b)) + eps·‖w‖₁          (penalty added outside ζ: always paid)
    adversarial: ζ(−y(wᵀx+b) + eps·‖w‖₁)          (penalty inside, on the margin: it fades once the
                                                   margin is confidently right, since ζ' → 0)
    Because 0 < ζ' < 1, plain ≤ adversarial ≤ l1 always.
    """
    eps = _nonneg("eps", eps)
    plain = logistic_loss(w, b, x, y)
    penalty = eps * np.abs(np.asarray(w, dtype=float)).sum()
    return {
        "plain": plain,
        "l1": plain + penalty,
        "adversarial": adversarial_logistic_loss(w, b, x, y, eps),
    }


# ------------------------------------------------------------------- training
Method = Literal["plain", "l1", "adversarial"]


def _train_args(x: np.ndarray, y: np.ndarray, method: str, eps: float, lam: float,
                alpha: float) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Validated (x, y, eps, lam, alpha) of ``train_logistic``."""
    if np.ndim(x) != 2:
        raise ValueError(f"x must have shape [n, d], got {np.shape(x)}")
    _, _, x, y = _check(np.zeros(np.shape(x)[1]), 0.0, x, y)
    eps = _nonneg("eps", eps)
    lam = _nonneg("lam", lam)
    alpha = _nonneg("alpha", alpha)
    if alpha > 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if method not in ("plain", "l1", "adversarial"):
        raise ValueError(f"unknown method {method!r}; expected 'plain', 'l1' or 'adversarial'")
    if method == "l1" and eps:
        raise ValueError("method='l1' takes its strength in lam, not eps")
    if method == "adversarial" and lam:
        raise ValueError("method='adversarial' takes its strength in eps, not lam")
    return x, y, eps, lam, alpha


def _logistic_objective(x: np.ndarray, y: np.ndarray, method: str, eps: float, lam: float,
                        alpha: float) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``train_logistic``'s objective and gradient in θ = (u, v, b), w = u − v."""
    n, d = x.shape

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        u, v, b = theta[:d], theta[d : 2 * d], theta[2 * d]
        w = u - v
        margin = y * (x @ w + b)  # [n]
        l1 = u.sum() + v.sum()
        # plain part: ζ(−margin), d/dmargin = −σ(−margin)
        plain_w = 1.0 if method != "adversarial" else alpha
        f = plain_w * softplus(-margin).mean()
        g_margin = -plain_w * expit(-margin) / n
        g_l1 = 0.0
        if method == "l1":
            f += lam * l1
            g_l1 = lam
        elif method == "adversarial" and alpha < 1:
            z = eps * l1 - margin
            f += (1 - alpha) * softplus(z).mean()
            s = (1 - alpha) * expit(z) / n
            g_margin = g_margin - s
            g_l1 = eps * s.sum()
        g_w = x.T @ (g_margin * y)
        g_b = float((g_margin * y).sum())
        grad = np.concatenate([g_w + g_l1, -g_w + g_l1, [g_b]])
        return float(f), grad

    return objective


def train_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: Method = "plain",
    eps: float = 0.0,
    lam: float = 0.0,
    alpha: float = 0.0,
    maxiter: int = 2000,
) -> tuple[np.ndarray, float]:
    """Fit logistic regression (y ∈ {±1}) by exact minimisation; returns (w, b).

    method="plain":       mean ζ(−y(wᵀx+b))
    method="l1":          mean ζ(−y(wᵀx+b)) + lam·‖w‖₁
    method="adversarial": alpha·mean ζ(−y(wᵀx+b)) + (1−alpha)·mean ζ(eps‖w‖₁ − y(wᵀx+b))
                          (GF's J̃ with FGSM regenerated at every step is exactly this, since the
                          FGSM point is the exact worst case; GF used alpha = 0.5, 0 = pure worst case)
    ‖w‖₁ is not smooth, so w = u − v with u, v ≥ 0 and ‖w‖₁ replaced by Σ(u+v): both objectives
    increase in Σ(u+v) at fixed w, so the optimum has u_i·v_i = 0 and the smooth bound-constrained
    problem (L-BFGS-B) has the same minimiser.
    """
    x, y, eps, lam, alpha = _train_args(x, y, method, eps, lam, alpha)
    d = x.shape[1]
    objective = _logistic_objective(x, y, method, eps, lam, alpha)
    theta0 = np.zeros(2 * d + 1)
    bounds = [(0.0, None)] * (2 * d) + [(None, None)]
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-10})
    w = res.x[:d] - res.x[d : 2 * d]
    return w, float(res.x[2 * d])


# -------------------------------------------------------------- dimension law
def linear_shift_table(ns: list[int] | np.ndarray, eps: float, seed: int = 0) -> list[dict[str, float]]:
    """ε‖w‖₁ against dimension n for random weights w_i ~ N(0, 1) (mean |w_i| = m = √(2/π)).

    Columns: n, the worst-case shift eps·‖w‖₁, GF's estimate eps·m·n, their ratio (→ 1), and for
    contrast the shift from a random-sign perturbation of the same size, |wᵀη| ≈ eps·√n: the
    adversary's gain grows linearly with n, a random perturbation's only like √n.
    """
    eps = _nonneg("eps", eps)
    ns = np.asarray(ns)
    if ns.ndim != 1 or ns.size == 0 or not np.issubdtype(ns.dtype, np.integer) or np.any(ns < 1):
        raise ValueError(f"ns must be a non-empty list of integers >= 1, got {ns!r}")
    rng = np.random.default_rng(seed)
    m = math.sqrt(2.0 / math.pi)
    rows = []
    for n in ns.tolist():
        w = rng.standard_normal(n)
        signs = rng.choice(np.array([-1.0, 1.0]), size=n)
        worst = eps * float(np.abs(w).sum())
        predicted = eps * m * n
        rows.append({
            "n": int(n),
            "max_shift": worst,
            "eps_m_n": predicted,
            "ratio": worst / predicted if predicted else float("nan"),
            "random_sign_shift": eps * abs(float(w @ signs)),
        })
    return rows
