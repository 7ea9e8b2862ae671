"""Robust maximum likelihood in the Ilyas et al. Gaussian model, learned from samples (App. E).

``robust_objective`` evaluates the min–max objective with the exact inner maximiser of
``theory.gaussian_attack``; ``adversarial_train`` minimises it by natural-gradient descent on (μ, Σ)
with Danskin's gradient, Barzilai–Borwein steps and a non-monotone line search. Neither ever calls
the closed forms of Theorem 2. Public names are re-exported by ``theory.gaussian``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from theory.gaussian_attack import perturbation_coords
from theory.gaussian_model import (
    MAX_COND, check_lam, from_eig, labels, lam_or_eps, matrix_rows, mle, nll_eig, scalar, spd, vector,
)

__all__ = ["robust_objective", "adversarial_train"]


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
    if s[0] <= 0 or s[-1] > MAX_COND * s[0] or (lam is not None and not lam * s[0] > 1.0):
        return None
    w = (x - y[:, None] * mu[None, :]) @ q
    delta, multipliers = perturbation_coords(w, s, lam, eps, lam_init=lam_init)
    wt = w + delta
    values = nll_eig(wt, s)
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
    xa = matrix_rows("x", x)
    d = xa.shape[1]
    ya = labels("y", y, xa.shape[0])
    mu_a = vector("mu", mu, d)
    sig, eig = spd("sigma", sigma, d)
    lam_f, eps_f = lam_or_eps(lam, eps)
    if lam_f is not None:
        check_lam(lam_f, float(eig.s[0]))
    state = _evaluate(xa, ya, mu_a, sig, lam_f, eps_f)
    assert state is not None
    return state.objective


@dataclass(frozen=True)
class _Problem:
    """Validated inputs of ``adversarial_train``."""

    x: np.ndarray
    y: np.ndarray
    lam: float | None
    eps: float | None
    steps: int
    lr: float
    tol: float

    def evaluate(self, mu: np.ndarray, sigma: np.ndarray, lam_init: np.ndarray | None = None) -> _State | None:
        return _evaluate(self.x, self.y, mu, sigma, self.lam, self.eps, lam_init=lam_init)


def _train_problem(x: object, y: object, lam: object, eps: object, steps: object, lr: object,
                   tol: object) -> _Problem:
    xa = matrix_rows("x", x)
    ya = labels("y", y, xa.shape[0])
    lam_f, eps_f = lam_or_eps(lam, eps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    lr_f = scalar("lr", lr, positive=True)
    if lr_f > 1.0:
        raise ValueError(f"lr must lie in (0, 1] (the first natural-gradient step fraction), got {lr!r}")
    tol_f = scalar("tol", tol, positive=True)
    return _Problem(x=xa, y=ya, lam=lam_f, eps=eps_f, steps=int(steps), lr=lr_f, tol=tol_f)


def _start(problem: _Problem) -> _State:
    """The clean MLE, plus I/λ in the penalised case so that λΣ − I ≻ 0."""
    mu, sigma = mle(problem.x, problem.y)
    spd("MLE covariance of x", sigma)   # e.g. n ≤ d gives a singular sample covariance
    if problem.lam is not None:
        sigma = sigma + np.eye(problem.x.shape[1]) / problem.lam
    state = problem.evaluate(mu, sigma)
    if state is None:
        raise ValueError("the MLE starting point is infeasible (Σ not positive definite)")
    return state


def _natural_decrease(state: _State) -> float:
    """‖natural gradient‖² = ‖Σ^{-½}Δμ‖² + ½‖I − Σ^{-½}S̃Σ^{-½}‖²_F (−the directional derivative)."""
    root = np.sqrt(state.s)
    # Natural gradient in Σ's eigen-coordinates: w = Σ^{-½}Δμ, P = Σ^{-½}S̃Σ^{-½}.
    w_nat = state.mean_shift / root
    p = state.second_moment / np.outer(root, root)
    resid = p - np.eye(state.s.size)
    return float(w_nat @ w_nat + 0.5 * np.sum(resid * resid))


def _bb_step(theta: np.ndarray, direction: np.ndarray, prev: tuple[np.ndarray, np.ndarray], lr: float) -> float:
    """Barzilai–Borwein step on the natural-gradient field: β = ⟨Δθ, Δθ⟩ / ⟨Δθ, −ΔD⟩.

    It adapts to the stiff directions a fixed β would have to be tuned for.
    """
    step_vec, y_vec = theta - prev[0], prev[1] - direction
    curv = float(step_vec @ y_vec)
    beta = float(step_vec @ step_vec) / curv if curv > 0 else lr
    return min(max(beta, 1e-6), 1e3)


def _line_search(problem: _Problem, state: _State, d_mu: np.ndarray, d_sigma: np.ndarray, sigma_now: np.ndarray,
                 beta: float, reference: float, decrease: float) -> tuple[_State | None, float]:
    """Halve β until the non-monotone Armijo test against ``reference`` passes; None below β = 1e-12."""
    while beta > 1e-12:
        trial = problem.evaluate(state.mu + beta * d_mu, sigma_now + beta * d_sigma, lam_init=state.multipliers)
        if trial is not None and trial.objective <= reference - 1e-4 * beta * decrease:
            return trial, beta
        beta *= 0.5
    return None, beta


def _descend(problem: _Problem, state: _State) -> tuple[_State, int, bool, float]:
    """The outer loop of ``adversarial_train``: (final state, steps taken, converged, gradient norm)."""
    beta = problem.lr
    grad_norm = math.inf
    converged = False
    taken = 0
    history: list[float] = []          # recent objective values for the non-monotone Armijo test
    prev: tuple[np.ndarray, np.ndarray] | None = None   # previous (θ, direction) for the BB step
    for taken in range(problem.steps + 1):
        decrease = _natural_decrease(state)
        grad_norm = math.sqrt(decrease)
        if grad_norm < problem.tol:
            converged = True
            break
        if taken == problem.steps:
            break
        s, q = state.s, state.q
        d_mu = q @ state.mean_shift
        d_sigma = q @ (state.second_moment - np.diag(s)) @ q.T
        sigma_now = from_eig(s, q)
        theta = np.concatenate([state.mu, sigma_now.ravel()])
        direction = np.concatenate([d_mu, d_sigma.ravel()])
        if prev is not None:
            beta = _bb_step(theta, direction, prev, problem.lr)
        prev = (theta, direction)
        history = (history + [state.objective])[-10:]
        accepted, beta = _line_search(problem, state, d_mu, d_sigma, sigma_now, beta, max(history), decrease)
        if accepted is None:
            # No representable decrease left: we are at the floating-point floor of F.
            converged = grad_norm < math.sqrt(problem.tol)
            break
        state = accepted
    return state, taken, converged, grad_norm


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
    problem = _train_problem(x, y, lam, eps, steps, lr, tol)
    state, taken, converged, grad_norm = _descend(problem, _start(problem))
    mu_out, sigma_out = state.mu.copy(), from_eig(state.s, state.q)
    if not return_info:
        return mu_out, sigma_out
    info = {"steps": taken, "converged": converged, "grad_norm": grad_norm, "objective": state.objective}
    return mu_out, sigma_out, info
