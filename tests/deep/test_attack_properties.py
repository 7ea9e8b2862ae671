"""Hypothesis tests of attack invariants on tiny linear models (issue 13 item 5).

- every output lies in the ε-ball around x and in the [0, 1] box;
- permuting the batch permutes the output (no random start, or FGSM);
- ``steps=0`` returns the start (x itself, or the seeded random start);
- more steps never lower the returned point's (success, objective), and ``_Best`` keeps the
  lexicographic maximum of everything it has seen.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from deep.attacks import FGSM, PGD, FastFGSM
from deep.attacks.objectives import attack_objective, attack_success
from deep.attacks.pgd import _Best

SHAPE = (1, 2, 3)
PROPS = settings(max_examples=25, deadline=None, derandomize=True)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


def linear(seed: int, classes: int = 3) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, classes))
    with torch.no_grad():
        model[1].weight.copy_(3 * torch.randn(classes, 6, generator=g))
        model[1].bias.copy_(torch.randn(classes, generator=g))
    return model


def data(seed: int, n: int, classes: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return torch.rand(n, *SHAPE, generator=g), torch.randint(0, classes, (n,), generator=g)


def distance(x_adv: Tensor, x: Tensor, norm: str) -> Tensor:
    d = (x_adv - x).flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(dim=1)


pgd_settings = st.fixed_dictionaries({
    "eps": st.floats(0.0, 0.6), "alpha": st.floats(0.0, 0.4), "steps": st.integers(0, 6),
    "norm": st.sampled_from(["linf", "l2"]), "random_start": st.sampled_from([True, False, "normal"]),
    "restarts": st.integers(1, 2), "loss": st.sampled_from(["ce", "cw", "kl"]), "targeted": st.booleans(),
}).filter(lambda s: not (s["loss"] == "kl" and s["targeted"]))


@PROPS
@given(cfg=pgd_settings, seed=st.integers(0, 2**16), n=st.integers(1, 6))
def test_pgd_output_in_ball_and_box(cfg: dict, seed: int, n: int) -> None:
    x, y = data(seed, n)
    x_adv = PGD(linear(seed), **cfg, generator=torch.Generator().manual_seed(seed))(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert bool((distance(x_adv, x, cfg["norm"]) <= cfg["eps"] * (1 + 1e-5) + 1e-6).all())


@PROPS
@given(eps=st.floats(0.0, 0.6), alpha=st.one_of(st.none(), st.floats(0.0, 1.0)), seed=st.integers(0, 2**16),
       n=st.integers(1, 6), targeted=st.booleans())
def test_one_step_attacks_in_ball_and_box(eps: float, alpha: float | None, seed: int, n: int, targeted: bool) -> None:
    x, y = data(seed, n)
    model = linear(seed)
    for atk in (FGSM(model, eps, targeted=targeted),
                FastFGSM(model, eps, alpha, targeted=targeted, generator=torch.Generator().manual_seed(seed))):
        x_adv = atk(x, y)
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
        assert bool((distance(x_adv, x, "linf") <= eps * (1 + 1e-6)).all())


@PROPS
@given(cfg=pgd_settings, seed=st.integers(0, 2**16), n=st.integers(2, 6), data_=st.data())
def test_permuting_the_batch_permutes_the_output(cfg: dict, seed: int, n: int, data_) -> None:
    cfg = {**cfg, "random_start": False}  # random starts are drawn per batch position, so fix the start
    perm = torch.tensor(data_.draw(st.permutations(range(n))))
    x, y = data(seed, n)
    model = linear(seed)
    assert torch.equal(PGD(model, **cfg)(x[perm], y[perm]), PGD(model, **cfg)(x, y)[perm])
    assert torch.equal(FGSM(model, cfg["eps"])(x[perm], y[perm]), FGSM(model, cfg["eps"])(x, y)[perm])


@PROPS
@given(cfg=pgd_settings, seed=st.integers(0, 2**16), n=st.integers(1, 6))
def test_zero_steps_return_the_start(cfg: dict, seed: int, n: int) -> None:
    cfg = {**cfg, "steps": 0, "restarts": 1}
    x, y = data(seed, n)
    atk = PGD(linear(seed), **cfg, generator=torch.Generator().manual_seed(seed))
    x_adv = atk(x, y)
    if cfg["random_start"] is False or cfg["eps"] == 0:
        assert torch.equal(x_adv, x)
    else:  # the same generator seed draws the same start
        atk.generator = torch.Generator().manual_seed(seed)
        assert torch.equal(x_adv, atk._start(x))


def objective_and_success(model: nn.Module, x_adv: Tensor, y: Tensor, x: Tensor, cfg: dict) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        p_clean = torch.softmax(model(x), dim=1) if cfg["loss"] == "kl" else None
        z = model(x_adv)
        return (attack_objective(z, y, cfg["loss"], targeted=cfg["targeted"], p_clean=p_clean),
                attack_success(z, y, cfg["loss"], targeted=cfg["targeted"]))


@PROPS
@given(cfg=pgd_settings, seed=st.integers(0, 2**16), n=st.integers(1, 6), extra=st.integers(1, 5))
def test_more_steps_never_lower_the_best_objective(cfg: dict, seed: int, n: int, extra: int) -> None:
    x, y = data(seed, n)
    model = linear(seed)
    results = []
    for steps in (cfg["steps"], cfg["steps"] + extra):
        x_adv = PGD(model, **{**cfg, "steps": steps}, generator=torch.Generator().manual_seed(seed))(x, y)
        results.append(objective_and_success(model, x_adv, y, x, cfg))
    (obj_few, ok_few), (obj_many, ok_many) = results
    assert bool((ok_many >= ok_few).all())
    same = ok_many == ok_few
    assert bool((obj_many[same] >= obj_few[same] - 1e-5 * (1 + obj_few[same].abs())).all())


@PROPS
@given(seed=st.integers(0, 2**16), n=st.integers(1, 5), rounds=st.integers(1, 6))
def test_best_keeps_the_lexicographic_maximum(seed: int, n: int, rounds: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.zeros(n, 1, 1, 1)
    best = _Best(x0)
    seen: list[tuple[Tensor, Tensor, Tensor]] = []
    for r in range(rounds):
        cand = torch.full((n, 1, 1, 1), float(r + 1))
        # coarse objective values so that ties happen; the earlier candidate must win a tie
        objective = torch.randint(0, 3, (n,), generator=g).float()
        success = torch.rand(n, generator=g) < 0.3
        best.update(cand, objective, success)
        seen.append((cand, objective, success))
    for i in range(n):
        key = [(bool(s[i]), float(o[i])) for _, o, s in seen]
        first_max = key.index(max(key))
        assert float(best.x[i]) == float(seen[first_max][0][i])
        assert (bool(best.success[i]), float(best.objective[i])) == key[first_max]
