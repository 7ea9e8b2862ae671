"""deep.attacks checked against closed forms on linear models (SPEC §0, §4; issue 3 "Attacks").

For a linear classifier z = Wx + b and a point whose ε-ball stays inside [0, 1] (images in [0.3, 0.7],
ε < 0.3, so the box never clips), the exact robust set is: x is robust iff it is classified correctly
and every margin z_y − z_j exceeds ε‖w_y − w_j‖₁ (ℓ∞) or ε‖w_y − w_j‖₂ (ℓ2).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks import FGSM, PGD, PGDL2, Attack, FastFGSM, RepresentationMatch

SHAPE = (1, 4, 4)  # 16 input dimensions: tiny and fast
D = 16


class LinearNet(nn.Module):
    """ImageClassifier shape: features = flatten (identity), head = nn.Linear."""

    def __init__(self, num_classes: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(D, num_classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(num_classes, D, generator=g))
            self.head.bias.copy_(0.5 * torch.randn(num_classes, generator=g))

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Small nonlinear net with BatchNorm and Dropout (train/eval mode matters)."""

    def __init__(self, num_classes: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(D, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(32, num_classes)
        self.seen_training: list[bool] = []

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        self.seen_training.append(self.training)
        return self.head(self.features(x))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


def interior_data(n: int, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(n, *SHAPE, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return x, y


def closed_form_robust(model: LinearNet, x: Tensor, y: Tensor, eps: float, norm: str) -> Tensor:
    """Bool [N]: the exact ℓp robustness of a linear classifier (no box clipping)."""
    w = model.head.weight.detach()
    z = model(x).detach()
    q = 1 if norm == "linf" else 2
    robust = torch.ones(len(y), dtype=torch.bool)
    for j in range(w.shape[0]):
        margin = z.gather(1, y[:, None]).squeeze(1) - z[:, j]
        dual = (w[y] - w[j]).norm(p=q, dim=1)
        robust &= (y == j) | (margin > eps * dual)
    return robust


def correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model.eval()(x).argmax(1) == y


def train_mlp(num_classes: int = 4, seed: int = 0) -> tuple[MLP, Tensor, Tensor]:
    """Gaussian blobs in [0, 1]^16; a few hundred Adam steps give a near-perfect tiny classifier."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.2 + 0.6 * torch.rand(num_classes, D, generator=g)
    y = torch.randint(0, num_classes, (256,), generator=g)
    x = (centres[y] + 0.05 * torch.randn(256, D, generator=g)).clamp(0, 1).view(-1, *SHAPE)
    model = MLP(num_classes, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x, y


@pytest.fixture(scope="module")
def mlp() -> tuple[MLP, Tensor, Tensor]:
    model, x, y = train_mlp()
    assert correct(model, x, y).float().mean() > 0.95
    return model, x, y


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


def full_box_data(n: int = 64) -> tuple[Tensor, Tensor]:
    """Images touching 0 and 1 so that box clipping is active."""
    g = torch.Generator().manual_seed(9)
    x = torch.rand(n, *SHAPE, generator=g)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    return x, torch.randint(0, 4, (n,), generator=g)


def assert_in_ball_and_box(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    dist = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert dist.max() <= eps + 1e-6


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
# Modes, gradients, devices, bad input
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


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-0.1), "eps"), (dict(eps=float("nan")), "eps"), (dict(alpha=-1.0), "alpha"),
    (dict(steps=-1), "steps"), (dict(steps=2.5), "steps"), (dict(restarts=0), "restarts"),
    (dict(norm="l3"), "norm"), (dict(loss="hinge"), "loss"), (dict(random_start="uniform"), "random_start"),
    (dict(loss="kl", targeted=True), "kl"),
    (dict(steps=10**11), r"steps = 100000000000 is out of range; must lie in \[0, 100000\]"),
    (dict(restarts=5000), r"restarts = 5000 is out of range; must lie in \[1, 1000\]"),
    (dict(eps=8), r"eps = 8 is out of range for norm 'linf': must lie in \[0, 1\]"),
    (dict(eps=1e30, norm="l2"), "out of range for norm 'l2'"),
])
def test_pgd_rejects_bad_settings(kwargs: dict, match: str) -> None:
    settings = dict(eps=0.1, alpha=0.01, steps=3) | kwargs
    with pytest.raises(ValueError, match=match):
        PGD(LinearNet(2, 0), **settings)


def test_other_attacks_reject_bad_settings() -> None:
    model = LinearNet(2, 0)
    with pytest.raises(ValueError, match="eps"):
        FGSM(model, -0.1)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        FGSM(model, 1.5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        FastFGSM(model, 255.0)
    with pytest.raises(ValueError, match="alpha"):
        FastFGSM(model, 0.1, alpha=-1.0)
    with pytest.raises(ValueError, match="step"):
        RepresentationMatch(model, step=-0.1)
    with pytest.raises(ValueError, match="features"):
        RepresentationMatch(nn.Sequential(nn.Flatten(), nn.Linear(D, 2)))
    with pytest.raises(ValueError, match="model"):
        Attack("not a model")  # type: ignore[arg-type]


@pytest.mark.parametrize("make,match", [
    (lambda x, y: (x[0], y), "4-D"),
    (lambda x, y: ((x * 255).to(torch.uint8), y), "floating"),
    (lambda x, y: (x.index_fill(0, torch.tensor([0]), float("nan")), y), "NaN"),
    (lambda x, y: (x + 0.5, y), r"\[0, 1\]"),
    (lambda x, y: (x - 0.5, y), r"\[0, 1\]"),
    (lambda x, y: (x, y.float()), "int64"),
    (lambda x, y: (x, y[:-1]), "shape"),
    (lambda x, y: (x, y + 10), "classes"),
    (lambda x, y: (x, y - 10), "classes"),
    (lambda x, y: (x.numpy(), y), "Tensor"),
])
def test_attacks_reject_bad_input(make, match: str) -> None:
    model = LinearNet(3, 0)
    x, y = interior_data(8, 3, 0)
    bad_x, bad_y = make(x, y)
    for atk in (FGSM(model, 0.1), PGD(model, 0.1, 0.01, 2), FastFGSM(model, 0.1)):
        with pytest.raises(ValueError, match=match):
            atk(bad_x, bad_y)


def test_representation_match_rejects_bad_input() -> None:
    rm = RepresentationMatch(LinearNet(2, 0), steps=2)
    x = torch.rand(4, *SHAPE)
    with pytest.raises(ValueError, match="same shape"):
        rm(x, x[:2])
    with pytest.raises(ValueError, match="x_target"):
        rm(x, x + 2)
    with pytest.raises(ValueError, match="x_start"):
        rm(x.flatten(1), x)


def test_tiny_overshoot_of_the_box_is_accepted_and_clamped() -> None:
    model = LinearNet(2, 0)
    x, y = interior_data(8, 2, 0)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1 + 5e-7, -5e-7
    assert_in_ball_and_box(PGD(model, 0.1, 0.02, 3)(x, y), x.clamp(0, 1), 0.1, "linf")


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


# --------------------------------------------------------------------------------------------
# torchattacks-style ergonomics (issue 14 item 2) and refused inputs (issue 13 item 6)
# --------------------------------------------------------------------------------------------
def test_defaults_follow_torchattacks() -> None:
    model = LinearNet(3, 0)
    pgd = PGD(model)
    assert (pgd.eps, pgd.alpha, pgd.steps, pgd.norm, pgd.random_start, pgd.restarts) == \
        (8 / 255, 2 / 255, 10, "linf", True, 1)
    l2 = PGDL2(model)
    assert isinstance(l2, PGD) and (l2.eps, l2.alpha, l2.steps, l2.norm) == (0.5, 0.125, 10, "l2")
    assert PGD(model, 0.3, steps=40).alpha == 2.5 * 0.3 / 40 and PGD(model, 0.3, steps=0).alpha == 0.0
    assert FGSM(model).eps == 8 / 255 and FastFGSM(model).alpha == 1.25 * 8 / 255


def test_norm_is_case_insensitive_and_pgdl2_is_pgd_in_l2(mlp) -> None:
    model, x, y = mlp
    assert PGD(model, 0.1, norm="Linf").norm == "linf" and PGD(model, 0.5, norm="L2").norm == "l2"
    a = PGDL2(model, 0.5, 0.1, 3, generator=gen(1))(x[:16], y[:16])
    b = PGD(model, 0.5, 0.1, 3, norm="L2", generator=gen(1))(x[:16], y[:16])
    assert torch.equal(a, b)


def test_repr_names_every_hyperparameter() -> None:
    model = LinearNet(3, 0)
    assert repr(PGD(model)) == ("PGD(eps=0.03137, alpha=0.007843, steps=10, norm='linf', random_start=True, "
                                "restarts=1, loss='ce', targeted=False)")
    assert repr(PGDL2(model, restarts=2, loss="cw", bf16=True)) == (
        "PGDL2(eps=0.5, alpha=0.125, steps=10, norm='l2', random_start=True, restarts=2, loss='cw', "
        "targeted=False, bf16=True)")
    assert repr(FGSM(model, 0.1, targeted=True)) == "FGSM(eps=0.1, norm='linf', targeted=True)"
    assert repr(FastFGSM(model)) == \
        "FastFGSM(eps=0.03137, alpha=0.03922, norm='linf', random_start=True, targeted=False)"
    assert repr(RepresentationMatch(model, steps=5)) == "RepresentationMatch(step=0.1, steps=5, targeted=False)"


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8, torch.int8])
def test_labels_of_any_integer_dtype_give_the_int64_result(dtype, mlp) -> None:
    model, x, y = mlp
    want = PGD(model, 0.1, 0.03, 3, generator=gen(0))(x[:16], y[:16])
    assert torch.equal(PGD(model, 0.1, 0.03, 3, generator=gen(0))(x[:16], y[:16].to(dtype)), want)


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D, 3)

    def forward(self, x: Tensor):
        return self.lin(x.flatten(1)), x


class NaNNet(LinearNet):
    """Finite on the clean probe, NaN once the input moves away from it (as a broken model can be)."""

    def forward(self, x: Tensor) -> Tensor:
        z = super().forward(x)
        return z + torch.where(x.flatten(1).sum(1, keepdim=True) > -1, float("nan"), 0.0) if x.requires_grad else z


@pytest.mark.parametrize("make_model,x_dtype,match", [
    (lambda: LinearNet(3, 0), torch.float64, r"x has dtype torch.float64 but the model's parameters are torch.float32"),
    (lambda: LinearNet(3, 0).double(), torch.float32, "x has dtype torch.float32 but .* torch.float64"),
    (TupleNet, torch.float32, "must return a logits tensor .* got a tuple"),
    (nn.Identity, torch.float32, r"logits of shape \[N, K\] = \[1, K\], got \(1, 1, 4, 4\)"),
])
def test_dtype_and_model_output_errors_are_clear(make_model, x_dtype, match: str) -> None:
    x, y = interior_data(4, 3, 0)
    model = make_model()
    for atk in (PGD(model, 0.1, 0.01, 2), FGSM(model, 0.1)):
        with pytest.raises(ValueError, match=match):
            atk(x.to(x_dtype), y)


def test_non_finite_logits_are_refused() -> None:
    x, y = interior_data(4, 3, 0)
    for atk in (PGD(NaNNet(3, 0), 0.1, 0.01, 2), FGSM(NaNNet(3, 0), 0.1), FastFGSM(NaNNet(3, 0), 0.1)):
        with pytest.raises(ValueError, match=r"non-finite logits \(NaN or inf\) during"):
            atk(x, y)
    assert torch.isfinite(PGD(LinearNet(3, 0), 0.1, 0.01, 2)(x, y)).all()  # the same call on a sound model
