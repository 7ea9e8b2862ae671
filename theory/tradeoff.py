"""The robustness/accuracy trade-off model of Tsipras et al. 2019, §2 (SPEC §3).

Data: y uniform on {±1}; x₁ = +y with probability p and −y otherwise; x₂ … x_{d+1} i.i.d. N(η·y, 1).
Everything about linear classifiers sign(wᵀx) is exact here (Gaussian scores); non-linear
classifiers are checked by Monte Carlo under the adversary of the proof of Theorem 2.1.

Convention: a score of exactly 0 predicts 0, which is never a label, so ties count as errors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr
from theory._validate import nonneg_scalar as _nonneg_scalar

__all__ = [
    "TradeoffModel",
    "robust_accuracy_bound",
    "SVMFit",
    "fit_svm",
    "svm_objective",
    "train_svm",
    "tradeoff_summary",
]


def _finite_array(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf), got {value!r}")
    return arr




@dataclass(frozen=True)
class TradeoffModel:
    """Tsipras et al.'s distribution: one robust feature x₁ and d weak features x₂ … x_{d+1}."""

    p: float
    eta: float
    d: int

    def __post_init__(self) -> None:
        p, eta, d = self.p, self.eta, self.d
        if isinstance(p, bool) or not np.isscalar(p) or not (0.5 <= float(p) <= 1.0):
            raise ValueError(f"p must lie in [1/2, 1], got {p!r}")
        if isinstance(eta, bool) or not np.isscalar(eta) or not (math.isfinite(float(eta)) and float(eta) > 0):
            raise ValueError(f"eta must be finite and > 0, got {eta!r}")
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be an integer >= 1, got {d!r}")
        object.__setattr__(self, "p", float(p))
        object.__setattr__(self, "eta", float(eta))
        object.__setattr__(self, "d", int(d))

    @property
    def dim(self) -> int:
        """Input dimension d + 1."""
        return self.d + 1

    # ------------------------------------------------------------------ data
    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw n examples: x float64 [n, d+1], y int64 [n] in {−1, +1}."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        rng = np.random.default_rng(seed)
        y = rng.choice(np.array([-1, 1], dtype=np.int64), size=n)
        agree = rng.random(n) < self.p
        x = np.empty((n, self.dim))
        x[:, 0] = np.where(agree, y, -y)
        x[:, 1:] = self.eta * y[:, None] + rng.standard_normal((n, self.d))
        return x, y

    def proof_adversary(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The ℓ∞ perturbation (size 2η) of Theorem 2.1's proof: weak features shifted by −2η·y.

        It maps N(η·y, 1) onto N(−η·y, 1), i.e. class y's weak features onto class −y's, leaving x₁.
        """
        x, y = self._check_xy(x, y)
        out = x.copy()
        out[:, 1:] -= 2.0 * self.eta * y[:, None]
        return out

    def _check_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _finite_array("x", x)
        y = np.asarray(y)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [n, {self.dim}], got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape [{x.shape[0]}], got {y.shape}")
        if not np.all(np.isin(y, (-1, 1))):
            raise ValueError("y must hold only -1 and +1")
        return x, y.astype(np.int64)

    def _check_w(self, w: np.ndarray) -> np.ndarray:
        w = _finite_array("w", w)
        if w.ndim not in (1, 2) or w.shape[-1] != self.dim:
            raise ValueError(f"w must have shape [{self.dim}] or [k, {self.dim}], got {w.shape}")
        return w

    # ------------------------------------------------------------ classifiers
    def averaging_weights(self) -> np.ndarray:
        """f_avg(x) = sign(Σ_{i≥2} x_i / d): weight 1/d on every weak feature, none on x₁."""
        w = np.full(self.dim, 1.0 / self.d)
        w[0] = 0.0
        return w

    def robust_weights(self) -> np.ndarray:
        """f_rob(x) = sign(x₁)."""
        w = np.zeros(self.dim)
        w[0] = 1.0
        return w

    def bayes_weights(self) -> np.ndarray:
        """Weights of the Bayes-optimal classifier, which is linear.

        log p(x|y=+1)/p(x|y=−1) = x₁·log(p/(1−p)) + Σ_{i≥2} [(x_i+η)² − (x_i−η)²]/2
                                = x₁·log(p/(1−p)) + 2η·Σ_{i≥2} x_i,
        so w₁ = log(p/(1−p)), w_i = 2η. At p = 1, x₁ alone determines y: sign(x₁) (accuracy 1).
        """
        if self.p == 1.0:
            return self.robust_weights()
        w = np.full(self.dim, 2.0 * self.eta)
        w[0] = math.log(self.p / (1.0 - self.p))
        return w

    # ---------------------------------------------------------------- accuracy
    def linear_accuracy(self, w: np.ndarray, eps: float = 0.0) -> np.ndarray | float:
        """Exact accuracy of sign(wᵀx), clean (eps = 0) or against the worst ℓ∞ perturbation of size eps.

        The adversary lowers y·wᵀx by exactly eps·‖w‖₁ (δ = −eps·y·sign(w)), so with S = Σ w_rest,
        r = ‖w_rest‖₂: p·Φ((w₁ + ηS − eps‖w‖₁)/r) + (1−p)·Φ((−w₁ + ηS − eps‖w‖₁)/r).
        When r = 0 the score is deterministic given x₁ and the Φ's become indicators (ties = errors).
        w may be one weight vector [d+1] or a batch [k, d+1].
        """
        w = self._check_w(w)
        eps = _nonneg_scalar("eps", eps)
        w1, rest = w[..., 0], w[..., 1:]
        shift = self.eta * rest.sum(axis=-1) - eps * np.abs(w).sum(axis=-1)
        r = np.linalg.norm(rest, axis=-1)
        a_agree, a_flip = w1 + shift, -w1 + shift
        safe_r = np.where(r > 0, r, 1.0)
        acc = np.where(
            r > 0,
            self.p * ndtr(a_agree / safe_r) + (1 - self.p) * ndtr(a_flip / safe_r),
            self.p * (a_agree > 0) + (1 - self.p) * (a_flip > 0),
        )
        return float(acc) if acc.ndim == 0 else acc

    def bayes_accuracy(self) -> float:
        """Exact (clean) accuracy of the Bayes-optimal classifier: the best any classifier can do."""
        return float(self.linear_accuracy(self.bayes_weights()))


def robust_accuracy_bound(standard_accuracy: np.ndarray | float, p: float) -> np.ndarray | float:
    """Theorem 2.1 of Tsipras et al.: standard accuracy 1 − δ ⇒ ℓ∞ robust accuracy ≤ p/(1−p)·δ (ε ≥ 2η).

    Clipped to 1 (an accuracy). At p = 1 the ratio is unbounded and the bound is the trivial 1.
    Vectorised over standard_accuracy.
    """
    acc = _finite_array("standard_accuracy", standard_accuracy)
    if np.any((acc < 0) | (acc > 1)):
        raise ValueError(f"standard_accuracy must lie in [0, 1], got {standard_accuracy!r}")
    if isinstance(p, bool) or not np.isscalar(p) or not (0.5 <= float(p) <= 1.0):
        raise ValueError(f"p must lie in [1/2, 1], got {p!r}")
    p = float(p)
    if p == 1.0:
        bound = np.ones_like(acc)
    else:
        bound = np.minimum(1.0, p / (1.0 - p) * (1.0 - acc))
    return float(bound) if bound.ndim == 0 else bound


# ----------------------------------------------------------------------- SVMs
def _check_xy_generic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _finite_array("x", x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape [n, dim] with n >= 1, got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape [{x.shape[0]}], got {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError("y must hold only -1 and +1")
    return x, y.astype(float)


def svm_objective(w: np.ndarray, x: np.ndarray, y: np.ndarray, *, eps: float = 0.0, lam: float = 0.1) -> float:
    """(λ/2)‖w‖² + mean_i max(0, 1 − y_i wᵀx_i + eps·‖w‖₁): the (adversarial, ℓ∞) soft-margin SVM.

    eps·‖w‖₁ is the exact inner maximum of the hinge over ‖δ‖∞ ≤ eps for a linear score. No bias:
    the model is symmetric in y.
    """
    x, y = _check_xy_generic(x, y)
    w = _finite_array("w", w)
    if w.shape != (x.shape[1],):
        raise ValueError(f"w must have shape [{x.shape[1]}], got {w.shape}")
    eps = _nonneg_scalar("eps", eps)
    lam = _nonneg_scalar("lam", lam)
    hinge = np.maximum(0.0, 1.0 - y * (x @ w) + eps * np.abs(w).sum())
    return float(0.5 * lam * w @ w + hinge.mean())


@dataclass(frozen=True)
class SVMFit:
    """An SVM solution with its optimality certificate: primal − dual ≥ 0 is the duality gap."""

    w: np.ndarray  # unnormalised minimiser of svm_objective
    beta: np.ndarray  # dual variables in [0, 1], one per example (n·α_i of the textbook dual)
    primal: float
    dual: float

    @property
    def gap(self) -> float:
        return self.primal - self.dual


def _soft_threshold(g: np.ndarray, tau: float) -> np.ndarray:
    return np.sign(g) * np.maximum(np.abs(g) - tau, 0.0)


def fit_svm(
    x: np.ndarray, y: np.ndarray, *, eps: float = 0.0, lam: float = 0.1, tol: float = 1e-10, maxiter: int = 5000
) -> SVMFit:
    """Exact minimiser of `svm_objective` through its smooth box-constrained dual.

    Writing the hinge as max_{β_i∈[0,1]} β_i(1 − y_i wᵀx_i + eps‖w‖₁) and minimising over w first
    (per coordinate: λ/2 w_j² − g_j w_j + τ|w_j|) gives w = soft(g, τ)/λ with g = mean(β_i y_i x_i),
    τ = eps·mean(β), and the concave, continuously differentiable dual
        D(β) = mean(β) − ‖soft(g, τ)‖²/(2λ),   ∂D/∂β_i = (1 − y_i wᵀx_i + eps‖w‖₁)/n,
    maximised with L-BFGS-B over the box [0, 1]^n. Strong duality holds (a convex QP), so the
    duality gap certifies the solution. Deterministic: no seed needed. No bias (the model is
    symmetric in y).
    """
    x, yf = _check_xy_generic(x, y)
    eps = _nonneg_scalar("eps", eps)
    lam = _nonneg_scalar("lam", lam)
    if lam == 0:
        raise ValueError("lam must be > 0 (the SVM needs its ‖w‖² term)")
    n = x.shape[0]
    yx = yf[:, None] * x

    def primal_w(beta: np.ndarray) -> np.ndarray:
        return _soft_threshold(beta @ yx / n, eps * beta.mean()) / lam

    def neg_dual(beta: np.ndarray) -> tuple[float, np.ndarray]:
        w = primal_w(beta)
        value = beta.mean() - 0.5 * lam * (w @ w)  # ‖soft‖²/(2λ) = λ‖w‖²/2
        grad = (1.0 - yx @ w + eps * np.abs(w).sum()) / n
        return -float(value), -grad

    res = minimize(neg_dual, np.full(n, 0.5), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * n,
                   options={"maxiter": maxiter, "ftol": tol, "gtol": 1e-12})
    beta = res.x
    w = primal_w(beta)
    return SVMFit(w=w, beta=beta, primal=svm_objective(w, x, y, eps=eps, lam=lam), dual=-float(res.fun))


def train_svm(
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float = 0.0,
    lam: float = 0.1,
    normalise: bool = True,
) -> np.ndarray:
    """Soft-margin linear SVM (clean when eps = 0, adversarial ℓ∞ hinge otherwise), via `fit_svm`.

    normalise=True returns w/‖w‖₂, Theorem 2.2's unit-norm classifier (sign(wᵀx) is unchanged).
    """
    w = fit_svm(x, y, eps=eps, lam=lam).w
    if normalise:
        norm = np.linalg.norm(w)
        if norm == 0:
            raise ValueError("the SVM solution is w = 0 (eps too large for any useful feature); cannot normalise")
        w = w / norm
    return w


def tradeoff_summary(
    model: TradeoffModel, eps: float | None = None, *, n_train: int = 0, seed: int = 0, lam: float = 0.1
) -> dict:
    """JSON-ready table of the model's classifiers: exact standard and ℓ∞-robust accuracy, and the
    Theorem 2.1 bound implied by the standard accuracy (valid when eps ≥ 2η).

    eps defaults to 2η. With n_train > 0, SVMs (clean and adversarially trained at eps) are fitted
    on n_train samples drawn with `seed`. Schema: {"p", "eta", "d", "eps", "bound_applies",
    "classifiers": {name: {"standard", "robust", "bound", "w1"}}} with w1 the unit-norm weight on x₁.
    """
    if not isinstance(model, TradeoffModel):
        raise ValueError(f"model must be a TradeoffModel, got {type(model).__name__}")
    eps = 2 * model.eta if eps is None else _nonneg_scalar("eps", eps)
    weights = {
        "averaging": model.averaging_weights(),
        "robust": model.robust_weights(),
        "bayes": model.bayes_weights(),
    }
    if n_train:
        x, y = model.sample(n_train, seed)
        weights["svm"] = train_svm(x, y, lam=lam)
        weights["svm-adversarial"] = train_svm(x, y, eps=eps, lam=lam)
    rows = {}
    for name, w in weights.items():
        standard = float(model.linear_accuracy(w))
        rows[name] = {
            "standard": standard,
            "robust": float(model.linear_accuracy(w, eps)),
            "bound": float(robust_accuracy_bound(standard, model.p)),
            "w1": float(w[0] / np.linalg.norm(w)),
        }
    return {"p": model.p, "eta": model.eta, "d": model.d, "eps": eps,
            "bound_applies": bool(eps >= 2 * model.eta), "classifiers": rows}
