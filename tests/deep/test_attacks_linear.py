"""deep.attacks checked against closed forms on linear models (SPEC §0, §4; issue 3 "Attacks"), and the
geometry of single steps, random starts and the per-example best.

The closed form of a linear model's robust set: see tests/deep/_linear_attacks.py.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _linear_attacks import D, SHAPE, LinearNet, closed_form_robust, correct, gen, interior_data
from deep.attacks import FGSM, PGD, FastFGSM


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


# --------------------------------------------------------------------------------------------
# Closed forms on linear models
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.05, 0.01), ("l2", 0.25, 0.05)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pgd_cw_equals_closed_form_on_binary_linear(norm: str, eps: float, alpha: float, seed: int) -> None:
    model = LinearNet(2, seed)
    x, y = interior_data(400, 2, seed)
    # ℓ∞ from a random start reaches the corner after 2ε/α steps; ℓ2 from x walks straight to ε·u.
    atk = PGD(model, eps, alpha, steps=30, norm=norm, random_start=norm == "linf", loss="cw", generator=gen(seed))
    x_adv = atk(x, y)
    exact = closed_form_robust(model, x, y, eps, norm)
    assert 0.1 < exact.float().mean() < 0.9, "the test needs both robust and non-robust points"
    assert torch.equal(correct(model, x_adv, y), exact)


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.03, 0.006), ("l2", 0.2, 0.04)])
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd_sound_and_tight_on_multiclass_linear(norm: str, eps: float, alpha: float, loss: str) -> None:
    model = LinearNet(5, 3)
    x, y = interior_data(400, 5, 3)
    exact = closed_form_robust(model, x, y, eps, norm)
    assert 0.1 < exact.float().mean() < 0.9
    pgd_robust = correct(model, PGD(model, eps, alpha, 40, norm=norm, restarts=2, loss=loss, generator=gen(0))(x, y), y)
    # Soundness: PGD can only break points that the closed form says are breakable.
    assert not (exact & ~pgd_robust).any()
    # Tightness: the untargeted attack finds nearly every breakable point.
    assert (pgd_robust & ~exact).float().mean() <= 0.02


@pytest.mark.parametrize("attack", ["fgsm", "fast"])
def test_one_step_attacks_are_sound_on_linear(attack: str) -> None:
    model = LinearNet(5, 4)
    x, y = interior_data(400, 5, 4)
    eps = 0.03
    atk = FGSM(model, eps) if attack == "fgsm" else FastFGSM(model, eps, generator=gen(1))
    exact = closed_form_robust(model, x, y, eps, "linf")
    assert not (exact & ~correct(model, atk(x, y), y)).any()


def test_fgsm_matches_hand_computation() -> None:
    """Binary: ∇ₓCE = p_o (w_o − w_y), so FGSM moves by ε·sign(w_o − w_y); multiclass: sign(Wᵀ(p − e_y))."""
    eps = 0.1
    for k in (2, 5):
        model = LinearNet(k, 5)
        x, y = interior_data(64, k, 5)
        w = model.head.weight.detach()
        if k == 2:
            direction = w[1 - y] - w[y]
        else:
            p = torch.softmax(model(x).detach(), 1)
            direction = (p - F.one_hot(y, k).float()) @ w
        expected = x + eps * direction.sign().view_as(x)
        torch.testing.assert_close(FGSM(model, eps)(x, y), expected, atol=1e-7, rtol=0)
        # Targeted: the opposite step on the target's loss.
        t = (y + 1) % k
        p = torch.softmax(model(x).detach(), 1)
        expected_t = x - eps * ((p - F.one_hot(t, k).float()) @ w).sign().view_as(x)
        torch.testing.assert_close(FGSM(model, eps, targeted=True)(x, t), expected_t, atol=1e-7, rtol=0)


def test_fast_fgsm_with_large_step_reaches_the_corner() -> None:
    """With α ≥ 2ε one signed step saturates the projection: x + ε·sign(w_o − w_y) from any start."""
    model = LinearNet(2, 6)
    x, y = interior_data(64, 2, 6)
    w = model.head.weight.detach()
    expected = x + 0.05 * (w[1 - y] - w[y]).sign().view_as(x)
    torch.testing.assert_close(FastFGSM(model, 0.05, alpha=0.1, generator=gen(2))(x, y), expected, atol=1e-6, rtol=0)


def test_l2_random_start_is_uniform_in_the_ball() -> None:
    """With steps=0 the output is the start: radius r = ε·U^{1/d}, so P(r ≤ ε·s) = s^d."""
    model = LinearNet(2, 0)
    x = torch.full((4000, *SHAPE), 0.5)
    y = torch.zeros(4000, dtype=torch.int64)
    eps = 0.2
    r = (PGD(model, eps, 0.1, 0, norm="l2", generator=gen(3))(x, y) - x).flatten(1).norm(dim=1)
    s = 0.95
    expected = s ** D  # ≈ 0.44
    observed = (r <= eps * s).float().mean().item()
    assert abs(observed - expected) < 4 * (expected * (1 - expected) / 4000) ** 0.5
    assert r.max() <= eps + 1e-6


# --------------------------------------------------------------------------------------------
# Step geometry and the per-example best
# --------------------------------------------------------------------------------------------
def test_l2_step_has_length_alpha_and_linf_step_is_signed() -> None:
    """One step from x on a binary linear model: ℓ2 moves α·(w_o − w_y)/‖w_o − w_y‖₂, ℓ∞ α·sign(w_o − w_y)."""
    model = LinearNet(2, 8)
    x, y = interior_data(32, 2, 8)
    w = model.head.weight.detach()
    direction = (w[1 - y] - w[y]).view_as(x)
    unit = direction / direction.flatten(1).norm(dim=1)[:, None, None, None]
    l2 = PGD(model, 1.0, 0.07, 1, norm="l2", random_start=False, loss="cw")(x, y)
    torch.testing.assert_close(l2, x + 0.07 * unit, atol=1e-6, rtol=0)
    linf = PGD(model, 1.0, 0.07, 1, norm="linf", random_start=False, loss="cw")(x, y)
    torch.testing.assert_close(linf, x + 0.07 * direction.sign(), atol=1e-6, rtol=0)


def test_normal_start_is_small_gaussian_noise() -> None:
    """steps=0 returns the TRADES/MART start x + 0.001·N(0, 1) (inside the ball and box)."""
    model = LinearNet(2, 0)
    x = torch.full((200, *SHAPE), 0.5)
    y = torch.zeros(200, dtype=torch.int64)
    noise = PGD(model, 0.1, 0.01, 0, random_start="normal", generator=gen(4))(x, y) - x
    assert abs(noise.std().item() - 0.001) < 0.0001 and abs(noise.mean().item()) < 0.0001


def test_returned_point_never_gets_worse_with_more_steps(mlp) -> None:
    """With a step as large as ε the iterates bounce; the per-example best is monotone in steps anyway."""
    model, x, y = mlp
    prev_success, prev_obj = None, None
    for steps in range(1, 7):
        x_adv = PGD(model, 0.05, 0.05, steps, generator=gen(5))(x, y)
        with torch.no_grad():
            logits = model(x_adv)
        success, obj = logits.argmax(1) != y, F.cross_entropy(logits, y, reduction="none")
        if prev_success is not None:
            assert not (prev_success & ~success).any()
            same = success == prev_success
            assert (obj[same] >= prev_obj[same] - 1e-6).all()
        prev_success, prev_obj = success, obj


def test_best_prefers_success_over_higher_loss() -> None:
    from deep.attacks.pgd import _Best

    best = _Best(torch.zeros(3, 1, 1, 1))
    best.update(torch.full((3, 1, 1, 1), 1.0), torch.tensor([1.0, 1.0, 1.0]), torch.tensor([True, False, False]))
    best.update(torch.full((3, 1, 1, 1), 2.0), torch.tensor([5.0, 5.0, 0.5]), torch.tensor([False, False, False]))
    best.update(torch.full((3, 1, 1, 1), 3.0), torch.tensor([0.1, 0.1, 0.1]), torch.tensor([False, True, False]))
    assert best.x.flatten().tolist() == [1.0, 3.0, 1.0]
    assert best.success.tolist() == [True, True, False]
