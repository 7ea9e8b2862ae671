"""deep.attacks settings and inputs: bad settings and bad input refused with clear errors, the
torchattacks-style defaults, names and repr (issue 14 item 2) and refused inputs (issue 13 item 6).
"""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from _linear_attacks import D, SHAPE, LinearNet, assert_in_ball_and_box, gen, interior_data
from deep.attacks import FGSM, PGD, PGDL2, Attack, FastFGSM, RepresentationMatch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


# --------------------------------------------------------------------------------------------
# Bad settings and bad input
# --------------------------------------------------------------------------------------------
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
