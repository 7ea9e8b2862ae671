"""deep.runfolder: TrainResult validation, RunFolder layout and rebase, self-healing train folders (issue 13)."""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from _tiny import tiny_recipe
from deep import io as dio
from deep.runfolder import TRAIN_SCHEMA, RunFolder, TrainResult, load_run, resolve_dataset, store_relative
from deep.train import Recipe, train

torch.set_num_threads(2)


def _recipe(tiny_name: str, **kw) -> Recipe:
    return Recipe.from_dict(tiny_recipe(tiny_name, **{"method": "pgd", "schedule": "cyclic", **kw}))


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory) -> tuple[Path, dict]:
    """An undamaged finished run (2 epochs) and its result; tests damage copies of it."""
    out = tmp_path_factory.mktemp("runs") / "straight"
    return out, train(_recipe(tiny), out, progress=False)


def _copy(src: Path, dst: Path) -> RunFolder:
    shutil.copytree(src, dst)
    return RunFolder(dst)


def _corrupt_copies(folder: RunFolder, name: str) -> list[Path]:
    return sorted(folder.path.glob(f"{name}.corrupt-*"))


# -- TrainResult ------------------------------------------------------------------------------------
def test_train_result_round_trip_and_old_files_without_schema(finished):
    out, metrics = finished
    assert metrics["schema"] == TRAIN_SCHEMA and metrics["status"] == "done" and metrics["epochs_done"] == 2
    result = RunFolder(out).read_metrics()
    assert result.to_dict() == metrics and result.done and result.last["epoch"] == 2
    old = {k: v for k, v in metrics.items() if k != "schema"}  # metrics.json of earlier releases
    assert TrainResult.from_dict(old).to_dict() == metrics
    running = {k: v for k, v in metrics.items() if k not in ("last", "seconds_total")}
    running.update(status="running", epochs_done=0)
    assert "last" not in TrainResult.from_dict(running).to_dict()  # the record written before epoch 1
    assert TrainResult.from_dict({**metrics, "future": 1}).to_dict()["future"] == 1  # unknown keys kept


@pytest.mark.parametrize("change, match", [
    ({"last": {"epoch": 2, "eval_clean_acc": 1e9}}, r"last\.eval_clean_acc must lie in \[0\.0, 1\.0\]"),
    ({"last": {"epoch": 2, "train_loss": float("nan")}}, r"last\.train_loss must be a finite number"),
    ({"last": {"epoch": "2"}}, r"last\.epoch must be an integer"),
    ({"status": "finished"}, r"status must be one of \('running', 'done'\)"),
    ({"epochs_done": 1}, r"epochs_done 1 does not fit status 'done'"),
    ({"schema": "advfeat.train/2"}, r"schema must be 'advfeat.train/1'"),
    ({"threads": "2"}, r"threads must be an integer"),
    ({"data": {"dataset": "x", "n": -1, "shape": [1], "sha256": None}}, r"data\.n must be an integer >= 0"),
    ({"seconds_total": None}, r"a done result needs 'last' and 'seconds_total'"),
])
def test_train_result_refuses_bad_values(finished, change, match):
    _, metrics = finished
    with pytest.raises(ValueError, match=match):
        TrainResult.from_dict({**metrics, **change})


def test_train_result_refuses_missing_fields_and_non_objects():
    with pytest.raises(ValueError, match=r"metrics lack the field\(s\) \['data', 'device'"):
        TrainResult.from_dict({})
    with pytest.raises(ValueError, match="metrics must be a dict"):
        TrainResult.from_dict([1])


