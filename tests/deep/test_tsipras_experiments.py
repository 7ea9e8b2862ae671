"""deep.experiments.tsipras on tiny linear models whose gradients and attacks can be checked by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deep.experiments import tsipras as ts


def linear_model(seed: int = 0, k: int = 3, d: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k))


def images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_input_gradients_match_the_softmax_formula_per_example():
    model = linear_model()
    x, y = images(), torch.tensor([0, 1, 2, 0, 1, 2])
    grad = ts.input_gradients(model, x, y, batch_size=4)  # two batches, one of them partial
    w = model[1].weight.detach()
    p = torch.softmax(model(x).detach(), dim=1)
    expected = ((p - nn.functional.one_hot(y, 3).float()) @ w).view_as(x)  # ∇ₓ CE = Wᵀ(p − e_y)
    assert torch.allclose(grad, expected, atol=1e-6)


def test_gradient_images_clip_at_k_sigma_then_rescale():
    g = torch.zeros(2, 1, 10, 10)
    g[0, 0, 0, 0] = 100.0   # one outlier: without clipping every other pixel would sit at 0
    g[0, 0, 1, :] = 1.0
    img = ts.gradient_images(g, clip_sigma=3.0)
    assert img.min() >= 0 and img.max() <= 1
    flat = g[0].flatten()
    mean, std = flat.mean(), flat.std(unbiased=False)
    clipped = flat.clamp(mean - 3 * std, mean + 3 * std)
    expected = (clipped - clipped.min()) / (clipped.max() - clipped.min())
    assert torch.allclose(img[0].flatten(), expected, atol=1e-6)
    assert torch.all(img[1] == 0.5)  # a zero gradient is a uniform grey image
    plain = ts.gradient_images(g, clip_sigma=None)
    assert float(plain[0, 0, 1, 0]) == pytest.approx(0.01)  # plain min–max: the outlier dominates
    assert float(img[0, 0, 1, 0]) > 3 * float(plain[0, 0, 1, 0])  # clipping makes the row of ones visible
    with pytest.raises(ValueError, match="clip_sigma"):
        ts.gradient_images(g, clip_sigma=0)


def test_alignment_is_one_for_the_image_pattern_and_zero_for_an_orthogonal_one():
    x = images(2)
    contrast = x - x.flatten(1).mean(1)[:, None, None, None]
    assert torch.allclose(ts.gradient_alignment(-contrast, x), torch.ones(2), atol=1e-6)
    other = torch.randn_like(x)
    c, o = contrast.flatten(1), other.flatten(1)
    o = o - (o * c).sum(1, keepdim=True) / (c * c).sum(1, keepdim=True) * c  # remove the image component
    assert torch.allclose(ts.gradient_alignment(o.view_as(x), x), torch.zeros(2), atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        ts.gradient_alignment(torch.zeros(1, 1, 4, 4), x)


def test_pick_per_class_is_rank_major_and_checks_counts():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1])
    idx = ts.pick_per_class(y, 2, 3)
    assert idx.tolist() == [1, 2, 0, 3, 5, 4]
    assert y[idx].tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="class 0 has 2"):
        ts.pick_per_class(y, 3, 3)
    with pytest.raises(ValueError, match="per_class"):
        ts.pick_per_class(y, 0, 3)


def test_targets_differ_from_labels_and_follow_the_seed():
    y = torch.arange(10).repeat(50)
    t = ts.choose_targets(y, 10, seed=3)
    assert not bool((t == y).any())
    assert set(t.tolist()) == set(range(10))
    assert torch.equal(t, ts.choose_targets(y, 10, seed=3))
    assert not torch.equal(t, ts.choose_targets(y, 10, seed=4))


def test_large_eps_examples_stay_in_the_ball_and_reach_the_target():
    model = linear_model(seed=2)
    x = images(6) * 0.5 + 0.25
    y = model(x).argmax(1)
    t = ts.choose_targets(y, 3, seed=0)
    small = ts.large_eps_examples(model, x, t, eps=0.05, alpha=0.01, steps=10)
    big = ts.large_eps_examples(model, x, t, eps=8.0, alpha=0.5, steps=60)
    for adv, eps in ((small, 0.05), (big, 8.0)):
        assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps + 1e-5
        assert adv.min() >= 0 and adv.max() <= 1
    rows = torch.arange(6)
    gain = torch.log_softmax(model(big), 1)[rows, t] - torch.log_softmax(model(x), 1)[rows, t]
    assert bool((gain > 0).all())
    assert bool((model(big).argmax(1) == t).all())


def test_interpolation_endpoints_and_midpoint():
    x, x_adv = images(3, seed=1), images(3, seed=2)
    lam, path = ts.interpolate(x, x_adv, 5)
    assert lam.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.equal(path[0], x) and torch.allclose(path[-1], x_adv)
    assert torch.allclose(path[2], (x + x_adv) / 2)
    with pytest.raises(ValueError, match="points"):
        ts.interpolate(x, x_adv, 1)


def test_studies_report_consistent_summaries():
    model = linear_model(seed=4)
    x, y = images(6, seed=5), torch.tensor([0, 1, 2, 0, 1, 2])
    arrays, summary = ts.gradient_study(model, x, y, clip_sigma=3.0)
    assert arrays["image"].shape == (6, 1, 4, 4) and summary["n"] == 6
    assert summary["clean_acc"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()))
    arrays, summary = ts.large_eps_study(model, x, y, num_classes=3, eps=8.0, alpha=0.5, steps=40, points=3,
                                         strip=2, seed=0, judge=model)
    assert arrays["strip"].shape == (3, 2, 1, 4, 4) and arrays["path_probs"].shape == (3, 6, 3)
    p0 = torch.softmax(model(x), 1).detach()
    t = torch.as_tensor(arrays["target"])
    assert summary["target_prob_along_path"][0] == pytest.approx(float(p0[torch.arange(6), t].mean()), abs=1e-6)
    assert summary["judge_target_rate"] == summary["target_rate"]  # the model judging itself
    assert summary["target_prob_along_path"][-1] > summary["target_prob_along_path"][0]
    with pytest.raises(ValueError, match="strip"):
        ts.large_eps_study(model, x, y, num_classes=3, eps=1.0, alpha=0.1, steps=1, strip=7)
