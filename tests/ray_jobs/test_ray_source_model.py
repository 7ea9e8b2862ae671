"""A named model (deep.models.external) as the source of construct / transfer and the model of eval:
config ``source_model`` / ``external_model`` instead of a run-folder input, exactly one of the two, and
the name and weights' sha256 in the provenance. The named model here is a logreg factory in this file
whose weights equal a run folder's, so both ways must give identical numbers."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deep.construct import read_constructed
from ray_jobs.kinds import RunContext, construct_kind, eval_kind, transfer_kind
from ray_jobs.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deep"))
from _tiny import write_tiny_npz  # noqa: E402

SHAPE = (1, 6, 6)  # the tiny dataset: 3 classes, class c brightens rows 2c, 2c+1
FACTORY = f"{__name__}:factory"
RECORD = {"name": FACTORY, "kind": "factory", "weights": None, "weights_sha256": None, "normalize": None}
CONSTRUCT = {"construct": "det", "n": 12, "eps": 0.5, "step": 0.1, "steps": 3, "batch_size": 8}


def factory() -> torch.nn.Module:
    """A logreg that sums each class's row band: it classifies every tiny image."""
    from deep.models import build_model

    model = build_model("logreg", num_classes=3, in_shape=SHAPE)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        for c in range(3):
            model.head.weight[c].view(6, 6)[2 * c:2 * c + 2] = 1.0
    return model


def _run_folder(root: Path) -> Path:
    """A run folder holding the factory's model, as deep.train writes one."""
    from deep.io import write_json
    from deep.train.checkpoint import save_checkpoint

    root.mkdir(parents=True)
    save_checkpoint(root / "checkpoint.pt", {"model": factory().state_dict(), "optimizer": {}, "scheduler": {},
                                             "epoch": 1})
    write_json(root / "recipe.json", {"dataset": "tiny", "model": "logreg"})
    write_json(root / "model.json", {"name": "logreg", "num_classes": 3, "in_shape": list(SHAPE), "mean": None,
                                     "std": None})
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[str, Path, RunContext]:
    root = tmp_path_factory.mktemp("srcmodel")
    store = Store(root / "store")
    return (write_tiny_npz(root / "tiny.npz"), _run_folder(root / "run"),
            RunContext(store=store, run_hash="h", data_root=None, attempt=1))


def test_construct_from_a_named_model_equals_the_run_folder_build(setup, tmp_path):
    data, run, ctx = setup
    named = construct_kind({**CONSTRUCT, "dataset": data, "source_model": FACTORY}, {}, tmp_path / "named", ctx)
    from_run = construct_kind({**CONSTRUCT, "dataset": data}, {"source": run}, tmp_path / "run", ctx)
    assert named["source_model"] == RECORD
    assert from_run["source_model"]["run"] == str(run.resolve())
    x_named, y_named, prov = read_constructed(tmp_path / "named" / "dataset")
    x_run, y_run, _ = read_constructed(tmp_path / "run" / "dataset")
    assert prov["source_model"] == RECORD  # on disk too
    assert np.array_equal(x_named, x_run) and np.array_equal(y_named, y_run)
    assert named["statistics"] == from_run["statistics"]


def test_the_pyautoattack_name_records_the_weights_sha256(setup, tmp_path, monkeypatch):
    """The registered name's path (sha256 checked, then recorded), with the tiny model standing in for
    the ResNet-18 so that the test needs neither the wheel nor CIFAR."""
    from deep.models import external

    data, _, ctx = setup
    weights = tmp_path / "w.pt"
    torch.save(factory().state_dict(), weights)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    monkeypatch.setattr(external, "_pyautoattack_example", lambda num_classes: (factory(), weights))
    monkeypatch.setattr(external, "PYAUTOATTACK_RESNET18_SHA256", sha)
    prov = construct_kind({**CONSTRUCT, "dataset": data, "source_model": "pyautoattack:resnet18",
                           "min_source_acc": 0.9}, {}, tmp_path / "out", ctx)
    assert prov["source_model"] == {"name": "pyautoattack:resnet18", "kind": "pyautoattack",
                                    "weights": str(weights), "weights_sha256": sha, "normalize": None}
    assert prov["source_heldout"]["clean_acc"] == 1.0


@pytest.mark.parametrize("fn", [construct_kind, transfer_kind], ids=["construct", "transfer"])
def test_exactly_one_source(setup, tmp_path, fn):
    data, run, ctx = setup
    config = {**CONSTRUCT, "dataset": data} if fn is construct_kind else {"dataset": data, "eps": 0.5, "norm": "l2"}
    name = "construct" if fn is construct_kind else "transfer"
    with pytest.raises(ValueError, match=rf"^kind '{name}': give exactly one of input 'source' .* or config key "
                                         r"'source_model' .*; got both$"):
        fn({**config, "source_model": FACTORY}, {"source": run, "target": run}, tmp_path / "both", ctx)
    with pytest.raises(ValueError, match=r"; got neither$"):
        fn(config, {"target": run}, tmp_path / "neither", ctx)
    assert not (tmp_path / "both").exists() and not (tmp_path / "neither").exists()


def test_transfer_from_a_named_source_equals_the_run_folder_source(setup, tmp_path):
    data, run, ctx = setup
    config = {"dataset": data, "eps": 0.5, "norm": "l2", "attack": "pgd-3", "model": "logreg"}
    named = transfer_kind({**config, "source_model": FACTORY}, {"target": run, "det": run}, tmp_path / "a", ctx)
    from_run = transfer_kind(config, {"source": run, "target": run, "det": run}, tmp_path / "b", ctx)
    assert named["source_model"] == FACTORY and named["source_provenance"] == RECORD
    assert "source_provenance" not in from_run and from_run["source_model"] == "logreg"
    for key in ("transfer_success", "source_clean", "target_clean", "det_test_acc", "n"):
        assert named[key] == from_run[key], key
    with pytest.raises(ValueError, match="config key 'source_model' .* needs config key 'dataset'"):
        transfer_kind({"eps": 0.5, "norm": "l2", "source_model": FACTORY}, {"target": run}, tmp_path / "c", ctx)


def test_eval_of_a_named_model(setup, tmp_path):
    data, run, ctx = setup
    config = {"dataset": data, "suite": [], "eps": 0.0, "norm": "l2"}
    named = eval_kind({**config, "external_model": FACTORY}, {}, tmp_path / "a", ctx)
    from_run = eval_kind(config, {"model": run}, tmp_path / "b", ctx)
    assert named["clean"] == from_run["clean"] == 1.0 and named["n"] == 48
    assert named["model_recipe"] == {"model": FACTORY, **RECORD}
    with pytest.raises(ValueError, match=r"^kind 'eval': give exactly one of input 'model' .* or config key "
                                         r"'external_model' .*; got both$"):
        eval_kind({**config, "external_model": FACTORY}, {"model": run}, tmp_path / "c", ctx)


def test_cli_construct_takes_source_model(setup, tmp_path, capsys):
    from deep.cli import main
    from deep.construct import read_provenance

    data, run, _ = setup
    args = ["construct", "--construct", "det", "--dataset", data, "--n", "4", "--steps", "2", "--no-progress"]
    assert main([*args, "--source-model", FACTORY, "--out", str(tmp_path / "o")]) == 0
    assert read_provenance(tmp_path / "o")["source_model"] == RECORD
    assert main([*args, "--source-model", FACTORY, "--checkpoint", str(run), "--out", str(tmp_path / "p")]) == 2
    assert "give exactly one of --checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
