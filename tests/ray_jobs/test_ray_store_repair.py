"""The store heals damage by redoing runs, never by deleting: damaged results, torn status/config files,
result checks (generic and per kind), file modes, and opening a store that is missing or a file."""
from __future__ import annotations

import json
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from ray_jobs.results import InvalidResultError, check_result, is_fraction_key, register_result_validator
from ray_jobs.store import Store, driver_identity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deep"))
from _tiny import write_tiny_npz  # noqa: E402


def done_run(store: Store, h: str = "abc", metrics: dict | None = None) -> None:
    store.write_config(h, {"kind": "square", "config": {"x": 1}, "inputs": {}}, {"spec": "s", "stage": "a", "axes": {}})
    store.finish(h, metrics or {"value": 1, "acc": 0.5})


def corrupt_files(store: Store, h: str, name: str) -> list:
    return sorted(p.name for p in store.run_dir(h).glob(f"{name}.corrupt-*"))


DAMAGED_METRICS = {
    "empty object": "{}",
    "empty file": "",
    "truncated": '{"value": 1, "acc": 0.',
    "a list": "[1, 2]",
    "a string": '"done"',
    "accuracy 1e9": '{"value": 1, "acc": 1e9}',
    "negative error rate": '{"error_rates": {"fgsm": -0.5}}',
    "eval accuracy above 1": '{"clean": 0.9, "attacks": {"pgd-20": 1.5}}',
    "NaN": '{"value": NaN}',
    "infinity nested": '{"last": {"train_loss": Infinity}}',
    "not UTF-8": b"\xff\xfe{",
}


@pytest.mark.parametrize("name", sorted(DAMAGED_METRICS))
def test_a_damaged_result_reads_as_pending_and_is_moved_aside(tmp_path, name):
    store = Store(tmp_path / "store")
    done_run(store)
    path = store.run_dir("abc") / "metrics.json"
    content = DAMAGED_METRICS[name]
    data = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(data)
    assert store.state("abc") == "pending" and not store.is_done("abc") and store.metrics("abc") is None
    assert not path.exists()
    [moved] = corrupt_files(store, "abc", "metrics.json")
    assert (store.run_dir("abc") / moved).read_bytes() == data  # kept, byte for byte
    assert store.status("abc")["state"] == "done"  # nothing else touched: the next run redoes it
    assert f"moved the damaged metrics.json aside to {moved}" in (store.run_dir("abc") / "log.txt").read_text()


def test_a_missing_result_reads_as_pending(tmp_path):
    store = Store(tmp_path / "store")
    done_run(store)
    (store.run_dir("abc") / "metrics.json").unlink()
    assert store.state("abc") == "pending" and store.metrics("abc") is None
    assert corrupt_files(store, "abc", "metrics.json") == []


def test_redoing_a_damaged_run_makes_it_done_again(tmp_path):
    store = Store(tmp_path / "store")
    done_run(store)
    (store.run_dir("abc") / "metrics.json").write_text("{}")
    assert not store.is_done("abc")
    assert store.finish("abc", {"value": 1, "acc": 0.5}) is True
    assert store.metrics("abc") == {"value": 1, "acc": 0.5}


def test_the_result_of_a_run_in_progress_is_never_judged(tmp_path):
    """deep.train writes its own metrics.json while it runs; the store leaves it alone until 'done'."""
    store = Store(tmp_path / "store")
    store.update_status("abc", state="running")
    (store.run_dir("abc") / "metrics.json").write_text('{"status": "running", "epochs_do')
    assert store.state("abc") == "running" and store.metrics("abc") is None
    assert (store.run_dir("abc") / "metrics.json").exists() and corrupt_files(store, "abc", "metrics.json") == []


@pytest.mark.parametrize("content", ['{"state": "do', '{"state": "weird"}', "[]", ""])
def test_a_torn_status_is_moved_aside_and_reads_as_pending(tmp_path, content):
    store = Store(tmp_path / "store")
    done_run(store)
    folder = store.run_dir("abc")
    others = {name: (folder / name).read_bytes() for name in ("metrics.json", "config.json")}
    (folder / "status.json").write_text(content)
    assert store.status("abc") == {"state": "pending", "attempts": 0}
    assert store.state("abc") == "pending" and not store.is_done("abc") and store.metrics("abc") is None
    assert not (folder / "status.json").exists() and len(corrupt_files(store, "abc", "status.json")) == 1
    assert {name: (folder / name).read_bytes() for name in others} == others  # nothing else touched


