"""Robust-feature definitions: closed forms vs the PGD estimator, brute force and Monte Carlo."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.features import (
    LinearFeature,
    classify_feature,
    dual_norm,
    gaussian_features,
    linear_worst_case,
    pgd_worst_case,
    robust_usefulness,
    standardise,
    tsipras_features,
    usefulness,
)
from theory.tradeoff import TradeoffModel

SETTINGS = settings(max_examples=25, deadline=None)


def by_name(reports: list) -> dict:
    return {r.name: r for r in reports}


# ------------------------------------------------------------------ basics
def test_standardise_and_usefulness() -> None:
    rng = np.random.default_rng(0)
    v = standardise(3 + 2 * rng.standard_normal(100))
    assert abs(v.mean()) < 1e-12 and v.std() == pytest.approx(1.0)
    y = np.array([1, -1, 1, -1])
    assert usefulness(np.array([1.0, -1.0, 1.0, -1.0]), y) == 1.0
    assert usefulness(np.array([-1.0, 1.0, -1.0, 1.0]), y) == -1.0


def test_bad_inputs_raise_named_errors() -> None:
    with pytest.raises(ValueError, match="constant"):
        standardise(np.ones(5))
    with pytest.raises(ValueError, match="y must have shape"):
        usefulness(np.ones(3), np.array([1, -1]))
    with pytest.raises(ValueError, match="y must hold"):
        usefulness(np.ones(2), np.array([1, 0]))
    with pytest.raises(ValueError, match="norm"):
        dual_norm(np.ones(2), "l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="s must"):
        LinearFeature(np.ones(2), 0.0, 0.0)
    f = LinearFeature(np.ones(2), 0.0, 1.0)
    with pytest.raises(ValueError, match="eps"):
        linear_worst_case(f, np.ones((3, 2)), np.ones(3), -0.1, "linf")
    with pytest.raises(ValueError, match="finite"):
        pgd_worst_case(f, np.array([[np.nan, 0.0]]), np.ones(1), 0.1)
    with pytest.raises(ValueError, match="rho"):
        classify_feature(float("nan"), 0.1)
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_features(np.ones(2), np.diag([1.0, -1.0]), 0.1)
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_features(np.ones(2), np.array([[1.0, 0.5], [0.0, 1.0]]), 0.1)
    with pytest.raises(ValueError, match="sigma_star"):
        gaussian_features(np.ones(2), np.eye(3), 0.1)
    with pytest.raises(ValueError, match="model"):
        tsipras_features("tsipras", 0.1)  # type: ignore[arg-type]


def test_classify_feature() -> None:
    assert classify_feature(0.0, -1.0) == "useless"
    assert classify_feature(-0.3, 0.0) == "useless"
    assert classify_feature(0.5, 0.2) == "robust"
    assert classify_feature(0.5, 0.0) == "non-robust"  # γ must be > 0
    assert classify_feature(0.5, -0.2) == "non-robust"


# ------------------------------------------- linear closed form vs PGD / brute force
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 6), eps=st.floats(0.0, 1.0), norm=st.sampled_from(["linf", "l2"]))
def test_linear_closed_form_matches_pgd_and_brute_force(seed: int, d: int, eps: float, norm: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, d))
    y = rng.choice([-1, 1], size=30)
    f = LinearFeature.fit(rng.standard_normal(d), x)
    exact = linear_worst_case(f, x, y, eps, norm)
    # one full step of length eps reaches the minimiser for a linear feature
    pgd = pgd_worst_case(f, x, y, eps, norm=norm, grad_f=f.grad, steps=3, alpha=eps)
    assert np.allclose(pgd, exact, atol=1e-10)
    # the finite-difference gradient path gives the same
    pgd_fd = pgd_worst_case(f, x, y, eps, norm=norm, steps=3, alpha=eps)
    assert np.allclose(pgd_fd, exact, atol=1e-6)
    # independent check: sample the ball's boundary densely; nothing goes below the closed form
    if norm == "linf":
        bits = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
        deltas = eps * (2.0 * bits - 1.0)
        brute = (y[:, None] * f(x[:, None, :] + deltas[None, :, :])).min(axis=1)
        assert np.allclose(brute, exact, atol=1e-10)
    else:
        dirs = rng.standard_normal((2000, d))
        dirs = eps * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        sampled = (y[:, None] * f(x[:, None, :] + dirs[None, :, :])).min(axis=1)
        assert np.all(sampled >= exact - 1e-10)
        assert robust_usefulness(f, x, y, eps, norm=norm) == pytest.approx(exact.mean())


def test_pgd_on_a_nonlinear_feature_matches_a_grid_search() -> None:
    """f(x) = sin(2x₁) + 0.5·x₂², ℓ2 ball in 2-D: compare with a fine polar grid over the disc."""
    def f(z: np.ndarray) -> np.ndarray:
        return np.sin(2 * z[..., 0]) + 0.5 * z[..., 1] ** 2

    def grad(z: np.ndarray) -> np.ndarray:
        return np.stack([2 * np.cos(2 * z[:, 0]), z[:, 1]], axis=1)

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(25, 2))
    y = rng.choice([-1, 1], size=25)
    eps = 0.4
    r = np.linspace(0, eps, 201)
    t = np.linspace(0, 2 * np.pi, 721)
    grid = np.stack([np.outer(r, np.cos(t)).ravel(), np.outer(r, np.sin(t)).ravel()], axis=1)
    brute = (y[:, None] * f(x[:, None, :] + grid[None, :, :])).min(axis=1)
    pgd = pgd_worst_case(f, x, y, eps, norm="l2", grad_f=grad, steps=200, alpha=0.01)
    assert np.all(pgd >= brute - 1e-3)  # cannot beat the true infimum (up to the grid)
    assert np.all(pgd <= brute + 1e-3)  # and finds it (the landscape is simple at this scale)
    fd = pgd_worst_case(f, x, y, eps, norm="l2", steps=200, alpha=0.01)
    assert np.allclose(fd, pgd, atol=1e-5)


# ------------------------------------------------------------ Tsipras model
def test_tsipras_features_closed_forms_match_monte_carlo() -> None:
    m = TradeoffModel(0.9, 0.3, 16)
    n = 100_000
    x, y = m.sample(n, seed=0)
    eps = 0.2
    rep = by_name(tsipras_features(m, eps))
    tol = 5 / math.sqrt(n)  # y·f has variance ≤ E[f²] = 1
    e = np.zeros(m.dim)
    e[0] = 1.0
    weak = np.zeros(m.dim)
    weak[3] = 1.0
    avg = np.r_[0.0, np.ones(m.d)]
    for name, w in (("x1", e), ("weak", weak), ("average", avg)):
        f = LinearFeature.fit(w, x)
        assert usefulness(f(x), y) == pytest.approx(rep[name].rho, abs=tol)
        assert robust_usefulness(f, x, y, eps, norm="linf") == pytest.approx(rep[name].gamma, abs=tol)
    # sign(x₁): brute force over δ₁ ∈ [−eps, eps] (the other coordinates do not matter)
    for eps_s in (0.5, 0.99, 1.0, 1.3):
        deltas = np.linspace(-eps_s, eps_s, 101)
        worst = (y[:, None] * np.sign(x[:, :1] + deltas[None, :])).min(axis=1).mean()
        assert by_name(tsipras_features(m, eps_s))["sign(x1)"].gamma == pytest.approx(worst, abs=tol)


def test_tsipras_average_under_l2_matches_monte_carlo() -> None:
    m = TradeoffModel(0.9, 0.3, 16)
    x, y = m.sample(50_000, seed=1)
    f = LinearFeature.fit(np.r_[0.0, np.ones(m.d)], x)
    eps = 0.7
    gamma = by_name(tsipras_features(m, eps, norm="l2"))["average"].gamma
    assert robust_usefulness(f, x, y, eps, norm="l2") == pytest.approx(gamma, abs=5 / math.sqrt(len(y)))


@pytest.mark.parametrize("p", [0.6, 0.95])
def test_tsipras_classification(p: float) -> None:
    eta = 0.25
    m = TradeoffModel(p, eta, 50)
    below, above = by_name(tsipras_features(m, 0.5 * eta)), by_name(tsipras_features(m, 1.5 * eta))
    assert below["weak"].kind == "robust" and above["weak"].kind == "non-robust"
    assert by_name(tsipras_features(m, eta))["weak"].kind == "non-robust"  # γ = 0 at ε = η
    assert above["average"].kind == "non-robust"
    # linear x₁ survives iff ε < 2p − 1; sign(x₁) for every ε < 1
    assert by_name(tsipras_features(m, 2 * p - 1 - 0.01))["x1"].kind == "robust"
    assert by_name(tsipras_features(m, 2 * p - 1 + 0.01))["x1"].kind == "non-robust"
    assert by_name(tsipras_features(m, 0.99))["sign(x1)"].kind == "robust"
    assert by_name(tsipras_features(m, 1.0))["sign(x1)"].kind == "non-robust"
    # at p = 1/2, x₁ carries no information
    assert by_name(tsipras_features(TradeoffModel(0.5, eta, 5), 0.1))["x1"].kind == "useless"


# ------------------------------------------------------------ Gaussian model
def _random_gaussian(seed: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d))
    return rng.standard_normal(d) * 2, a @ a.T + 0.3 * np.eye(d)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 5), eps=st.floats(0.0, 3.0))
def test_gaussian_features_robust_iff_mean_projection_exceeds_eps(seed: int, d: int, eps: float) -> None:
    mu, sigma = _random_gaussian(seed, d)
    evals, evecs = np.linalg.eigh(sigma)
    reports = gaussian_features(mu, sigma, eps)
    assert len(reports) == d
    for k, rep in enumerate(reports):
        m_k = abs(evecs[:, k] @ mu)
        assert rep.rho > 0
        assert (rep.kind == "robust") == (m_k > eps)


def test_gaussian_features_match_monte_carlo() -> None:
    d = 3
    mu, sigma = _random_gaussian(4, d)
    n = 100_000
    rng = np.random.default_rng(5)
    y = rng.choice([-1, 1], size=n)
    x = y[:, None] * mu[None, :] + rng.multivariate_normal(np.zeros(d), sigma, size=n)
    evals, evecs = np.linalg.eigh(sigma)
    for norm in ("l2", "linf"):
        eps = 0.5
        reports = gaussian_features(mu, sigma, eps, norm=norm)
        for k, rep in enumerate(reports):
            v = evecs[:, k] * np.sign(evecs[:, k] @ mu)
            f = LinearFeature.fit(v, x)
            tol = 5 / math.sqrt(n)
            assert usefulness(f(x), y) == pytest.approx(rep.rho, abs=tol)
            assert robust_usefulness(f, x, y, eps, norm=norm) == pytest.approx(rep.gamma, abs=tol)
