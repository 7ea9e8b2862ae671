"""[MART] unlabeled-data setting: pseudo-labelling (deep.experiments.mart) and the kinds of ray_jobs/kinds_mart.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deep.data import load_split
from deep.experiments.mart import pseudo_label_split, write_pseudo_labeled
from deep.train import Recipe, train

from _tiny import write_tiny_npz


class Brightest(nn.Module):
    """Predicts the index of the brightest of the first three pixels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * x.flatten(1)[:, :3]


def _data():
    x = torch.zeros(6, 1, 1, 3)
    brightest = [0, 1, 2, 0, 1, 2]
    for i, c in enumerate(brightest):
        x[i, 0, 0, c] = 1.0
    y = torch.tensor([0, 1, 2, 0, 2, 2])  # example 4's true label (2) disagrees with the model (1)
    return x, y


def test_pseudo_labels_replace_only_the_unlabeled_part() -> None:
    x, y = _data()
    r = pseudo_label_split(Brightest(), x, y, labeled_n=2, unlabeled_n=3)
    assert r["y"].tolist() == [0, 1, 2, 0, 1]  # labeled: true labels; unlabeled (idx 2..4): predictions
    assert torch.equal(r["x"], x[:5])
    assert r["pseudo_label_accuracy"] == pytest.approx(2 / 3)  # idx 4 is pseudo-labeled wrong
    assert r["class_counts"] == [1, 1, 1]


@pytest.mark.parametrize("kw, match", [({"labeled_n": 0, "unlabeled_n": 1}, "labeled_n"),
                                       ({"labeled_n": 4, "unlabeled_n": 3}, "exceeds"),
                                       ({"labeled_n": 1, "unlabeled_n": True}, "unlabeled_n")])
def test_pseudo_label_bad_input(kw: dict, match: str) -> None:
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        pseudo_label_split(Brightest(), x, y, **kw)


def test_written_directory_loads_as_a_dataset(tmp_path: Path) -> None:
    data = write_tiny_npz(tmp_path / "tiny.npz", n_train=40, n_test=12)
    src = load_split(data, "train")
    out = tmp_path / "pl"

    class Const(nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 5.0, 0.0]]).repeat(x.shape[0], 1)

    prov = write_pseudo_labeled(Const(), data, 10, 20, out)
    split = load_split(str(out), "train")
    assert torch.equal(split.x, src.x[:30])
    assert split.y[:10].tolist() == src.y[:10].tolist() and split.y[10:].tolist() == [1] * 20
    assert prov["pseudo_label_accuracy"] == pytest.approx(float((src.y[10:30] == 1).float().mean()))
    assert len(load_split(str(out), "test")) == 12  # the source's real test split
    assert json.loads((out / "provenance.json").read_text())["kind"] == "pseudo-label"
    with pytest.raises(ValueError, match="fewer than"):
        write_pseudo_labeled(Const(), data, 30, 20, tmp_path / "too-many")


def test_kinds_pseudolabel_then_finetune(tmp_path: Path) -> None:
    from ray_jobs.kinds import RunContext
    from ray_jobs.kinds_mart import mart_train_kind, pseudolabel_kind
    from ray_jobs.store import Store

    data = write_tiny_npz(tmp_path / "tiny.npz", n_train=64, n_test=16)
    base = dict(dataset=data, model="logreg", batch_size=32, lr=0.1, eps=0.1, steps=2, eval_n=16, eval_steps=2)
    train(Recipe.from_dict(dict(method="standard", epochs=3, first_n=32, **base)), tmp_path / "std", progress=False)
    ctx = RunContext(Store(tmp_path / "store"), "h", None, 0)
    (tmp_path / "pl").mkdir()
    m = pseudolabel_kind({"dataset": data, "labeled_n": 32, "unlabeled_n": 32}, {"source": tmp_path / "std"},
                         tmp_path / "pl", ctx)
    assert m["n"] == 64 and 0.0 <= m["pseudo_label_accuracy"] <= 1.0
    with pytest.raises(ValueError, match="labeled_n"):
        pseudolabel_kind({"dataset": data}, {"source": tmp_path / "std"}, tmp_path / "pl", ctx)
    (tmp_path / "ft").mkdir()
    out = mart_train_kind({**base, "method": "mart", "epochs": 1, "eps_warmup": 0.5},
                          {"init": tmp_path / "std", "dataset": tmp_path / "pl"}, tmp_path / "ft", ctx)
    assert out["status"] == "done" and out["data"]["n"] == 64
    recipe = json.loads((tmp_path / "ft" / "recipe.json").read_text())
    assert recipe["init_from"] == str(tmp_path / "std") and recipe["dataset"] == str(tmp_path / "pl" / "dataset")
    assert np.isfinite(out["last"]["train_loss"])
