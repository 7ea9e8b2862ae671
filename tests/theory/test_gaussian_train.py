"""Ilyas et al. Gaussian model: adversarial training from samples (theory.gaussian_train) against
Theorem 2 on the sample, Theorem 2 in the population up to sampling error, and local optimality of
the robust objective. The training never calls the closed forms it is compared with."""
from __future__ import annotations

import math

import numpy as np
import pytest

from _spd import spd_from
from theory import gaussian as G


# ----------------------------------------------------------------------- adversarial training
def _population_tolerance(sigma: np.ndarray, sigma_hat: np.ndarray, lam: float) -> float:
    """Weyl + mean value theorem: |f(σ̂_i) − f(σ_i)| ≤ max f'·‖Σ̂ − Σ‖_op, f = Theorem 2's map."""
    err = float(np.linalg.norm(sigma_hat - sigma, 2))
    e = np.linalg.eigvalsh(sigma)
    grid = np.linspace(max(e[0] - err, 1e-9), e[-1] + err, 2001)
    fprime = 0.5 + 0.5 * (1 / lam + grid / 2) / np.sqrt(grid / lam + grid**2 / 4)
    return float(fprime.max()) * err


@pytest.mark.parametrize("lam", [0.2, 1.0, 5.0])
def test_adversarial_training_with_penalty_converges_to_theorem_2(lam: float) -> None:
    d, n = 4, 20_000
    mu = np.array([1.0, -1.0, 0.5, 0.0])
    sigma = spd_from(np.array([0.3, 0.8, 2.0, 5.0]), seed=11)
    x, y = G.sample(mu, sigma, n, seed=12)
    mu_a, sigma_a, info = G.adversarial_train(x, y, lam=lam, return_info=True)
    assert info["converged"]
    # Exact on the sample: the robust objective's minimiser is Theorem 2 applied to the sample MLE.
    mu_hat, sigma_hat = G.mle(x, y)
    assert np.allclose(mu_a, mu_hat, atol=1e-8)
    assert np.allclose(sigma_a, G.robust_covariance(sigma_hat, lam), rtol=1e-7, atol=1e-8)
    # And the population Theorem 2 up to sampling error (tolerance from the realised ‖Σ̂ − Σ*‖).
    assert np.all(np.abs(mu_a - mu) <= 5 * np.sqrt(np.diag(sigma) / n))
    err = np.abs(np.linalg.eigvalsh(sigma_a) - np.linalg.eigvalsh(G.robust_covariance(sigma, lam)))
    assert np.all(err <= _population_tolerance(sigma, sigma_hat, lam) + 1e-7)
    # Robust training moved far from the MLE (the test is not trivially satisfied).
    assert np.linalg.norm(sigma_a - sigma_hat) > 0.1


def test_adversarial_training_is_a_local_minimum_of_the_robust_objective() -> None:
    x, y = G.sample(np.array([1.0, 0.0]), np.diag([0.5, 2.0]), 4000, seed=3)
    mu_a, sigma_a = G.adversarial_train(x, y, eps=0.8)
    f0 = G.robust_objective(x, y, mu_a, sigma_a, eps=0.8)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.standard_normal((2, 2)) * 1e-3
        f = G.robust_objective(x, y, mu_a + rng.standard_normal(2) * 1e-3, sigma_a + a @ a.T - np.trace(a @ a.T) / 2 * np.eye(2), eps=0.8)
        assert f >= f0 - 1e-12


def test_adversarial_training_with_balls_approaches_theorem_2_as_d_grows() -> None:
    # Per-example ℓ2 balls of radius ε = 0.5·√d vs the paper's relaxed (average-budget) adversary:
    # ‖(λΣ − I)⁻¹v‖² concentrates as d grows, so each example's λ approaches λ(ε).
    errors = []
    for d in (2, 8, 32):
        sigma = spd_from(np.exp(np.linspace(math.log(0.5), math.log(2.0), d)), seed=d)
        x, y = G.sample(np.linspace(-1, 1, d), sigma, 4_000, seed=d)
        eps = 0.5 * math.sqrt(d)
        _, sigma_a, info = G.adversarial_train(x, y, eps=eps, return_info=True)
        assert info["converged"]
        _, sigma_closed = G.robust_parameters(*G.mle(x, y), eps)
        e_a, e_c = np.linalg.eigvalsh(sigma_a), np.linalg.eigvalsh(sigma_closed)
        errors.append(float(np.max(np.abs(e_a - e_c) / e_c)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.012


def test_adversarial_training_at_zero_eps_is_the_mle() -> None:
    x, y = G.sample(np.array([0.5, -0.5]), np.array([[1.0, 0.3], [0.3, 0.5]]), 2000, seed=0)
    mu_a, sigma_a = G.adversarial_train(x, y, eps=0.0)
    mu_hat, sigma_hat = G.mle(x, y)
    assert np.allclose(mu_a, mu_hat) and np.allclose(sigma_a, sigma_hat)


@pytest.mark.slow
def test_adversarial_training_at_paper_scale() -> None:
    """d = 100, n = 20,000 (the issue's speed target): converges to Theorem 2 on the sample."""
    d, lam = 100, 0.5
    sigma = spd_from(np.exp(np.linspace(-1.0, 1.0, d)), seed=0)
    x, y = G.sample(np.zeros(d), sigma, 20_000, seed=0)
    _, sigma_a, info = G.adversarial_train(x, y, lam=lam, return_info=True)
    assert info["converged"]
    assert np.allclose(sigma_a, G.robust_covariance(G.mle(x, y)[1], lam), rtol=1e-6, atol=1e-7)
