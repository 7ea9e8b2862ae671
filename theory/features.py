"""Robust and non-robust features, Ilyas et al. 2019 §2 (SPEC §1).

A feature f: X → R is standardised (E[f] = 0, E[f²] = 1) for y ∈ {±1}:
- ρ-useful: ρ = E[y·f(x)] > 0;
- γ-robustly useful under Δ(x): γ = E[inf_{δ∈Δ(x)} y·f(x+δ)] > 0;
- useful but non-robust: ρ > 0 and γ ≤ 0.
For a linear feature f(x) = (wᵀx − m)/s and an ℓp ball of radius ε the infimum is exact:
y·f(x) − ε‖w‖_q/s with q the dual norm (ℓ∞ → ℓ1, ℓ2 → ℓ2). Other features are estimated by PGD,
which returns an upper bound on the infimum (a found perturbation), hence on γ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from theory.tradeoff import TradeoffModel
from theory._validate import nonneg_scalar as _nonneg

__all__ = [
    "Norm",
    "dual_norm",
    "standardise",
    "usefulness",
    "LinearFeature",
    "linear_worst_case",
    "pgd_worst_case",
    "robust_usefulness",
    "classify_feature",
    "FeatureReport",
    "tsipras_features",
    "gaussian_features",
]

Norm = Literal["linf", "l2"]
FeatureFn = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------ validation


def _check_norm(norm: str) -> str:
    if norm not in ("linf", "l2"):
        raise ValueError(f"unknown norm {norm!r}; expected 'linf' or 'l2'")
    return norm


def _check_labels(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must have shape [{n}], got {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("y must hold only -1 and +1")
    return y.astype(float)


def _check_x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape [n, d] with n >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite (no NaN/inf)")
    return x


def dual_norm(w: np.ndarray, norm: Norm) -> float:
    """‖w‖_q for the dual q of the perturbation norm: max_{‖δ‖≤1} wᵀδ (ℓ∞ → ‖w‖₁, ℓ2 → ‖w‖₂)."""
    _check_norm(norm)
    w = np.asarray(w, dtype=float)
    return float(np.abs(w).sum() if norm == "linf" else np.linalg.norm(w))


# ---------------------------------------------------------------- definitions
def standardise(values: np.ndarray) -> np.ndarray:
    """(f − mean)/std over the sample, so that the empirical E[f] = 0 and E[f²] = 1."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"values must be a finite vector of length >= 2, got shape {v.shape}")
    sd = v.std()
    if sd == 0:
        raise ValueError("values are constant: a constant feature cannot be standardised")
    return (v - v.mean()) / sd


def usefulness(f_values: np.ndarray, y: np.ndarray) -> float:
    """ρ = E[y·f(x)] estimated on a sample; f_values must come from a standardised feature."""
    f = np.asarray(f_values, dtype=float)
    if f.ndim != 1 or not np.all(np.isfinite(f)):
        raise ValueError(f"f_values must be a finite vector [n], got shape {f.shape}")
    y = _check_labels(y, f.shape[0])
    return float(np.mean(y * f))


@dataclass(frozen=True)
class LinearFeature:
    """f(x) = (wᵀx − m)/s; standardised when m = E[wᵀx] and s = sd(wᵀx) under the data."""

    w: np.ndarray
    m: float
    s: float

    def __post_init__(self) -> None:
        w = np.asarray(self.w, dtype=float)
        if w.ndim != 1 or not np.all(np.isfinite(w)):
            raise ValueError(f"w must be a finite vector [d], got shape {w.shape}")
        if not math.isfinite(float(self.m)):
            raise ValueError(f"m must be finite, got {self.m!r}")
        if not (math.isfinite(float(self.s)) and float(self.s) > 0):
            raise ValueError(f"s must be finite and > 0, got {self.s!r}")
        object.__setattr__(self, "w", w)

    @classmethod
    def fit(cls, w: np.ndarray, x: np.ndarray) -> "LinearFeature":
        """Standardise the projection wᵀx with the sample's mean and standard deviation."""
        x = _check_x(x)
        proj = x @ np.asarray(w, dtype=float)
        sd = float(proj.std())
        if sd == 0:
            raise ValueError("wᵀx is constant on x: the feature cannot be standardised")
        return cls(w, float(proj.mean()), sd)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.w.shape[0]:
            raise ValueError(f"x's last axis must have length {self.w.shape[0]}, got {x.shape}")
        return (x @ self.w - self.m) / self.s

    def grad(self, x: np.ndarray) -> np.ndarray:
        """∇ₓ f = w/s for every row."""
        return np.broadcast_to(self.w / self.s, np.shape(x)).copy()


