"""Data model and input checks of the Ilyas et al. Gaussian model (SPEC §2); see ``theory.gaussian``.

Data: y uniform on {±1}, x ~ N(y·μ*, Σ*) in R^d. Learner: Θ = (μ, Σ) minimising the Gaussian negative
log-likelihood ℓ(x; y·μ, Σ) = ½ log det(2πΣ) + ½ (x − yμ)ᵀ Σ⁻¹ (x − yμ).

Contents: ``sample`` / ``mle`` / ``nll`` and the validation helpers shared by ``gaussian_attack``,
``gaussian_train`` and ``gaussian`` (one place, so every message reads the same).
All arrays are float64 numpy; Σ must be symmetric positive definite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["sample", "mle", "nll"]

_SYM_RTOL = 1e-8          # relative asymmetry tolerated in Σ (round-off from products like AᵀA)
MAX_COND = 1e12           # beyond this Σ is numerically singular and Σ⁻¹ meaningless


# ------------------------------------------------------------------------------------ validation
def scalar(name: str, value: object, *, positive: bool = False) -> float:
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


def vector(name: str, value: object, d: int | None = None) -> np.ndarray:
    """A finite non-empty 1-D float vector (of length d if given)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    if d is not None and arr.size != d:
        raise ValueError(f"{name} has length {arr.size}, expected d = {d}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return arr


def matrix_rows(name: str, value: object, d: int | None = None) -> np.ndarray:
    """A finite [n, d] float array with n >= 1 (d columns if given)."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [n, d], got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected d = {d}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return arr


def labels(name: str, value: object, n: int) -> np.ndarray:
    """n labels in {-1, +1} (any numeric dtype), returned as float."""
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"{name} must be a 1-D array of length n = {n}, got shape {arr.shape}")
    yf = arr.astype(float)
    if not np.all((yf == 1.0) | (yf == -1.0)):
        raise ValueError(f"{name} must hold labels in {{-1, +1}}, got values {np.unique(arr)[:5]!r}")
    return yf


ONE_OF_LAM_EPS = "give exactly one of lam (squared-penalty Lagrangian) or eps (ℓ2 ball radius)"


def lam_or_eps(lam: object, eps: object) -> tuple[float | None, float | None]:
    """Exactly one of the squared-penalty multiplier λ (> 0) or the ℓ2 radius ε (>= 0), as floats."""
    if (lam is None) == (eps is None):
        raise ValueError(ONE_OF_LAM_EPS)
    lam_f = None if lam is None else scalar("lam", lam, positive=True)
    eps_f = None if eps is None else scalar("eps", eps)
    return lam_f, eps_f


def check_lam(lam: float, s_min: float, what: str = "lam") -> None:
    """Raise unless lam > 1/s_min."""
    # (λΣ − I) must be positive definite: otherwise the penalised inner problem is unbounded.
    if not lam * s_min > 1.0:
        raise ValueError(
            f"{what} = {lam!r} must exceed 1/sigma_min(Sigma) = {1.0 / s_min:.6g} "
            "(otherwise λΣ − I is not positive definite and the maximum is infinite)"
        )


@dataclass(frozen=True)
class Eig:
    """Σ = Q diag(s) Qᵀ with s ascending (numpy's eigh order)."""

    s: np.ndarray
    q: np.ndarray


def spd(name: str, value: object, d: int | None = None) -> tuple[np.ndarray, Eig]:
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
    if s[0] <= 0 or s[-1] > MAX_COND * s[0]:
        raise ValueError(
            f"{name} must be positive definite (eigenvalues in [{s[0]:.3g}, {s[-1]:.3g}], "
            f"condition number limit {MAX_COND:.0e})"
        )
    return sym, Eig(s=s, q=q)


def from_eig(s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Q diag(s) Qᵀ, symmetrised against round-off."""
    m = (q * s) @ q.T
    return 0.5 * (m + m.T)


# ------------------------------------------------------------------------------------ data, MLE
def sample(mu_star: object, sigma_star: object, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n examples of [IL] §4: y uniform on {±1}, x ~ N(y·μ*, Σ*). Returns x [n, d], y int64 [n]."""
    mu = vector("mu_star", mu_star)
    sigma, _ = spd("sigma_star", sigma_star, mu.size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array([-1, 1], dtype=np.int64), size=int(n))
    chol = np.linalg.cholesky(sigma)
    x = y[:, None] * mu[None, :] + rng.standard_normal((int(n), mu.size)) @ chol.T
    return x, y


def mle(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood (μ, Σ) of [IL] §4: μ = E[y·x], Σ = E[(x − yμ)(x − yμ)ᵀ] (1/n, not 1/(n−1))."""
    xa = matrix_rows("x", x)
    ya = labels("y", y, xa.shape[0])
    mu = (ya[:, None] * xa).mean(axis=0)
    v = xa - ya[:, None] * mu[None, :]
    sigma = v.T @ v / xa.shape[0]
    return mu, 0.5 * (sigma + sigma.T)


def nll(x: object, y: object, mu: object, sigma: object) -> np.ndarray:
    """Per-example ℓ(x; y·μ, Σ) = ½ log det(2πΣ) + ½ (x − yμ)ᵀΣ⁻¹(x − yμ)."""
    xa = matrix_rows("x", x)
    d = xa.shape[1]
    ya = labels("y", y, xa.shape[0])
    mu_a = vector("mu", mu, d)
    _, eig = spd("sigma", sigma, d)
    w = (xa - ya[:, None] * mu_a[None, :]) @ eig.q
    return nll_eig(w, eig.s)


def nll_eig(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ℓ for residuals given in Σ's eigen-coordinates w = Qᵀv."""
    logdet = float(np.sum(np.log(2.0 * np.pi * s)))
    return 0.5 * logdet + 0.5 * np.sum(w * w / s, axis=1)