# -- RunFolder ----------------------------------------------------------------------------------------
def test_run_folder_layout_and_complete_checkpoint(finished, tmp_path):
    out, _ = finished
    folder = RunFolder(out)
    assert [p.name for p in (folder.recipe_path, folder.model_path, folder.checkpoint_path, folder.metrics_path,
                             folder.log_path)] == ["recipe.json", "model.json", "checkpoint.pt", "metrics.json",
                                                   "log.jsonl"]
    assert folder.has_complete_checkpoint() and folder.has_complete_checkpoint(2)
    assert not folder.has_complete_checkpoint(3)
    assert [e["epoch"] for e in folder.read_log()] == [1, 2]
    broken = _copy(out, tmp_path / "broken")
    data = broken.checkpoint_path.read_bytes()
    broken.checkpoint_path.write_bytes(data[: len(data) // 2])
    assert not broken.has_complete_checkpoint()
    assert not RunFolder(tmp_path / "empty").has_complete_checkpoint()


def test_rebase_points_a_moved_store_at_its_copy(tmp_path):
    made = tmp_path / "old" / "runs" / "c0ffee" / "dataset"
    made.mkdir(parents=True)
    run = RunFolder(tmp_path / "old" / "runs" / "beef")
    run.write_recipe({"dataset": str(made), "epochs": 2})
    assert store_relative(str(made), tmp_path / "old") == "runs/c0ffee/dataset"
    assert store_relative("mnist", tmp_path) is None
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    moved = RunFolder(tmp_path / "new" / "runs" / "beef")
    new_path = str(tmp_path / "new" / "runs" / "c0ffee" / "dataset")
    assert resolve_dataset(str(made), tmp_path / "new") == new_path
    assert resolve_dataset("mnist", tmp_path / "new") == "mnist"
    assert moved.rebase(tmp_path / "new") is True
    assert moved.read_recipe() == {"dataset": new_path, "epochs": 2}
    assert moved.rebase(tmp_path / "new") is False  # already there
    moved.recipe_path.write_text("{")
    assert moved.rebase(tmp_path / "new") is False and moved.recipe_path.read_text() == "{"  # left to train


def test_malicious_checkpoint_is_refused_with_a_plain_message(finished, tmp_path):
    folder = _copy(finished[0], tmp_path / "run")

    class Evil:
        def __reduce__(self):
            return (os.getpid, ())

    torch.save({"model": Evil(), "optimizer": {}, "scheduler": {}, "epoch": 1}, folder.checkpoint_path)
    with pytest.raises(dio.CorruptFileError, match=r"refused .*checkpoint\.pt: it holds Python objects") as e:
        load_run(folder.path)
    assert "weights_only" not in str(e.value) and "False" not in str(e.value)


# -- self-healing (issue 13 item 1) ----------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "empty-object", "empty-file", "wrong-schema", "wrong-types"])
def test_damaged_metrics_of_a_finished_run_is_rebuilt_from_its_checkpoint(tiny, finished, tmp_path, damage):
    out, metrics = finished
    folder = _copy(out, tmp_path / "run")
    text = folder.metrics_path.read_text()
    folder.metrics_path.write_text({
        "truncated": text[: len(text) // 2], "empty-object": "{}", "empty-file": "",
        "wrong-schema": json.dumps({**metrics, "schema": "other/9"}),
        "wrong-types": json.dumps({**metrics, "last": {**metrics["last"], "eval_clean_acc": 1e9}}),
    }[damage])
    stamp = folder.checkpoint_path.stat().st_mtime_ns
    healed = train(_recipe(tiny), folder.path, progress=False)
    assert healed == metrics  # the same result, every number, from the checkpoint and the log
    assert folder.checkpoint_path.stat().st_mtime_ns == stamp  # nothing retrained
    assert len(_corrupt_copies(folder, "metrics.json")) == 1  # moved aside, not deleted
    assert folder.read_metrics().to_dict() == metrics


def test_torn_log_line_is_dropped_and_the_run_resumes(tiny, finished, tmp_path, caplog):
    out, metrics = finished

    class Stop(Exception):
        pass

    def stop_after_first(entry):
        if entry["epoch"] == 1:
            raise Stop

    run = tmp_path / "run"
    with pytest.raises(Stop):
        train(_recipe(tiny), run, progress=False, on_epoch=stop_after_first)
    with open(run / "log.jsonl", "a") as f:  # a crash in the middle of appending epoch 2's line
        f.write('{"epoch": 2, "train_loss": 0.3')
    with caplog.at_level(logging.WARNING, logger="deep.io"):
        resumed = train(_recipe(tiny), run, progress=False)
    assert "log.jsonl" in caplog.text and "torn" in caplog.text
    assert [e["epoch"] for e in RunFolder(run).read_log()] == [1, 2]
    a, b = load_run(out)[0].state_dict(), load_run(run)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = ("seconds", "train_seconds", "images_per_second")
    assert {k: v for k, v in resumed["last"].items() if k not in timing} == \
           {k: v for k, v in metrics["last"].items() if k not in timing}


def test_damaged_checkpoint_is_moved_aside_and_the_run_redone(tiny, finished, tmp_path):
    out, metrics = finished
    folder = _copy(out, tmp_path / "run")
    data = folder.checkpoint_path.read_bytes()
    folder.checkpoint_path.write_bytes(data[: len(data) // 3])
    folder.metrics_path.write_text("")
    redone = train(_recipe(tiny), folder.path, progress=False)
    assert len(_corrupt_copies(folder, "checkpoint.pt")) == 1
    a, b = load_run(out)[0].state_dict(), load_run(folder.path)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert redone["last"]["eval_pgd_acc"] == metrics["last"]["eval_pgd_acc"]
    assert redone["last"]["train_loss"] == metrics["last"]["train_loss"]


def test_finished_run_that_lost_metrics_and_its_last_log_line_recomputes_the_held_out_numbers(tiny, finished,
                                                                                               tmp_path):
    out, metrics = finished
    folder = _copy(out, tmp_path / "run")
    folder.metrics_path.write_text("")
    lines = folder.log_path.read_text().splitlines()
    folder.log_path.write_text(lines[0] + "\n" + lines[1][:20])  # epoch 2's line torn
    healed = train(_recipe(tiny), folder.path, progress=False)
    assert healed["last"]["epoch"] == 2 and "train_loss" not in healed["last"]  # gone with the line
    for key in ("eval_clean_acc", "eval_pgd_acc", "eval_n", "eval_eps", "eval_attack"):
        assert healed["last"][key] == metrics["last"][key], key
    assert healed["seconds_total"] == metrics["seconds_total"]
