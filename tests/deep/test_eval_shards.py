"""deep.evaluation.shards.concatenate: shards of one evaluation give the whole evaluation's numbers."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from deep.evaluation import EvalResult, evaluate
from deep.evaluation.shards import concatenate


@pytest.fixture(scope="module")
def model_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    g = torch.Generator().manual_seed(1)
    return model, torch.rand(23, 1, 3, 4, generator=g), torch.randint(0, 3, (23,), generator=g)


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> EvalResult:
    # FGSM and CW-free suites are deterministic per example, so shards must reproduce the whole exactly
    return evaluate(model, (x, y), ["fgsm"], eps=0.2, batch_size=5, seed=0, progress=False)


def test_shards_reproduce_the_whole_evaluation(model_and_data) -> None:
    model, x, y = model_and_data
    whole = run(model, x, y)
    cuts = [0, 7, 8, 20, 23]  # unequal shards, one of a single example
    parts = [run(model, x[a:b], y[a:b]) for a, b in zip(cuts, cuts[1:])]
    merged = concatenate(parts)
    assert merged.n == whole.n == 23 and merged.extra["shards"] == 4
    # evaluate() averages in float32; the masks below are the exact comparison
    assert merged.clean == pytest.approx(whole.clean) and merged.worst_case == pytest.approx(whole.worst_case)
    assert merged.attacks["fgsm"] == pytest.approx(whole.attacks["fgsm"])
    for name, mask in whole.correct.items():
        assert (merged.correct[name] == mask).all(), name
    conf_whole, conf_merged = whole.mean_confidence_on_errors["fgsm"], merged.mean_confidence_on_errors["fgsm"]
    assert (conf_whole is None) == (conf_merged is None)
    if conf_whole is not None:
        assert conf_merged == pytest.approx(conf_whole, rel=1e-5)
    assert merged.seconds["fgsm"] == pytest.approx(sum(p.seconds["fgsm"] for p in parts))
    assert EvalResult.from_dict(merged.to_dict()).attacks == merged.attacks  # still a valid result


def test_unlike_shards_are_refused(model_and_data) -> None:
    model, x, y = model_and_data
    a, b = run(model, x[:10], y[:10]), run(model, x[10:], y[10:])
    with pytest.raises(ValueError, match="eps"):
        concatenate([a, dataclasses.replace(b, eps=0.3)])
    other = evaluate(model, (x[10:], y[10:]), ["pgd-2"], eps=0.2, batch_size=5, seed=0, progress=False)
    with pytest.raises(ValueError, match="only shards of one suite"):
        concatenate([a, other])
    with pytest.raises(ValueError, match="per-example correctness"):
        concatenate([a, dataclasses.replace(b, correct={})])
    with pytest.raises(ValueError, match="at least one"):
        concatenate([])
    b.flags.append("fgsm: a warning")
    assert concatenate([a, b]).flags == ["shard 1: fgsm: a warning"]
