"""bf16 attacks: steps in bf16, decisions in fp32, and the fp32 fallback when bf16 loses the gradient.

Two hand-built models make the claims checkable exactly:
- ``Liar``: a 2-class linear model whose bf16 forward swaps the two logit *values* (detached) but keeps
  the true gradient. Its bf16 steps are the fp32 steps, while every bf16 verdict is the opposite of
  fp32's; an attack that decided in bf16 would return different points than the fp32 attack.
- ``Gate``: logits = head(relu(lin(x) - 1000)) with lin's bias 1000 and weights 1. In bf16 (8-bit
  mantissa, spacing 4 near 1000) 1000 + Σx rounds to 1000 while Σx < 2, so the ReLU reads 0 and the
  input gradient is exactly zero; in fp32 it is not. Dark images (Σx small) lose their gradient in
  bf16, bright ones (Σx ≥ 8) keep it.
"""
from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn

from deep.attacks import FGSM, PGD, FastFGSM
from deep.attacks.base import FALLBACK_SHARE, dead_gradients


class Liar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 2)
        with torch.no_grad():  # bf16-exact weights, so the bf16 gradient's signs equal fp32's
            self.lin.weight.copy_(torch.tensor([[0.0] * 16, [0.5, -0.5, 0.25, -0.25] * 4]))
            self.lin.bias.copy_(torch.tensor([0.0, -0.25]))

    def forward(self, x: Tensor) -> Tensor:
        z = self.lin(x.flatten(1))
        if z.dtype != torch.bfloat16:
            return z
        swap = (z[:, 1] - z[:, 0]).detach().float()
        return z.float() + torch.stack([swap, -swap], dim=1)


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin, self.head = nn.Linear(16, 1), nn.Linear(1, 3)
        with torch.no_grad():
            self.lin.weight.fill_(1.0)
            self.lin.bias.fill_(1000.0)
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0], [0.5]]))
            self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.relu(self.lin(x.flatten(1)) - 1000.0))


def _liar_batch() -> tuple[Tensor, Tensor]:
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return x, torch.zeros(32, dtype=torch.long)


def _gate_batch(dark: int, n: int = 100) -> tuple[Tensor, Tensor]:
    """`dark` images at 0.05 (Σx = 0.8: dead in bf16), the rest at 0.9 (Σx = 14.4: alive)."""
    x = torch.full((n, 1, 4, 4), 0.9)
    x[:dark] = 0.05
    return x, torch.arange(n) % 3


@pytest.mark.parametrize("norm,eps,loss", [("linf", 0.1, "cw"), ("linf", 0.1, "ce"), ("l2", 0.4, "cw")])
def test_bf16_pgd_returns_what_fp32_decides(norm: str, eps: float, loss: str) -> None:
    model, (x, y) = Liar(), _liar_batch()
    fp32 = PGD(model, eps, steps=4, norm=norm, loss=loss, random_start=False)(x, y)
    with torch.no_grad():
        fooled = model(fp32).argmax(1) != y
    assert 0 < int(fooled.sum()) < len(y)  # the check can fail both ways on this batch
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the lie is real
        assert torch.equal(model(fp32).argmax(1) != y, ~fooled)
    atk = PGD(model, eps, steps=4, norm=norm, loss=loss, random_start=False, bf16=True)
    # The bf16 gradient is a positive multiple of fp32's (CE: p'_1 (W1 - W0)), so the steps and the
    # candidates are identical; deciding in fp32 must then give fp32's answer bit for bit.
    assert torch.equal(atk(x, y), fp32)
    assert not atk.fell_back_to_fp32


def test_bf16_pgd_over_restarts_keeps_the_fp32_success() -> None:
    model, (x, y) = Liar(), _liar_batch()
    fp32 = PGD(model, 0.1, steps=3, loss="cw", restarts=3, generator=torch.Generator().manual_seed(5))(x, y)
    bf16 = PGD(model, 0.1, steps=3, loss="cw", restarts=3, bf16=True, generator=torch.Generator().manual_seed(5))(x, y)
    with torch.no_grad():
        assert torch.equal(model(bf16).argmax(1) != y, model(fp32).argmax(1) != y)


