"""Tsipras trade-off model: exact accuracies vs Monte Carlo, Theorem 2.1 on every classifier, Theorem 2.2."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from theory.tradeoff import (
    TradeoffModel,
    fit_svm,
    robust_accuracy_bound,
    svm_objective,
    tradeoff_summary,
    train_svm,
)

SETTINGS = settings(max_examples=25, deadline=None)


def model_draws(p_max: float, eta_max: float, d_max: int) -> dict[str, st.SearchStrategy]:
    """Hypothesis strategies for TradeoffModel(p, eta, d) and a generator seed."""
    return {"p": st.floats(0.5, p_max), "eta": st.floats(0.05, eta_max), "d": st.integers(1, d_max),
            "seed": st.integers(0, 2**31 - 1)}


def mc_tol(acc: float, n: int, z: float = 5.0) -> float:
    """z binomial standard errors (plus a floor for accuracies near 0 or 1)."""
    return z * math.sqrt(max(acc * (1 - acc), 1e-4) / n)


def empirical_accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sign(scores) == y))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"p": 0.4, "eta": 0.1, "d": 5}, "p"),
        ({"p": 1.01, "eta": 0.1, "d": 5}, "p"),
        ({"p": float("nan"), "eta": 0.1, "d": 5}, "p"),
        ({"p": 0.9, "eta": 0.0, "d": 5}, "eta"),
        ({"p": 0.9, "eta": -1.0, "d": 5}, "eta"),
        ({"p": 0.9, "eta": float("inf"), "d": 5}, "eta"),
        ({"p": 0.9, "eta": 0.1, "d": 0}, "d"),
        ({"p": 0.9, "eta": 0.1, "d": 2.5}, "d"),
        ({"p": 0.9, "eta": 0.1, "d": True}, "d"),
    ],
)
def test_model_rejects_bad_parameters(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        TradeoffModel(**kwargs)


def test_bad_inputs_raise_named_errors() -> None:
    m = TradeoffModel(0.9, 0.5, 4)
    with pytest.raises(ValueError, match="eps"):
        m.linear_accuracy(m.robust_weights(), eps=-0.1)
    with pytest.raises(ValueError, match="w must have shape"):
        m.linear_accuracy(np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        m.linear_accuracy(np.array([np.nan, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="n must"):
        m.sample(0, seed=0)
    with pytest.raises(ValueError, match="standard_accuracy"):
        robust_accuracy_bound(1.2, 0.9)
    with pytest.raises(ValueError, match="p must"):
        robust_accuracy_bound(0.9, 0.3)
    x, y = m.sample(10, seed=0)
    with pytest.raises(ValueError, match="y must hold"):
        train_svm(x, np.zeros(10))
    with pytest.raises(ValueError, match="lam"):
        train_svm(x, y, lam=0.0)
    with pytest.raises(ValueError, match="x must have shape"):
        m.proof_adversary(x[:, :3], y)


# ------------------------------------------------------------------ sampling
def test_sample_is_seeded_and_has_the_model_moments() -> None:
    m = TradeoffModel(0.8, 0.3, 6)
    x, y = m.sample(40_000, seed=1)
    x2, y2 = m.sample(40_000, seed=1)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert x.shape == (40_000, 7) and set(np.unique(y)) == {-1, 1}
    assert set(np.unique(x[:, 0])) == {-1.0, 1.0}
    n = len(y)
    assert abs(np.mean(y * x[:, 0]) - (2 * m.p - 1)) < 5 * math.sqrt(1 / n)
    weak = (y[:, None] * x[:, 1:]).mean(axis=0)  # E[y x_i] = η
    assert np.all(np.abs(weak - m.eta) < 5 / math.sqrt(n))
    assert np.all(np.abs(x[:, 1:].std(axis=0) - math.sqrt(1 + m.eta**2)) < 0.02)


# ------------------------------------------------- exact accuracy vs Monte Carlo
@SETTINGS
@given(**model_draws(p_max=1.0, eta_max=1.5, d_max=8), eps=st.floats(0.0, 1.5))
def test_linear_accuracy_matches_monte_carlo(p: float, eta: float, d: int, eps: float, seed: int) -> None:
    m = TradeoffModel(p, eta, d)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(m.dim)
    n = 20_000
    x, y = m.sample(n, seed=seed)
    clean = m.linear_accuracy(w)
    assert abs(empirical_accuracy(x @ w, y) - clean) < mc_tol(clean, n)
    # the worst ℓ∞ perturbation of a linear score, applied explicitly
    x_adv = x - eps * y[:, None] * np.sign(w)[None, :]
    assert np.max(np.abs(x_adv - x)) <= eps + 1e-12
    robust = m.linear_accuracy(w, eps)
    assert abs(empirical_accuracy(x_adv @ w, y) - robust) < mc_tol(robust, n)
    assert robust <= clean + 1e-12


def test_linear_accuracy_batch_equals_single() -> None:
    m = TradeoffModel(0.9, 0.4, 5)
    ws = np.random.default_rng(0).standard_normal((7, 6))
    batch = m.linear_accuracy(ws, 0.2)
    assert batch.shape == (7,)
    assert np.allclose(batch, [m.linear_accuracy(w, 0.2) for w in ws])


def test_degenerate_weights_are_exact_and_continuous() -> None:
    m = TradeoffModel(0.9, 0.4, 5)
    e1 = m.robust_weights()
    assert m.linear_accuracy(e1) == pytest.approx(0.9)
    assert m.linear_accuracy(e1, 0.99) == pytest.approx(0.9)  # Tsipras: robust for any eps < 1
    assert m.linear_accuracy(e1, 1.0) == 0.0  # ties count as errors
    assert m.linear_accuracy(e1, 1.5) == 0.0
    assert m.linear_accuracy(-e1) == pytest.approx(0.1)
    assert m.linear_accuracy(np.zeros(m.dim)) == 0.0
    # continuity: a vanishing weak component gives the same value as the exact degenerate case
    w = e1.copy()
    w[1:] = 1e-9
    assert m.linear_accuracy(w, 0.5) == pytest.approx(m.linear_accuracy(e1, 0.5), abs=1e-6)
    # Monte Carlo on the deterministic case
    x, y = m.sample(20_000, seed=3)
    assert abs(empirical_accuracy(x @ e1, y) - 0.9) < mc_tol(0.9, 20_000)


def test_averaging_classifier_matches_tsipras_closed_forms() -> None:
    d = 900
    eta = 3 / math.sqrt(d)
    m = TradeoffModel(0.95, eta, d)
    w = m.averaging_weights()
    assert m.linear_accuracy(w) == pytest.approx(norm.cdf(eta * math.sqrt(d)), rel=1e-12)
    assert m.linear_accuracy(w) > 0.99
    assert m.linear_accuracy(w, 2 * eta) == pytest.approx(norm.cdf(-eta * math.sqrt(d)), rel=1e-9)
    assert m.linear_accuracy(w, 2 * eta) < 0.002


# --------------------------------------------------------------- Bayes optimal
def test_bayes_classifier_agrees_with_the_direct_posterior() -> None:
    m = TradeoffModel(0.8, 0.3, 6)
    x, y = m.sample(5_000, seed=4)
    # log-likelihood ratio from the densities themselves, not from the derived weights
    lx1 = np.where(x[:, 0] > 0, math.log(m.p / (1 - m.p)), math.log((1 - m.p) / m.p))
    lrest = (norm.logpdf(x[:, 1:], loc=m.eta) - norm.logpdf(x[:, 1:], loc=-m.eta)).sum(axis=1)
    assert np.allclose(x @ m.bayes_weights(), lx1 + lrest)
    n = 200_000
    xb, yb = m.sample(n, seed=5)
    acc = m.bayes_accuracy()
    assert abs(empirical_accuracy(xb @ m.bayes_weights(), yb) - acc) < mc_tol(acc, n)


@SETTINGS
@given(**model_draws(p_max=0.999, eta_max=1.5, d_max=12))
def test_bayes_accuracy_beats_every_linear_classifier(p: float, eta: float, d: int, seed: int) -> None:
    m = TradeoffModel(p, eta, d)
    ws = np.random.default_rng(seed).standard_normal((50, m.dim))
    ws = np.vstack([ws, m.averaging_weights(), m.robust_weights()])
    assert np.all(m.linear_accuracy(ws) <= m.bayes_accuracy() + 1e-12)


def test_bayes_at_p_one_is_perfect() -> None:
    assert TradeoffModel(1.0, 0.2, 3).bayes_accuracy() == 1.0


# --------------------------------------------------------------- Theorem 2.1
def test_bound_numbers_from_the_paper() -> None:
    assert robust_accuracy_bound(0.99, 0.95) == pytest.approx(0.19)
    assert robust_accuracy_bound(0.5, 0.95) == 1.0
    assert robust_accuracy_bound(0.99, 1.0) == 1.0
    assert np.allclose(robust_accuracy_bound(np.array([1.0, 0.99]), 0.75), [0.0, 0.03])


def test_bound_is_tight_for_the_robust_classifier() -> None:
    # δ = 1 − p ⇒ bound p, attained by sign(x₁) at ε = 2η < 1
    m = TradeoffModel(0.9, 0.2, 10)
    w = m.robust_weights()
    assert m.linear_accuracy(w, 2 * m.eta) == pytest.approx(robust_accuracy_bound(m.linear_accuracy(w), m.p))


def test_proof_adversary_is_an_l_inf_shift_of_two_eta_with_the_stated_law() -> None:
    m = TradeoffModel(0.85, 0.35, 5)
    n = 40_000
    x, y = m.sample(n, seed=7)
    xa = m.proof_adversary(x, y)
    assert np.allclose(np.abs(xa - x).max(axis=1), 2 * m.eta)
    assert np.array_equal(xa[:, 0], x[:, 0])
    # the weak features of class y now follow class −y's law N(−η·y, 1)
    assert abs(np.mean(y[:, None] * xa[:, 1:]) + m.eta) < 5 / math.sqrt(n * m.d)
    # exact accuracy of a linear classifier under this shift: the score drops by 2η·S·y
    w = np.random.default_rng(0).standard_normal(m.dim)
    S, r = w[1:].sum(), np.linalg.norm(w[1:])
    exact = m.p * norm.cdf((w[0] - m.eta * S) / r) + (1 - m.p) * norm.cdf((-w[0] - m.eta * S) / r)
    assert abs(empirical_accuracy(xa @ w, y) - exact) < mc_tol(exact, n)


@SETTINGS
@given(**model_draws(p_max=0.99, eta_max=0.45, d_max=30), extra=st.floats(0.0, 0.05))
def test_theorem_2_1_holds_for_linear_families(p: float, eta: float, d: int, extra: float, seed: int) -> None:
    m = TradeoffModel(p, eta, d)
    eps = 2 * eta + extra
    ws = np.random.default_rng(seed).standard_normal((40, m.dim))
    # tilt toward high standard accuracy, where the bound bites
    ws[:20, 1:] = np.abs(ws[:20, 1:])
    ws = np.vstack([ws, m.averaging_weights(), m.robust_weights(), m.bayes_weights()])
    clean = m.linear_accuracy(ws)
    robust = m.linear_accuracy(ws, eps)
    assert np.all(robust <= robust_accuracy_bound(clean, p) + 1e-12)


def _svm_data(p: float = 0.95, d: int = 100, n: int = 4000) -> tuple[TradeoffModel, np.ndarray, np.ndarray]:
    m = TradeoffModel(p, 4 / math.sqrt(d), d)
    x, y = m.sample(n, seed=11)
    return m, x, y


@pytest.fixture(scope="module")
def svms() -> dict:
    m, x, y = _svm_data()
    eps = 2 * m.eta
    return {
        "model": m,
        "x": x,
        "y": y,
        "clean_fit": (clean := fit_svm(x, y, lam=0.1)),
        "adv_fit": (adv := fit_svm(x, y, eps=eps, lam=0.1)),
        "clean": clean.w,
        "adv": adv.w,
    }


@pytest.mark.parametrize("key", ["clean_fit", "adv_fit"])
def test_svm_duality_gap_certifies_the_solution(svms: dict, key: str) -> None:
    fit = svms[key]
    eps = 0.0 if key == "clean_fit" else 2 * svms["model"].eta
    # the primal value is recomputed from the definition, independently of the dual derivation
    primal = svm_objective(fit.w, svms["x"], svms["y"], eps=eps, lam=0.1)
    assert primal == pytest.approx(fit.primal)
    assert -1e-9 <= primal - fit.dual < 1e-4  # weak duality, and (near) zero gap
    assert np.all((fit.beta >= 0) & (fit.beta <= 1))


def test_train_svm_is_unit_norm_and_normalise_false_is_the_fit() -> None:
    m, x, y = _svm_data(d=10, n=500)
    w = train_svm(x, y, eps=0.1)
    assert np.linalg.norm(w) == pytest.approx(1.0)
    raw = train_svm(x, y, eps=0.1, normalise=False)
    assert np.allclose(w, raw / np.linalg.norm(raw))
    with pytest.raises(ValueError, match="w = 0"):
        train_svm(x, y, eps=5.0)  # no feature survives a shift of 5: the optimum is w = 0


def test_theorem_2_2_clean_svm_uses_weak_features(svms: dict) -> None:
    m = svms["model"]
    w = svms["clean"] / np.linalg.norm(svms["clean"])
    assert m.linear_accuracy(w) > 0.99
    assert m.linear_accuracy(w, 2 * m.eta) < 0.01
    assert np.linalg.norm(w[1:]) > abs(w[0])  # the weight sits on the weak features


def test_theorem_2_2_adversarial_svm_uses_x1(svms: dict) -> None:
    m = svms["model"]
    w = svms["adv"] / np.linalg.norm(svms["adv"])
    assert w[0] > 0.99
    assert np.abs(w[1:]).max() < 1e-6  # Tsipras: all weight on x₁ (exactly, up to the solver)
    for eps in (0.0, 2 * m.eta, 0.5):
        assert m.linear_accuracy(w, eps) == pytest.approx(m.p, abs=2e-3)


def test_svms_obey_theorem_2_1(svms: dict) -> None:
    m = svms["model"]
    for key in ("clean", "adv"):
        w = svms[key]
        assert m.linear_accuracy(w, 2 * m.eta) <= robust_accuracy_bound(m.linear_accuracy(w), m.p) + 1e-12


@pytest.mark.parametrize("key", ["clean", "adv"])
def test_svm_reaches_the_minimum_among_reference_directions(svms: dict, key: str) -> None:
    """The learned w beats every reference direction at its best scale (a 1-D exact minimisation)."""
    m, x, y = svms["model"], svms["x"], svms["y"]
    eps = 0.0 if key == "clean" else 2 * m.eta
    ours = svm_objective(svms[key], x, y, eps=eps, lam=0.1)
    for direction in (m.averaging_weights(), m.robust_weights(), m.bayes_weights(), svms["clean"], svms["adv"]):
        u = direction / np.linalg.norm(direction)
        best = minimize_scalar(lambda c: svm_objective(c * u, x, y, eps=eps, lam=0.1), bounds=(0, 10), method="bounded")
        assert ours <= best.fun + 1e-6
    # and small random moves do not improve it by more than the optimisation tolerance
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert ours <= svm_objective(svms[key] + 1e-2 * rng.standard_normal(m.dim), x, y, eps=eps, lam=0.1) + 1e-6


def test_svm_linear_regime_matches_soft_thresholding() -> None:
    """For large λ no margin reaches 1, the hinge is linear, and the minimiser of
    λ/2‖w‖² − mean(y wᵀx) + ε‖w‖₁ is soft_threshold(mean(y x), ε)/λ — computed independently."""
    m = TradeoffModel(0.9, 0.3, 10)
    x, y = m.sample(2000, seed=2)
    lam, eps = 50.0, 0.2
    g = (y[:, None] * x).mean(axis=0)
    expected = np.sign(g) * np.maximum(np.abs(g) - eps, 0) / lam
    assert np.all(y * (x @ expected) - eps * np.abs(expected).sum() < 1)  # the regime holds
    w = train_svm(x, y, eps=eps, lam=lam, normalise=False)
    assert np.allclose(w, expected, atol=1e-6)


# ------------------------------------------------------------------ small MLP
def test_theorem_2_1_holds_for_a_trained_mlp() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = TradeoffModel(0.9, 3 / math.sqrt(20), 20)
    x, y = m.sample(4000, seed=0)
    net = torch.nn.Sequential(torch.nn.Linear(m.dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-yt * net(xt).squeeze(1)).mean()
        loss.backward()
        opt.step()
    n = 100_000
    xs, ys = m.sample(n, seed=1)

    def acc(z: np.ndarray) -> float:
        with torch.no_grad():
            return empirical_accuracy(net(torch.tensor(z, dtype=torch.float32)).squeeze(1).numpy(), ys)

    clean, robust = acc(xs), acc(m.proof_adversary(xs, ys))
    se = lambda a: math.sqrt(max(a * (1 - a), 1e-4) / n)  # noqa: E731
    assert clean > 0.97  # it learned the weak features...
    assert clean <= m.bayes_accuracy() + 4 * se(clean)
    # ...so the proof's adversary must break it: Theorem 2.1 with Monte Carlo slack on both sides
    assert robust - 4 * se(robust) <= robust_accuracy_bound(clean - 4 * se(clean), m.p)
    assert robust < 0.5


def test_summary_is_json_ready_and_consistent() -> None:
    import json

    m = TradeoffModel(0.95, 4 / math.sqrt(100), 100)
    out = json.loads(json.dumps(tradeoff_summary(m, n_train=2000, seed=0)))
    assert out["eps"] == pytest.approx(2 * m.eta) and out["bound_applies"]
    rows = out["classifiers"]
    assert set(rows) == {"averaging", "robust", "bayes", "svm", "svm-adversarial"}
    for row in rows.values():
        assert row["robust"] <= row["bound"] + 1e-12
    assert rows["robust"]["standard"] == pytest.approx(0.95) and rows["robust"]["w1"] == 1.0
    assert rows["svm-adversarial"]["w1"] > 0.99 and rows["svm"]["standard"] > 0.99
    assert rows["averaging"]["standard"] == pytest.approx(norm.cdf(4.0))
    assert not tradeoff_summary(m, eps=m.eta)["bound_applies"]
