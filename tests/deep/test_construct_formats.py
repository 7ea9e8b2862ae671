"""deep.construct formats and end to end (issue 4): the MadryLab import/export round trip, and a
deep.train run folder → construct_dataset / the CLI → deep.data."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from _construct_toy import C, SHAPE
from deep.construct import construct_dataset, export_madrylab, import_madrylab, read_constructed, read_provenance


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


# -- MadryLab format -------------------------------------------------------------------------------
def test_madrylab_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    ims = [torch.rand(7, 3, 8, 8, generator=g), torch.rand(5, 3, 8, 8, generator=g)]
    labs = [torch.randint(0, 10, (7,), generator=g), torch.randint(0, 10, (5,), generator=g)]
    src = tmp_path / "drand_CIFAR"
    src.mkdir()
    torch.save(ims, src / "CIFAR_ims")
    torch.save(labs, src / "CIFAR_lab")
    prov = import_madrylab(src, tmp_path / "imp", shard_size=4)
    assert prov["n"] == 12 and len(prov["shards"]) == 3 and prov["source_dataset"] == "cifar10"
    x, y, _ = read_constructed(tmp_path / "imp")
    assert np.array_equal(x, torch.cat(ims).numpy()) and np.array_equal(y, torch.cat(labs).numpy())
    export_madrylab(tmp_path / "imp", tmp_path / "exp", chunk=5)
    back_x = torch.load(tmp_path / "exp" / "CIFAR_ims", weights_only=True)
    back_y = torch.load(tmp_path / "exp" / "CIFAR_lab", weights_only=True)
    assert isinstance(back_x, list) and [len(t) for t in back_x] == [5, 5, 2]
    assert torch.equal(torch.cat(back_x), torch.cat(ims)) and torch.equal(torch.cat(back_y), torch.cat(labs))


def test_madrylab_bad_input(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    with pytest.raises(FileNotFoundError, match="CIFAR_ims"):
        import_madrylab(src, tmp_path / "o")
    (src / "CIFAR_ims").write_bytes(b"not a torch file")
    torch.save([torch.zeros(2)], src / "CIFAR_lab")
    with pytest.raises(ValueError, match="CIFAR_ims"):
        import_madrylab(src, tmp_path / "o")
    torch.save([torch.full((2, 3, 4, 4), 2.0)], src / "CIFAR_ims")
    torch.save([torch.zeros(2, dtype=torch.int64)], src / "CIFAR_lab")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        import_madrylab(src, tmp_path / "o")


# -- end to end: run folder → construct_dataset / CLI → deep.data ---------------------------------
def _tiny_run(tmp_path, trained) -> tuple:
    """A deep.train run folder holding a deep.models logreg fitted to the toy data, and an npz dataset."""
    models = pytest.importorskip("deep.models")
    if not hasattr(models, "build_model"):
        pytest.skip("deep.models.build_model not available yet")
    from deep.io import write_json
    from deep.train.checkpoint import save_checkpoint

    _, x, y = trained
    model = models.build_model("logreg", num_classes=C, in_shape=SHAPE)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", {"model": model.state_dict(), "optimizer": {}, "scheduler": {},
                                            "epoch": 1})
    write_json(run / "recipe.json", {"dataset": "toy", "model": "logreg"})
    write_json(run / "model.json", {"name": "logreg", "num_classes": C, "in_shape": list(SHAPE),
                                    "mean": None, "std": None})
    data = tmp_path / "toy.npz"
    np.savez(data, x_train=x.numpy(), y_train=y.numpy(), x_test=x[:30].numpy(), y_test=y[:30].numpy())
    return run, data, model


def test_construct_dataset_loads_through_deep_data(tmp_path, trained):
    run, data, model = _tiny_run(tmp_path, trained)
    from deep.data import load_split
    from deep.train.checkpoint import load_checkpoint

    out = tmp_path / "det"
    prov = construct_dataset("det", source_run=run, dataset=f"npz:{data}", out_dir=out, n=50, eps=1.0,
                             steps=10, batch_size=16, shard_size=20, progress=False, device="cpu")
    assert prov["source_model"]["checkpoint_sha256"] == hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest()
    assert prov["source_model"]["recipe"] == {"dataset": "toy", "model": "logreg"}
    assert prov["n"] == 50 and prov["source_split"] == "train"
    load_checkpoint(run / "checkpoint.pt")
    train = load_split(str(out), "train")
    test = load_split(str(out), "test")
    xc, yc, _ = read_constructed(out)
    assert torch.equal(train.x, torch.from_numpy(xc)) and torch.equal(train.y, torch.from_numpy(yc))
    _, x, y = trained
    assert torch.equal(train.y, (y[:50] + 1) % C)
    assert torch.equal(test.y, y[:30])  # the test split is the source dataset's


def test_cli_construct_and_madrylab(tmp_path, trained):
    run, data, _ = _tiny_run(tmp_path, trained)
    from deep.cli import main

    out = tmp_path / "rand"
    args = ["construct", "--construct", "rand", "--checkpoint", str(run), "--dataset", f"npz:{data}", "--out", str(out),
            "--n", "30", "--eps", "0.5", "--steps", "3", "--batch-size", "8", "--shard-size", "16",
            "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    prov = read_provenance(out)
    assert prov["params"]["steps"] == 3 and prov["n"] == 30 and len(prov["shards"]) == 2
    assert main(args) == 0  # rerun = resume of a finished build: nothing recomputed, same result
    assert read_provenance(out)["statistics"] == prov["statistics"]
    assert main(["export-madrylab", str(out), "--out", str(tmp_path / "ml")]) == 0
    assert main(["import-madrylab", str(tmp_path / "ml"), "--out", str(tmp_path / "back"),
                 "--source-dataset", f"npz:{data}", "--construct", "rand"]) == 2  # npz: needs --num-classes
    assert main(["import-madrylab", str(tmp_path / "ml"), "--out", str(tmp_path / "back"),
                 "--source-dataset", f"npz:{data}", "--construct", "rand", "--num-classes", "3"]) == 0
    assert np.array_equal(read_constructed(tmp_path / "back")[0], read_constructed(out)[0])
    assert np.array_equal(read_constructed(tmp_path / "back")[1], read_constructed(out)[1])
    assert main(["construct", "--construct", "rand", "--checkpoint", str(tmp_path / "none"), "--dataset", "mnist",
                 "--out", str(tmp_path / "o"), "--eps", "-1"]) == 2