def test_dead_gradients_exact() -> None:
    g = torch.tensor([[0.0, 0.0], [0.0, 1e-30], [float("nan"), 1.0], [float("inf"), 0.0], [-2.0, 3.0]])
    assert dead_gradients(g).tolist() == [True, False, True, True, False]


@pytest.mark.parametrize("make", [
    lambda m: PGD(m, 0.03, steps=3, random_start=False, bf16=True),
    lambda m: PGD(m, 0.1, steps=2, norm="l2", bf16=True, generator=torch.Generator().manual_seed(0)),
    lambda m: FGSM(m, 0.03, bf16=True),
    lambda m: FastFGSM(m, 0.03, bf16=True, generator=torch.Generator().manual_seed(0)),
], ids=["pgd", "pgd-l2", "fgsm", "fast-fgsm"])
def test_unusable_bf16_gradient_falls_back_to_fp32_with_one_log_line(make, caplog: pytest.LogCaptureFixture) -> None:
    model, (x, y) = Gate(), _gate_batch(dark=50)
    atk = make(model)
    fp32 = make(model)
    fp32.bf16 = False
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        out = atk(x, y)
    assert torch.equal(out, fp32(x, y))  # the call became the fp32 attack, bit for bit
    assert atk.fell_back_to_fp32 and atk.fp32_fallbacks == 1
    lines = [r for r in caplog.records if r.name == "deep.attacks"]
    assert len(lines) == 1 and "50 of 100" in lines[0].getMessage() and "fp32" in lines[0].getMessage()
    atk(x[50:], y[50:])  # bright images only: bf16 is fine again, the flag is per call
    assert not atk.fell_back_to_fp32 and atk.fp32_fallbacks == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="deep.attacks"):
        atk(x, y)  # a later fallback still logs its one line, at INFO (no flood from training loops)
    assert atk.fell_back_to_fp32 and atk.fp32_fallbacks == 2
    assert [r.levelno for r in caplog.records if r.name == "deep.attacks"] == [logging.INFO]


def test_fallback_threshold_is_a_share_of_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    allowed = int(FALLBACK_SHARE * 100)  # 2 of 100 dead examples are tolerated, 3 are not
    atk = PGD(Gate(), 0.03, steps=2, random_start=False, bf16=True)
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        atk(*_gate_batch(dark=allowed))
        assert not atk.fell_back_to_fp32 and not caplog.records
        atk(*_gate_batch(dark=allowed + 1))
        assert atk.fell_back_to_fp32 and len(caplog.records) == 1


def test_no_fallback_when_fp32_gradient_is_dead_too_or_bf16_is_off(caplog: pytest.LogCaptureFixture) -> None:
    dead = Gate()
    with torch.no_grad():
        dead.lin.bias.fill_(-1000.0)  # the ReLU is shut in fp32 as well: the model's fault, not bf16's
    x, y = _gate_batch(dark=100)
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        atk = PGD(dead, 0.03, steps=2, random_start=False, bf16=True)
        assert torch.equal(atk(x, y), x)
        assert not atk.fell_back_to_fp32
        fp32 = PGD(Gate(), 0.03, steps=2, random_start=False)  # fp32 never checks
        fp32(x, y)
        assert not fp32.fell_back_to_fp32 and fp32.fp32_fallbacks == 0
    assert not caplog.records


def test_healthy_conv_net_stays_in_bf16(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 5, (16,))
    atk = PGD(net, steps=3, bf16=True, generator=torch.Generator().manual_seed(1))
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        x_adv = atk(x, y)
    assert not atk.fell_back_to_fp32 and atk.fp32_fallbacks == 0 and not caplog.records
    assert (x_adv - x).abs().max() <= atk.eps + 1e-6 and not torch.equal(x_adv, x)
