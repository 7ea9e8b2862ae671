"""The Gaussian model of Ilyas et al. 2019, §4 and App. E (SPEC §2): robust vs standard learning.

Data: y uniform on {±1}, x ~ N(y·μ*, Σ*) in R^d. Learner: Θ = (μ, Σ) minimising the Gaussian negative
log-likelihood ℓ(x; y·μ, Σ) = ½ log det(2πΣ) + ½ (x − yμ)ᵀ Σ⁻¹ (x − yμ).

Contents
- ``sample`` / ``mle``: the data model and the standard maximum-likelihood estimate.
- ``optimal_perturbation``: the inner maximisation for rows v = x − yμ, either the squared-penalty
  Lagrangian (Lemma 1, δ* = (λΣ − I)⁻¹v) or the exact per-example ℓ2 ball (trust-region secular
  equation, solved for all rows at once by safeguarded Newton in Σ's eigenbasis).
- ``vulnerability_gap``: Theorem 1.  ``robust_covariance`` / ``lambda_for_epsilon`` /
  ``robust_parameters``: Theorem 2.  ``worst_case_alignment``: Theorem 3 (Kantorovich).
- ``adversarial_train``: robust maximum likelihood learned from samples by solving the min–max:
  exact inner maximisation per example, outer natural-gradient descent on (μ, Σ) with Danskin's
  gradient, Barzilai–Borwein steps and a line search on the robust objective. It never calls the
  closed forms.

"Quadratic term" below means the squared Mahalanobis norm vᵀΣ⁻¹v; ℓ carries half of it.
All arrays are float64 numpy; Σ must be symmetric positive definite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq, minimize

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

_SYM_RTOL = 1e-8          # relative asymmetry tolerated in Σ (round-off from products like AᵀA)
_MAX_COND = 1e12          # beyond this Σ is numerically singular and Σ⁻¹ meaningless
_TOP_RTOL = 1e-10         # eigenvalues of Σ this close to σ_min share its eigenspace (hard case)


# ------------------------------------------------------------------------------------ validation
def _scalar(name: str, value: object, *, positive: bool = False) -> float:
    """A finite real scalar, > 0 if positive else >= 0."""
    if isinstance(value, bool) or not np.isscalar(value) or isinstance(value, str):
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    v = float(value)  # type: ignore[arg-type]
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite (no NaN/inf), got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _vector(name: str, value: object, d: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    if d is not None and arr.size != d:
        raise ValueError(f"{name} has length {arr.size}, expected d = {d}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return arr


def _matrix_rows(name: str, value: object, d: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected d = {d}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return arr


def _labels(name: str, value: object, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"{name} must be a 1-D array of length n = {n}, got shape {arr.shape}")
    yf = arr.astype(float)
    if not np.all((yf == 1.0) | (yf == -1.0)):
        raise ValueError(f"{name} must hold labels in {{-1, +1}}, got values {np.unique(arr)[:5]!r}")
    return yf


@dataclass(frozen=True)
class _Eig:
    """Σ = Q diag(s) Qᵀ with s ascending (numpy's eigh order)."""

    s: np.ndarray
    q: np.ndarray


def _spd(name: str, value: object, d: int | None = None) -> tuple[np.ndarray, _Eig]:
    """Validate a symmetric positive-definite matrix; return it symmetrised and its eigensystem."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a square 2-D matrix, got shape {arr.shape}")
    if d is not None and arr.shape[0] != d:
        raise ValueError(f"{name} is {arr.shape[0]}x{arr.shape[0]}, expected d = {d}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    scale = max(float(np.max(np.abs(arr))), np.finfo(float).tiny)
    if float(np.max(np.abs(arr - arr.T))) > _SYM_RTOL * scale:
        raise ValueError(f"{name} must be symmetric (max |Σ − Σᵀ| = {np.max(np.abs(arr - arr.T)):.3g})")
    sym = 0.5 * (arr + arr.T)
    s, q = np.linalg.eigh(sym)
    if s[0] <= 0 or s[-1] > _MAX_COND * s[0]:
        raise ValueError(
            f"{name} must be positive definite (eigenvalues in [{s[0]:.3g}, {s[-1]:.3g}], "
            f"condition number limit {_MAX_COND:.0e})"
        )
    return sym, _Eig(s=s, q=q)


def _from_eig(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = (q * s) @ q.T
    return 0.5 * (m + m.T)


# ------------------------------------------------------------------------------------ data, MLE
def sample(mu_star: object, sigma_star: object, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n examples of [IL] §4: y uniform on {±1}, x ~ N(y·μ*, Σ*). Returns x [n, d], y int64 [n]."""
    mu = _vector("mu_star", mu_star)
    sigma, _ = _spd("sigma_star", sigma_star, mu.size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array([-1, 1], dtype=np.int64), size=int(n))
    chol = np.linalg.cholesky(sigma)
    x = y[:, None] * mu[None, :] + rng.standard_normal((int(n), mu.size)) @ chol.T
    return x, y


def mle(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood (μ, Σ) of [IL] §4: μ = E[y·x], Σ = E[(x − yμ)(x − yμ)ᵀ] (1/n, not 1/(n−1))."""
    xa = _matrix_rows("x", x)
    ya = _labels("y", y, xa.shape[0])
    mu = (ya[:, None] * xa).mean(axis=0)
    v = xa - ya[:, None] * mu[None, :]
    sigma = v.T @ v / xa.shape[0]
    return mu, 0.5 * (sigma + sigma.T)


def nll(x: object, y: object, mu: object, sigma: object) -> np.ndarray:
    """Per-example ℓ(x; y·μ, Σ) = ½ log det(2πΣ) + ½ (x − yμ)ᵀΣ⁻¹(x − yμ)."""
    xa = _matrix_rows("x", x)
    d = xa.shape[1]
    ya = _labels("y", y, xa.shape[0])
    mu_a = _vector("mu", mu, d)
    _, eig = _spd("sigma", sigma, d)
    w = (xa - ya[:, None] * mu_a[None, :]) @ eig.q
    return _nll_eig(w, eig.s)


def _nll_eig(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ℓ for residuals given in Σ's eigen-coordinates w = Qᵀv."""
    logdet = float(np.sum(np.log(2.0 * np.pi * s)))
    return 0.5 * logdet + 0.5 * np.sum(w * w / s, axis=1)


# ------------------------------------------------------------------------ optimal perturbation
def _penalty_coords(w: np.ndarray, s: np.ndarray, lam: float) -> np.ndarray:
    """Lemma 1 in Σ's eigenbasis: δ̃_i = w_i / (λ s_i − 1)."""
    return w / (lam * s - 1.0)


def _check_lam(lam: float, s_min: float, what: str = "lam") -> None:
    # (λΣ − I) must be positive definite: otherwise the penalised inner problem is unbounded.
    if not lam * s_min > 1.0:
        raise ValueError(
            f"{what} = {lam!r} must exceed 1/sigma_min(Sigma) = {1.0 / s_min:.6g} "
            "(otherwise λΣ − I is not positive definite and the maximum is infinite)"
        )


def _ball_coords(
    w: np.ndarray, s: np.ndarray, eps: float, rng: np.random.Generator | None = None,
    max_iter: int = 100, lam_init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact maximiser of ½(v+δ)ᵀΣ⁻¹(v+δ) over ‖δ‖₂ ≤ ε for every row, in Σ's eigenbasis.

    A convex function is maximised on the sphere. With a = 1/s (eigenvalues of Σ⁻¹) and b = w/s
    (= Σ⁻¹v), the global maximiser is δ̃_i = b_i/(λ − a_i) with λ ≥ a_max and ‖δ‖ = ε (trust-region
    theory, Moré & Sorensen). Write t = λ − a_max ≥ 0 and g_i = a_max − a_i ≥ 0; the secular equation
    φ(t) = Σ b_i²/(t + g_i)² = ε² has one root on t > 0, found by Newton on ψ(t) = φ^{-1/2} − 1/ε,
    which is increasing and concave, so Newton from a lower bound climbs monotonically to the root.
    Hard case: b vanishes on the top eigenspace of Σ⁻¹ and φ(0) ≤ ε²; then t = 0 and the top
    eigenspace takes the remaining length √(ε² − φ_rest(0)).
    lam_init: optional per-row starting λ (a warm start, e.g. from the previous outer step).
    Returns (δ̃ [n, d], λ [n]).
    """
    n, d = w.shape
    if eps == 0.0:
        return np.zeros_like(w), np.full(n, np.inf)
    a = 1.0 / s
    a_max = a[0]
    top = s <= s[0] * (1.0 + _TOP_RTOL)
    g = np.where(top, 0.0, a_max - a)
    b = w / s
    b2 = b * b
    top_b2 = b2[:, top].sum(axis=1)                     # B² = ‖b on the top eigenspace‖²
    rest = ~top
    b2_rest, g_rest = b2[:, rest], g[rest]
    eps2 = eps * eps

    r0 = (b2_rest / g_rest**2).sum(axis=1) if rest.any() else np.zeros(n)
    hard = (top_b2 == 0.0) & (r0 <= eps2)
    t = np.zeros(n)
    solve = np.flatnonzero(~hard)
    if solve.size:
        bb2, B2, R0 = b2[solve], top_b2[solve], r0[solve]
        # Lower bounds on the root: φ ≥ B²/t², and φ_rest(t) ≥ φ_rest(0)·(g_min/(t+g_min))²
        # because g/(t+g) increases in g. Upper bound: φ ≤ ‖b‖²/t² since every g_i ≥ 0.
        lo = np.sqrt(B2) / eps
        if rest.any():
            g_min = g_rest.min()
            lo = np.maximum(lo, g_min * (np.sqrt(R0) / eps - 1.0))
        hi = np.sqrt(bb2.sum(axis=1)) / eps
        tt = lo.copy()
        if lam_init is not None:
            tt = np.clip(lam_init[solve] - a_max, lo, hi)
        active = np.arange(solve.size)
        for _ in range(max_iter):
            ta = tt[active]
            inv = 1.0 / (ta[:, None] + g[None, :])
            r2 = bb2[active] * inv * inv
            phi = r2.sum(axis=1)
            dphi = (r2 * inv).sum(axis=1)              # −½ φ'(t)
            psi = 1.0 / np.sqrt(phi) - 1.0 / eps
            # Bracket update keeps the iteration safe against round-off.
            below = psi <= 0
            lo[active] = np.where(below, np.maximum(lo[active], ta), lo[active])
            hi[active] = np.where(below, hi[active], np.minimum(hi[active], ta))
            step = psi * phi**1.5 / dphi               # ψ/ψ', ψ' = φ^{-3/2}·(−½φ')
            new = ta - step
            # From the right of the root, concavity puts the Newton point left of it, possibly
            # below the lower bound: restart from the bound, where Newton climbs monotonically.
            new = np.where(new < lo[active], lo[active], new)
            bad = ~((new <= hi[active]) & np.isfinite(new))
            new = np.where(bad, 0.5 * (lo[active] + hi[active]), new)
            tt[active] = new
            # Newton converges quadratically: after a relative step of 1e-9 the error is ~1e-18.
            done = (np.abs(phi / eps2 - 1.0) <= 1e-14) | (np.abs(new - ta) <= 1e-9 * ta)
            active = active[~done]
            if active.size == 0:
                break
        t[solve] = tt

    coords = np.zeros_like(w)
    if rest.any():
        coords[:, rest] = b[:, rest] / (t[:, None] + g_rest[None, :])
        r_t = (coords[:, rest] ** 2).sum(axis=1)
    else:
        r_t = np.zeros(n)
    # The top eigenspace gets whatever length the norm constraint leaves: exact at the root, and
    # well conditioned in the (near-)hard case where b_top/t is 0/0-like.
    top_len = np.sqrt(np.maximum(eps2 - r_t, 0.0))
    b_top = b[:, top]
    norm_top = np.sqrt(top_b2)
    unit = np.zeros_like(b_top)
    has = norm_top > 0
    unit[has] = b_top[has] / norm_top[has, None]
    if (~has).any():
        # Both ±e maximise when b_top = 0; pick + (or a seeded random sign).
        sign = np.ones(int((~has).sum())) if rng is None else rng.choice([-1.0, 1.0], size=int((~has).sum()))
        unit[~has, 0] = sign
    coords[:, top] = top_len[:, None] * unit
    lam = a_max + t
    return coords, lam


def _perturbation_coords(
    w: np.ndarray, s: np.ndarray, lam: float | None, eps: float | None, rng: np.random.Generator | None = None,
    lam_init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if (lam is None) == (eps is None):
        raise ValueError("give exactly one of lam (squared-penalty Lagrangian) or eps (ℓ2 ball radius)")
    if lam is not None:
        return _penalty_coords(w, s, lam), np.full(w.shape[0], lam)
    assert eps is not None
    return _ball_coords(w, s, eps, rng, lam_init=lam_init)


def _perturbation_args(v: object, sigma: object, lam: object, eps: object) -> tuple[np.ndarray, _Eig, float | None, float | None]:
    va = _matrix_rows("v", v)
    _, eig = _spd("sigma", sigma, va.shape[1])
    if (lam is None) == (eps is None):
        raise ValueError("give exactly one of lam (squared-penalty Lagrangian) or eps (ℓ2 ball radius)")
    lam_f = None if lam is None else _scalar("lam", lam, positive=True)
    eps_f = None if eps is None else _scalar("eps", eps)
    if lam_f is not None:
        _check_lam(lam_f, float(eig.s[0]))
    return va, eig, lam_f, eps_f


def optimal_perturbation(
    v: object, sigma: object, *, lam: float | None = None, eps: float | None = None, seed: int | None = None,
) -> np.ndarray:
    """The adversary's δ for each row of v = x − yμ ([IL] Lemma 1 / App. E), shape [n, d].

    lam: maximiser of ½(v+δ)ᵀΣ⁻¹(v+δ) − (λ/2)‖δ‖², δ = (λΣ − I)⁻¹v; needs λ > 1/σ_min(Σ).
    eps: exact maximiser of ½(v+δ)ᵀΣ⁻¹(v+δ) over ‖δ‖₂ ≤ ε per row (secular equation, vectorised).
    seed: only used to break the tie ±e in the hard case (b = Σ⁻¹v orthogonal to Σ's smallest
    eigenvector with a short remaining length); None picks +e.
    """
    va, eig, lam_f, eps_f = _perturbation_args(v, sigma, lam, eps)
    rng = None if seed is None else np.random.default_rng(seed)
    coords, _ = _perturbation_coords(va @ eig.q, eig.s, lam_f, eps_f, rng)
    return coords @ eig.q.T


def perturbation_multiplier(v: object, sigma: object, eps: float) -> np.ndarray:
    """λ of each row's ℓ2-ball maximiser: δ = (λΣ − I)⁻¹v (pseudo-inverse in the hard case), λ ≥ 1/σ_min."""
    va, eig, _, eps_f = _perturbation_args(v, sigma, None, eps)
    assert eps_f is not None
    _, lam = _ball_coords(va @ eig.q, eig.s, eps_f)
    return lam


# ------------------------------------------------------------------------- robust objective
@dataclass
class _State:
    """Everything one evaluation of the robust objective yields at (μ, Σ)."""

    mu: np.ndarray
    s: np.ndarray
    q: np.ndarray
    objective: float
    mean_shift: np.ndarray       # E[y(x̃ − yμ)] in eigen-coordinates (= m̃ − μ)
    second_moment: np.ndarray    # E[(x̃ − yμ)(x̃ − yμ)ᵀ] in eigen-coordinates
    multipliers: np.ndarray      # each example's λ (warm start for the next inner solve)


def _evaluate(
    x: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, lam: float | None, eps: float | None,
    lam_init: np.ndarray | None = None,
) -> _State | None:
    """Robust objective at (μ, Σ) with the exact inner maximiser; None when (μ, Σ) is infeasible."""
    sym = 0.5 * (sigma + sigma.T)
    s, q = np.linalg.eigh(sym)
    if s[0] <= 0 or s[-1] > _MAX_COND * s[0] or (lam is not None and not lam * s[0] > 1.0):
        return None
    w = (x - y[:, None] * mu[None, :]) @ q
    delta, multipliers = _perturbation_coords(w, s, lam, eps, lam_init=lam_init)
    wt = w + delta
    values = _nll_eig(wt, s)
    if lam is not None:
        # Penalised form: the adversary pays (λ/2)‖δ‖² ([IL] Lemma 1).
        values = values - 0.5 * lam * np.sum(delta * delta, axis=1)
    n = x.shape[0]
    return _State(
        mu=mu, s=s, q=q, objective=float(values.mean()),
        mean_shift=(y[:, None] * wt).mean(axis=0),
        second_moment=wt.T @ wt / n, multipliers=multipliers,
    )


def robust_objective(
    x: object, y: object, mu: object, sigma: object, *, lam: float | None = None, eps: float | None = None,
) -> float:
    """E[max_δ ℓ(x+δ; yμ, Σ) − (λ/2)‖δ‖²] (lam) or E[max_{‖δ‖₂≤ε} ℓ(x+δ; yμ, Σ)] (eps), sample mean."""
    xa = _matrix_rows("x", x)
    d = xa.shape[1]
    ya = _labels("y", y, xa.shape[0])
    mu_a = _vector("mu", mu, d)
    sig, eig = _spd("sigma", sigma, d)
    if (lam is None) == (eps is None):
        raise ValueError("give exactly one of lam (squared-penalty Lagrangian) or eps (ℓ2 ball radius)")
    lam_f = None if lam is None else _scalar("lam", lam, positive=True)
    eps_f = None if eps is None else _scalar("eps", eps)
    if lam_f is not None:
        _check_lam(lam_f, float(eig.s[0]))
    state = _evaluate(xa, ya, mu_a, sig, lam_f, eps_f)
    assert state is not None
    return state.objective


# ---------------------------------------------------------------------------------- Theorem 1
def vulnerability_gap(sigma_star: object, C: float) -> float:
    """[IL] Theorem 1: tr[(I + (CΣ* − I)⁻¹)²] − d.

    The increase E[(v+δ*)ᵀΣ*⁻¹(v+δ*)] − E[vᵀΣ*⁻¹v] of the quadratic term for v ~ N(0, Σ*) under the
    squared-penalty adversary δ* = (CΣ* − I)⁻¹v (the NLL ℓ rises by half of it). Needs C > 1/σ_min
    (at equality the gap is infinite). Eigenvalue-wise: Σ_i (Cσ_i/(Cσ_i − 1))² − d.
    """
    _, eig = _spd("sigma_star", sigma_star)
    c = _scalar("C", C, positive=True)
    _check_lam(c, float(eig.s[0]), what="C")
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
    _, eig = _spd("sigma_star", sigma_star)
    lam_f = _scalar("lam", lam, positive=True)
    return _from_eig(_robust_eigenvalues(eig.s, lam_f), eig.q)


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
    _, eig = _spd("sigma_star", sigma_star)
    e = _scalar("eps", eps, positive=True)
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
    mu = _vector("mu_star", mu_star)
    sigma, _ = _spd("sigma_star", sigma_star, mu.size)
    e = _scalar("eps", eps)
    if e == 0.0:
        return mu.copy(), sigma.copy()
    return mu.copy(), robust_covariance(sigma, lambda_for_epsilon(sigma, e))


# ------------------------------------------------------------------------ adversarial training
def adversarial_train(
    x: object,
    y: object,
    *,
    lam: float | None = None,
    eps: float | None = None,
    steps: int = 2000,
    lr: float = 1.0,
    tol: float = 1e-10,
    return_info: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Robust maximum likelihood from samples ([IL] Theorem 2, App. E), by solving the min–max.

    Minimises F(μ, Σ) = mean_i max_δ [ℓ(x_i + δ; y_iμ, Σ) − (λ/2)‖δ‖²] (lam) or
    mean_i max_{‖δ‖₂≤ε} ℓ(x_i + δ; y_iμ, Σ) (eps, one ℓ2 ball per example).
    Inner: the exact per-example maximiser (``optimal_perturbation``'s solvers, the ball solver
    warm-started from the previous step's λ). Outer: by Danskin's theorem ∇F is ∇ℓ at the perturbed
    samples x̃ = x + δ*; we step along the natural (Fisher) gradient direction
    (E[y(x̃ − yμ)], E[(x̃ − yμ)(x̃ − yμ)ᵀ] − Σ) with length β. β = 1 would be "refit the MLE to the
    adversarial examples", which oscillates for strong adversaries; instead β is the
    Barzilai–Borwein step (the first one is ``lr``), accepted by a non-monotone Armijo test on F
    (against the largest of the last 10 values) and halved until accepted.
    Start: the clean MLE, plus I/λ in the penalised case so that λΣ − I ≻ 0.
    Stops when the natural-gradient norm √(‖Σ^{-½}Δμ‖² + ½‖I − Σ^{-½}S̃Σ^{-½}‖²_F) < tol, when
    no step of length > 1e-12 decreases F (floating-point floor), or after ``steps`` steps.
    Returns (μ, Σ), plus an info dict (steps, converged, grad_norm, objective) if return_info.
    """
    xa = _matrix_rows("x", x)
    n, d = xa.shape
    ya = _labels("y", y, n)
    if (lam is None) == (eps is None):
        raise ValueError("give exactly one of lam (squared-penalty Lagrangian) or eps (ℓ2 ball radius)")
    lam_f = None if lam is None else _scalar("lam", lam, positive=True)
    eps_f = None if eps is None else _scalar("eps", eps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    lr_f = _scalar("lr", lr, positive=True)
    if lr_f > 1.0:
        raise ValueError(f"lr must lie in (0, 1] (the first natural-gradient step fraction), got {lr!r}")
    tol_f = _scalar("tol", tol, positive=True)

    mu, sigma = mle(xa, ya)
    _spd("MLE covariance of x", sigma)   # e.g. n ≤ d gives a singular sample covariance
    if lam_f is not None:
        sigma = sigma + np.eye(d) / lam_f
    state = _evaluate(xa, ya, mu, sigma, lam_f, eps_f)
    if state is None:
        raise ValueError("the MLE starting point is infeasible (Σ not positive definite)")

    beta = lr_f
    grad_norm = math.inf
    converged = False
    taken = 0
    history: list[float] = []          # recent objective values for the non-monotone Armijo test
    prev: tuple[np.ndarray, np.ndarray] | None = None   # previous (θ, direction) for the BB step
    for taken in range(steps + 1):
        s, q = state.s, state.q
        root = np.sqrt(s)
        # Natural gradient in Σ's eigen-coordinates: w = Σ^{-½}Δμ, P = Σ^{-½}S̃Σ^{-½}.
        w_nat = state.mean_shift / root
        p = state.second_moment / np.outer(root, root)
        resid = p - np.eye(d)
        decrease = float(w_nat @ w_nat + 0.5 * np.sum(resid * resid))   # −(directional derivative)
        grad_norm = math.sqrt(decrease)
        if grad_norm < tol_f:
            converged = True
            break
        if taken == steps:
            break
        d_mu = q @ state.mean_shift
        d_sigma = q @ (state.second_moment - np.diag(s)) @ q.T
        sigma_now = _from_eig(s, q)
        theta = np.concatenate([state.mu, sigma_now.ravel()])
        direction = np.concatenate([d_mu, d_sigma.ravel()])
        if prev is not None:
            # Barzilai–Borwein step on the natural-gradient field: β = ⟨Δθ, Δθ⟩ / ⟨Δθ, −ΔD⟩, which
            # adapts to the stiff directions a fixed β would have to be tuned for.
            step_vec, y_vec = theta - prev[0], prev[1] - direction
            curv = float(step_vec @ y_vec)
            beta = float(step_vec @ step_vec) / curv if curv > 0 else lr_f
            beta = min(max(beta, 1e-6), 1e3)
        prev = (theta, direction)
        history = (history + [state.objective])[-10:]
        reference = max(history)
        accepted = None
        while beta > 1e-12:
            trial = _evaluate(xa, ya, state.mu + beta * d_mu, sigma_now + beta * d_sigma, lam_f, eps_f,
                              lam_init=state.multipliers)
            if trial is not None and trial.objective <= reference - 1e-4 * beta * decrease:
                accepted = trial
                break
            beta *= 0.5
        if accepted is None:
            # No representable decrease left: we are at the floating-point floor of F.
            converged = grad_norm < math.sqrt(tol_f)
            break
        state = accepted

    mu_out, sigma_out = state.mu.copy(), _from_eig(state.s, state.q)
    if not return_info:
        return mu_out, sigma_out
    info = {"steps": taken, "converged": converged, "grad_norm": grad_norm, "objective": state.objective}
    return mu_out, sigma_out, info


# ---------------------------------------------------------------------------------- Theorem 3
def gradient_alignment(mu: object, sigma: object) -> float:
    """cos(μ, Σ⁻¹μ): alignment of the linear classifier's input gradient Σ⁻¹μ with μ ([IL] Thm 3)."""
    _, eig = _spd("sigma", sigma)
    m = _vector("mu", mu, eig.s.size)
    if not np.any(m):
        raise ValueError("mu must be non-zero")
    c = eig.q.T @ m
    num = float(np.sum(c * c / eig.s))
    return num / (float(np.linalg.norm(c)) * float(np.linalg.norm(c / eig.s)))


def worst_case_alignment(sigma: object) -> float:
    """[IL] Theorem 3: min over μ of cos(μ, Σ⁻¹μ) = 2√κ/(1 + κ), κ = cond(Σ) (Kantorovich)."""
    _, eig = _spd("sigma", sigma)
    kappa = float(eig.s[-1] / eig.s[0])
    return 2.0 * math.sqrt(kappa) / (1.0 + kappa)


def worst_case_direction(sigma: object) -> np.ndarray:
    """A unit μ attaining Theorem 3's minimum.

    μ = c₁e_min + c₂e_max (Σ's extreme eigenvectors) with c₁² = σ_min/(σ_min + σ_max),
    c₂² = σ_max/(σ_min + σ_max): equal weights c₁²/σ_min = c₂²/σ_max, i.e. Σ^{-½}μ puts equal mass on
    the two extreme eigenvectors. Then cos(μ, Σ⁻¹μ) = 2√(σ_min σ_max)/(σ_min + σ_max) = 2√κ/(1 + κ).
    """
    _, eig = _spd("sigma", sigma)
    lo, hi = float(eig.s[0]), float(eig.s[-1])
    mu = math.sqrt(lo / (lo + hi)) * eig.q[:, 0] + math.sqrt(hi / (lo + hi)) * eig.q[:, -1]
    return mu / np.linalg.norm(mu)


def worst_case_alignment_numeric(sigma: object, seed: int = 0, restarts: int = 8) -> float:
    """min over μ ≠ 0 of cos(μ, Σ⁻¹μ) by L-BFGS from ``restarts`` random starts (no closed form used)."""
    _, eig = _spd("sigma", sigma)
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    sig = _from_eig(eig.s, eig.q)
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
