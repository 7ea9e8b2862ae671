"""deep.losses against the SPEC §6 / §4 definitions computed independently in numpy (float64)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deep.losses import goodfellow_loss, mart_loss, trades_loss


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * np.log(p / q)).sum(axis=1)


def _data(seed: int = 0, n: int = 7, k: int = 5):
    rng = np.random.default_rng(seed)
    z_nat = rng.normal(scale=2.0, size=(n, k))
    z_adv = z_nat + rng.normal(scale=1.5, size=(n, k))
    y = rng.integers(0, k, size=n)
    return z_nat, z_adv, y


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def _mart_numpy(z_nat, z_adv, y, lam, weight=True, kl=True, bce=True) -> float:
    p, q = _softmax(z_nat), _softmax(z_adv)
    idx = np.arange(len(y))
    term = -np.log(q[idx, y])
    if bce:
        q_other = q.copy()
        q_other[idx, y] = -1.0
        term = term - np.log(1.0 - q_other.max(axis=1))
    if kl:
        w = (1.0 - p[idx, y]) if weight else 1.0
        term = term + lam * _kl(p, q) * w
    return float(term.mean())


def test_trades_matches_numpy() -> None:
    z_nat, z_adv, y = _data()
    p, q = _softmax(z_nat), _softmax(z_adv)
    ce = -np.log(p[np.arange(len(y)), y]).mean()
    expected = ce + 6.0 * _kl(p, q).mean()
    got = trades_loss(_t(z_nat), _t(z_adv), torch.tensor(y), beta=6.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_trades_beta_zero_is_ce_and_kl_zero_when_equal() -> None:
    z_nat, _, y = _data(1)
    ce = torch.nn.functional.cross_entropy(_t(z_nat), torch.tensor(y))
    assert trades_loss(_t(z_nat), _t(z_nat), torch.tensor(y), beta=3.0).item() == pytest.approx(ce.item(), rel=1e-6)


@pytest.mark.parametrize("weight,kl,bce", [(True, True, True), (False, True, True), (True, False, True),
                                           (True, True, False), (False, False, False)])
def test_mart_matches_numpy(weight: bool, kl: bool, bce: bool) -> None:
    z_nat, z_adv, y = _data(2)
    expected = _mart_numpy(z_nat, z_adv, y, 5.0, weight, kl, bce)
    got = mart_loss(_t(z_nat), _t(z_adv), torch.tensor(y), lam=5.0, weight=weight, kl=kl, bce=bce)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_mart_hand_two_class_example() -> None:
    # Two classes, one example: p(x) = softmax(0, 0) = (1/2, 1/2); p(x') = softmax(log 3, 0) = (3/4, 1/4), y = 0.
    # BCE = -log 3/4 - log(1 - 1/4) = -2 log 3/4; KL((1/2,1/2) || (3/4,1/4)) = 1/2 log(2/3) + 1/2 log 2;
    # weight (1 - 1/2); lam = 2.
    kl = 0.5 * np.log(2 / 3) + 0.5 * np.log(2)
    expected = -2 * np.log(0.75) + 2 * kl * 0.5
    got = mart_loss(torch.zeros(1, 2), torch.tensor([[np.log(3.0), 0.0]], dtype=torch.float32),
                    torch.tensor([0]), lam=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_mart_finite_when_other_class_is_certain() -> None:
    # p(x') puts all mass on a wrong class: 1 - max_{k!=y} p_k underflows; the loss must stay finite.
    z_adv = torch.tensor([[0.0, 200.0, -5.0]])
    loss = mart_loss(torch.zeros(1, 3), z_adv.requires_grad_(True), torch.tensor([0]), lam=6.0)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z_adv.grad).all()


def test_goodfellow_matches_numpy() -> None:
    z_nat, z_adv, y = _data(3)
    idx = np.arange(len(y))
    ce_c = -np.log(_softmax(z_nat)[idx, y]).mean()
    ce_a = -np.log(_softmax(z_adv)[idx, y]).mean()
    got = goodfellow_loss(_t(z_nat), _t(z_adv), torch.tensor(y), alpha=0.3)
    assert got.item() == pytest.approx(0.3 * ce_c + 0.7 * ce_a, rel=1e-5)


def test_gradients_flow_through_both_logits() -> None:
    z_nat, z_adv, y = _data(4)
    a, b = _t(z_nat).requires_grad_(True), _t(z_adv).requires_grad_(True)
    (trades_loss(a, b, torch.tensor(y), 1.0) + mart_loss(a, b, torch.tensor(y), 1.0)).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


@pytest.mark.parametrize("call,match", [
    (lambda a, b, y: trades_loss(a, b, y, beta=-1.0), "beta"),
    (lambda a, b, y: mart_loss(a, b, y, lam=float("nan")), "lam"),
    (lambda a, b, y: goodfellow_loss(a, b, y, alpha=1.5), "alpha"),
    (lambda a, b, y: trades_loss(a, b[:, :3], y, beta=1.0), "same shape"),
    (lambda a, b, y: mart_loss(a, b, y + 10, lam=1.0), "y values"),
    (lambda a, b, y: mart_loss(a, b, y.float(), lam=1.0), "int64"),
    (lambda a, b, y: trades_loss(a * float("nan"), b, y, beta=1.0), "NaN"),
    (lambda a, b, y: goodfellow_loss(a[:, :1], b, y), "logits_clean needs at least 2 classes"),
])
def test_bad_input(call, match: str) -> None:
    z_nat, z_adv, y = _data(5)
    with pytest.raises(ValueError, match=match):
        call(_t(z_nat), _t(z_adv), torch.tensor(y))
