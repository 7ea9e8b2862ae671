"""The Gaussian model of Ilyas et al. 2019, §4 and App. E (SPEC §2): robust vs standard learning.

Data: y uniform on {±1}, x ~ N(y·μ*, Σ*) in R^d. Learner: Θ = (μ, Σ) minimising the Gaussian negative
log-likelihood ℓ(x; y·μ, Σ) = ½ log det(2πΣ) + ½ (x − yμ)ᵀ Σ⁻¹ (x − yμ).

This module is the package's entry point: it holds the closed forms and re-exports the rest, so
``theory.gaussian.<name>`` reaches every public function.
- ``sample`` / ``mle`` / ``nll`` (``gaussian_model``): the data model and the standard
  maximum-likelihood estimate.
- ``optimal_perturbation`` / ``perturbation_multiplier`` (``gaussian_attack``): the inner
  maximisation for rows v = x − yμ, either the squared-penalty Lagrangian (Lemma 1,
  δ* = (λΣ − I)⁻¹v) or the exact per-example ℓ2 ball (trust-region secular equation, solved for all
  rows at once by safeguarded Newton in Σ's eigenbasis).
- ``robust_objective`` / ``adversarial_train`` (``gaussian_train``): robust maximum likelihood
  learned from samples by solving the min–max: exact inner maximisation per example, outer
  natural-gradient descent on (μ, Σ) with Danskin's gradient, Barzilai–Borwein steps and a line
  search on the robust objective. It never calls the closed forms.
- Here: ``vulnerability_gap``: Theorem 1.  ``robust_covariance`` / ``lambda_for_epsilon`` /
  ``robust_parameters``: Theorem 2.  ``worst_case_alignment``: Theorem 3 (Kantorovich).

"Quadratic term" below means the squared Mahalanobis norm vᵀΣ⁻¹v; ℓ carries half of it.
All arrays are float64 numpy; Σ must be symmetric positive definite.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq, minimize

from theory.gaussian_attack import _ball_coords as _ball_coords  # noqa: F401  (tests call the solver directly)
from theory.gaussian_attack import optimal_perturbation, perturbation_multiplier
from theory.gaussian_model import check_lam, from_eig, mle, nll, sample, scalar, spd, vector
from theory.gaussian_train import adversarial_train, robust_objective

__all__ = [
    "sample",
    "mle",
    "nll",
    "optimal_perturbation",
    "perturbation_multiplier",
    "robust_objective",
    "vulnerability_gap",
    "robust_covariance",
    "lambda_for_epsilon",
    "robust_parameters",
    "adversarial_train",
    "worst_case_alignment",
    "worst_case_direction",
    "worst_case_alignment_numeric",
    "gradient_alignment",
]


# ---------------------------------------------------------------------------------- Theorem 1
def vulnerability_gap(sigma_star: object, C: float) -> float:
    """[IL] Theorem 1: tr[(I + (CΣ* − I)⁻¹)²] − d.

    The increase E[(v+δ*)ᵀΣ*⁻¹(v+δ*)] − E[vᵀΣ*⁻¹v] of the quadratic term for v ~ N(0, Σ*) under the
    squared-penalty adversary δ* = (CΣ* − I)⁻¹v (the NLL ℓ rises by half of it). Needs C > 1/σ_min
    (at equality the gap is infinite). Eigenvalue-wise: Σ_i (Cσ_i/(Cσ_i − 1))² − d.
    """
    _, eig = spd("sigma_star", sigma_star)
    c = scalar("C", C, positive=True)
    check_lam(c, float(eig.s[0]), what="C")
    ratio = c * eig.s / (c * eig.s - 1.0)
    return float(np.sum(ratio**2) - eig.s.size)


# ---------------------------------------------------------------------------------- Theorem 2
def _robust_eigenvalues(sigma_eig: np.ndarray, lam: float) -> np.ndarray:
    """s = σ/2 + 1/λ + √(σ/λ + σ²/4): the larger root of (λs − 1)² = λ²sσ."""
    return 0.5 * sigma_eig + 1.0 / lam + np.sqrt(sigma_eig / lam + 0.25 * sigma_eig**2)


def robust_covariance(sigma_star: object, lam: float) -> np.ndarray:
    """[IL] Theorem 2: Σ_r = ½Σ* + (1/λ)I + √((1/λ)Σ* + ¼Σ*²), matrix functions via eigendecomposition.

    Any λ > 0 is valid (λ·σ_min(Σ_r) > 1 holds automatically). Σ_r shares Σ*'s eigenvectors.
    """
    _, eig = spd("sigma_star", sigma_star)
    lam_f = scalar("lam", lam, positive=True)
    return from_eig(_robust_eigenvalues(eig.s, lam_f), eig.q)


def _budget(sigma_eig: np.ndarray, lam: float) -> float:
    """Σ_i σ_i/(λ s_i − 1)², s_i = Σ_r(λ)'s eigenvalues; λs − 1 = z/2 + √(z + z²/4), z = λσ."""
    z = lam * sigma_eig
    u = 0.5 * z + np.sqrt(z + 0.25 * z * z)
    return float(np.sum(sigma_eig / u**2))


