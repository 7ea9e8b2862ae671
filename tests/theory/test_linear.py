"""Goodfellow et al.: FGSM is the exact ℓ∞ worst case of a linear/logistic model; adversarial vs L1 training."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from theory.linear import (
    adversarial_logistic_loss,
    brute_force_worst_logistic_loss,
    fgsm_linear,
    fgsm_logistic,
    l1_vs_adversarial,
    linear_shift_table,
    logistic_input_gradient,
    logistic_loss,
    max_linear_shift,
    softplus,
    train_logistic,
)

SETTINGS = settings(max_examples=30, deadline=None)


def problem(seed: int, n: int = 6, d: int = 5) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    b = float(rng.standard_normal())
    x = rng.standard_normal((n, d))
    y = rng.choice([-1, 1], size=n)
    return w, b, x, y


def test_softplus_is_stable_and_correct() -> None:
    z = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 30.0, 800.0])
    with np.errstate(over="raise"):
        out = softplus(z)
    assert np.all(np.isfinite(out))
    assert out[-1] == pytest.approx(800.0) and out[0] >= 0
    mid = z[1:-1]
    assert np.allclose(out[1:-1], np.log1p(np.exp(mid)))


def test_input_gradient_matches_finite_differences() -> None:
    w, b, x, y = problem(0)
    g = logistic_input_gradient(w, b, x, y)
    h = 1e-6
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        fd = (logistic_loss(w, b, x + e, y) - logistic_loss(w, b, x - e, y)) / (2 * h)
        assert np.allclose(g[:, j], fd, atol=1e-7)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 8), eps=st.floats(0.0, 2.0))
def test_fgsm_is_the_exact_l_inf_worst_case(seed: int, d: int, eps: float) -> None:
    w, b, x, y = problem(seed, d=d)
    brute = brute_force_worst_logistic_loss(w, b, x, y, eps)  # max over all 2^d corners
    closed = adversarial_logistic_loss(w, b, x, y, eps)
    at_fgsm = logistic_loss(w, b, fgsm_logistic(w, b, x, y, eps), y)
    assert np.allclose(closed, brute, rtol=1e-12, atol=1e-12)
    assert np.allclose(at_fgsm, brute, rtol=1e-12, atol=1e-12)
    # corners suffice: random interior points of the box never do better
    rng = np.random.default_rng(seed)
    for _ in range(20):
        delta = rng.uniform(-eps, eps, size=x.shape)
        assert np.all(logistic_loss(w, b, x + delta, y) <= closed + 1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 10), eps=st.floats(0.0, 3.0))
def test_linear_fgsm_moves_the_score_by_the_max_shift(seed: int, d: int, eps: float) -> None:
    rng = np.random.default_rng(seed)
    w, x = rng.standard_normal(d), rng.standard_normal((4, d))
    moved = (fgsm_linear(w, x, eps) - x) @ w
    assert np.allclose(moved, max_linear_shift(w, eps))
    bits = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    assert max_linear_shift(w, eps) == pytest.approx(float((eps * (2.0 * bits - 1.0) @ w).max()))
    assert np.allclose(max_linear_shift(np.vstack([w, 2 * w]), eps), [eps * np.abs(w).sum(), 2 * eps * np.abs(w).sum()])


def test_l1_penalty_is_outside_and_adversarial_inside() -> None:
    w, b, x, y = problem(3, n=200)
    eps = 0.3
    losses = l1_vs_adversarial(w, b, x, y, eps)
    assert np.all(losses["plain"] <= losses["adversarial"] + 1e-12)
    assert np.all(losses["adversarial"] <= losses["l1"] + 1e-12)
    penalty = eps * np.abs(w).sum()
    assert np.allclose(losses["l1"] - losses["plain"], penalty)  # always paid in full
    # the adversarial penalty fades for confidently right examples and is paid in full for wrong ones
    big = 50.0 / np.abs(w).sum()
    x_right = np.outer(y, np.sign(w)) * big
    x_wrong = -x_right
    right = l1_vs_adversarial(w, 0.0, x_right, y, eps)
    wrong = l1_vs_adversarial(w, 0.0, x_wrong, y, eps)
    assert np.all(right["adversarial"] - right["plain"] < 1e-12)  # ≈ ζ'(−50)·penalty ≈ e^-50
    assert np.allclose(wrong["adversarial"] - wrong["plain"], penalty, atol=1e-12)


# ------------------------------------------------------------------ training
def _data(seed: int = 0, n: int = 400, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice([-1, 1], size=n)
    mu = np.array([1.0, 0.5, 0.2, 0.0][:d] + [0.0] * max(0, d - 4))
    x = y[:, None] * mu[None, :] + rng.standard_normal((n, d))
    return x, y


def test_plain_training_agrees_with_an_independent_smooth_solver() -> None:
    x, y = _data()
    w, b = train_logistic(x, y)

    def f(theta: np.ndarray) -> float:
        return float(logistic_loss(theta[:-1], theta[-1], x, y).mean())

    ref = minimize(f, np.zeros(x.shape[1] + 1), method="BFGS", options={"gtol": 1e-10})
    assert np.allclose(np.append(w, b), ref.x, atol=1e-4)


def test_l1_training_satisfies_the_kkt_conditions() -> None:
    x, y = _data(d=4)
    lam = 0.05
    w, b = train_logistic(x, y, method="l1", lam=lam)
    margin = y * (x @ w + b)
    s = -y * (1 / (1 + np.exp(margin))) / len(y)  # d(mean loss)/d(score)
    grad_w, grad_b = x.T @ s, s.sum()
    assert abs(grad_b) < 1e-6
    zero = np.abs(w) < 1e-8
    assert np.any(zero)  # the useless 4th coordinate (and maybe the weak 3rd) is cut to exactly 0
    assert np.all(np.abs(grad_w[zero]) <= lam + 1e-6)
    assert np.allclose(grad_w[~zero], -lam * np.sign(w[~zero]), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_adversarial_training_minimises_the_exact_adversarial_loss(alpha: float) -> None:
    """Compare with a derivative-free search over the objective written from the loss functions."""
    x, y = _data(d=2, n=300)
    eps = 0.3
    w, b = train_logistic(x, y, method="adversarial", eps=eps, alpha=alpha)

    def objective(theta: np.ndarray) -> float:
        wv, bv = theta[:-1], theta[-1]
        return float(alpha * logistic_loss(wv, bv, x, y).mean()
                     + (1 - alpha) * adversarial_logistic_loss(wv, bv, x, y, eps).mean())

    ours = objective(np.append(w, b))
    best = min(
        (minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000})
         for start in (np.zeros(3), np.ones(3), np.array([2.0, -1.0, 0.5]))),
        key=lambda r: r.fun,
    )
    assert ours <= best.fun + 1e-9
    assert np.allclose(np.append(w, b), best.x, atol=1e-3)


def test_adversarial_training_shrinks_weights_and_kills_weak_ones() -> None:
    x, y = _data(d=4, n=2000)
    w_plain, _ = train_logistic(x, y)
    w_adv, _ = train_logistic(x, y, method="adversarial", eps=0.3)
    assert np.abs(w_adv).sum() < np.abs(w_plain).sum()
    # the feature with mean 0.2 < eps cannot survive the shift; the strong one does
    assert abs(w_adv[2]) < 1e-6 and abs(w_adv[3]) < 1e-6 and w_adv[0] > 0.1
    # beyond the strongest feature's mean nothing is robustly useful: w = 0
    w_big, _ = train_logistic(x, y, method="adversarial", eps=1.5)
    assert np.allclose(w_big, 0.0, atol=1e-6)


def test_training_rejects_bad_arguments() -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="method"):
        train_logistic(x, y, method="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        train_logistic(x, y, method="adversarial", eps=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        train_logistic(x, y, method="adversarial", eps=0.1, alpha=1.5)
    with pytest.raises(ValueError, match="y must hold"):
        train_logistic(x, np.zeros(len(y)))
    with pytest.raises(ValueError, match="x must have shape"):
        train_logistic(x[:, 0], y)
    with pytest.raises(ValueError, match="finite"):
        logistic_loss(np.array([np.nan, 1.0]), 0.0, np.ones((2, 2)), np.array([1, -1]))
    with pytest.raises(ValueError, match="x must have shape"):
        adversarial_logistic_loss(np.ones(3), 0.0, np.ones((2, 2)), np.array([1, -1]), 0.1)
    with pytest.raises(ValueError, match="d must be <= 16"):
        brute_force_worst_logistic_loss(np.ones(17), 0.0, np.ones((1, 17)), np.array([1]), 0.1)
    with pytest.raises(ValueError, match="ns"):
        linear_shift_table([0, 10], 0.1)


# ------------------------------------------------------------- dimension law
def test_max_shift_grows_linearly_with_dimension() -> None:
    eps = 0.01
    ns = [10, 100, 1_000, 10_000, 100_000]
    table = linear_shift_table(ns, eps, seed=0)
    assert [r["n"] for r in table] == ns
    m = math.sqrt(2 / math.pi)
    sd_abs = math.sqrt(1 - 2 / math.pi)  # sd of |N(0, 1)|
    for row in table:
        # ‖w‖₁/n is a mean of n |N(0,1)|: CLT tolerance of 5 standard errors
        assert abs(row["ratio"] - 1) < 5 * sd_abs / (m * math.sqrt(row["n"]))
        assert row["max_shift"] == pytest.approx(row["ratio"] * eps * m * row["n"])
    # linear growth: a 10x larger dimension gives a ~10x larger shift at large n
    assert table[-1]["max_shift"] / table[-2]["max_shift"] == pytest.approx(10, rel=0.05)
    # a random-sign perturbation gains only ~eps·√n: far less at large n
    assert table[-1]["random_sign_shift"] < 0.02 * table[-1]["max_shift"]
    assert linear_shift_table(ns, eps, seed=0) == table  # seeded
