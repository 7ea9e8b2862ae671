"""Outer-minimisation losses of the adversarial training methods (SPEC §4, §6).

All take logits (float [N, K]) and int64 labels [N] and return the batch mean (a scalar tensor).

- :func:`trades_loss` — TRADES (Zhang et al. 2019): CE(p(x), y) + β·KL(p(x) ‖ p(x′)).
- :func:`mart_loss`   — MART (Wang et al. 2020): BCE(p(x̂′), y) + λ·KL(p(x) ‖ p(x̂′))·(1 − p_y(x)),
  BCE(p, y) = −log p_y − log(1 − max_{k≠y} p_k); with switches for the paper's ablations.
- :func:`goodfellow_loss` — Goodfellow et al. 2015: α·J(x) + (1 − α)·J(x_fgsm).

KL is summed over classes, and gradients flow through both of its arguments (as in the official
TRADES and MART code, which do not detach the clean probabilities).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_logits(logits_a: Tensor, logits_b: Tensor | None, y: Tensor,
                  names: tuple[str, str] = ("logits_nat", "logits_adv")) -> None:
    for name, t in zip(names, (logits_a, logits_b)):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.dim() != 2 or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor [N, K], got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
        if t.shape[1] < 2:
            raise ValueError(f"{name} needs at least 2 classes, got shape {tuple(t.shape)}")
        if bool(torch.isnan(t).any()):
            raise ValueError(f"{name} contains NaN")
    if logits_b is not None and logits_a.shape != logits_b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(logits_a.shape)} and {tuple(logits_b.shape)}")
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != (logits_a.shape[0],):
        raise ValueError(f"y must be int64 labels of shape [{logits_a.shape[0]}], got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits_a.shape[1]):
        raise ValueError(f"y values must lie in [0, {logits_a.shape[1] - 1}], got [{int(y.min())}, {int(y.max())}]")
    if logits_a.shape[0] == 0:
        raise ValueError("empty batch: the batch mean is undefined")


def _check_weight(name: str, value: float, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return float(value)


def kl_per_example(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """KL(softmax(logits_p) ‖ softmax(logits_q)) summed over classes, per example [N] (float32)."""
    log_p = F.log_softmax(logits_p.float(), dim=1)
    log_q = F.log_softmax(logits_q.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def trades_loss(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """TRADES: mean_i [CE(p(x_i), y_i) + β·KL(p(x_i) ‖ p(x′_i))]  (SPEC §6)."""
    _check_logits(logits_nat, logits_adv, y)
    beta = _check_weight("beta", beta)
    ce = F.cross_entropy(logits_nat.float(), y)
    return ce + beta * kl_per_example(logits_nat, logits_adv).mean()


def _log_one_minus_max_other(log_p: Tensor, y: Tensor) -> Tensor:
    """log(1 − max_{k≠y} p_k) per example, computed exactly as log Σ_{j≠k*} p_j.

    The official MART code uses log(1.0001 − p + 1e-12), which biases the value; summing the other
    probabilities in log space (logsumexp over all classes except k*) is exact and never takes the
    log of 0 unless p_{k*} is exactly 1 in float32 — then the result is −inf guarded by a floor at
    log(1e-12), the same floor as the official code's additive 1e-12.
    """
    others = log_p.scatter(1, y[:, None], float("-inf"))
    k_star = others.argmax(dim=1)
    rest = log_p.scatter(1, k_star[:, None], float("-inf"))
    return torch.logsumexp(rest, dim=1).clamp_min(math.log(1e-12))


def mart_loss(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, lam: float, *,
              weight: bool = True, kl: bool = True, bce: bool = True) -> Tensor:
    """MART: mean_i [BCE(p(x̂′_i), y_i) + λ·KL(p(x_i) ‖ p(x̂′_i))·(1 − p_{y_i}(x_i))]  (SPEC §6).

    Ablations of [MART] §4: ``weight=False`` drops the (1 − p_y(x)) factor, ``kl=False`` drops the
    whole KL term, ``bce=False`` replaces BCE by plain CE(p(x̂′), y).
    """
    _check_logits(logits_nat, logits_adv, y)
    lam = _check_weight("lam", lam)
    log_q = F.log_softmax(logits_adv.float(), dim=1)
    first = -log_q.gather(1, y[:, None]).squeeze(1)
    if bce:
        first = first - _log_one_minus_max_other(log_q, y)
    loss = first
    if kl:
        robust = kl_per_example(logits_nat, logits_adv)
        if weight:
            p_y = F.softmax(logits_nat.float(), dim=1).gather(1, y[:, None]).squeeze(1)
            robust = robust * (1.0 - p_y)
        loss = loss + lam * robust
    return loss.mean()


def goodfellow_loss(logits_clean: Tensor, logits_adv: Tensor, y: Tensor, alpha: float = 0.5) -> Tensor:
    """Goodfellow et al. 2015 adversarial objective: α·CE(x, y) + (1 − α)·CE(x_fgsm, y), batch means."""
    _check_logits(logits_clean, logits_adv, y, ("logits_clean", "logits_adv"))
    alpha = _check_weight("alpha", alpha, upper=1.0)
    return alpha * F.cross_entropy(logits_clean.float(), y) + (1 - alpha) * F.cross_entropy(logits_adv.float(), y)