def test_a_torn_config_is_moved_aside_and_rewritten(tmp_path):
    store = Store(tmp_path / "store")
    done_run(store)
    folder = store.run_dir("abc")
    (folder / "config.json").write_text('{"kind": "squ')
    assert store.config("abc") is None and len(corrupt_files(store, "abc", "config.json")) == 1
    assert store.metrics("abc") == {"value": 1, "acc": 0.5}  # the generic checks still apply
    store.write_config("abc", {"kind": "square"}, {"spec": "s"})
    assert store.config("abc") == {"kind": "square", "hash": "abc", "labels": [{"spec": "s"}]}


@pytest.mark.parametrize("bad, message", [
    ({}, "empty result {}"),
    ({"value": float("nan")}, "value = nan is not a finite number"),
    ({"last": {"eval_clean_acc": 2.0}}, "last.eval_clean_acc = 2.0 is an accuracy-like value outside [0, 1]"),
    ({"rows": [{"train_error": -1}]}, "rows[0].train_error = -1 is an accuracy-like value outside [0, 1]"),
])
def test_finish_refuses_an_invalid_result_and_writes_nothing(tmp_path, bad, message):
    store = Store(tmp_path / "store")
    with pytest.raises(InvalidResultError) as err:
        store.finish("abc", bad)
    assert str(err.value) == f"result of run abc: {message}"
    assert not (store.run_dir("abc") / "metrics.json").exists() and store.state("abc") == "pending"


def test_a_finished_result_is_never_rewritten(tmp_path):
    store = Store(tmp_path / "store")
    done_run(store)
    before = (store.run_dir("abc") / "metrics.json").read_bytes()
    assert store.finish("abc", {"value": 2}) is False
    assert (store.run_dir("abc") / "metrics.json").read_bytes() == before
    assert "a finished result is never rewritten" in (store.run_dir("abc") / "log.txt").read_text()


def test_finish_stores_numpy_scalars_as_plain_numbers(tmp_path):
    store = Store(tmp_path / "store")
    assert store.finish("abc", {"acc": np.float32(0.5), "n": np.int64(3), "xs": np.arange(2)})
    assert json.loads((store.run_dir("abc") / "metrics.json").read_text()) == {"acc": 0.5, "n": 3, "xs": [0, 1]}


def test_a_kind_registers_a_stricter_check(tmp_path):
    def needs_value(result: dict) -> None:
        if not isinstance(result.get("value"), int):
            raise ValueError("'value' must be an integer")

    assert register_result_validator("strict-toy", needs_value) is needs_value
    register_result_validator("strict-toy", needs_value)  # a re-imported module registers it once
    store = Store(tmp_path / "store")
    store.write_config("abc", {"kind": "strict-toy"}, {})
    with pytest.raises(InvalidResultError, match=r"^result of run abc: kind 'strict-toy': 'value' must be an integer$"):
        store.finish("abc", {"value": "1"})
    assert store.finish("abc", {"value": 1})
    store.write_config("def", {"kind": "strict-toy"}, {})
    store.update_status("def", state="done")
    (store.run_dir("def") / "metrics.json").write_text('{"other": 1}')  # passes the generic checks only
    assert store.state("def") == "pending" and len(corrupt_files(store, "def", "metrics.json")) == 1
    assert check_result({"other": 1}, "another-kind", "x") is None


def test_which_keys_are_accuracy_like():
    yes = ["acc", "eval_clean_acc", "train_adv_acc", "accuracy", "pseudo_label_accuracy", "clean_error",
           "error_rates", "mean_confidence_on_errors", "transfer_success", "clean", "worst_case", "attacks",
           "source_adv", "target_clean", "Eval-Acc"]
    no = ["n", "eps", "lr", "loss", "train_loss", "accumulate", "robust", "adversarial", "worst_case_alignment",
          "seconds", "error_free", "success_", "model_recipe", "judge_target_rate"]
    assert [k for k in yes if not is_fraction_key(k)] == []
    assert [k for k in no if is_fraction_key(k)] == ["error_free", "success_"]  # word matches, by the rule


