"""deep.train's loop around the methods: the held-out check (opt-in for standard training, ε by
convention, never touching the training RNG), the readable per-epoch lines, the folder lock."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _tiny import write_tiny_npz
from deep.conventions import conventional_eps, dataset_family
from deep.train import Recipe, load_run, train
from deep.train.heldout import heldout_plan
from deep.train.loop import format_epoch

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def _recipe(tiny: str, **kw) -> Recipe:
    base = dict(dataset=tiny, model="mlp", method="standard", epochs=2, batch_size=32, lr=0.05, eps=0.1, steps=2,
                eval_n=16, eval_steps=2, schedule="constant", seed=3)
    return Recipe.from_dict({**base, **kw})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_run(folder)[0].state_dict()


@pytest.mark.parametrize("method", ["standard", "pgd"])
def test_the_held_out_check_never_changes_the_trained_weights(tiny: str, tmp_path: Path, method: str) -> None:
    on = train(_recipe(tiny, method=method, eval_robust=True), tmp_path / "on", progress=False)
    off = train(_recipe(tiny, method=method, eval_robust=False), tmp_path / "off", progress=False)
    assert "eval_pgd_acc" in on["last"] and "eval_pgd_acc" not in off["last"]
    assert on["last"]["eval_clean_acc"] == off["last"]["eval_clean_acc"]  # clean accuracy is always logged
    a, b = _weights(tmp_path / "on"), _weights(tmp_path / "off")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical: the check draws no training randomness
    assert on["last"]["train_loss"] == off["last"]["train_loss"]


def test_held_out_plan_defaults_and_conventions(tiny: str) -> None:
    std = heldout_plan(Recipe.from_dict({"dataset": "cifar10", "model": "cifar-cnn"}))
    assert not std.robust and std.eps == pytest.approx(8 / 255)  # opt-in; ε by convention when turned on
    assert heldout_plan(Recipe.from_dict({"dataset": "mnist", "eval_robust": True})).eps == pytest.approx(0.3)
    assert heldout_plan(Recipe.from_dict({"dataset": "fashion-mnist", "norm": "l2"})).eps == pytest.approx(2.0)
    adv = heldout_plan(_recipe(tiny, method="trades", eps=0.2, eval_steps=7))
    assert (adv.robust, adv.eps, adv.attack) == (True, 0.2, "pgd-7")  # the training ε for adversarial methods
    assert heldout_plan(_recipe(tiny, eval_robust=True)).eps == 0.1  # no convention for an npz file: recipe.eps
    assert heldout_plan(_recipe(tiny, method="pgd", eval_eps=0.05)).eps == 0.05
    assert dataset_family("restricted-imagenet:128") == "restricted-imagenet"
    assert conventional_eps("cifar10-subset", "l2") == 0.5 and conventional_eps("npz:x.npz", "linf") is None
    with pytest.raises(ValueError, match="eval_eps"):
        _recipe(tiny, eval_eps=0.0)


def test_verbose_prints_one_line_per_epoch_and_a_summary(tiny: str, tmp_path: Path, capsys) -> None:
    train(_recipe(tiny, method="pgd", epochs=3, eval_every=2), tmp_path / "r", progress=False, verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "held-out check: pgd-2 at linf ε=0.1 on 16 test images"
    assert [ln.split("  ")[0] for ln in lines[1:4]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "held-out" in lines[2] and "held-out" not in lines[1]  # checked every 2 epochs and after the last
    assert lines[4].startswith("done: 3 epochs in ") and str(tmp_path / "r") in lines[4]
    log = [json.loads(ln) for ln in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3]  # the JSON still goes to the log
    train(_recipe(tiny, method="pgd", epochs=3, eval_every=2), tmp_path / "r", progress=False, verbose=True)
    again = capsys.readouterr().out.strip().splitlines()
    assert len(again) == 1 and again[0].startswith("nothing to train (finished before); done: 3 epochs in ")


def test_format_epoch_by_hand() -> None:
    entry = {"epoch": 2, "train_loss": 0.41234, "train_clean_acc": 0.912, "train_adv_acc": 0.451, "seconds": 12.34,
             "eval_clean_acc": 0.975, "eval_pgd_acc": 0.88, "eval_attack": "pgd-10", "eval_eps": 0.3}
    assert format_epoch(entry, 10) == ("epoch  2/10  loss 0.4123  train 91.2% clean, 45.1% adv  "
                                       "held-out 97.5% (pgd-10 at ε=0.3: 88.0%)  12.3 s")
    pgd = {"epoch": 1, "train_loss": 1.0, "train_clean_acc": None, "train_adv_acc": 0.5, "seconds": 1.0}
    assert format_epoch(pgd, 1) == "epoch 1/1  loss 1.0000  train 50.0% adv  1.0 s"
    std = {**pgd, "train_clean_acc": 0.25, "train_adv_acc": None, "eval_clean_acc": 0.5}
    assert format_epoch(std, 1) == "epoch 1/1  loss 1.0000  train 25.0%  held-out 50.0%  1.0 s"


def test_train_holds_the_output_lock_and_releases_it(tiny: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    probe = ("import sys; from deep.io import OutputLockedError, output_lock\n"
             "try:\n    with output_lock(sys.argv[1], 'probe'): print('got')\n"
             "except OutputLockedError: print('refused')")

    def second_writer() -> str:  # another process asking for the folder
        return subprocess.run([sys.executable, "-c", probe, str(tmp_path / "r")], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[2], check=True).stdout.strip()

    seen = []
    train(_recipe(tiny, epochs=1), tmp_path / "r", progress=False, on_epoch=lambda e: seen.append(second_writer()))
    assert seen == ["refused"] and second_writer() == "got"


def test_resolve_device_names_bad_values() -> None:
    from deep.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None) == resolve_device("auto")
    with pytest.raises(ValueError, match="'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
