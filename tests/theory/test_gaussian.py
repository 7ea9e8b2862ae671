"""Ilyas et al. Gaussian model: every closed form against an independent numerical computation.

Independent routes used: scipy optimisation of the inner maximisation and of Theorem 3's cosine,
Monte Carlo with seeded generators and tolerances of a few standard errors, explicit matrix
inverses instead of eigendecompositions and the per-eigendirection stationarity condition of Theorem 2.
Adversarial training from samples is tested in test_gaussian_train.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar

from _spd import quad, spd_from, spd_matrices
from theory import gaussian as G

SETTINGS = settings(max_examples=25, deadline=None)


# ------------------------------------------------------------------------------- sample / MLE
def test_sample_is_reproducible_and_mle_matches_truth_within_sampling_error() -> None:
    mu = np.array([1.0, -0.5, 0.25])
    sigma = spd_from(np.array([0.5, 1.0, 3.0]), seed=3)
    n = 40_000
    x, y = G.sample(mu, sigma, n, seed=7)
    x2, y2 = G.sample(mu, sigma, n, seed=7)
    x3, _ = G.sample(mu, sigma, n, seed=8)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and not np.array_equal(x, x3)
    assert x.shape == (n, 3) and y.dtype == np.int64 and set(np.unique(y)) == {-1, 1}
    assert abs(y.mean()) <= 5 / math.sqrt(n)
    mu_hat, sigma_hat = G.mle(x, y)
    # Standard errors: Var(μ̂_i) = Σ_ii/n; Var(Σ̂_ij) ≈ (Σ_ii Σ_jj + Σ_ij²)/n for Gaussian data.
    assert np.all(np.abs(mu_hat - mu) <= 5 * np.sqrt(np.diag(sigma) / n))
    se = np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma**2) / n)
    assert np.all(np.abs(sigma_hat - sigma) <= 5 * se)
    # The MLE is the 1/n second moment of the residuals about y·μ̂ (not 1/(n−1)).
    v = x - y[:, None] * mu_hat
    assert np.allclose(sigma_hat, np.cov(v.T, bias=True) + np.outer(v.mean(0), v.mean(0)))


def test_nll_matches_direct_formula() -> None:
    mu = np.array([0.3, -1.0])
    sigma = np.array([[2.0, 0.4], [0.4, 0.7]])
    x, y = G.sample(mu, sigma, 50, seed=1)
    v = x - y[:, None] * mu
    direct = 0.5 * np.log(np.linalg.det(2 * np.pi * sigma)) + 0.5 * quad(v, np.linalg.inv(sigma))
    assert np.allclose(G.nll(x, y, mu, sigma), direct)


# ----------------------------------------------------------------------- optimal perturbation
@SETTINGS
@given(sigma=spd_matrices(), lam_factor=st.floats(1.05, 20.0), seed=st.integers(0, 10_000))
def test_penalty_perturbation_maximises_the_lagrangian(sigma: np.ndarray, lam_factor: float, seed: int) -> None:
    d = sigma.shape[0]
    lam = lam_factor / np.linalg.eigvalsh(sigma)[0]
    v = np.random.default_rng(seed).standard_normal((3, d))
    delta = G.optimal_perturbation(v, sigma, lam=lam)
    inv = np.linalg.inv(sigma)
    for vi, di in zip(v, delta):
        def neg(dd: np.ndarray) -> tuple[float, np.ndarray]:
            z = inv @ (vi + dd)
            return -(0.5 * (vi + dd) @ z - 0.5 * lam * dd @ dd), -(z - lam * dd)
        res = minimize(neg, np.zeros(d), jac=True, method="BFGS", options={"gtol": 1e-10})
        assert neg(di)[0] <= res.fun + 1e-8 * (1 + abs(res.fun))
        assert np.allclose(di, res.x, atol=1e-5 * (1 + np.abs(di).max()))
    # Lemma 1's closed form, through an explicit linear solve.
    assert np.allclose(delta, np.linalg.solve(lam * sigma - np.eye(d), v.T).T)


def _sphere_max(v: np.ndarray, inv: np.ndarray, eps: float, rng: np.random.Generator, starts: int = 8) -> float:
    """max over ‖δ‖ = ε of ½(v+δ)ᵀΣ⁻¹(v+δ) by BFGS on δ = εu/‖u‖ from many random starts."""
    def neg(u: np.ndarray) -> tuple[float, np.ndarray]:
        r = np.linalg.norm(u)
        unit = u / r
        z = v + eps * unit
        az = inv @ z
        return -0.5 * z @ az, -(eps / r) * (az - unit * (unit @ az))
    return -min(minimize(neg, rng.standard_normal(v.size), jac=True, method="BFGS").fun for _ in range(starts))


@settings(max_examples=12, deadline=None)
@given(sigma=spd_matrices(max_d=4), eps=st.floats(0.01, 5.0), scale=st.floats(0.0, 3.0), seed=st.integers(0, 10_000))
def test_ball_perturbation_is_the_global_maximiser(sigma: np.ndarray, eps: float, scale: float, seed: int) -> None:
    d = sigma.shape[0]
    rng = np.random.default_rng(seed)
    v = scale * rng.standard_normal((2, d))
    delta = G.optimal_perturbation(v, sigma, eps=eps)
    lam = G.perturbation_multiplier(v, sigma, eps)
    inv = np.linalg.inv(sigma)
    s_min = np.linalg.eigvalsh(sigma)[0]
    assert np.allclose(np.linalg.norm(delta, axis=1), eps, rtol=1e-10)
    assert np.all(lam >= 1 / s_min * (1 - 1e-12))
    for vi, di, li in zip(v, delta, lam):
        ours = 0.5 * (vi + di) @ inv @ (vi + di)
        assert ours >= _sphere_max(vi, inv, eps, rng) - 1e-8 * (1 + abs(ours))
        # KKT of the trust-region problem: (λΣ − I)δ = v.
        assert np.allclose((li * sigma - np.eye(d)) @ di, vi, atol=1e-7 * (1 + li * np.abs(sigma).max() * eps))


def test_ball_hard_case_and_degenerate_inputs() -> None:
    sigma = np.diag([1.0, 2.0, 4.0])
    inv = np.linalg.inv(sigma)
    rng = np.random.default_rng(0)
    # Hard case: v has no component on Σ's smallest eigenvector and is short, so λ = 1/σ_min and the
    # leftover length goes to that eigenvector (either sign is optimal).
    v = np.array([[0.0, 0.1, 0.1]])
    delta = G.optimal_perturbation(v, sigma, eps=2.0)
    assert G.perturbation_multiplier(v, sigma, 2.0)[0] == pytest.approx(1.0)
    assert np.linalg.norm(delta) == pytest.approx(2.0)
    assert 0.5 * (v[0] + delta[0]) @ inv @ (v[0] + delta[0]) == pytest.approx(_sphere_max(v[0], inv, 2.0, rng), rel=1e-9)
    # Tiny component on that eigenvector (near-hard case): same answer to first order.
    v_near = v + np.array([[1e-12, 0.0, 0.0]])
    assert np.allclose(np.abs(G.optimal_perturbation(v_near, sigma, eps=2.0)), np.abs(delta), atol=1e-8)
    # v = 0: the whole budget along Σ's smallest eigenvector.
    d0 = G.optimal_perturbation(np.zeros((1, 3)), sigma, eps=0.5)
    assert np.allclose(np.abs(d0), [[0.5, 0.0, 0.0]])
    # Isotropic Σ: δ = ε v/‖v‖.
    v_iso = rng.standard_normal((4, 3))
    d_iso = G.optimal_perturbation(v_iso, 2.0 * np.eye(3), eps=0.3)
    assert np.allclose(d_iso, 0.3 * v_iso / np.linalg.norm(v_iso, axis=1, keepdims=True))
    # eps = 0: no perturbation. Seeded tie-breaking is reproducible.
    assert np.array_equal(G.optimal_perturbation(v_iso, sigma, eps=0.0), np.zeros_like(v_iso))
    zeros = np.zeros((6, 3))
    assert np.array_equal(G.optimal_perturbation(zeros, sigma, eps=1.0, seed=4),
                          G.optimal_perturbation(zeros, sigma, eps=1.0, seed=4))


# ---------------------------------------------------------------------------------- Theorem 1
@SETTINGS
@given(sigma=spd_matrices(), c_factor=st.floats(1.1, 10.0))
def test_vulnerability_gap_matches_explicit_matrix_formula(sigma: np.ndarray, c_factor: float) -> None:
    d = sigma.shape[0]
    c = c_factor / np.linalg.eigvalsh(sigma)[0]
    m = np.eye(d) + np.linalg.inv(c * sigma - np.eye(d))
    assert G.vulnerability_gap(sigma, c) == pytest.approx(np.trace(m @ m) - d, rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vulnerability_gap_is_the_monte_carlo_increase_of_the_quadratic_term(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = 4
    sigma = spd_from(np.exp(rng.uniform(-1, 1, d)), seed)
    c = 1.5 / np.linalg.eigvalsh(sigma)[0]
    n = 200_000
    v = rng.standard_normal((n, d)) @ np.linalg.cholesky(sigma).T
    delta = G.optimal_perturbation(v, sigma, lam=c)
    inv = np.linalg.inv(sigma)
    diff = quad(v + delta, inv) - quad(v, inv)
    se = diff.std() / math.sqrt(n)
    assert abs(diff.mean() - G.vulnerability_gap(sigma, c)) <= 5 * se


@SETTINGS
@given(sigma=spd_matrices(min_d=2), c_factor=st.floats(1.05, 10.0))
def test_isotropic_covariance_minimises_the_gap_at_fixed_trace(sigma: np.ndarray, c_factor: float) -> None:
    d = sigma.shape[0]
    c = c_factor / np.linalg.eigvalsh(sigma)[0]   # valid for Σ, hence for (k/d)I (σ_min ≤ k/d)
    iso = np.trace(sigma) / d * np.eye(d)
    assert G.vulnerability_gap(iso, c) <= G.vulnerability_gap(sigma, c) * (1 + 1e-10) + 1e-12


def test_numerical_minimiser_of_the_gap_at_fixed_trace_is_isotropic() -> None:
    d, k, c = 4, 8.0, 2.0
    rng = np.random.default_rng(0)

    def gap(eigs: np.ndarray) -> float:
        if np.any(c * eigs <= 1.0 + 1e-9):
            return 1e9
        return G.vulnerability_gap(np.diag(eigs), c)

    start = rng.dirichlet(np.ones(d)) * (k - d / c) + 1.0 / c + 1e-3
    start *= k / start.sum()
    res = minimize(gap, start, method="SLSQP", constraints=[{"type": "eq", "fun": lambda e: e.sum() - k}],
                   bounds=[(1.0 / c + 1e-6, k)] * d, options={"ftol": 1e-14, "maxiter": 500})
    assert np.allclose(res.x, k / d, atol=1e-4)


# ---------------------------------------------------------------------------------- Theorem 2
@SETTINGS
@given(sigma=spd_matrices(), lam=st.floats(0.01, 100.0))
def test_robust_covariance_is_the_stationary_point(sigma: np.ndarray, lam: float) -> None:
    d = sigma.shape[0]
    sigma_r = G.robust_covariance(sigma, lam)
    # Shares eigenvectors: commutes with Σ*.
    assert np.allclose(sigma_r @ sigma, sigma @ sigma_r, atol=1e-9 * np.abs(sigma_r).max() * np.abs(sigma).max())
    # Matrix stationarity of ½ log det Σ + (λ/2) tr((λΣ − I)⁻¹Σ*), with explicit inverses:
    # Σ⁻¹ = λ²(λΣ − I)⁻¹ Σ* (λΣ − I)⁻¹.
    m = np.linalg.inv(lam * sigma_r - np.eye(d))
    assert np.allclose(np.linalg.inv(sigma_r), lam**2 * m @ sigma @ m, rtol=1e-7, atol=1e-9 * np.abs(np.linalg.inv(sigma_r)).max())
    # Per eigendirection, 1-D minimisation of log s + σλ/(λs − 1) over s > 1/λ lands on the formula.
    sig_eigs = np.linalg.eigvalsh(sigma)
    r_eigs = np.linalg.eigvalsh(sigma_r)
    for sg, sr in zip(sig_eigs, r_eigs):
        f = lambda log_t: math.log(1 / lam + math.exp(log_t)) + sg * lam / (lam * (1 / lam + math.exp(log_t)) - 1)
        res = minimize_scalar(f, bounds=(-40.0, 40.0), method="bounded", options={"xatol": 1e-12})
        assert 1 / lam + math.exp(res.x) == pytest.approx(sr, rel=1e-5)
        assert (lam * sr - 1) ** 2 == pytest.approx(lam**2 * sr * sg, rel=1e-9)


@SETTINGS
@given(sigma=spd_matrices(), lam=st.floats(0.01, 100.0))
def test_robust_covariance_is_better_conditioned(sigma: np.ndarray, lam: float) -> None:
    e, er = np.linalg.eigvalsh(sigma), np.linalg.eigvalsh(G.robust_covariance(sigma, lam))
    assert er[-1] / er[0] <= e[-1] / e[0] * (1 + 1e-10)
    assert G.worst_case_alignment(G.robust_covariance(sigma, lam)) >= G.worst_case_alignment(sigma) - 1e-12


@SETTINGS
@given(sigma=spd_matrices(), eps=st.floats(0.01, 20.0), ratio=st.floats(1.01, 5.0))
def test_lambda_for_epsilon_solves_the_budget_and_decreases(sigma: np.ndarray, eps: float, ratio: float) -> None:
    d = sigma.shape[0]
    lam = G.lambda_for_epsilon(sigma, eps)
    m = np.linalg.inv(lam * G.robust_covariance(sigma, lam) - np.eye(d))
    # E‖M v‖² for v ~ N(0, Σ*) is tr(M Σ* M).
    assert np.trace(m @ sigma @ m) == pytest.approx(eps**2, rel=1e-9)
    assert G.lambda_for_epsilon(sigma, eps * ratio) < lam
    _, sigma_r_big = G.robust_parameters(np.zeros(d), sigma, eps * ratio)
    e_small, e_big = np.linalg.eigvalsh(G.robust_covariance(sigma, lam)), np.linalg.eigvalsh(sigma_r_big)
    # Σ_r blends toward a multiple of I as ε grows.
    assert e_big[-1] / e_big[0] <= e_small[-1] / e_small[0] * (1 + 1e-10)


def test_lambda_budget_by_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    sigma = spd_from(np.array([0.3, 1.0, 4.0]), seed=5)
    eps = 1.7
    mu_r, sigma_r = G.robust_parameters(np.ones(3), sigma, eps)
    assert np.array_equal(mu_r, np.ones(3))
    lam = G.lambda_for_epsilon(sigma, eps)
    n = 200_000
    v = rng.standard_normal((n, 3)) @ np.linalg.cholesky(sigma).T
    norms2 = np.sum(G.optimal_perturbation(v, sigma_r, lam=lam) ** 2, axis=1)
    assert abs(norms2.mean() - eps**2) <= 5 * norms2.std() / math.sqrt(n)
    assert np.array_equal(G.robust_parameters(np.ones(3), sigma, 0.0)[1], 0.5 * (sigma + sigma.T))


# ---------------------------------------------------------------------------------- Theorem 3
@settings(max_examples=10, deadline=None)
@given(sigma=spd_matrices(min_d=2, max_d=5), seed=st.integers(0, 1000))
def test_worst_case_alignment_matches_numerical_minimum(sigma: np.ndarray, seed: int) -> None:
    bound = G.worst_case_alignment(sigma)
    assert G.worst_case_alignment_numeric(sigma, seed=seed, restarts=4) == pytest.approx(bound, abs=1e-7)
    assert G.gradient_alignment(G.worst_case_direction(sigma), sigma) == pytest.approx(bound, abs=1e-10)
    mus = np.random.default_rng(seed).standard_normal((50, sigma.shape[0]))
    assert min(G.gradient_alignment(m, sigma) for m in mus) >= bound - 1e-12


def test_gradient_alignment_independent_formula() -> None:
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    mu = np.array([1.0, -2.0])
    g = np.linalg.solve(sigma, mu)
    assert G.gradient_alignment(mu, sigma) == pytest.approx(mu @ g / np.linalg.norm(mu) / np.linalg.norm(g))
    assert G.worst_case_alignment(3.0 * np.eye(4)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------- bad input
GOOD = np.array([[2.0, 0.3], [0.3, 1.0]])


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: G.robust_covariance(np.array([[1.0, 0.5], [0.0, 1.0]]), 1.0), "symmetric"),
        (lambda: G.robust_covariance(np.diag([1.0, -1.0]), 1.0), "positive definite"),
        (lambda: G.robust_covariance(np.diag([1.0, 0.0]), 1.0), "positive definite"),
        (lambda: G.robust_covariance(np.array([[1.0, np.nan], [np.nan, 1.0]]), 1.0), "finite"),
        (lambda: G.robust_covariance(np.ones(3), 1.0), "square"),
        (lambda: G.robust_covariance(GOOD, 0.0), "lam"),
        (lambda: G.robust_covariance(GOOD, -1.0), "lam"),
        (lambda: G.lambda_for_epsilon(GOOD, -0.1), "eps"),
        (lambda: G.lambda_for_epsilon(GOOD, float("nan")), "eps"),
        (lambda: G.robust_parameters(np.ones(3), GOOD, 1.0), "d = 3"),
        (lambda: G.robust_parameters(np.ones(2), GOOD, -1.0), "eps"),
        (lambda: G.vulnerability_gap(GOOD, 0.5), "1/sigma_min"),
        (lambda: G.vulnerability_gap(np.diag([1.0, 2.0]), 1.0), "1/sigma_min"),
        (lambda: G.optimal_perturbation(np.ones((2, 2)), GOOD, lam=0.5), "1/sigma_min"),
        (lambda: G.optimal_perturbation(np.ones((2, 2)), GOOD, eps=-1.0), "eps"),
        (lambda: G.optimal_perturbation(np.ones((2, 2)), GOOD), "exactly one"),
        (lambda: G.optimal_perturbation(np.ones((2, 2)), GOOD, lam=2.0, eps=1.0), "exactly one"),
        (lambda: G.optimal_perturbation(np.ones((2, 3)), GOOD, eps=1.0), "expected d = 3"),
        (lambda: G.optimal_perturbation(np.array([[np.nan, 1.0]]), GOOD, eps=1.0), "finite"),
        (lambda: G.sample(np.ones(2), GOOD, 0, seed=0), "n"),
        (lambda: G.sample(np.ones(3), GOOD, 10, seed=0), "d = 3"),
        (lambda: G.mle(np.ones((4, 2)), np.array([1, -1, 0, 1])), "labels"),
        (lambda: G.mle(np.ones((4, 2)), np.array([1, -1, 1])), "length"),
        (lambda: G.adversarial_train(np.ones((4, 2)), np.array([1, -1, 1, -1]), eps=1.0), "positive definite"),
        (lambda: G.adversarial_train(*G.sample(np.ones(2), GOOD, 50, 0), lam=1.0, eps=1.0), "exactly one"),
        (lambda: G.adversarial_train(*G.sample(np.ones(2), GOOD, 50, 0), lam=1.0, steps=-1), "steps"),
        (lambda: G.worst_case_alignment(np.diag([1.0, -2.0])), "positive definite"),
        (lambda: G.gradient_alignment(np.zeros(2), GOOD), "non-zero"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(call, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        call()


@pytest.mark.parametrize("start", [0.0, 1e-3, 1.0, 1e6])
def test_ball_solver_warm_start_from_anywhere_reaches_the_same_root(start: float) -> None:
    # adversarial_train warm-starts each inner solve from the previous λ; any start must be safe.
    rng = np.random.default_rng(0)
    s = np.array([0.5, 0.5, 1.0, 3.0])
    w = rng.standard_normal((200, 4))
    w[:5, :2] = 0.0                      # a few hard / near-hard rows
    cold, lam_cold = G._ball_coords(w, s, 1.3)
    warm, lam_warm = G._ball_coords(w, s, 1.3, lam_init=np.full(200, 1 / s[0] + start))
    assert np.allclose(lam_warm, lam_cold, rtol=1e-10)
    assert np.allclose(np.abs(warm), np.abs(cold), atol=1e-10)


def test_robust_objective_matches_independent_inner_maximisation() -> None:
    mu = np.array([0.5, -1.0, 0.2])
    sigma = spd_from(np.array([0.4, 1.0, 2.5]), seed=9)
    x, y = G.sample(mu, sigma, 12, seed=9)
    v = x - y[:, None] * mu
    inv = np.linalg.inv(sigma)
    const = 0.5 * np.log(np.linalg.det(2 * np.pi * sigma))
    # Penalised form: max_δ ½(v+δ)ᵀΣ⁻¹(v+δ) − (λ/2)‖δ‖² = (λ/2) vᵀ(λΣ − I)⁻¹v (complete the square).
    lam = 4.0
    expected = const + 0.5 * lam * np.mean(quad(v, np.linalg.inv(lam * sigma - np.eye(3))))
    assert G.robust_objective(x, y, mu, sigma, lam=lam) == pytest.approx(expected, rel=1e-12)
    # Ball form: mean of const + the sphere maximum found by multi-start BFGS.
    rng = np.random.default_rng(0)
    eps = 0.7
    expected_ball = const + np.mean([_sphere_max(vi, inv, eps, rng, starts=16) for vi in v])
    assert G.robust_objective(x, y, mu, sigma, eps=eps) == pytest.approx(expected_ball, rel=1e-9)
