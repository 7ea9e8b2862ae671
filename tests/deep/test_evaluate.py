"""deep.evaluate against closed forms on linear models, plus the worst-case and schema contracts."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import deep.evaluate as ev
from deep.evaluate import evaluate, parse_attack, transfer

torch.set_num_threads(2)


class Linear(nn.Module):
    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
            self.lin.bias.copy_(torch.tensor(b, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def _linear_problem(n: int = 200, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(2, d)), rng.normal(size=2) * 0.1
    # Inputs in [0.3, 0.7] so that an ε ≤ 0.05 attack never meets the [0, 1] box: the closed form is exact.
    x = rng.uniform(0.3, 0.7, size=(n, 1, 3, d // 3)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    split = SimpleNamespace(x=torch.tensor(x), y=torch.tensor(y))
    return Linear(w, b), split, w.astype(np.float32), b.astype(np.float32), x.reshape(n, -1), y


def test_linear_closed_form_fgsm_pgd_cw() -> None:
    model, split, w, b, x, y = _linear_problem()
    eps = 0.04
    z = x @ w.T + b
    other = 1 - y
    margin = z[np.arange(len(y)), y] - z[np.arange(len(y)), other]
    wdiff = w[y] - w[other]                                  # [n, d]
    robust = margin > eps * np.abs(wdiff).sum(axis=1)         # ℓ∞ worst case of a 2-class linear model
    r = evaluate(model, split, ["fgsm", "pgd-10", "cw-10x2"], eps=eps, progress=False, batch_size=64)
    assert r["clean"] == pytest.approx(np.mean(margin > 0))
    for name in ("fgsm", "pgd-10", "cw-10x2"):
        assert r["attacks"][name] == pytest.approx(robust.mean(), abs=1.0 / len(y)), name
        assert r["error_rates"][name] == pytest.approx(1 - r["attacks"][name])
    assert r["worst_case"] == pytest.approx(robust.mean(), abs=1.0 / len(y))
    # Goodfellow's statistic: the worst case point is x − ε·sign(w_y − w_other); mean max-softmax on errors.
    z_adv = (x - eps * np.sign(wdiff)) @ w.T + b
    p = np.exp(z_adv - z_adv.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    wrong = p.argmax(1) != y
    assert r["mean_confidence_on_errors"]["fgsm"] == pytest.approx(p.max(1)[wrong].mean(), rel=1e-4)
    json.dumps(r)  # the schema is JSON-serialisable


def test_eps_zero_gives_clean_accuracy_and_large_eps_zero() -> None:
    model, split, *_ = _linear_problem(seed=1)
    r0 = evaluate(model, split, ["fgsm", "pgd-5"], eps=0.0, progress=False)
    assert r0["attacks"] == {"fgsm": r0["clean"], "pgd-5": r0["clean"]} and r0["worst_case"] == r0["clean"]
    r1 = evaluate(model, split, ["pgd-20"], eps=1.0, progress=False)
    assert r1["attacks"]["pgd-20"] == 0.0


def test_worst_case_is_per_example(monkeypatch) -> None:
    # Two "features" as logits; each fake attack swaps them (flips the prediction) on chosen examples.
    model = nn.Flatten()
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    x = torch.zeros(10, 1, 1, 2)
    x[torch.arange(10), 0, 0, y] = 0.9
    x[9, 0, 0] = torch.tensor([0.9, 0.0])                      # example 9 is wrong already when clean
    flips = {"fgsm": [0, 1], "pgd-5": [1, 2, 3]}

    def fake_attack_split(model, split, name, **kw):
        out = split.x.clone()
        out[flips[name]] = out[flips[name]].flip(-1)
        return out

    monkeypatch.setattr(ev, "attack_split", fake_attack_split)
    r = evaluate(model, SimpleNamespace(x=x, y=y), ["fgsm", "pgd-5"], eps=0.1, progress=False)
    assert r["clean"] == pytest.approx(0.9)
    assert r["attacks"] == {"fgsm": pytest.approx(0.7), "pgd-5": pytest.approx(0.6)}
    assert r["worst_case"] == pytest.approx(0.5)                # robust: 4, 5, 6, 7, 8
    # Errors under fgsm are examples 0, 1 (max "softmax" of (0.9, 0) flipped) and 9.
    conf = torch.softmax(torch.tensor([0.0, 0.9]), 0).max().item()
    assert r["mean_confidence_on_errors"]["fgsm"] == pytest.approx(conf)


def test_transfer_same_model_and_blind_target() -> None:
    model, split, *_ = _linear_problem(seed=2)
    same = transfer(model, model, split, "pgd-10", eps=0.05, progress=False)
    assert same["target_adv"] == same["source_adv"] and same["target_clean"] == same["source_clean"]

    class Blind(nn.Module):  # ignores its input: transferred examples cannot fool it
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Parameter(torch.tensor([0.0, 1.0]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b.expand(x.shape[0], 2) + 0 * x.flatten(1).sum(1, keepdim=True)

    blind = transfer(model, Blind(), split, "pgd-10", eps=0.05, progress=False)
    assert blind["target_adv"] == blind["target_clean"] and blind["transfer_success"] == 0.0
    json.dumps(blind)


def test_parse_attack_names() -> None:
    s = parse_attack("pgd-40x5", eps=0.3)
    assert (s.steps, s.restarts, s.loss) == (40, 5, "ce") and s.alpha == pytest.approx(2.5 * 0.3 / 40)
    assert parse_attack("cw-20", eps=0.3, alpha=0.01).alpha == 0.01 and parse_attack("cw-20", eps=0.3).loss == "cw"


@pytest.mark.parametrize("kwargs,match", [
    ({"suite": ["pgd-99999999999"]}, r"must lie in \[0, 100000\]"), ({"suite": ["deepfool"]}, "unknown attack"),
    ({"suite": "pgd-20"}, "suite"), ({"eps": -0.1}, "eps"), ({"norm": "l1"}, "norm"),
    ({"suite": ["fgsm", "fgsm"]}, "distinct"),
])
def test_bad_input(kwargs, match: str) -> None:
    model, split, *_ = _linear_problem(n=8)
    args = {"suite": ["fgsm"], "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        evaluate(model, split, args.pop("suite"), progress=False, **args)
    with pytest.raises(ValueError, match="split"):
        evaluate(model, object(), ["fgsm"], eps=0.1, progress=False)
