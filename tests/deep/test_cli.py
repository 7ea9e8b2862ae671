"""`python -m deep` CLI: help texts, train → eval → attack round trip on tiny data, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _tiny import write_tiny_npz
from deep.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


def _train_args(tiny: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", tiny, "--model", "logreg", "--method", "fast", "--eps", "0.1", "--epochs", "1",
            "--batch-size", "32", "--eval-n", "16", "--eval-steps", "2", "--no-progress", "--out", str(out), *extra]


def test_help_names_units(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    top = capsys.readouterr().out
    assert all(c in top for c in ("train", "eval", "attack"))
    # One real subprocess: `python -m deep` is the documented entry point.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tr = subprocess.run([sys.executable, "-m", "deep", "train", "--help"], capture_output=True, text=True, env=env,
                        cwd=REPO)
    assert tr.returncode == 0
    text = " ".join(tr.stdout.split())
    assert "pixel units" in text and "--eps" in text and "epochs" in text and "--data-root" in text
    for sub in ("eval", "attack"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "pixel units" in " ".join(capsys.readouterr().out.split())


def test_train_eval_attack_round_trip(tiny: str, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_train_args(tiny, run)) == 0
    assert {"checkpoint.pt", "recipe.json", "metrics.json", "log.jsonl"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "recipe.json").read_text())["method"] == "fast"

    assert main(["eval", "--checkpoint", str(run), "--attacks", "fgsm", "pgd-5", "cw-5", "--eps", "0.1",
                 "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(m["attacks"]) == {"fgsm", "pgd-5", "cw-5"} and m["n"] == 48
    assert m["worst_case"] <= min(m["attacks"].values()) <= 1

    assert main(["attack", "--checkpoint", str(run / "checkpoint.pt"), "--attack", "pgd-5", "--eps", "0.1",
                 "--n", "20", "--out", str(tmp_path / "atk"), "--no-progress"]) == 0
    with np.load(tmp_path / "atk" / "attacked.npz", allow_pickle=False) as f:
        x, y, x_adv = f["x"], f["y"], f["x_adv"]
    assert x.dtype == np.float32 and x_adv.shape == x.shape == (20, 1, 6, 6) and y.dtype == np.int64
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    a = json.loads((tmp_path / "atk" / "metrics.json").read_text())
    assert a["n"] == 20 and "pgd-5" in a["attacks"]


@pytest.mark.parametrize("argv,match", [
    (["--eps", "-1"], "eps"),
    (["--model", "resnet1000"], "model"),
])
def test_bad_train_input_is_one_line_error(tiny: str, tmp_path: Path, capsys, argv, match: str) -> None:
    assert main(_train_args(tiny, tmp_path / "r", *argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and match in err


def test_bad_choice_and_missing_checkpoint(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--method", "magic", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--eps", "0.3", "--out", str(tmp_path / "o")]) == 2
    assert "no run folder" in capsys.readouterr().err