def linear_worst_case(feature: LinearFeature, x: np.ndarray, y: np.ndarray, eps: float, norm: Norm) -> np.ndarray:
    """Exact inf_{‖δ‖≤eps} y·f(x+δ) = y·f(x) − eps‖w‖_q/s, per example."""
    x = _check_x(x)
    y = _check_labels(y, x.shape[0])
    eps = _nonneg("eps", eps)
    return y * feature(x) - eps * dual_norm(feature.w, norm) / feature.s


def _finite_difference_grad(f: FeatureFn, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences, one coordinate at a time (2d calls of f on the whole batch)."""
    grad = np.empty_like(x)
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        grad[:, j] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def pgd_worst_case(f: FeatureFn, x: np.ndarray, y: np.ndarray, eps: float, *, norm: Norm = "linf",
                   grad_f: FeatureFn | None = None, steps: int = 50, alpha: float | None = None) -> np.ndarray:
    """PGD estimate of inf_{‖δ‖≤eps} y·f(x+δ), per example (the best value seen, from δ = 0).

    f maps [n, d] → [n]; grad_f maps [n, d] → [n, d] (central finite differences when None).
    ℓ∞: signed steps then clipping to the box; ℓ2: normalised steps then projection on the ball.
    alpha defaults to 2.5·eps/steps (Madry et al.'s choice). Being a found point, it is ≥ the true inf.
    """
    x = _check_x(x)
    y = _check_labels(y, x.shape[0])
    eps = _nonneg("eps", eps)
    _check_norm(norm)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    alpha = 2.5 * eps / steps if alpha is None else _nonneg("alpha", alpha)
    grad_fn = grad_f if grad_f is not None else (lambda z: _finite_difference_grad(f, z))

    def value(z: np.ndarray) -> np.ndarray:
        out = np.asarray(f(z), dtype=float)
        if out.shape != (x.shape[0],) or not np.all(np.isfinite(out)):
            raise ValueError(f"f must return finite values of shape [{x.shape[0]}], got {out.shape}")
        return y * out

    delta = np.zeros_like(x)
    best = value(x)
    for _ in range(steps):
        g = y[:, None] * np.asarray(grad_fn(x + delta), dtype=float)  # gradient of y·f
        if norm == "linf":
            delta = np.clip(delta - alpha * np.sign(g), -eps, eps)
        else:
            gn = np.linalg.norm(g, axis=1, keepdims=True)
            delta = delta - alpha * g / np.where(gn > 0, gn, 1.0)
            dn = np.linalg.norm(delta, axis=1, keepdims=True)
            delta = delta * np.minimum(1.0, eps / np.where(dn > 0, dn, 1.0))
        best = np.minimum(best, value(x + delta))
    return best


def robust_usefulness(f: FeatureFn | LinearFeature, x: np.ndarray, y: np.ndarray, eps: float, *,
                      norm: Norm = "linf", grad_f: FeatureFn | None = None, steps: int = 50,
                      alpha: float | None = None) -> float:
    """γ = E[inf_{‖δ‖≤eps} y·f(x+δ)] on a sample: exact for a LinearFeature, PGD otherwise (same options
    as ``pgd_worst_case``)."""
    if isinstance(f, LinearFeature):
        return float(linear_worst_case(f, x, y, eps, norm).mean())
    return float(pgd_worst_case(f, x, y, eps, norm=norm, grad_f=grad_f, steps=steps, alpha=alpha).mean())


def classify_feature(rho: float, gamma: float) -> str:
    """'useless' (ρ ≤ 0), 'robust' (ρ > 0 and γ > 0) or 'non-robust' (ρ > 0, γ ≤ 0), per SPEC §1."""
    for name, v in (("rho", rho), ("gamma", gamma)):
        if isinstance(v, bool) or not np.isscalar(v) or math.isnan(float(v)):
            raise ValueError(f"{name} must be a real number, got {v!r}")
    if rho <= 0:
        return "useless"
    return "robust" if gamma > 0 else "non-robust"


# ------------------------------------------------------------ the two models
@dataclass(frozen=True)
class FeatureReport:
    """Population ρ and γ of one standardised feature, and its class at the given eps."""

    name: str
    rho: float
    gamma: float
    kind: str
    eps: float
    norm: str


def _report(name: str, rho: float, gamma: float, eps: float, norm: str) -> FeatureReport:
    return FeatureReport(name, float(rho), float(gamma), classify_feature(rho, gamma), eps, norm)


def tsipras_features(model: TradeoffModel, eps: float, norm: Norm = "linf") -> list[FeatureReport]:
    """Exact ρ, γ of the Tsipras model's features (E[f] = 0 for all, since y is symmetric).

    - "x1" (linear, E[x₁²] = 1): ρ = 2p − 1, γ = 2p − 1 − ε (robust iff ε < 2p − 1).
    - "sign(x1)": equals x₁ on the data, but x₁ ∈ {±1} so sign(x₁+δ) cannot flip for ε < 1:
      γ = 2p − 1 for ε < 1; at ε = 1 the adversary reaches sign 0 (γ = −(1−p)); above, −1.
      (This is Tsipras's "robust for any ε < 1".)
    - "weak" (any x_i, i ≥ 2, variance 1 + η²): ρ = η/√(1+η²), γ = (η − ε)/√(1+η²): non-robust iff ε ≥ η.
    - "average" (Σ_{i≥2} x_i, variance d + η²d²): ρ = η√d/√(1+η²d);
      ℓ∞: γ = (η − ε)√d/√(1+η²d); ℓ2: γ = (η√d − ε)/√(1+η²d).
    A single coordinate has the same dual norm (1) under ℓ∞ and ℓ2.
    """
    if not isinstance(model, TradeoffModel):
        raise ValueError(f"model must be a TradeoffModel, got {type(model).__name__}")
    eps = _nonneg("eps", eps)
    _check_norm(norm)
    p, eta, d = model.p, model.eta, model.d
    rho1 = 2 * p - 1
    sign_gamma = rho1 if eps < 1 else (-(1 - p) if eps == 1 else -1.0)
    s_weak = math.sqrt(1 + eta**2)
    s_avg = math.sqrt(1 + eta**2 * d)
    avg_gamma = (eta - eps) * math.sqrt(d) / s_avg if norm == "linf" else (eta * math.sqrt(d) - eps) / s_avg
    return [
        _report("x1", rho1, rho1 - eps, eps, norm),
        _report("sign(x1)", rho1, sign_gamma, eps, norm),
        _report("weak", eta / s_weak, (eta - eps) / s_weak, eps, norm),
        _report("average", eta * math.sqrt(d) / s_avg, avg_gamma, eps, norm),
    ]


def gaussian_features(
    mu_star: np.ndarray, sigma_star: np.ndarray, eps: float, norm: Norm = "l2"
) -> list[FeatureReport]:
    """Exact ρ, γ of the eigen-directions v_k of Σ* in Ilyas's Gaussian model x ~ N(y·μ*, Σ*).

    With m_k = v_kᵀμ* and σ_k the eigenvalue, f_k(x) = sign(m_k)·v_kᵀx / √(σ_k + m_k²) is standardised
    (E[x] = 0); ρ = |m_k|/√(σ_k + m_k²), γ = (|m_k| − ε‖v_k‖_q)/√(σ_k + m_k²). Under ℓ2 (the model's
    threat), ‖v_k‖₂ = 1: direction k is useful iff m_k ≠ 0 and robust iff |m_k| > ε. Ordered by
    ascending eigenvalue; names "eig{k}".
    """
    mu = np.asarray(mu_star, dtype=float)
    sigma = np.asarray(sigma_star, dtype=float)
    if mu.ndim != 1 or not np.all(np.isfinite(mu)):
        raise ValueError(f"mu_star must be a finite vector [d], got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]) or not np.all(np.isfinite(sigma)):
        raise ValueError(f"sigma_star must be a finite [{mu.shape[0]}, {mu.shape[0]}] matrix, got {sigma.shape}")
    if not np.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12):
        raise ValueError("sigma_star must be symmetric")
    eps = _nonneg("eps", eps)
    _check_norm(norm)
    evals, evecs = np.linalg.eigh(sigma)
    if evals[0] <= 0:
        raise ValueError(f"sigma_star must be positive definite, smallest eigenvalue {evals[0]:.3g}")
    reports = []
    for k in range(mu.shape[0]):
        v = evecs[:, k]
        m = float(v @ mu)
        s = math.sqrt(evals[k] + m * m)
        reports.append(_report(f"eig{k}", abs(m) / s, (abs(m) - eps * dual_norm(v, norm)) / s, eps, norm))
    return reports
