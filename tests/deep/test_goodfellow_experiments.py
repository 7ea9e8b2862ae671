"""deep.experiments.goodfellow, the noise training methods and the maxout / RBF models (SPEC §4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deep.attacks import FGSM
from deep.data import DatasetInfo, TensorSplit, load_split
from deep.experiments.goodfellow import (binary_margin, class_view, curve_summary, l1_vs_adversarial_logreg,
                                         linear_errors, linear_pixel_weights, logit_curves, run_logreg_binary,
                                         write_npz_dataset)
from deep.losses import goodfellow_loss
from deep.models import build_model
from deep.train import Recipe
from deep.train.methods import NoisePerturbation, make_inner_attack, training_step
from _tiny import write_tiny_npz as tiny_npz

torch.set_num_threads(1)


def _logreg(k: int = 2, shape=(1, 4, 4), seed: int = 0):
    torch.manual_seed(seed)
    # a non-trivial normalisation, so pixel-space weights differ from the stored ones
    return build_model("logreg", num_classes=k, in_shape=shape, mean=(0.3,), std=(0.7,)).eval()


def test_fgsm_on_logistic_regression_shifts_the_margin_by_eps_l1():
    """GF §4: for a linear model FGSM is the exact ℓ∞ worst case and moves y·(wᵀx + b) by ε‖w‖₁."""
    model = _logreg()
    g = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(32, 1, 4, 4, generator=g)  # interior: the [0, 1] box never binds at ε = 0.1
    y = torch.randint(0, 2, (32,), generator=g)
    eps = 0.1
    x_adv = FGSM(model, eps)(x, y)
    weight, _ = linear_pixel_weights(model)
    w = weight[1] - weight[0]
    shift = (binary_margin(model, x, y) - binary_margin(model, x_adv, y)).double().numpy()
    np.testing.assert_allclose(shift, eps * np.abs(w).sum(), rtol=1e-4)
    # a random-sign step of the same size moves the margin far less (the point of GF's argument)
    rand = (x + eps * torch.where(torch.rand(x.shape, generator=g) < 0.5, -1.0, 1.0))
    assert (binary_margin(model, x, y) - binary_margin(model, rand, y)).abs().mean() < 0.5 * eps * np.abs(w).sum()


def test_linear_pixel_weights_reproduce_the_logits():
    model = _logreg(k=3, shape=(1, 3, 3))
    x = torch.rand(5, 1, 3, 3)
    weight, bias = linear_pixel_weights(model)
    ours = x.flatten(1).double().numpy() @ weight.T + bias
    np.testing.assert_allclose(ours, model(x).detach().double().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="logreg"):
        linear_pixel_weights(build_model("mlp", num_classes=2, in_shape=(1, 3, 3), hidden=(4,)))


def _split(labels, k=5):
    y = torch.tensor(labels, dtype=torch.int64)
    x = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2) / 255
    return TensorSplit(x.contiguous(), y, DatasetInfo("toy", k, (1, 2, 2), tuple("abcde")))


def test_class_view_keeps_only_the_named_labels_in_the_given_order():
    split = _split([0, 3, 1, 3, 4, 1, 2, 3])
    view = class_view(split, (3, 1))
    assert view.y.tolist() == [0, 1, 0, 1, 0]           # 3 → 0, 1 → 1, in the original order
    assert (view.x[:, 0, 0, 0] * 255).round().tolist() == [1, 2, 3, 5, 7]  # the kept rows are the right images
    assert view.info.num_classes == 2 and view.info.classes == ("d", "b")
    for bad in ((3,), (3, 3), (3, 9)):
        with pytest.raises(ValueError, match="classes"):
            class_view(split, bad)


def test_write_npz_dataset_round_trips_through_load_split(tmp_path):
    split = class_view(_split([0, 3, 1, 3, 4]), (3, 0))
    name = write_npz_dataset(tmp_path / "v.npz", split, split)
    back = load_split(name, "train")
    assert torch.equal(back.x, split.x) and torch.equal(back.y, split.y)
    assert np.load(tmp_path / "v.npz")["x_train"].dtype == np.uint8  # 8-bit images are kept exact as uint8


@pytest.mark.parametrize("kind", ["sign", "uniform"])
def test_noise_stays_within_eps_and_the_box(kind):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=g)
    noise = NoisePerturbation(0.25, kind, torch.Generator().manual_seed(3))
    x_n = noise(x, torch.zeros(64, dtype=torch.int64))
    d = x_n - x
    assert d.abs().max() <= 0.25 + 1e-6 and x_n.min() >= 0 and x_n.max() <= 1
    interior = (x > 0.25) & (x < 0.75)
    if kind == "sign":  # exactly ±ε where the box does not bind, both signs about equally often
        assert torch.allclose(d[interior].abs(), torch.full_like(d[interior], 0.25), atol=1e-6)
    else:  # U(−ε, ε): spread out, standard deviation ε/√3
        assert abs(float(d[interior].std()) - 0.25 / 3 ** 0.5) < 0.01
    assert 0.4 < float((d[interior] > 0).float().mean()) < 0.6
    again = NoisePerturbation(0.25, kind, torch.Generator().manual_seed(3))(x, torch.zeros(64, dtype=torch.int64))
    assert torch.equal(x_n, again)  # reproducible from the seed
    with pytest.raises(ValueError, match="noise kind"):
        NoisePerturbation(0.25, "gauss", g)


def test_noise_method_is_alpha_mixed_like_fgsm():
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=3, in_shape=(1, 4, 4), hidden=(8,))
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 3, (16,))
    recipe = Recipe.from_dict(dict(dataset="mnist", model="mlp", method="noise-sign", eps=0.2, fgsm_alpha=0.3))
    attack = make_inner_attack(recipe, model, torch.Generator().manual_seed(5))
    assert isinstance(attack, NoisePerturbation)
    loss = training_step(recipe, model, attack, x, y).loss
    x_n = NoisePerturbation(0.2, "sign", torch.Generator().manual_seed(5))(x, y)
    expected = goodfellow_loss(model(x), model(x_n), y, 0.3)
    assert torch.allclose(loss, expected) and not torch.allclose(loss, F.cross_entropy(model(x), y))
    with pytest.raises(ValueError, match="eps"):
        Recipe.from_dict(dict(dataset="mnist", model="mlp", method="noise-uniform", eps=0.0))


def test_logit_curves_of_a_linear_model_are_straight_lines():
    model = _logreg(k=3, shape=(1, 3, 3))
    x, y = torch.rand(4, 1, 3, 3), torch.tensor([0, 1, 2, 0])
    grid = np.linspace(-2, 2, 9)
    c = logit_curves(model, x, y, grid)
    assert c.shape == (4, 9, 3)
    np.testing.assert_allclose(c[:, 4], model(x).detach().double().numpy(), atol=1e-5)  # ε = 0 is the clean input
    s = curve_summary(c, grid, y.numpy(), 0.5)
    assert s["r2_min"] > 1 - 1e-9
    with pytest.raises(ValueError, match="eps_grid"):
        logit_curves(model, x, y, [0.0])


def test_curve_summary_counts_winner_changes_and_wrong_ranges():
    grid = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    # example 0: class 0 wins up to ε = 0, class 1 after (one change, wrong for ε ≥ 0.5);
    # example 1: class 1 wins throughout (never wrong); logits are a parabola for class 0 (not linear)
    c = np.zeros((2, 5, 2))
    c[0, :, 0] = [2, 1, 0.5, 0, -1]
    c[0, :, 1] = [0, 0, 0, 1, 2]
    c[1, :, 0] = grid ** 2 - 5
    c[1, :, 1] = 1.0
    s = curve_summary(c, grid, np.array([0, 1]), 0.5)
    assert s["argmax_changes_mean"] == 0.5
    assert s["wrong_fraction_beyond_eps"] == 0.5   # example 0 wrong at 0.5 and 1.0, example 1 never
    assert s["flip_eps_median"] == 0.5 and s["never_flipped"] == 1
    assert s["r2_min"] < 0.1                        # the parabola has no linear trend
    with pytest.raises(ValueError, match="curves"):
        curve_summary(c[:, :3], grid, np.array([0, 1]), 0.5)


def test_linear_errors_closed_form_equals_explicit_fgsm_when_the_box_does_not_bind():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=6), 0.1
    x = 0.4 + 0.2 * rng.random((50, 6))
    y = np.sign(x @ w + b + 0.3 * rng.normal(size=50))
    e = linear_errors(w, b, x, y, 0.05)
    assert e["fgsm_error"] == e["fgsm_error_unboxed"] >= e["clean_error"]
    explicit = (y * ((x - 0.05 * y[:, None] * np.sign(w)) @ w + b) <= 0).mean()
    assert e["fgsm_error"] == pytest.approx(explicit)


def test_l1_vs_adversarial_logreg_on_a_tiny_two_class_set():
    split = class_view(_tiny_split(), (0, 2))
    out = l1_vs_adversarial_logreg(split, split, eps=0.25, alpha=0.5, l1_lams=(0.05,), maxiter=200)
    labels = [f["label"] for f in out["fits"]]
    assert labels == ["plain", "adversarial eps=0.25", "L1 lambda=0.05"]
    plain, adv, l1 = out["fits"]
    assert adv["w_l1"] < plain["w_l1"] and l1["w_l1"] < plain["w_l1"]  # both shrink the weights
    for f in out["fits"]:
        t = f["test_loss"]
        assert t["plain"] <= t["adversarial"] + 1e-12 <= t["l1"] + 2e-12  # ζ' < 1: penalty inside ζ costs less
    with pytest.raises(ValueError, match="two-class"):
        l1_vs_adversarial_logreg(_tiny_split(), _tiny_split())


def _tiny_split() -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (60,), generator=g)
    x = 0.5 + 0.05 * torch.randn(60, 1, 6, 6, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, 0, 2 * c:2 * c + 2] += 0.3
    return TensorSplit(x.clamp(0, 1), y, DatasetInfo("tiny", 3, (1, 6, 6), ("a", "b", "c")))


def test_run_logreg_binary_end_to_end_on_tiny_data(tmp_path):
    name = tiny_npz(tmp_path / "tiny.npz")
    m = run_logreg_binary({"dataset": name, "classes": [0, 2], "eps": 0.1, "n_show": 4, "epochs": 2, "lr": 0.5,
                           "batch_size": 16, "eval_n": 8}, tmp_path / "run")
    assert 0 <= m["clean_error"] <= m["fgsm_error"] <= 1 and m["n_test"] < 48
    f2 = m["figure2"]
    assert len(f2["w"]) == 36 and np.asarray(f2["adversarial"]).shape == (4, 36)
    assert set(f2["labels"]) == {0, 1}
    diff = np.abs(np.asarray(f2["adversarial"]) - np.asarray(f2["clean"]))
    assert diff.max() <= 0.1 + 1e-3  # FGSM within ε (values rounded to 4 decimals)
    assert m["mean_margin_shift"] <= m["eps_w_l1"] + 1e-4  # the box can only cut the worst-case shift


def test_maxout_is_the_max_of_its_affine_pieces():
    torch.manual_seed(0)
    model = build_model("maxout", num_classes=3, in_shape=(1, 2, 2), hidden=(5,), pieces=3)
    layer = model.body[1]
    x = torch.rand(7, 1, 2, 2)
    z = layer.linear(x.flatten(1)).view(7, 5, 3)
    assert torch.allclose(model.features(x), z.max(dim=2).values)
    with pytest.raises(ValueError, match="pieces"):
        build_model("maxout", num_classes=3, in_shape=(1, 2, 2), pieces=0)


def test_rbf_units_respond_one_at_their_centre_and_vanish_far_away():
    torch.manual_seed(0)
    model = build_model("rbf", num_classes=3, in_shape=(1, 3, 3), units=4)
    layer = model.body[1]
    centre = layer.centers[2].detach().view(1, 1, 3, 3)  # model has mean 0, std 1: pixel = normalised
    with torch.no_grad():
        r = model.features(centre)
        far = model.features(centre + 100.0)
    assert r.shape == (1, 4) and abs(float(r[0, 2]) - 1.0) < 1e-5 and float(r.max()) <= 1.0
    assert float(far.max()) < 1e-6
    with pytest.raises(ValueError, match="units"):
        build_model("rbf", num_classes=3, in_shape=(1, 3, 3), units=0)
