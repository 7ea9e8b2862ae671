"""The ray_jobs eval kind carries the same gradient-masking checks and flags as `deep eval`
(deep.evaluation.masking.attach_masking_checks), and its numbers are those of a plain evaluate()."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deep.io import read_json
from ray_jobs.kinds import RunContext, eval_kind, train_kind
from ray_jobs.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deep"))
from _tiny import write_tiny_npz  # noqa: E402

NUMBERS = ("clean", "attacks", "worst_case", "n", "eps", "norm", "correct", "mean_confidence_on_errors")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, Path, RunContext]:
    root = tmp_path_factory.mktemp("evalmask")
    data = write_tiny_npz(root / "tiny.npz")
    store = Store(root / "store")
    ctx = RunContext(store=store, run_hash="e", data_root=None, attempt=1)
    train_kind({"dataset": data, "model": "logreg", "epochs": 2, "batch_size": 32, "lr": 0.5, "eval_n": 16,
                "eval_steps": 1}, {}, store.run_dir("src"), ctx)
    return data, store.run_dir("src"), ctx


def test_eval_kind_and_cli_carry_the_same_masking_checks(trained, tmp_path):
    from deep.cli import main

    data, run, ctx = trained
    m = eval_kind({"eps": 0.1, "norm": "linf", "suite": ["fgsm", "pgd-2"], "batch_size": 16}, {"model": run},
                  tmp_path / "kind", ctx)
    assert main(["eval", "--checkpoint", str(run), "--eps", "0.1", "--attacks", "fgsm", "pgd-2", "--batch-size", "16",
                 "--no-progress", "--out", str(tmp_path / "cli")]) == 0
    cli = read_json(tmp_path / "cli" / "metrics.json")
    assert [c["check"] for c in m["masking_checks"]] == ["monotone-eps", "black-box", "attack-gap", "zero-gradients",
                                                         "randomised"]
    assert m["masking_checks"] == cli["masking_checks"] and m["flags"] == cli["flags"]
    assert {k: m[k] for k in NUMBERS} == {k: cli[k] for k in NUMBERS}


def test_eval_kind_numbers_are_those_of_evaluate(trained, tmp_path):
    from deep.data import load_split
    from deep.evaluate import evaluate
    from deep.train import load_run

    data, run, ctx = trained
    m = eval_kind({"eps": 0.1, "norm": "linf", "suite": ["pgd-2"]}, {"model": run}, tmp_path / "kind", ctx)
    model, _ = load_run(run)
    plain = evaluate(model, load_split(data, "test"), ["pgd-2"], eps=0.1, norm="linf", progress=False)
    assert {k: m[k] for k in NUMBERS} == {k: plain[k] for k in NUMBERS}
    assert m["flags"] == plain.flags + [f"masking {c['check']}: {c['detail']}" for c in m["masking_checks"]
                                        if not c["passed"]]


def test_eval_kind_offset_evaluates_that_range(trained, tmp_path):
    """config ``offset`` + ``first_n``: the examples offset .. offset+first_n-1, recorded in the result."""
    import numpy as np

    data, run, ctx = trained
    cfg = {"eps": 0.1, "norm": "linf", "suite": ["fgsm"]}
    whole = eval_kind(cfg, {"model": run}, tmp_path / "whole", ctx)
    part = eval_kind({**cfg, "first_n": 10, "offset": 5}, {"model": run}, tmp_path / "part", ctx)
    assert part["n"] == 10 and part["offset"] == 5 and whole["offset"] == 0
    from deep.evaluation import EvalResult

    w, p = EvalResult.from_dict(whole), EvalResult.from_dict(part)  # the kind returns the JSON form
    assert all(np.array_equal(p.correct[k], w.correct[k][5:15]) for k in w.correct)
