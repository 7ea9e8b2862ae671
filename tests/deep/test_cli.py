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

    assert main(["attack", "--checkpoint", str(run / "checkpoint.pt"), "--attacks", "pgd-5", "--eps", "0.1",
                 "--n", "20", "--out", str(tmp_path / "atk"), "--no-progress"]) == 0
    with np.load(tmp_path / "atk" / "attacked.npz", allow_pickle=False) as f:
        x, y, x_adv = f["x"], f["y"], f["x_adv"]
    assert x.dtype == np.float32 and x_adv.shape == x.shape == (20, 1, 6, 6) and y.dtype == np.int64
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    a = json.loads((tmp_path / "atk" / "metrics.json").read_text())
    assert a["n"] == 20 and "pgd-5" in a["attacks"]

    # A command that fails after taking --out leaves no folder behind (nor its parents it made).
    assert main(["eval", "--checkpoint", str(run), "--attacks", "magic", "--eps", "0.1",
                 "--out", str(tmp_path / "new" / "ev"), "--no-progress"]) == 2
    assert "unknown attack name 'magic'" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("argv,match", [
    (["--eps", "-1"], "'-1' must be a finite number >= 0"),
    (["--eps", "1e30"], "[0, 1]"),
    (["--eps", "8/0"], "divides by zero"),
    (["--model", "resnet1000"], "recipe.model must be one of"),
    (["--batch-size", "0"], "recipe.batch_size must be an integer >= 1"),
    (["--method", "magic"], "invalid choice: 'magic'"),
])
def test_bad_train_input_is_one_line_error(tiny: str, tmp_path: Path, capsys, argv, match: str) -> None:
    assert main(_train_args(tiny, tmp_path / "r", *argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m deep") and ": error: " in err and match in err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert not (tmp_path / "r").exists()  # a refused command leaves no folder behind


def test_train_out_is_a_file_and_bad_recipe_file(tiny: str, tmp_path: Path, capsys) -> None:
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    assert main(_train_args(tiny, afile)) == 2
    assert "is an existing file; give a folder path" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(_train_args(tiny, tmp_path / "r", "--recipe", str(bad))) == 2
    assert f"--recipe {str(bad)!r} is not valid JSON" in capsys.readouterr().err
    bad.write_text('{"epochs": -3}')
    assert main(_train_args(tiny, tmp_path / "r", "--recipe", str(bad), "--epochs", "1")) == 0  # flag overrides
    capsys.readouterr()
    assert main(["train", "--recipe", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert f"from --recipe {str(bad)!r}" in capsys.readouterr().err


def test_bad_choice_and_missing_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--eps", "0.3", "--out", str(tmp_path / "o")]) == 2
    assert "no run folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["eval", "--checkpoint", "x", "--eps", "0.3", "--out", "o", "--batch-size", "0"]) == 2
    assert "argument --batch-size: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path: Path, capsys, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError):
        main(["--debug", "eval", "--checkpoint", str(tmp_path / "none"), "--eps", "0.3", "--out", str(tmp_path)])
    monkeypatch.setenv("ADVFEAT_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["eval", "--checkpoint", str(tmp_path / "none"), "--eps", "0.3", "--out", str(tmp_path)])


def test_ctrl_c_is_one_line_naming_what_was_saved(monkeypatch, capsys) -> None:
    import deep.cli.train as train_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "run", interrupted)
    assert main(["train", "--out", "runs/x"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == ("python -m deep: interrupted (Ctrl-C); runs/x/checkpoint.pt holds the last finished epoch; "
                   "rerun the same command to resume")


def test_flag_conventions_and_deprecated_spellings(capsys) -> None:
    from deep.cli import build_parser

    parser = build_parser()
    a = parser.parse_args(["eval", "--checkpoint", "r", "--eps", "8/255", "--out", "o", "--attack", "fgsm", "--norm", "Linf"])
    assert a.eps == 8 / 255 and a.attacks == ["fgsm"] and a.norm == "linf"
    assert "--attack is deprecated and will be removed in the next release; use --attacks" in capsys.readouterr().err
    c = parser.parse_args(["construct", "--kind", "rand", "--step", "0.2", "--checkpoint", "r", "--dataset", "mnist",
                           "--out", "o"])
    assert (c.construct, c.alpha) == ("rand", 0.2)
    err = capsys.readouterr().err
    assert "--kind is deprecated" in err and "use --construct" in err and "--step is deprecated" in err
    t = parser.parse_args(["train", "--out", "o", "--first-n", "7", "--eps", "2/255", "--alpha", "1/255"])
    assert (t.first_n, t.eps, t.alpha) == (7, 2 / 255, 1 / 255)
    assert "use --n" in capsys.readouterr().err
    assert parser.parse_args(["train", "--out", "o", "--n", "7"]).first_n == 7
    assert parser.parse_args(["attack", "--checkpoint", "r", "--eps", "0.1", "--out", "o", "--attack", "fgsm"]).attacks == "fgsm"


@pytest.mark.parametrize("command", ["train", "eval", "attack", "construct", "import-madrylab", "export-madrylab"])
def test_help_is_clean(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # "None" means "not given"; "--no-progress ... (default: True)" read as "hidden by default".
    # (A --flag/--no-flag pair may say "(default: True)": there it names the flag's own state.)
    assert "(default: None)" not in text and "hide progress bars (default" not in text
    if command not in ("import-madrylab", "export-madrylab"):
        assert "--download" in text and "--no-progress hide progress bars" in text


def test_download_fetches_torchvision_sets_only(monkeypatch, tmp_path: Path) -> None:
    import deep.data
    from deep.cli.common import prefetch

    calls = []
    monkeypatch.setattr(deep.data, "load_split", lambda name, split, **kw: calls.append((name, split, kw["download"])))
    prefetch("cifar10", tmp_path, True)
    prefetch("cifar10-subset", tmp_path, True)  # a file in the data root: nothing to download
    prefetch("mnist", tmp_path, False)
    assert calls == [("cifar10", "train", True), ("cifar10", "test", True)]


@pytest.mark.slow
def test_real_ctrl_c_says_what_was_saved(tiny: str, tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ADVFEAT_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "deep", *_train_args(tiny, out, "--epochs", "100000")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not inherited ignored
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == (f"python -m deep: interrupted (Ctrl-C); {out}/checkpoint.pt holds the last finished "
                           "epoch; rerun the same command to resume")
    assert (out / "checkpoint.pt").is_file()


def test_eval_offset_shards_match_the_whole(tiny: str, tmp_path: Path, capsys) -> None:
    """`deep eval --offset K --n N` evaluates examples K..K+N-1: two shards give the whole run's FGSM results."""
    from deep.evaluation import EvalResult
    from deep.evaluation.shards import concatenate

    run = tmp_path / "run"
    assert main(_train_args(tiny, run)) == 0
    common = ["eval", "--checkpoint", str(run), "--attacks", "fgsm", "--eps", "0.1", "--no-progress"]
    assert main([*common, "--n", "30", "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--n", "12", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--n", "18", "--offset", "12", "--out", str(tmp_path / "b")]) == 0
    whole, a, b = (EvalResult.load(tmp_path / name / "metrics.json") for name in ("whole", "a", "b"))
    assert b.n == 18 and b.extra["offset"] == 12 and a.extra["offset"] == 0
    merged = concatenate([a, b])
    assert all((merged.correct[k] == whole.correct[k]).all() for k in whole.correct)
    capsys.readouterr()
    assert main([*common, "--offset", "-1", "--out", str(tmp_path / "c")]) == 2
    assert "--offset: expected an integer >= 0, got -1" in capsys.readouterr().err
    assert main([*common, "--offset", "48", "--out", str(tmp_path / "d")]) == 2  # the split has 48 examples
    assert "offset must be an integer in [0, 47]" in capsys.readouterr().err
