"""Store claims (two drivers on one store), store-relative dataset paths of train runs, and the
transfer / construct-source checks of ray_jobs.kinds — without starting Ray."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from deep.io import read_json, write_json
from ray_jobs.kinds import (RunContext, construct_kind, rebase_recipe, resolve_dataset,
                            store_relative, transfer_kind, train_kind)
from ray_jobs.store import Store, driver_identity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deep"))
from _tiny import write_tiny_npz  # noqa: E402


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_excludes_a_second_driver_until_released(tmp_path):
    store = Store(tmp_path / "store")
    a, b = driver_identity(), driver_identity()
    assert store.claim("h1", a) is None
    assert store.claim("h1", a) is None  # re-claiming one's own run (a retry) is fine
    holder = store.claim("h1", b)
    assert holder is not None and holder.driver == a
    store.release("h1", b)  # b cannot drop a's claim
    assert store.claim_holder("h1").driver == a
    store.release("h1", a)
    assert store.claim_holder("h1") is None
    assert store.claim("h1", b) is None and store.claim_holder("h1").driver == b
    assert store.claim("h2", a) is None  # claims are per run


def test_claim_of_a_dead_driver_is_taken_over_but_not_one_from_another_host(tmp_path):
    store = Store(tmp_path / "store")
    me = driver_identity()
    dead = replace(driver_identity(), pid=dead_pid())
    assert store.claim("h", dead) is None
    assert store.claim("h", me) is None and store.claim_holder("h").driver == me
    remote = replace(driver_identity(), host=socket.gethostname() + "-elsewhere", pid=dead_pid())
    assert store.claim("r", remote) is None
    assert store.claim("r", me).driver.host == remote.host  # its lease is still running


def test_recipe_dataset_paths_survive_moving_the_store(tmp_path):
    old = Store(tmp_path / "old")
    made = old.run_dir("c0ffee") / "dataset"
    made.mkdir(parents=True)
    train_dir = old.run_dir("beef")
    write_json(train_dir / "recipe.json", {"dataset": str(made), "epochs": 2})
    assert store_relative(str(made), old.root) == "runs/c0ffee/dataset"
    assert store_relative("mnist", old.root) is None
    shutil.move(str(old.root), str(tmp_path / "new"))
    new = Store(tmp_path / "new")
    # at load time: the recorded path is gone, the store's copy is found
    assert resolve_dataset(str(made), new.root) == str(new.run_dir("c0ffee") / "dataset")
    assert resolve_dataset("mnist", new.root) == "mnist"
    assert resolve_dataset("/nowhere/at/all", new.root) == "/nowhere/at/all"
    # before a resume: recipe.json is rewritten to the moved store, other fields untouched
    rebase_recipe(new.run_dir("beef"), new.root)
    assert read_json(new.run_dir("beef") / "recipe.json") == {"dataset": str(new.run_dir("c0ffee") / "dataset"),
                                                              "epochs": 2}


def test_transfer_kind_on_tiny_models(tmp_path):
    pytest.importorskip("deep.train")
    data = write_tiny_npz(tmp_path / "tiny.npz")
    store = Store(tmp_path / "store")
    base = {"dataset": data, "model": "logreg", "epochs": 3, "batch_size": 32, "lr": 0.5, "eval_n": 16,
            "eval_every": 100, "eval_steps": 1}
    ctx = RunContext(store=store, run_hash="t", data_root=None, attempt=1)
    train_kind(base, {}, store.run_dir("src"), ctx)
    train_kind({**base, "model": "mlp", "seed": 1}, {}, store.run_dir("tgt"), ctx)
    # "det" stands in for a model trained on a constructed set: here a tiny dataset folder in the store
    with pytest.raises(ValueError, match="unknown config key"):
        transfer_kind({"eps": 0.3, "norm": "l2", "epochs": 1}, {}, tmp_path, ctx)
    with pytest.raises(ValueError, match="needs an input named 'target'"):
        transfer_kind({"eps": 0.3, "norm": "l2"}, {"source": store.run_dir("src")}, tmp_path, ctx)
    with pytest.raises(ValueError, match="config model 'logreg' but the target run trained 'mlp'"):
        transfer_kind({"eps": 0.3, "norm": "l2", "model": "logreg"},
                      {"source": store.run_dir("src"), "target": store.run_dir("tgt")}, tmp_path, ctx)
    m = transfer_kind({"eps": 0.6, "norm": "l2", "attack": "pgd-10", "model": "mlp"},
                      {"source": store.run_dir("src"), "target": store.run_dir("tgt"), "det": store.run_dir("tgt")},
                      tmp_path / "out", ctx)
    assert m["n"] == 48 and m["source_model"] == "logreg" and m["target_model"] == "mlp"
    assert m["source_adv"] < m["source_clean"]  # the white-box attack works on its own model
    assert 0.0 <= m["transfer_success"] <= 1.0
    assert m["det_test_acc"] == pytest.approx(m["target_clean"])  # same model, same split


def test_train_on_constructed_set_resumes_after_the_store_moved(tmp_path):
    """recipe.json records the constructed set's absolute path; a moved store must still resume (here: find
    the finished run) instead of deep.train refusing a folder whose recipe names another path."""
    pytest.importorskip("deep.construct")
    data = write_tiny_npz(tmp_path / "tiny.npz")
    store = Store(tmp_path / "a" / "store")
    ctx = RunContext(store=store, run_hash="t", data_root=None, attempt=1)
    base = {"model": "logreg", "epochs": 2, "batch_size": 32, "lr": 0.5, "eval_n": 16, "eval_every": 100,
            "eval_steps": 1}
    train_kind({**base, "dataset": data}, {}, store.run_dir("src"), ctx)
    with pytest.raises(ValueError, match="did not learn"):
        construct_kind({"construct": "det", "dataset": data, "min_source_acc": 1.01}, {"source": store.run_dir("src")},
                       store.run_dir("made"), ctx)
    construct_kind({"construct": "det", "dataset": data, "n": 32, "eps": 1.0, "step": 0.5, "steps": 2,
                    "min_source_acc": 0.5}, {"source": store.run_dir("src")}, store.run_dir("made"), ctx)
    first = train_kind(dict(base), {"dataset": store.run_dir("made")}, store.run_dir("on"), ctx)
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
    moved = Store(tmp_path / "b" / "store")
    ctx2 = RunContext(store=moved, run_hash="t", data_root=None, attempt=2)
    again = train_kind(dict(base), {"dataset": moved.run_dir("made")}, moved.run_dir("on"), ctx2)
    assert again["epochs_done"] == first["epochs_done"] == 2 and again["last"] == first["last"]  # not retrained
    assert read_json(moved.run_dir("on") / "recipe.json")["dataset"] == str(moved.run_dir("made") / "dataset")
