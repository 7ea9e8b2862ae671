"""theory.symbolic: the sympy checks pass, detect wrong closed forms, and agree with numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from theory import symbolic
from theory.symbolic import THEOREM2_EIGENVALUE, dot, LAM, SIGMA

KAPPA = sp.Symbol("kappa", positive=True)


@pytest.fixture(scope="module")
def results() -> list[symbolic.CheckResult]:
    return symbolic.run_all()


def test_run_all_passes(results: list[symbolic.CheckResult]) -> None:
    assert [r.name for r in results] == [
        "theorem2_stationarity", "theorem1_gap", "adversarial_logistic_loss", "kantorovich_bound"]
    for r in results:
        assert r.passed and r.residual == "0", r
        assert r.statement
        assert set(r.to_dict()) == {"name", "statement", "passed", "residual"}
    assert symbolic.assert_all(results) is results


def test_assert_all_names_failures() -> None:
    bad = symbolic.CheckResult("made_up", "1 = 2", False, "1")
    with pytest.raises(AssertionError, match="made_up"):
        symbolic.assert_all([bad])


# ---------------------------------------------------------------- wrong closed forms are detected
@pytest.mark.parametrize("candidate", [
    SIGMA / 2 + 1 / LAM + sp.sqrt(SIGMA / LAM + SIGMA**2 / 5),  # perturbed coefficient
    SIGMA / 2 + 1 / LAM - sp.sqrt(SIGMA / LAM + SIGMA**2 / 4),  # the smaller root
    SIGMA + 1 / LAM,
])
def test_theorem2_detects_wrong_formula(candidate: sp.Expr) -> None:
    r = symbolic.check_theorem2(candidate)
    assert not r.passed and r.residual != "0"


def test_theorem2_accepts_equivalent_form() -> None:
    # The same root written as sympy's solver prints it: the check must not depend on the spelling.
    equivalent = SIGMA / 2 + 1 / LAM + sp.sqrt(SIGMA) * sp.sqrt(LAM * SIGMA + 4) / (2 * sp.sqrt(LAM))
    assert symbolic.check_theorem2(equivalent).passed


def test_theorem1_detects_wrong_formula() -> None:
    def no_square(c, S, d):
        return (sp.eye(d) + (c * S - sp.eye(d)).inv()).trace() - d

    def correct_alternative(c, S, d):
        # Σ_i (Cσ_i/(Cσ_i − 1))² − d, the same quantity written per eigenvalue.
        return sum((c * S[i, i] / (c * S[i, i] - 1)) ** 2 for i in range(d)) - d

    assert not symbolic.check_theorem1(candidate=no_square).passed
    assert symbolic.check_theorem1(candidate=correct_alternative).passed


def test_logistic_detects_papers_printed_form_and_half_penalty() -> None:
    printed = lambda w, x, b, y, e, l1: y * (e * l1 - dot(w, x) - b)  # noqa: E731  GF's typo
    half = lambda w, x, b, y, e, l1: e * l1 / 2 - y * (dot(w, x) + b)  # noqa: E731
    r = symbolic.check_adversarial_logistic(candidate=printed)
    assert not r.passed and "epsilon" in r.residual
    assert not symbolic.check_adversarial_logistic(candidate=half).passed


@pytest.mark.slow
def test_logistic_d3() -> None:
    assert symbolic.check_adversarial_logistic(d=3).passed


@pytest.mark.parametrize("candidate", [sp.sqrt(KAPPA) / (1 + KAPPA), 2 * KAPPA / (1 + KAPPA**2), 1 / KAPPA])
def test_kantorovich_detects_wrong_formula(candidate: sp.Expr) -> None:
    assert not symbolic.check_kantorovich(candidate).passed


# ---------------------------------------------------------- independent numerical cross-checks
@settings(max_examples=30, deadline=None)
@given(sigma=st.floats(0.01, 100.0), lam=st.floats(0.01, 100.0))
def test_theorem2_closed_form_minimises_objective_numerically(sigma: float, lam: float) -> None:
    """The closed form is the minimiser of log s + σλ/(λs − 1) over s > 1/λ (bounded search)."""
    closed = float(THEOREM2_EIGENVALUE.subs({SIGMA: sigma, LAM: lam}))
    f = lambda s: math.log(s) + sigma * lam / (lam * s - 1)  # noqa: E731
    lo, hi = 1 / lam * (1 + 1e-9), 10 * closed
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * hi})
    assert res.x == pytest.approx(closed, rel=1e-4)


@settings(max_examples=20, deadline=None)
@given(a=st.floats(0.05, 20.0), b=st.floats(0.05, 20.0))
def test_kantorovich_matches_brute_force_over_angles(a: float, b: float) -> None:
    t = np.linspace(0.0, math.pi / 2, 200_001)
    mu = np.stack([np.cos(t), np.sin(t)])
    grad = mu / np.array([[a], [b]])
    cos = (mu * grad).sum(0) / np.linalg.norm(grad, axis=0)
    kappa = max(a, b) / min(a, b)
    assert cos.min() == pytest.approx(2 * math.sqrt(kappa) / (1 + kappa), abs=1e-9)


def test_theorem1_per_direction_monte_carlo() -> None:
    """One direction: E[(v+δ)²/σ − v²/σ] with δ = v/(Cσ−1) against (1 + 1/(Cσ−1))² − 1."""
    rng = np.random.default_rng(0)
    sigma, c, n = 2.0, 1.5, 400_000
    v = rng.standard_normal(n) * math.sqrt(sigma)
    sample = ((v + v / (c * sigma - 1)) ** 2 - v**2) / sigma
    closed = (1 + 1 / (c * sigma - 1)) ** 2 - 1
    assert sample.mean() == pytest.approx(closed, abs=5 * sample.std() / math.sqrt(n))


def test_theorem2_agrees_with_gaussian_module() -> None:
    gaussian = pytest.importorskip("theory.gaussian")
    sigma_star = np.diag([50.0, 1.0, 0.3])
    lam = 4.0
    expected = [float(THEOREM2_EIGENVALUE.subs({SIGMA: s, LAM: lam})) for s in (50.0, 1.0, 0.3)]
    got = np.diag(np.asarray(gaussian.robust_covariance(sigma_star, lam)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)