def test_files_are_0644_and_folders_0755_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        store = Store.create(tmp_path / "a" / "store")
        done_run(store)
        store.log("abc", "hello")
        store.claim("abc", driver_identity())
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    folder = store.run_dir("abc")
    assert {p.name: mode(p) for p in (store.root, store.runs_dir, folder)} == {
        "store": 0o755, "runs": 0o755, "abc": 0o755}
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        "config.json": 0o644, "status.json": 0o644, "metrics.json": 0o644, "log.txt": 0o644, "claim.json": 0o644}


def test_a_store_written_by_the_previous_code_reads_unchanged(tmp_path):
    """Old stores: json.dump(indent=2, sort_keys=True) files with mode 0600 and an old claim record."""
    folder = tmp_path / "store" / "runs" / "abc"
    folder.mkdir(parents=True)
    files = {"config.json": {"kind": "eval", "config": {}, "inputs": {}, "hash": "abc", "labels": []},
             "status.json": {"state": "done", "attempts": 1, "error": None, "finished": 1.0, "updated": 1.0},
             "metrics.json": {"clean": 0.97, "attacks": {"pgd-20": 0.01}, "n": 500, "eps": 0.3, "norm": "linf",
                              "mean_confidence_on_errors": {"pgd-20": None}}}
    for name, obj in files.items():
        with open(folder / name, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=True)
        os.chmod(folder / name, 0o600)
    store = Store.open_existing(tmp_path / "store")
    assert store.is_done("abc") and store.metrics("abc") == files["metrics.json"]
    assert store.config("abc") == files["config.json"] and store.all_hashes() == ["abc"]


def test_opening_a_store_that_is_a_file_or_missing_names_the_path(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    for make in (Store, Store.create, Store.open_existing):
        with pytest.raises(NotADirectoryError, match=f"store {afile} is an existing file"):
            make(afile)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"store {missing} does not exist"):
        Store.open_existing(missing)
    assert not missing.exists()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a result store: it has no runs/ folder"):
        Store.open_existing(tmp_path)
    created = Store.create(missing, lease_s=30)
    assert created.runs_dir.is_dir() and Store.open_existing(missing).root == created.root
    copy = pickle.loads(pickle.dumps(created))  # e.g. handed to a Ray task: root and lease travel
    assert (copy.root, copy.lease_s) == (created.root, 30.0)
    with pytest.raises(ValueError, match="lease_s must be a positive number of seconds, got 0"):
        Store(missing, lease_s=0)


def test_a_finished_train_run_with_a_truncated_result_is_redone_from_its_checkpoint(tmp_path):
    """Issue 13: the run is redone, deep.train finds its complete checkpoint, trains nothing, and the result
    equals the undamaged one."""
    pytest.importorskip("deep.train")
    from ray_jobs.runner import execute_run

    config = {"dataset": write_tiny_npz(tmp_path / "tiny.npz"), "model": "logreg", "epochs": 2, "batch_size": 32,
              "lr": 0.5, "eval_n": 16, "eval_every": 100, "eval_steps": 1}
    run = {"hash": "t1", "kind": "train", "config": config, "inputs": {}}
    store = Store.create(tmp_path / "store")
    store.write_config("t1", {"kind": "train", "config": config, "inputs": {}}, {})
    assert execute_run(run, str(store.root), None, []) == {"state": "done"}
    first, folder = store.metrics("t1"), store.run_dir("t1")
    log = (folder / "log.jsonl").read_bytes()
    (folder / "metrics.json").write_text((folder / "metrics.json").read_text()[:40])
    assert store.state("t1") == "pending"
    assert execute_run(run, str(store.root), None, []) == {"state": "done"}
    again = store.metrics("t1")
    assert (folder / "log.jsonl").read_bytes() == log  # no epoch trained again
    # the same result; the wall time comes back from the checkpoint's float32 copy
    assert again == {**first, "seconds_total": pytest.approx(first["seconds_total"], rel=1e-6)}
    assert store.status("t1")["attempts"] == 2 and len(corrupt_files(store, "t1", "metrics.json")) == 1
