"""deep.attacks on a small trained nonlinear net (the ``mlp`` fixture of tests/deep/conftest.py):
ε = 0, monotonicity in ε / steps / restarts, targets, the ε-ball and the [0, 1] box, losses, seeds,
bf16, representation matching, train/eval modes and the channels-last layout (issue 3 "Attacks").
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _linear_attacks import SHAPE, LinearNet, assert_in_ball_and_box, correct, full_box_data, gen, train_mlp
from deep.attacks import FGSM, PGD, FastFGSM, RepresentationMatch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_eps_zero_returns_x_and_clean_accuracy(norm: str, mlp) -> None:
    model, x, y = mlp
    for atk in (PGD(model, 0.0, 0.01, 10, norm=norm), FGSM(model, 0.0), FastFGSM(model, 0.0)):
        x_adv = atk(x, y)
        assert torch.equal(x_adv, x)
        assert torch.equal(correct(model, x_adv, y), correct(model, x, y))


@pytest.mark.parametrize("norm,grid", [("linf", [0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0]),
                                       ("l2", [0.0, 0.1, 0.3, 0.6, 1.2, 2.5, 5.0])])
def test_robust_accuracy_falls_monotonically_to_zero(norm: str, grid: list[float], mlp) -> None:
    model, x, y = mlp
    accs = [correct(model, PGD(model, e, e / 4, 20, norm=norm, loss="cw", generator=gen(0))(x, y), y).float().mean().item()
            for e in grid]
    assert accs[0] > 0.95
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] == 0.0, accs


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_more_steps_or_restarts_never_help_the_model(loss: str, mlp) -> None:
    model, x, y = mlp
    kw = dict(eps=0.08, alpha=0.01, norm="linf", loss=loss)
    few = correct(model, PGD(model, steps=3, generator=gen(7), **kw)(x, y), y)
    many = correct(model, PGD(model, steps=15, generator=gen(7), **kw)(x, y), y)
    restarted = correct(model, PGD(model, steps=3, restarts=4, generator=gen(7), **kw)(x, y), y)
    assert not (many & ~few).any()
    assert not (restarted & ~few).any()
    assert many.sum() < few.sum() or restarted.sum() < few.sum(), "the comparison should not be vacuous"


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.5, 0.05), ("l2", 3.0, 0.3)])
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_targeted_attack_hits_targets(norm: str, eps: float, alpha: float, loss: str, mlp) -> None:
    model, x, y = mlp
    t = (y + 1) % 4
    x_adv = PGD(model, eps, alpha, 30, norm=norm, targeted=True, loss=loss, generator=gen(0))(x, t)
    with torch.no_grad():
        hit = (model(x_adv).argmax(1) == t).float().mean()
    assert hit >= 0.95


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.8)])
@pytest.mark.parametrize("start", [True, False, "normal"])
@pytest.mark.parametrize("loss,targeted", [("ce", False), ("cw", False), ("kl", False), ("ce", True), ("cw", True)])
def test_pgd_outputs_lie_in_ball_and_box(norm: str, eps: float, start, loss: str, targeted: bool, mlp) -> None:
    model = mlp[0]
    x, y = full_box_data()
    atk = PGD(model, eps, eps / 3, 5, norm=norm, random_start=start, restarts=2, loss=loss, targeted=targeted,
              generator=gen(0))
    assert_in_ball_and_box(atk(x, y), x, eps, norm)


def test_one_step_attacks_lie_in_ball_and_box(mlp) -> None:
    model = mlp[0]
    x, y = full_box_data()
    for atk in (FGSM(model, 0.1), FastFGSM(model, 0.1, generator=gen(0)), FastFGSM(model, 0.1, alpha=0.5)):
        assert_in_ball_and_box(atk(x, y), x, 0.1, "linf")


def test_kl_loss_uses_clean_distribution(mlp) -> None:
    """TRADES inner max: KL(p(x) ‖ p(x')) grows from ≈ 0 at the 'normal' start; y plays no role."""
    model, x, y = mlp
    atk = PGD(model, 0.1, 0.02, 10, random_start="normal", loss="kl", generator=gen(0))
    x_adv = atk(x, y)
    same = PGD(model, 0.1, 0.02, 10, random_start="normal", loss="kl", generator=gen(0))(x, (y + 1) % 4)
    assert torch.equal(x_adv, same)
    with torch.no_grad():
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction="none").sum(1)
    assert kl.mean() > 0.1


def test_same_generator_seed_reproduces(mlp) -> None:
    model, x, y = mlp
    a = PGD(model, 0.1, 0.02, 3, generator=gen(11))(x, y)
    b = PGD(model, 0.1, 0.02, 3, generator=gen(11))(x, y)
    c = PGD(model, 0.1, 0.02, 3, generator=gen(12))(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bf16_runs_and_stays_in_ball(mlp) -> None:
    model, x, y = mlp
    x_adv = PGD(model, 0.1, 0.02, 5, bf16=True, generator=gen(0))(x, y)
    assert x_adv.dtype == torch.float32
    assert_in_ball_and_box(x_adv, x, 0.1, "linf")


# --------------------------------------------------------------------------------------------
# Representation matching
# --------------------------------------------------------------------------------------------
def test_representation_match_identity_features_reaches_target() -> None:
    """g = identity: the minimiser is x_target itself; normalised steps of 0.02 get within one step."""
    model = LinearNet(3, 0)
    g = gen(0)
    x_start, x_target = torch.rand(8, *SHAPE, generator=g), torch.rand(8, *SHAPE, generator=g)
    rm = RepresentationMatch(model, step=0.02, steps=200)
    z, before, after = rm.run(x_start, x_target)
    torch.testing.assert_close(before, (x_start - x_target).flatten(1).norm(dim=1))
    assert after.max() <= 0.02 + 1e-6
    torch.testing.assert_close(after, (z - x_target).flatten(1).norm(dim=1))
    assert rm.last_distances is not None and torch.equal(rm.last_distances[1], after)
    assert torch.equal(rm(x_start, x_target), z)


def test_representation_match_lowers_distance_on_mlp(mlp) -> None:
    model = mlp[0]
    model.train()
    x = mlp[1][:32]
    x_target = mlp[1][32:64]
    z, before, after = RepresentationMatch(model, step=0.05, steps=60).run(x, x_target)
    assert model.training, "train mode must be restored"
    assert z.min() >= 0 and z.max() <= 1
    assert (after <= before).all() and after.mean() < 0.5 * before.mean()
    model.eval()


# --------------------------------------------------------------------------------------------
# Modes, gradients, devices
# --------------------------------------------------------------------------------------------
def test_attack_runs_in_eval_and_restores_modes() -> None:
    model, x, y = train_mlp(seed=1)
    model.train()
    model.body[4].eval()  # a submodule deliberately in eval mode must stay so
    model.seen_training.clear()
    params_before = [p.detach().clone() for p in model.parameters()]
    bn_before = model.body[2].running_mean.clone()
    PGD(model, 0.1, 0.02, 3)(x, y)
    assert model.seen_training and not any(model.seen_training)
    assert model.training and model.body[2].training and not model.body[4].training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(params_before, model.parameters()))
    assert torch.equal(bn_before, model.body[2].running_mean)


def test_attack_works_inside_no_grad(mlp) -> None:
    model, x, y = mlp
    expected = FGSM(model, 0.1)(x, y)
    with torch.no_grad():
        assert torch.equal(FGSM(model, 0.1)(x, y), expected)


# --------------------------------------------------------------------------------------------
# Memory layout
# --------------------------------------------------------------------------------------------
def _tiny_convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3))