def lambda_for_epsilon(sigma_star: object, eps: float) -> float:
    """λ(ε) of [IL] Theorem 2: the root of Σ_i σ*_i/(λ s_i − 1)² = ε², s_i the eigenvalues of Σ_r(λ).

    This is the budget E‖(λΣ_r − I)⁻¹v‖² = ε² of the relaxed linear adversary, v ~ N(0, Σ*). The
    left side falls strictly from ∞ (λ → 0) to 0 (λ → ∞), so the root is unique and λ(ε) decreases
    in ε. Solved by Brent's method in log λ. Needs ε > 0 (ε = 0 means λ = ∞, Σ_r = Σ*).
    """
    _, eig = spd("sigma_star", sigma_star)
    e = scalar("eps", eps, positive=True)
    target = math.log(e * e)

    def f(log_lam: float) -> float:
        return math.log(_budget(eig.s, math.exp(log_lam))) - target

    # Budget ≈ d/λ for small λσ and ≈ Σ 1/(λ²σ) for large: expand a bracket geometrically.
    lo, hi = -1.0, 1.0
    while f(lo) < 0:
        lo -= 4.0
    while f(hi) > 0:
        hi += 4.0
    return float(math.exp(brentq(f, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)))


def robust_parameters(mu_star: object, sigma_star: object, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """[IL] Theorem 2 at ℓ2 budget ε: (μ_r, Σ_r) = (μ*, Σ_r(λ(ε))); ε = 0 gives (μ*, Σ*)."""
    mu = vector("mu_star", mu_star)
    sigma, _ = spd("sigma_star", sigma_star, mu.size)
    e = scalar("eps", eps)
    if e == 0.0:
        return mu.copy(), sigma.copy()
    return mu.copy(), robust_covariance(sigma, lambda_for_epsilon(sigma, e))



# ---------------------------------------------------------------------------------- Theorem 3
def gradient_alignment(mu: object, sigma: object) -> float:
    """cos(μ, Σ⁻¹μ): alignment of the linear classifier's input gradient Σ⁻¹μ with μ ([IL] Thm 3)."""
    _, eig = spd("sigma", sigma)
    m = vector("mu", mu, eig.s.size)
    if not np.any(m):
        raise ValueError("mu must be non-zero")
    c = eig.q.T @ m
    num = float(np.sum(c * c / eig.s))
    return num / (float(np.linalg.norm(c)) * float(np.linalg.norm(c / eig.s)))


def worst_case_alignment(sigma: object) -> float:
    """[IL] Theorem 3: min over μ of cos(μ, Σ⁻¹μ) = 2√κ/(1 + κ), κ = cond(Σ) (Kantorovich)."""
    _, eig = spd("sigma", sigma)
    kappa = float(eig.s[-1] / eig.s[0])
    return 2.0 * math.sqrt(kappa) / (1.0 + kappa)


def worst_case_direction(sigma: object) -> np.ndarray:
    """A unit μ attaining Theorem 3's minimum.

    μ = c₁e_min + c₂e_max (Σ's extreme eigenvectors) with c₁² = σ_min/(σ_min + σ_max),
    c₂² = σ_max/(σ_min + σ_max): equal weights c₁²/σ_min = c₂²/σ_max, i.e. Σ^{-½}μ puts equal mass on
    the two extreme eigenvectors. Then cos(μ, Σ⁻¹μ) = 2√(σ_min σ_max)/(σ_min + σ_max) = 2√κ/(1 + κ).
    """
    _, eig = spd("sigma", sigma)
    lo, hi = float(eig.s[0]), float(eig.s[-1])
    mu = math.sqrt(lo / (lo + hi)) * eig.q[:, 0] + math.sqrt(hi / (lo + hi)) * eig.q[:, -1]
    return mu / np.linalg.norm(mu)


def worst_case_alignment_numeric(sigma: object, seed: int = 0, restarts: int = 8) -> float:
    """min over μ ≠ 0 of cos(μ, Σ⁻¹μ) by L-BFGS from ``restarts`` random starts (no closed form used)."""
    _, eig = spd("sigma", sigma)
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    sig = from_eig(eig.s, eig.q)
    inv = np.linalg.inv(sig)
    inv = 0.5 * (inv + inv.T)
    d = eig.s.size
    rng = np.random.default_rng(seed)

    def cos_and_grad(m: np.ndarray) -> tuple[float, np.ndarray]:
        # f = mᵀAm / (‖m‖·‖Am‖); scale-invariant, so the unconstrained minimum is on the sphere.
        am = inv @ m
        num = float(m @ am)
        nm, na = float(np.linalg.norm(m)), float(np.linalg.norm(am))
        f = num / (nm * na)
        grad = 2 * am / (nm * na) - f * m / nm**2 - f * (inv @ am) / na**2
        return f, grad

    best = math.inf
    for _ in range(restarts):
        res = minimize(cos_and_grad, rng.standard_normal(d), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 2000})
        best = min(best, float(res.fun))
    return best
