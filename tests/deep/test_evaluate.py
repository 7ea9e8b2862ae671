"""deep.evaluate against closed forms on linear models, plus the worst-case and schema contracts."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from deep.attacks.registry import register_attack, unregister_attack
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
    json.dumps(r.to_dict())  # the schema is JSON-serialisable


def test_eps_zero_gives_clean_accuracy_and_large_eps_zero() -> None:
    model, split, *_ = _linear_problem(seed=1)
    r0 = evaluate(model, split, ["fgsm", "pgd-5"], eps=0.0, progress=False)
    assert r0["attacks"] == {"fgsm": r0["clean"], "pgd-5": r0["clean"]} and r0["worst_case"] == r0["clean"]
    r1 = evaluate(model, split, ["pgd-20"], eps=1.0, progress=False)
    assert r1["attacks"]["pgd-20"] == 0.0


def test_worst_case_is_per_example() -> None:
    # Two "features" as logits; each fake attack swaps them (flips the prediction) on chosen examples.
    model = nn.Flatten()
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    x = torch.zeros(10, 1, 1, 2)
    x[torch.arange(10), 0, 0, y] = 0.9
    x[9, 0, 0] = torch.tensor([0.9, 0.0])                      # example 9 is wrong already when clean
    flips = {1: [0, 1], 2: [1, 2, 3]}

    def build(spec, model, **kw):
        def flip(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            out = xb.clone()
            out[flips[spec.steps]] = out[flips[spec.steps]].flip(-1)
            return out
        return flip

    register_attack("flip", pattern=r"flip-(?P<steps>\d)", builder=build, description="test: flip chosen examples")
    try:
        r = evaluate(model, (x, y), ["flip-1", "flip-2"], eps=0.1, progress=False)
    finally:
        unregister_attack("flip")
    assert r.clean == pytest.approx(0.9)
    assert r.attacks == {"flip-1": pytest.approx(0.7), "flip-2": pytest.approx(0.6)}
    assert r.worst_case == pytest.approx(0.5)                # robust: 4, 5, 6, 7, 8
    assert r.correct["worst_case"].tolist() == [False] * 4 + [True] * 5 + [False]
    assert r.correct["flip-1"].tolist() == [False, False] + [True] * 7 + [False]
    # Errors under flip-1 are examples 0, 1 (max "softmax" of (0.9, 0) flipped) and 9.
    conf = torch.softmax(torch.tensor([0.0, 0.9]), 0).max().item()
    assert r.mean_confidence_on_errors["flip-1"] == pytest.approx(conf)


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


# --------------------------------------------------------------------------------------------
# Data forms (issue 11 item 3): every form gives the in-memory split's exact result
# --------------------------------------------------------------------------------------------
class LazyFolder(torch.utils.data.Dataset):
    """Like deep.data.FolderSplit: (image [C, H, W], int label) items decoded on access, no ``.x``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._x, self.y, self.reads = x, y, 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        self.reads += 1
        return self._x[i], int(self.y[i])


def test_every_data_form_gives_the_same_result() -> None:
    model, split, *_ = _linear_problem(n=50, seed=3)
    x, y = split.x, split.y
    args = dict(suite=["fgsm", "pgd-3x2", "cw-2"], eps="4/255", batch_size=16, seed=5, progress=False)

    def key(r):
        return (r.clean, r.attacks, r.worst_case, r.n, r.mean_confidence_on_errors,
                {k: v.tolist() for k, v in r.correct.items()})

    want = key(evaluate(model, split, **args))
    lazy = LazyFolder(x, y)
    forms = {"tensors": (x, y), "list": [x, y], "dataset": lazy, "tensor-dataset": torch.utils.data.TensorDataset(x, y),
             "loader": torch.utils.data.DataLoader(lazy, batch_size=16, shuffle=False),
             "int32 labels": (x, y.to(torch.int32))}
    for name, data in forms.items():
        assert key(evaluate(model, data, **args)) == want, name
    assert lazy.reads == 2 * 50  # streamed item by item (the dataset and the loader runs), never held as .x


def test_folder_split_streams_without_x(tmp_path) -> None:
    """The lazy restricted-ImageNet split type itself (an ImageFolder of PNGs), evaluated end to end."""
    import torchvision
    from PIL import Image

    from deep.data import DatasetInfo, FolderSplit

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / f"c{c}").mkdir()
        for i in range(3):
            arr = (rng.uniform(0, 0.4, (4, 4)) + 0.5 * c) * 255
            Image.fromarray(arr.astype(np.uint8)).save(tmp_path / f"c{c}" / f"{i}.png")
    folder = torchvision.datasets.ImageFolder(str(tmp_path), transform=torchvision.transforms.Compose(
        [torchvision.transforms.Grayscale(), torchvision.transforms.ToTensor()]))
    split = FolderSplit(folder, None, DatasetInfo("toy", 2, (1, 4, 4)))
    assert not hasattr(split, "x")

    class Mean(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            m = t.flatten(1).mean(1)
            return torch.stack([0.45 - m, m - 0.45], 1)

    r = evaluate(Mean(), split, ["pgd-2"], eps=0.5, batch_size=4, progress=False)
    assert r.n == 6 and r.clean == 1.0 and r.attacks["pgd-2"] == 0.0


@pytest.mark.parametrize("make,match", [
    (lambda x, y: (x.double(), y), "dtype torch.float64 but the model's parameters are torch.float32"),
    (lambda x, y: (x, y.float()), "integer class labels"),
    (lambda x, y: (x, y + 5), r"labels must lie in \[0, 1\]"),
    (lambda x, y: (x, y[:-1]), r"shape \[N\] = \[8\]"),
    (lambda x, y: (x[:0], y[:0]), "empty"),
    (lambda x, y: x, "data must be tensors"),
    (lambda x, y: torch.utils.data.DataLoader([1, 2]), "batches must be"),
])
def test_bad_data_is_refused_clearly(make, match: str) -> None:
    model, split, *_ = _linear_problem(n=8)
    with pytest.raises(ValueError, match=match):
        evaluate(model, make(split.x, split.y), ["fgsm"], eps=0.1, progress=False)


@pytest.mark.parametrize("forward,match", [
    (lambda z: z * float("nan"), "non-finite logits"),
    (lambda z: (z, z), "must return a logits tensor"),
])
def test_bad_model_output_is_refused_clearly(forward, match: str) -> None:
    model, split, *_ = _linear_problem(n=8)

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, t: torch.Tensor):
            return forward(self.inner(t))

    with pytest.raises(ValueError, match=match):
        evaluate(Broken(), split, ["pgd-2"], eps=0.1, progress=False)


def test_eps_strings_and_limits() -> None:
    model, split, *_ = _linear_problem(n=8)
    assert evaluate(model, split, [], eps="8/255", progress=False).eps == 8 / 255
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        evaluate(model, split, ["fgsm"], eps=8, progress=False)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3.46"):  # sqrt(1·3·4) for these images
        evaluate(model, split, ["fgsm"], eps=4, norm="L2", progress=False)
    with pytest.raises(ValueError, match="divides by zero"):
        evaluate(model, split, ["fgsm"], eps="8/0", progress=False)
