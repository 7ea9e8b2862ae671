"""bf16 is a speed option for attack steps only: every reported number is an fp32 forward.

The models come from test_attack_bf16.py: ``Liar``'s bf16 forward swaps its two logits (so a bf16
verdict is always the opposite of fp32's) while its steps equal fp32's; ``Gate`` loses the input
gradient of dark images in bf16, which makes the attacks fall back to fp32.
"""
from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor, nn

from deep.attacks import RepresentationMatch
from deep.evaluate import evaluate, predict
from deep.train import Recipe
from deep.train.heldout import check_heldout
from tests.deep.test_attack_bf16 import Gate, Liar

BF16 = torch.bfloat16


def _liar_data(n: int = 40) -> tuple[Tensor, Tensor]:
    x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = Liar()(x).argmax(1)  # fp32 clean accuracy 1, bf16 clean accuracy 0
    y[: n // 4] = 1 - y[: n // 4]
    return x, y


def _bf16_accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad(), torch.autocast("cpu", dtype=BF16):
        return float((model(x).argmax(1) == y).float().mean())


def test_bf16_evaluation_reports_fp32_numbers() -> None:
    x, y = _liar_data()
    assert _bf16_accuracy(Liar(), x, y) < 0.3  # a bf16 forward reports (mostly) the opposite verdicts
    fp32 = evaluate(Liar(), (x, y), ["fgsm", "pgd-3"], eps=0.1, batch_size=16, progress=False)
    bf16 = evaluate(Liar(), (x, y), ["fgsm", "pgd-3"], eps=0.1, batch_size=16, progress=False, bf16=True)
    assert fp32.clean == bf16.clean == 0.75
    assert 0 < fp32.attacks["pgd-3"] < fp32.clean  # the attack succeeds on some examples, not all
    # Liar's bf16 steps equal its fp32 steps, so fp32 scoring gives fp32's numbers exactly.
    assert bf16.attacks == fp32.attacks and bf16.worst_case == fp32.worst_case
    # FGSM returns the same point; bf16 PGD returns each broken example's first successful iterate
    # (first_success, deep/attacks/pgd.py), fp32 PGD its strongest, so only their confidence may differ.
    assert bf16.mean_confidence_on_errors["fgsm"] == fp32.mean_confidence_on_errors["fgsm"]
    assert bf16.mean_confidence_on_errors["pgd-3"] <= fp32.mean_confidence_on_errors["pgd-3"]
    assert all((bf16.correct[k] == fp32.correct[k]).all() for k in fp32.correct)
    assert bf16.flags == fp32.flags == []


def test_reported_numbers_are_fp32_inside_a_callers_autocast() -> None:
    x, y = _liar_data()
    with torch.autocast("cpu", dtype=BF16):
        r = evaluate(Liar(), (x, y), [], eps=0.0, progress=False)
        pred, conf = predict(Liar(), x, batch_size=16)
    assert r.clean == 0.75
    assert float((pred == y).float().mean()) == 0.75 and conf.dtype == torch.float32


def _gate_data() -> tuple[Tensor, Tensor]:
    """Batches of 25: the first two dark (bf16 loses their gradient), the last two bright."""
    x = torch.full((100, 1, 4, 4), 0.9)
    x[:50] = 0.05
    return x, torch.arange(100) % 3


def test_attack_fallbacks_are_flagged_in_the_result(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        r = evaluate(Gate(), _gate_data(), ["fgsm", "pgd-2"], eps=0.03, batch_size=25, progress=False, bf16=True)
    assert r.flags == [f"{name}: bf16 input gradient unusable on 2 batch(es); those batches were attacked in fp32"
                       for name in ("fgsm", "pgd-2")]
    assert len(caplog.records) == 2  # one WARNING per attack (its first fallback); the second is INFO
    fp32 = evaluate(Gate(), _gate_data(), ["fgsm", "pgd-2"], eps=0.03, batch_size=25, progress=False)
    assert fp32.flags == []


class GateFeatures(nn.Module):
    """Gate with its ReLU output as the representation: dark images lose the bf16 gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()

    def features(self, x: Tensor) -> Tensor:
        return torch.relu(self.gate.lin(x.flatten(1)) - 1000.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.gate.head(self.features(x))


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def _fp32_distance(model: nn.Module, z: Tensor, target: Tensor) -> Tensor:
    with torch.no_grad():
        return (model.features(z) - model.features(target)).norm(dim=1)


def test_bf16_representation_match_reports_fp32_distances() -> None:
    net, g = SmallNet(), torch.Generator().manual_seed(1)
    x, target = torch.rand(8, 1, 4, 4, generator=g), torch.rand(8, 1, 4, 4, generator=g)
    rm = RepresentationMatch(net, step=0.05, steps=10, bf16=True)
    z, before, after = rm.run(x, target)
    assert not rm.fell_back_to_fp32
    assert torch.equal(before, _fp32_distance(net, x, target))
    assert torch.equal(after, _fp32_distance(net, z, target))  # the returned iterate's own fp32 distance
    assert bool((after < before).all())


def test_dead_bf16_representation_gradient_falls_back_to_fp32(caplog: pytest.LogCaptureFixture) -> None:
    net = GateFeatures()
    x, target = torch.full((10, 1, 4, 4), 0.05), torch.full((10, 1, 4, 4), 0.9)
    fp32 = RepresentationMatch(net, step=0.1, steps=5).run(x, target)
    rm = RepresentationMatch(net, step=0.1, steps=5, bf16=True)
    with caplog.at_level(logging.WARNING, logger="deep.attacks"):
        out = rm.run(x, target)
    assert all(torch.equal(a, b) for a, b in zip(out, fp32))  # the call became the fp32 descent, bit for bit
    assert rm.fell_back_to_fp32 and rm.fp32_fallbacks == 1
    assert len(caplog.records) == 1 and "RepresentationMatch" in caplog.records[0].getMessage()
    assert bool((fp32[2] < fp32[1]).all())  # the fp32 descent does move (the check above can fail)


def test_training_heldout_check_is_fp32_under_bf16() -> None:
    x, y = _liar_data(16)
    split = type("Split", (), {"x": x, "y": y})()
    recipe = Recipe.from_dict({"dataset": "mnist", "method": "standard", "bf16": True, "eval_n": 16})
    assert check_heldout(Liar(), split, recipe, progress=False) == {"eval_clean_acc": 0.75, "eval_n": 16}
