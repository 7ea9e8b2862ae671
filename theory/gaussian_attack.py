"""The adversary of the Ilyas et al. Gaussian model: optimal perturbations of residuals v = x − yμ.

Two inner maximisations of the quadratic term ½(v+δ)ᵀΣ⁻¹(v+δ), for all rows at once:
- the squared-penalty Lagrangian (Lemma 1): δ* = (λΣ − I)⁻¹v;
- the exact per-example ℓ2 ball ‖δ‖₂ ≤ ε (trust-region secular equation, solved by safeguarded
  Newton in Σ's eigenbasis, with the hard case handled explicitly).
Public names are re-exported by ``theory.gaussian``. All arrays are float64 numpy.
"""
from __future__ import annotations

import numpy as np

from theory.gaussian_model import ONE_OF_LAM_EPS, Eig, check_lam, lam_or_eps, matrix_rows, spd

__all__ = ["optimal_perturbation", "perturbation_multiplier"]

_TOP_RTOL = 1e-10         # eigenvalues of Σ this close to σ_min share its eigenspace (hard case)


def _penalty_coords(w: np.ndarray, s: np.ndarray, lam: float) -> np.ndarray:
    """Lemma 1 in Σ's eigenbasis: δ̃_i = w_i / (λ s_i − 1)."""
    return w / (lam * s - 1.0)


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
    n = w.shape[0]
    if eps == 0.0:
        return np.zeros_like(w), np.full(n, np.inf)
    a = 1.0 / s
    a_max = a[0]
    top = s <= s[0] * (1.0 + _TOP_RTOL)
    g = np.where(top, 0.0, a_max - a)
    b = w / s
    b2 = b * b
    top_b2 = b2[:, top].sum(axis=1)                     # B² = ‖b on the top eigenspace‖²
    t = _secular_t(b2, g, top, top_b2, eps, max_iter, lam_init, a_max)
    coords = _ball_point(b, g, top, top_b2, t, eps, rng)
    return coords, a_max + t


def _secular_t(
    b2: np.ndarray, g: np.ndarray, top: np.ndarray, top_b2: np.ndarray, eps: float, max_iter: int,
    lam_init: np.ndarray | None, a_max: float,
) -> np.ndarray:
    """t = λ − a_max per row: 0 in the hard case, else the root of φ(t) = ε² (see ``_ball_coords``)."""
    n = b2.shape[0]
    rest = ~top
    b2_rest, g_rest = b2[:, rest], g[rest]
    r0 = (b2_rest / g_rest**2).sum(axis=1) if rest.any() else np.zeros(n)
    hard = (top_b2 == 0.0) & (r0 <= eps * eps)
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
        t[solve] = _newton_secular(bb2, g, eps, tt, lo, hi, max_iter)
    return t


def _newton_secular(
    bb2: np.ndarray, g: np.ndarray, eps: float, tt: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_iter: int,
) -> np.ndarray:
    """Safeguarded Newton on ψ(t) = φ^{-1/2} − 1/ε from tt inside [lo, hi]; updates tt, lo, hi in place."""
    eps2 = eps * eps
    active = np.arange(tt.size)
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
    return tt


def _ball_point(
    b: np.ndarray, g: np.ndarray, top: np.ndarray, top_b2: np.ndarray, t: np.ndarray, eps: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """δ̃ from the multipliers: b_i/(t + g_i) off the top eigenspace, the remaining length on it."""
    n = b.shape[0]
    rest = ~top
    eps2 = eps * eps
    coords = np.zeros_like(b)
    if rest.any():
        coords[:, rest] = b[:, rest] / (t[:, None] + g[rest][None, :])
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
    return coords


def perturbation_coords(
    w: np.ndarray, s: np.ndarray, lam: float | None, eps: float | None, rng: np.random.Generator | None = None,
    lam_init: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The optimal δ̃ for residuals w in Σ's eigenbasis (validated lam xor eps) and each row's λ."""
    if (lam is None) == (eps is None):
        raise ValueError(ONE_OF_LAM_EPS)
    if lam is not None:
        return _penalty_coords(w, s, lam), np.full(w.shape[0], lam)
    assert eps is not None
    return _ball_coords(w, s, eps, rng, lam_init=lam_init)


def _perturbation_args(
    v: object, sigma: object, lam: object, eps: object,
) -> tuple[np.ndarray, Eig, float | None, float | None]:
    """Validated (v, Σ's eigensystem, lam, eps) for the public functions."""
    va = matrix_rows("v", v)
    _, eig = spd("sigma", sigma, va.shape[1])
    lam_f, eps_f = lam_or_eps(lam, eps)
    if lam_f is not None:
        check_lam(lam_f, float(eig.s[0]))
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
    coords, _ = perturbation_coords(va @ eig.q, eig.s, lam_f, eps_f, rng)
    return coords @ eig.q.T


def perturbation_multiplier(v: object, sigma: object, eps: float) -> np.ndarray:
    """λ of each row's ℓ2-ball maximiser: δ = (λΣ − I)⁻¹v (pseudo-inverse in the hard case), λ ≥ 1/σ_min."""
    va, eig, _, eps_f = _perturbation_args(v, sigma, None, eps)
    assert eps_f is not None
    _, lam = _ball_coords(va @ eig.q, eig.s, eps_f)
    return lam
