"""What the object-store tests (test_ray_objstore_nodes/_claims/_cli.py) share: the toy spec of
objstore_kinds.py, one run on a "node" with its own scratch folder, and the fake S3 credentials that
the ``s3_server`` fixture of tests/ray_jobs/conftest.py puts into os.environ."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ray_jobs.nodecache import SCRATCH_ENV
from ray_jobs.objstore import ObjectStore
from ray_jobs.runner import _run_payload, execute_run, unique_runs
from ray_jobs.spec import parse_spec


MOD = "tests.ray_jobs.objstore_kinds"


def chain_spec(counter: Path, xs=(1, 2)):
    return parse_spec({"spec": {"name": "objchain", "kind_modules": [MOD]}, "stages": {
        "train": {"kind": "toy_train", "config": {"counter": str(counter)}, "grid": {"x": list(xs)}},
        "eval": {"kind": "toy_eval", "needs": {"model": "train"}, "config": {"counter": str(counter), "offset": 100},
                 "grid": {"x": list(xs)}},
    }})


def on_node(monkeypatch, scratch: Path, run, store: ObjectStore) -> dict:
    """One run on a "node" whose scratch folder is ``scratch``; the driver records the outcome."""
    monkeypatch.setenv(SCRATCH_ENV, str(scratch))
    result = execute_run(_run_payload(run), str(store.root), None, [MOD])
    return store.record_result(result)


def count(counter: Path) -> Counter:
    return Counter(counter.read_text().splitlines()) if counter.exists() else Counter()


def prepared(uri: str, tmp_path: Path, xs=(1, 2)):
    store = ObjectStore.create(uri)
    spec = chain_spec(tmp_path / "counter.txt", xs)
    runs = unique_runs(spec)
    for run in runs:
        store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
    return store, {(r.stage, r.config["x"]): r for r in runs}