def test_channels_last_layout_is_restored_and_changes_no_accuracy() -> None:
    # On the CPU a conv model is attacked in channels-last format (faster); the model must come back
    # in its own layout with identical weights, and the attack's outcome must match the NCHW run.
    model = _tiny_convnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    outs = {}
    for fast in (True, False):
        atk = PGD(model, eps=0.5, alpha=0.1, steps=10, generator=torch.Generator().manual_seed(0))
        atk.channels_last = fast
        outs[fast] = atk(x, y)
        for k, v in model.state_dict().items():
            assert v.is_contiguous(), k
            assert torch.equal(v, before[k]), k
    with torch.no_grad():
        acc = {fast: float((model(o).argmax(1) == y).float().mean()) for fast, o in outs.items()}
    assert abs(acc[True] - acc[False]) <= 2 / 64
    assert float((outs[True] - outs[False]).abs().amax()) <= 2 * 0.5 + 1e-6  # both inside the same ball
    assert acc[True] < 1.0  # the attack did something, so the comparison can fail


def test_prefers_channels_last_only_for_cpu_conv_models() -> None:
    from deep.device import prefers_channels_last

    assert prefers_channels_last(_tiny_convnet(), torch.device("cpu"))
    assert not prefers_channels_last(torch.nn.Linear(3, 3), torch.device("cpu"))
    assert not prefers_channels_last(_tiny_convnet(), torch.device("cuda"))
