"""The runner on a real local Ray (2 CPUs, no dashboard), with the toy kinds of toy_kinds.py."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from _pipelines import tiny_pipeline
from ray_jobs.runner import connect, run_spec
from ray_jobs.spec import expand, parse_spec
from ray_jobs.store import Store

pytestmark = pytest.mark.ray
TOY = "tests.ray_jobs.toy_kinds"


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    started = connect(None, 2)
    yield ray
    if started:
        ray.shutdown()


def counts(counter: Path) -> Counter:
    return Counter(counter.read_text().splitlines()) if counter.exists() else Counter()


def two_stage(counter: Path, xs=(1, 2, 3), fail_x=None) -> dict:
    stages = {
        "sq": {"kind": "square", "config": {"counter": str(counter)}, "grid": {"x": list(xs)}},
        "add": {"kind": "add_inputs", "needs": {"src": "sq"}, "config": {"counter": str(counter)},
                "grid": {"x": list(xs), "offset": [10, 20]}},
    }
    if fail_x is not None:
        stages["sq"] = {"kind": "square", "config": {"counter": str(counter)}, "grid": {"x": [x for x in xs if x != fail_x]}}
        stages["bad"] = {"kind": "fail", "config": {"counter": str(counter), "x": fail_x}}
        stages["after_bad"] = {"kind": "add_inputs", "needs": {"src": "bad"},
                               "config": {"counter": str(counter), "x": fail_x, "offset": 1}}
    return {"spec": {"name": "toy", "kind_modules": [TOY]}, "stages": stages}


def test_two_stage_grid_completes_and_rerun_skips(ray_instance, tmp_path):
    counter = tmp_path / "counter.txt"
    spec = parse_spec(two_stage(counter))
    store = Store(tmp_path / "store")
    summary = run_spec(spec, store, progress=False)
    runs = expand(spec)
    assert len(runs) == 3 + 6 and summary.ok and len(summary.executed) == 9
    for run in runs:
        value = store.metrics(run.hash)["value"]
        expected = run.config["x"] ** 2 + (run.config["offset"] if run.stage == "add" else 0)
        assert value == expected, run.label()
        status = store.status(run.hash)
        assert status["state"] == "done" and status["attempts"] == 1
        assert json.loads((store.run_dir(run.hash) / "config.json").read_text())["hash"] == run.hash
    first = counts(counter)
    assert sum(first.values()) == 9 and max(first.values()) == 1

    again = run_spec(spec, store, progress=False)
    assert again.ok and again.executed == [] and len(again.skipped) == 9
    assert counts(counter) == first  # nothing re-ran
    assert all(store.status(r.hash)["attempts"] == 1 for r in runs)


def test_failure_is_recorded_and_dependents_blocked(ray_instance, tmp_path):
    counter = tmp_path / "counter.txt"
    spec = parse_spec(two_stage(counter, xs=(1, 2), fail_x=7))
    store = Store(tmp_path / "store")
    # 'add' needs 'sq' on axis x; with fail_x the sq grid is x in (1, 2) and add has x in (1, 2): fine.
    summary = run_spec(spec, store, progress=False)
    by_stage = {r.stage: r for r in expand(spec)}
    bad, after = by_stage["bad"].hash, by_stage["after_bad"].hash
    assert summary.states[bad] == "failed" and summary.states[after] == "blocked"
    status = store.status(bad)
    assert status["state"] == "failed" and "ValueError: toy failure for x=7" in status["error"]
    assert "Traceback" in status["traceback"] and "toy_kinds.py" in status["traceback"]
    assert store.metrics(bad) is None
    assert store.status(after)["state"] == "blocked" and bad in store.status(after)["error"]
    others = [r for r in expand(spec) if r.stage in ("sq", "add")]
    assert all(summary.states[r.hash] == "done" and store.is_done(r.hash) for r in others)
    assert counts(counter)["fail 7"] == 1  # retry_failed defaults to 0: an app error runs once
    assert not summary.ok


def test_retry_failed_is_bounded(ray_instance, tmp_path):
    counter = tmp_path / "counter.txt"
    data = {"spec": {"kind_modules": [TOY]},
            "stages": {"bad": {"kind": "fail", "retry_failed": 2, "config": {"counter": str(counter), "x": 1}}}}
    spec = parse_spec(data)
    store = Store(tmp_path / "store")
    summary = run_spec(spec, store, progress=False)
    h = expand(spec)[0].hash
    assert summary.states[h] == "failed"
    assert counts(counter)["fail 1"] == 3 and store.status(h)["attempts"] == 3


def kill_when_started(store: Store, run_hash: str, min_step: int, killed: dict) -> threading.Thread:
    """Kill the worker of attempt 1 with SIGKILL once its checkpoint holds min_step steps."""

    def killer() -> None:
        deadline = time.time() + 60
        pid_file, ckpt = store.run_dir(run_hash) / "pid-1", store.run_dir(run_hash) / "ckpt.json"
        while time.time() < deadline:
            if pid_file.exists() and ckpt.exists() and json.loads(ckpt.read_text())["step"] >= min_step:
                killed["pid"] = int(pid_file.read_text())
                os.kill(killed["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    return thread


def test_worker_death_without_retries_fails_the_run_and_blocks_dependents(ray_instance, tmp_path):
    counter = tmp_path / "counter.txt"
    data = {"spec": {"kind_modules": [TOY]},
            "stages": {
                "slow": {"kind": "slow_with_checkpoint", "max_retries": 0,
                         "config": {"counter": str(counter), "steps": 20, "step_s": 0.25, "x": 3}},
                "quick": {"kind": "square", "config": {"counter": str(counter)}, "grid": {"x": [4]}},
                "after": {"kind": "add_inputs", "needs": {"src": "slow"},
                          "config": {"counter": str(counter), "x": 3, "offset": 1}},
            }}
    spec = parse_spec(data)
    store = Store(tmp_path / "store")
    runs = {r.stage: r for r in expand(spec)}
    killed: dict[str, int] = {}
    thread = kill_when_started(store, runs["slow"].hash, 1, killed)
    summary = run_spec(spec, store, progress=False)
    thread.join()
    assert "pid" in killed
    assert summary.states == {runs["slow"].hash: "failed", runs["quick"].hash: "done", runs["after"].hash: "blocked"}
    status = store.status(runs["slow"].hash)
    assert status["state"] == "failed" and status["error"].startswith("worker died (1 attempts, max_retries=0)")
    assert store.metrics(runs["slow"].hash) is None and store.metrics(runs["quick"].hash) == {"value": 16}


def test_killed_worker_is_retried_and_resumes(ray_instance, tmp_path):
    counter = tmp_path / "counter.txt"
    steps = 8
    data = {"spec": {"kind_modules": [TOY]},
            "stages": {
                "slow": {"kind": "slow_with_checkpoint", "max_retries": 2,
                         "config": {"counter": str(counter), "steps": steps, "step_s": 0.25, "x": 3}},
                "quick": {"kind": "square", "config": {"counter": str(counter)}, "grid": {"x": [4, 5]}},
                "after": {"kind": "add_inputs", "needs": {"src": "slow"},
                          "config": {"counter": str(counter), "x": 3, "offset": 1}},
            }}
    spec = parse_spec(data)
    store = Store(tmp_path / "store")
    slow = next(r for r in expand(spec) if r.stage == "slow")
    killed: dict[str, int] = {}
    thread = kill_when_started(store, slow.hash, 2, killed)
    summary = run_spec(spec, store, progress=False)
    thread.join()
    assert "pid" in killed, "the slow run never reached step 2"
    assert summary.ok, summary.states
    status = store.status(slow.hash)
    assert status["attempts"] == 2 and status["pid"] != killed["pid"]
    metrics = store.metrics(slow.hash)
    assert metrics["steps"] == steps and metrics["resumed_from"] >= 2  # resumed from its checkpoint
    done = counts(counter)
    # every step computed exactly once across both attempts; every result exactly once
    assert [done[f"step 3 {i}"] for i in range(1, steps + 1)] == [1] * steps
    assert done["square 4"] == done["square 5"] == done["add 3 1"] == 1
    assert store.metrics(next(r for r in expand(spec) if r.stage == "after").hash)["value"] == 9 + 1


@pytest.mark.slow
def test_smoke_spec_with_real_deep_kinds(ray_instance, tmp_path, data_root):
    try:
        from deep.models import MODEL_NAMES  # noqa: F401
        from deep.train import Recipe  # noqa: F401
    except ImportError as err:
        pytest.skip(f"deep/ not complete yet: {err}")
    from ray_jobs.cli import resolve_spec_path
    from ray_jobs.spec import load_spec

    spec = load_spec(resolve_spec_path("smoke"))
    store = Store(tmp_path / "store")
    summary = run_spec(spec, store, data_root=str(data_root), progress=False)
    train, ev = expand(spec)
    assert summary.ok, {h: store.status(h).get("error") for h in summary.states}
    assert (store.run_dir(train.hash) / "checkpoint.pt").is_file()
    metrics = store.metrics(ev.hash)
    assert metrics["n"] == 256 and set(metrics["attacks"]) == {"fgsm", "pgd-10"}
    assert 0.0 <= metrics["worst_case"] <= min(metrics["attacks"].values()) <= metrics["clean"] <= 1.0
    assert run_spec(spec, store, progress=False).executed == []


@pytest.mark.slow
def test_tiny_construct_pipeline_with_real_deep_kinds(ray_instance, tmp_path, data_root):
    """train -> construct (det) -> train on it -> eval on the real test set, all real kinds, tiny sizes."""
    try:
        from deep.construct import construct_dataset  # noqa: F401
        from deep.train import Recipe  # noqa: F401
    except ImportError as err:
        pytest.skip(f"deep/ not complete yet: {err}")
    spec = parse_spec(tiny_pipeline())
    store = Store(tmp_path / "store")
    summary = run_spec(spec, store, data_root=str(data_root), progress=False)
    assert summary.ok, {h: store.status(h).get("error") for h in summary.states}
    runs = {r.stage: r for r in expand(spec)}
    made = store.run_dir(runs["make"].hash) / "dataset"
    assert (made / "provenance.json").is_file() and store.metrics(runs["make"].hash)
    recipe = json.loads((store.run_dir(runs["retrain"].hash) / "recipe.json").read_text())
    assert Path(recipe["dataset"]) == made  # train read the constructed set
    ev = store.metrics(runs["eval"].hash)
    assert ev["dataset"] == "mnist" and ev["n"] == 100  # scored on the real test set


def test_runs_claimed_by_another_driver_are_waited_for_not_run_twice(ray_instance, tmp_path, capsys):
    """A second driver on the same store: one run it finishes (never computed here), one it gives up
    (released unfinished: claimed and computed here); the dependents use both."""
    from ray_jobs.store import driver_identity

    counter = tmp_path / "counter.txt"
    spec = parse_spec(two_stage(counter, xs=(1, 2, 3)))
    store = Store(tmp_path / "store")
    sq = {r.config["x"]: r for r in expand(spec) if r.stage == "sq"}
    other = driver_identity()  # our own (live) pid, another driver id: a driver that is still running
    assert store.claim(sq[1].hash, other) is None and store.claim(sq[2].hash, other) is None

    def other_driver() -> None:
        time.sleep(2.0)
        store.finish(sq[1].hash, {"value": 1})
        store.release(sq[1].hash, other)
        store.release(sq[2].hash, other)

    thread = threading.Thread(target=other_driver)
    thread.start()
    summary = run_spec(spec, store, progress=False)
    thread.join()
    assert summary.ok
    assert "is being run by another driver" in capsys.readouterr().err
    done = counts(counter)
    assert done["square 1"] == 0 and done["square 2"] == 1 and done["square 3"] == 1
    assert sq[1].hash not in summary.executed and sq[2].hash in summary.executed
    status = store.status(sq[2].hash)
    assert 0.0 <= status["cpu_seconds"] and 0.0 < status["wall_seconds"]  # recorded by the worker
    assert all(store.claim_holder(r.hash) is None for r in expand(spec))  # everything released
    for run in expand(spec):
        if run.stage == "add":
            assert store.metrics(run.hash)["value"] == run.config["x"] ** 2 + run.config["offset"]
