"""The store on object storage, against a real S3-compatible server (moto, the ``s3_server`` fixture of
tests/ray_jobs/conftest.py): two "nodes" with separate scratch folders, failed runs, damaged results
redone, and real deep kinds with each stage on its own node."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from _objstore_s3 import MOD, count, on_node, prepared  # noqa: E402
from _pipelines import tiny_pipeline  # noqa: E402
from ray_jobs.nodecache import COMPLETE, SCRATCH_ENV  # noqa: E402
from ray_jobs.objstore import ObjectStore  # noqa: E402
from ray_jobs.runner import _run_payload, execute_run, unique_runs  # noqa: E402
from ray_jobs.spec import parse_spec  # noqa: E402


def local_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_two_nodes_train_then_eval_through_the_bucket(uri, tmp_path, monkeypatch):
    store, runs = prepared(uri, tmp_path, xs=(2,))
    train, ev = runs[("train", 2)], runs[("eval", 2)]
    node_a, node_b = tmp_path / "node-a", tmp_path / "node-b"
    assert on_node(monkeypatch, node_a, train, store)["state"] == "done"
    # The worker uploaded the folder (manifest, result last) but wrote no run state: the driver did.
    keys = {k.rsplit("/", 1)[-1] for k in store.fs.find(store.run_key(train.hash))}
    assert keys == {"w.json", "metrics.json", "manifest.json", "worker-log.txt", "status.json", "config.json",
                    "log.txt"}
    manifest = json.loads(store.fs.cat_file(store.run_key(train.hash, "manifest.json")))
    assert set(manifest["files"]) == {"weights/w.json", "worker-log.txt"} and manifest["files"]["weights/w.json"] == 8
    assert store.fs.cat_file(store.run_key(train.hash, "weights/w.json")) == b'{"w": 6}'
    assert store.status(train.hash)["state"] == "done" and store.metrics(train.hash) == {"w": 6, "train_acc": 0.5}
    assert not any(p.name == train.hash for p in node_b.rglob("*"))  # node b never saw the train run

    assert on_node(monkeypatch, node_b, ev, store)["state"] == "done"
    result = store.metrics(ev.hash)
    assert result["value"] == 106
    # The eval read the weights from node b's own cache, fetched from the bucket and marked complete.
    read_from = Path(result["read_from"])
    assert node_b in read_from.parents and read_from.parent.parent.name == train.hash
    assert (read_from.parent.parent / COMPLETE).is_file()
    assert local_files(read_from.parent.parent) >= {"weights/w.json", "metrics.json", "manifest.json", COMPLETE}
    assert not any(p.name == ev.hash for p in node_a.rglob("*"))  # and node a never ran the eval
    assert count(tmp_path / "counter.txt") == Counter({"train 2": 1, "eval 2": 1})
    # A repeated submission of a done run computes nothing.
    assert on_node(monkeypatch, node_b, train, store)["state"] == "done"
    assert count(tmp_path / "counter.txt")["train 2"] == 1


def test_failed_run_uploads_nothing_and_the_driver_records_why(uri, tmp_path, monkeypatch):
    spec = parse_spec({"spec": {"name": "f", "kind_modules": [MOD]}, "stages": {
        "bad": {"kind": "toy_fail_after_writing", "config": {"counter": str(tmp_path / "c.txt"), "x": 7}}}})
    (run,) = unique_runs(spec)
    store = ObjectStore.create(uri)
    store.write_config(run.hash, run.identity(), {"spec": "f", "stage": "bad", "axes": {}})
    result = on_node(monkeypatch, tmp_path / "node-a", run, store)
    assert result["state"] == "failed" and result["error"] == "ValueError: toy failure for x=7"
    status = store.status(run.hash)
    assert status["state"] == "failed" and status["attempts"] == 1 and "toy_fail_after_writing" in status["traceback"]
    keys = {k.rsplit("/", 1)[-1] for k in store.fs.find(store.run_key(run.hash))}
    assert keys == {"config.json", "status.json", "log.txt"}  # the partial artifact stayed on the node
    assert any((tmp_path / "node-a").rglob("partial.bin")) and store.state(run.hash) == "failed"


def snapshot(store: ObjectStore, run_hash: str) -> dict:
    return {k: v["ETag"] for k, v in store.fs.find(store.run_key(run_hash), detail=True).items()}


@pytest.mark.parametrize("damage", ["truncated result", "artifact deleted",
                                    pytest.param("accuracy 1e9", marks=pytest.mark.slow),
                                    pytest.param("manifest deleted", marks=pytest.mark.slow)])
def test_damaged_run_folder_is_redone_and_nothing_else_touched(uri, tmp_path, monkeypatch, damage):
    store, runs = prepared(uri, tmp_path)
    one, two = runs[("train", 1)], runs[("train", 2)]
    for run in (one, two):
        on_node(monkeypatch, tmp_path / "node-a", run, store)
    before = snapshot(store, two.hash)
    if damage == "truncated result":
        store.put_bytes(one.hash, "metrics.json", b'{"w": 3, "train_')
    elif damage == "accuracy 1e9":
        store.put_bytes(one.hash, "metrics.json", b'{"w": 3, "train_acc": 1e9}')
    elif damage == "artifact deleted":
        store.fs.rm_file(store.run_key(one.hash, "weights/w.json"))
    else:
        store.fs.rm_file(store.run_key(one.hash, "manifest.json"))
    assert store.state(one.hash) == "pending" and store.metrics(one.hash) is None
    names = [k.rsplit("/", 1)[-1] for k in store.fs.find(store.run_key(one.hash))]
    assert sum(n.startswith("metrics.json.corrupt-") for n in names) == 1 and "metrics.json" not in names
    # Redone on another node (its scratch never had it) and on the node that uploaded it first.
    for node in ("node-b", "node-a"):
        if node == "node-a":
            store.put_bytes(one.hash, "metrics.json", b"")
            assert store.state(one.hash) == "pending"
        assert on_node(monkeypatch, tmp_path / node, one, store)["state"] == "done"
        assert store.metrics(one.hash) == {"w": 3, "train_acc": 0.5}
    assert count(tmp_path / "counter.txt") == Counter({"train 1": 3, "train 2": 1})
    assert snapshot(store, two.hash) == before  # the other run's objects: byte for byte the same


@pytest.mark.slow
def test_real_kinds_each_stage_on_its_own_node(uri, tmp_path, monkeypatch, data_root):
    """train -> construct (det) -> train on it -> eval, real deep kinds at tiny size, each stage on a node
    that has never seen the others' files: the eval's node fetches its model and, through the model's
    recipe, the constructed dataset."""
    spec = parse_spec(tiny_pipeline())
    store = ObjectStore.create(uri)
    for i, run in enumerate(unique_runs(spec)):
        store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
        monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / f"node-{i}"))
        result = store.record_result(execute_run(_run_payload(run), str(store.root), str(data_root), []))
        assert result["state"] == "done", result
    runs = {r.stage: r for r in unique_runs(spec)}
    ev = store.metrics(runs["eval"].hash)
    assert ev["dataset"] == "mnist" and ev["n"] == 100
    recipe = json.loads(store.fs.cat_file(store.run_key(runs["retrain"].hash, "recipe.json")))
    assert Path(recipe["dataset"]).parent.name == runs["make"].hash  # trained on node 2's copy of the set
    node3 = tmp_path / "node-3"  # the eval's node fetched the model and the dataset it was trained on
    for stage in ("retrain", "make"):
        assert (next(node3.glob(f"*/runs/{runs[stage].hash}")) / COMPLETE).is_file()
