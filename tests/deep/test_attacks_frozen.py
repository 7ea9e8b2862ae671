"""Attacks freeze the model's parameters while they run (deep.attacks.base.frozen_parameters): the same
input gradient bit for bit, every requires_grad flag handed back, and nothing written to param.grad."""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import deep.attacks.base as base
from deep.attacks import PGD, RepresentationMatch


class BNNet(nn.Sequential):
    """A conv net with BatchNorm (whose backward computes weight gradients unless told not to)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self[:-1](x)


def bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = BNNet(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm is not the identity
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def data(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "cw", "kl"])
def test_same_iterates_bit_for_bit_as_with_parameters_requiring_grad(monkeypatch, norm, loss, bf16) -> None:
    net, (x, y) = bn_net(), data()

    def run() -> torch.Tensor:
        atk = PGD(net, eps=0.1 if norm == "linf" else 0.5, steps=7, norm=norm, loss=loss, bf16=bf16,
                  generator=torch.Generator().manual_seed(3))
        return atk(x, y)

    frozen = run()
    monkeypatch.setattr(base, "frozen_parameters", lambda model: contextlib.nullcontext())
    unfrozen = run()
    assert not torch.equal(frozen, x)  # the attack moved the images, so the comparison means something
    assert torch.equal(frozen, unfrozen)


def test_flags_are_restored_and_no_gradient_is_accumulated() -> None:
    net, (x, y) = bn_net(), data()
    net[0].weight.requires_grad_(False)  # a caller's own frozen layer stays frozen
    PGD(net, eps=0.1, steps=3)(x, y)
    RepresentationMatch(net, step=0.1, steps=2)(x, x.flip(0))
    assert not net[0].weight.requires_grad
    assert all(p.requires_grad for name, p in net.named_parameters() if name != "0.weight")
    assert all(p.grad is None for p in net.parameters())


def test_flags_are_restored_when_the_attack_fails() -> None:
    class NaNNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3 * 8 * 8, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.lin(x.flatten(1))
            return out * float("nan") if torch.is_grad_enabled() else out

    net, (x, y) = NaNNet(), data()
    with pytest.raises(ValueError, match="non-finite"):
        PGD(net, eps=0.1, steps=2)(x, y)
    assert all(p.requires_grad for p in net.parameters())


def test_autoattack_fab_leaves_no_weight_gradients() -> None:
    """FAB calls .backward(); with the parameters frozen it computes and accumulates no weight gradient."""
    pytest.importorskip("pyautoattack")
    from deep.attacks.autoattack import FABT

    net, (x, _) = bn_net(), data(6)
    y = net.eval()(x).argmax(1)
    FABT(net, eps=0.3)(x, y)
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
