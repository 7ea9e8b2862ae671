"""PGD's ``first_success``: the same successes as the full run, less work, each broken example's first
successful iterate returned, and under bf16 the screen that spares fp32 judging forwards
(deep/attacks/pgd.py's module docstring)."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from deep.attacks import PGD, pgd
from deep.attacks.pgd import SCREEN_FACTOR, _Screen
from deep.attacks.objectives import attack_success
from deep.attacks.registry import build_attack, parse_attack, resolve_spec

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


class Counting(nn.Module):
    """Wraps a model and counts the examples that go through its forward."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, 0

    def forward(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        return self.inner(x)


def _run(model: nn.Module, x: Tensor, y: Tensor, *, first: bool, bf16: bool = False, steps: int = 10,
         restarts: int = 2, norm: str = "linf", eps: float = 0.15, alpha: float | None = None) -> Tensor:
    atk = PGD(model, eps, alpha, steps, norm, restarts=restarts, bf16=bf16, first_success=first,
              generator=torch.Generator().manual_seed(3))
    return atk(x, y)


def _broken(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return attack_success(model(x_adv), y, "ce", targeted=False)


@pytest.mark.parametrize("norm, eps", [("linf", 0.15), ("l2", 0.3)])
def test_same_successes_as_the_full_run_and_untouched_survivors(mlp, norm: str, eps: float) -> None:
    model, x, y = mlp
    full = _run(model, x, y, first=False, norm=norm, eps=eps)
    first = _run(model, x, y, first=True, norm=norm, eps=eps)
    broken = _broken(model, full, y)
    assert 0 < int(broken.sum()) < len(y)  # a mixed batch, so the test can tell the rules apart
    assert torch.equal(_broken(model, first, y), broken)
    # Survivors were attacked on a smaller batch, but each example's path is its own.
    torch.testing.assert_close(first[~broken], full[~broken], rtol=0, atol=1e-6)


def test_a_broken_example_is_attacked_no_further(mlp) -> None:
    model, x, y = mlp
    counted = Counting(model)
    _run(counted, x, y, first=False)
    full_work = counted.seen
    counted.seen = 0
    _run(counted, x, y, first=True)
    assert counted.seen < 0.9 * full_work


def test_the_returned_point_is_the_first_success(mlp) -> None:
    """A run of k steps sees the first k iterates: where it broke an example, more steps (same step size)
    return the same point."""
    model, x, y = mlp
    short = _run(model, x, y, first=True, steps=2, restarts=1, alpha=0.04)
    long = _run(model, x, y, first=True, steps=10, restarts=1, alpha=0.04)
    early = _broken(model, short, y)
    assert early.any()
    torch.testing.assert_close(long[early], short[early], rtol=0, atol=1e-6)  # sub-batches: float noise only


def test_evaluation_uses_it_under_bf16_only(mlp) -> None:
    model, _, _ = mlp
    spec = resolve_spec(parse_attack("pgd-5"), eps=0.1, alpha=None)
    assert build_attack(spec, model, eps=0.1, norm="linf", seed=0, bf16=True).first_success
    assert not build_attack(spec, model, eps=0.1, norm="linf", seed=0).first_success


def test_bad_first_success_is_refused(mlp) -> None:
    with pytest.raises(ValueError, match="first_success must be a bool"):
        PGD(mlp[0], first_success="yes")  # type: ignore[arg-type]


# -- bf16 screening (first_success under bf16): fewer fp32 judging forwards, the same successes ----------
def test_the_screen_band_is_the_factor_times_the_worst_error_seen() -> None:
    screen = _Screen(targeted=False)
    y = torch.tensor([0, 0])
    assert screen.keep(torch.zeros(2, 2), y) is None  # not calibrated: every iterate is judged
    fp32 = torch.tensor([[2.0, 0.0], [5.0, 0.0]])  # distances to success 2 and 5
    bf16 = torch.tensor([[2.25, 0.0], [5.0, 0.0]])  # worst error 0.25 (the floor, 1e-3 · 5, is below it)
    screen.calibrate(bf16, fp32, y)
    assert float(screen.band) == pytest.approx(SCREEN_FACTOR * 0.25)
    near = torch.tensor([[1.0, 0.0], [0.0, 3.0], [9.0, 0.0]])  # distances 1, −3 (already past), 9
    assert screen.keep(near, torch.tensor([0, 0, 0])).tolist() == [True, True, False]
    screen.calibrate(fp32, fp32, y)  # no error this time: the band only widens, never narrows
    assert float(screen.band) == pytest.approx(SCREEN_FACTOR * 0.25)
    targeted = _Screen(targeted=True)  # distance = max_{j≠t} z_j − z_t
    targeted.calibrate(bf16, fp32, torch.tensor([1, 1]))
    assert targeted.keep(torch.tensor([[1.0, 0.0], [9.0, 0.0]]), torch.tensor([1, 1])).tolist() == [True, False]


def test_the_bf16_screen_saves_fp32_forwards_and_keeps_every_success(mlp, monkeypatch) -> None:
    model, x, y = mlp
    judged: list[int] = []
    decide = PGD._decision_logits
    monkeypatch.setattr(PGD, "_decision_logits", lambda self, xa: judged.append(xa.shape[0]) or decide(self, xa))
    screened = _run(model, x, y, first=True, bf16=True, steps=20, restarts=1)
    screened_work, judged[:] = sum(judged), []
    monkeypatch.setattr(pgd, "SCREEN_FACTOR", float("inf"))  # a band that lets every iterate through
    everything = _run(model, x, y, first=True, bf16=True, steps=20, restarts=1)
    assert screened_work < 0.8 * sum(judged)
    broken = _broken(model, everything, y)
    assert 0 < int(broken.sum()) < len(y)
    assert torch.equal(_broken(model, screened, y), broken)
