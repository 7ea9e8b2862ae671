"""The source-model check of construct (issue 12, bad input): a near-chance source is refused, with its
held-out accuracy shown, by the library, the CLI and the ray_jobs construct kind (one function,
deep.construct.source)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from deep.construct import construct_dataset, default_min_source_acc, held_out_accuracy, read_provenance
from deep.construct.source import check_min_source_acc

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py
SHAPE = (1, 6, 6)  # the tiny dataset (tests/deep/_tiny.py): 3 classes, class c brightens rows 2c, 2c+1


def _run(root: Path, *, learned: bool) -> Path:
    """A run folder with a logreg on the tiny data: all-zero weights (every logit equal, so it always says
    class 0: chance level) or weights that sum each class's row band (it then classifies every image)."""
    from deep.io import write_json
    from deep.models import build_model
    from deep.train.checkpoint import save_checkpoint

    model = build_model("logreg", num_classes=3, in_shape=SHAPE)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        if learned:
            for c in range(3):
                model.head.weight[c].view(6, 6)[2 * c:2 * c + 2] = 1.0
    root.mkdir(parents=True)
    save_checkpoint(root / "checkpoint.pt", {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "epoch": 1})
    write_json(root / "recipe.json", {"dataset": "tiny", "model": "logreg"})
    write_json(root / "model.json", {"name": "logreg", "num_classes": 3, "in_shape": list(SHAPE),
                                     "mean": None, "std": None})
    return root


def _share_of_class0(tiny: str) -> float:
    from deep.data import load_split

    return float((load_split(tiny, "test").y == 0).float().mean())


def test_default_threshold_is_half_again_above_chance():
    assert default_min_source_acc(10) == pytest.approx(0.15)
    assert default_min_source_acc(3) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, True, "0.5"])
def test_bad_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="min_source_acc must be an accuracy in"):
        check_min_source_acc(bad)


def test_untrained_source_is_refused_with_its_accuracy(tmp_path, tiny):
    run = _run(tmp_path / "untrained", learned=False)
    out = tmp_path / "out"
    acc = _share_of_class0(tiny)
    assert acc < 0.5  # near chance: the premise of the test
    with pytest.raises(ValueError) as info:
        construct_dataset("rand", source_run=run, dataset=tiny, out_dir=out, n=8, steps=1, progress=False)
    text = str(info.value)
    assert (f"source model {run} did not learn: held-out clean accuracy {acc:.3f} on the first 48 test images "
            f"of {tiny} is below the minimum 0.500 (chance is 0.333); train it further, or pass --min-source-acc 0 "
            "to build anyway") == text
    assert not out.exists() or not any(out.rglob("*.npz"))  # nothing was built


def test_zero_disables_the_check(tmp_path, tiny):
    run = _run(tmp_path / "untrained", learned=False)
    prov = construct_dataset("rand", source_run=run, dataset=tiny, out_dir=tmp_path / "out", n=8, steps=1,
                             progress=False, min_source_acc=0)
    assert prov["source_heldout"] == {"clean_acc": None, "n": 0, "split": "test", "min_source_acc": 0.0}
    assert read_provenance(tmp_path / "out")["source_heldout"] == prov["source_heldout"]


def test_learned_source_passes_and_its_accuracy_is_recorded(tmp_path, tiny):
    run = _run(tmp_path / "learned", learned=True)
    prov = construct_dataset("rand", source_run=run, dataset=tiny, out_dir=tmp_path / "out", n=8, steps=1,
                             progress=False)
    assert prov["source_heldout"] == {"clean_acc": 1.0, "n": 48, "split": "test", "min_source_acc": 0.5}


def test_held_out_set_is_the_first_n_test_images(tiny):
    from deep.data import load_split

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    torch.nn.init.zeros_(model[1].weight)
    torch.nn.init.zeros_(model[1].bias)  # always class 0
    y = load_split(tiny, "test").y
    assert held_out_accuracy(model, tiny, n=10) == (pytest.approx(float((y[:10] == 0).float().mean())), 10)
    assert held_out_accuracy(model, tiny, n=1000)[1] == 48  # a smaller split: all of it


def test_cli_refuses_in_one_line(tmp_path, tiny, capsys):
    from deep.cli import main

    run = _run(tmp_path / "untrained", learned=False)
    args = ["construct", "--construct", "rand", "--checkpoint", str(run), "--dataset", tiny, "--n", "8", "--steps",
            "1", "--no-progress", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"held-out clean accuracy {_share_of_class0(tiny):.3f}" in err
    assert "--min-source-acc 0" in err and str(run) in err
    assert main([*args, "--min-source-acc", "0"]) == 0
    assert main([*args[:-1], str(tmp_path / "o2"), "--min-source-acc", "1.5"]) == 2  # argparse: not in [0, 1]


def test_ray_construct_kind_uses_the_same_check(tmp_path, tiny):
    from ray_jobs.kinds import RunContext, construct_kind
    from ray_jobs.store import Store

    store = Store(tmp_path / "store")
    ctx = RunContext(store=store, run_hash="c", data_root=None, attempt=1)
    run = _run(tmp_path / "untrained", learned=False)
    config = {"construct": "rand", "dataset": tiny, "n": 8, "steps": 1}
    with pytest.raises(ValueError, match=r"below the minimum 0\.400 .*set min_source_acc = 0 in the stage's config"):
        construct_kind({**config, "min_source_acc": 0.4}, {"source": run}, store.run_dir("a"), ctx)
    # without min_source_acc a spec builds, as before (opt-in)
    assert construct_kind(config, {"source": run}, store.run_dir("b"), ctx)["n"] == 8
