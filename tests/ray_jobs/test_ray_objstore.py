"""The store on object storage, against a real S3-compatible server (moto in server mode) that this
module starts on 127.0.0.1 as a subprocess, with fake credentials: two "nodes" with separate scratch
folders, damaged results redone, claims between two drivers, unreachable stores, and the CLI/report."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from ray_jobs import cli  # noqa: E402
from ray_jobs.claims import Claim, driver_identity  # noqa: E402
from ray_jobs.nodecache import COMPLETE, SCRATCH_ENV  # noqa: E402
from ray_jobs.objstore import ObjectStore, StoreUnavailableError, filesystem, open_store  # noqa: E402
from ray_jobs.runner import _run_payload, execute_run, unique_runs  # noqa: E402
from ray_jobs.spec import parse_spec  # noqa: E402

MOD = "tests.ray_jobs.objstore_kinds"
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1; the endpoint and fake credentials go into os.environ (Ray
    workers started in this module inherit them)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    env = {**FAKE_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield f"http://127.0.0.1:{port}"
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)


_BUCKETS = iter(range(10_000))


@pytest.fixture
def uri(s3_server) -> str:
    """A fresh bucket for each test; the store is a prefix in it."""
    bucket = f"bucket-{next(_BUCKETS)}"
    filesystem("s3").mkdir(bucket)
    return f"s3://{bucket}/grid"


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


def local_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def count(counter: Path) -> Counter:
    return Counter(counter.read_text().splitlines()) if counter.exists() else Counter()


def prepared(uri: str, tmp_path: Path, xs=(1, 2)):
    store = ObjectStore.create(uri)
    spec = chain_spec(tmp_path / "counter.txt", xs)
    runs = unique_runs(spec)
    for run in runs:
        store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
    return store, {(r.stage, r.config["x"]): r for r in runs}


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


def test_claims_two_drivers_exactly_one_wins(uri):
    ObjectStore.create(uri)
    stores = [ObjectStore(uri) for _ in range(4)]
    drivers = [driver_identity() for _ in stores]
    for h in ("r1", "r2"):
        results, barrier = [None] * len(stores), threading.Barrier(len(stores))

        def race(i, h=h):
            barrier.wait()
            results[i] = stores[i].claim(h, drivers[i])

        threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [i for i, r in enumerate(results) if r is None]
        assert len(winners) == 1, results
        w = winners[0]
        assert all(r.driver.token == drivers[w].token for r in results if r is not None)
        assert stores[0].live_claim(h).driver.token == drivers[w].token
        # Released: the next driver gets it; the winner's claim is gone.
        stores[w].release(h, drivers[w])
        assert stores[0].live_claim(h) is None
        other = (w + 1) % len(stores)
        assert stores[other].claim(h, drivers[other]) is None
        assert stores[w].claim(h, drivers[w]).driver.token == drivers[other].token
        stores[other].release(h, drivers[other])


def test_drivers_racing_to_take_over_one_stale_claim_one_wins_and_the_loser_of_a_claim_notices(uri):
    ObjectStore.create(uri)
    dead = driver_identity()
    dead = type(dead)(token="dead" * 8, host="gone-host", pid=1, since=time.time() - 100)
    stale = json.dumps(Claim(dead, time.time() - 50, 10.0).to_json()).encode()
    stores = [ObjectStore(uri, lease_s=30.0) for _ in range(4)]
    drivers = [driver_identity() for _ in stores]
    stores[0].put_bytes("r1", "claim.json", stale)
    results, barrier = [None] * len(stores), threading.Barrier(len(stores))

    def race(i):
        barrier.wait()
        results[i] = stores[i].claim("r1", drivers[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    w = winners[0]
    assert {r.driver.token for r in results if r is not None} <= {drivers[w].token, ""}
    # Someone overwrites the winner's claim: its next renewal is refused (If-Match) and it lets go.
    stores[0].put_bytes("r1", "claim.json", stale)
    stores[w]._heartbeat_once()
    assert "r1" not in stores[w]._held
    stores[w].release("r1", drivers[w])  # no longer ours: the claim object is left alone
    assert stores[0].get_bytes("r1", "claim.json") == stale


def test_status_shows_a_run_a_live_driver_holds_as_running(uri, tmp_path):
    from ray_jobs.runner import describe

    store, runs = prepared(uri, tmp_path, xs=(1,))
    me = driver_identity()
    assert store.claim(runs[("train", 1)].hash, me) is None
    spec = chain_spec(tmp_path / "counter.txt", xs=(1,))
    rows = {line.split()[1]: line.split()[0] for line in describe(spec, store).splitlines()[1:-1]}
    assert rows == {runs[("train", 1)].hash: "running", runs[("eval", 1)].hash: "pending"}
    store.release(runs[("train", 1)].hash, me)
    assert describe(spec, store).splitlines()[-1] == "totals: done 0, failed 0, blocked 0, running 0, pending 2"


def test_stale_claim_of_a_dead_driver_is_taken_over_and_live_ones_renewed(uri):
    lease = 6.0  # long enough that a loaded CI machine's late heartbeat never lets the claim lapse
    store = ObjectStore.create(uri, lease_s=lease)
    dead = driver_identity()
    dead = type(dead)(token="dead" * 8, host="gone-host", pid=1, since=time.time() - 100)
    store.put_bytes("r1", "claim.json", json.dumps(Claim(dead, time.time() - 50, 10.0).to_json()).encode())
    me = driver_identity()
    assert store.claim("r1", me) is None
    assert store.live_claim("r1").driver.token == me.token
    first = store.fs.info(store.run_key("r1", "claim.json"))["ETag"]
    deadline = time.time() + 30  # the heartbeat renews every lease / 4; poll instead of a fixed sleep
    while store.fs.info(store.run_key("r1", "claim.json"))["ETag"] == first and time.time() < deadline:
        time.sleep(0.2)
    assert store.fs.info(store.run_key("r1", "claim.json"))["ETag"] != first, "the heartbeat never renewed"
    assert store.live_claim("r1").heartbeat > time.time() - lease
    other = ObjectStore(uri, lease_s=lease)
    assert other.claim("r1", driver_identity()).driver.token == me.token  # live: respected
    store.release("r1", me)


def test_unreachable_endpoint_missing_bucket_and_missing_credentials_fail_first(uri, tmp_path, monkeypatch, capsys):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(f'[spec]\nkind_modules = ["{MOD}"]\n[stages.t]\nkind = "toy_train"\n'
                         f'[stages.t.config]\ncounter = "{tmp_path / "c.txt"}"\n[stages.t.grid]\nx = [1]\n')
    with pytest.raises(StoreUnavailableError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x")
    with pytest.raises(FileNotFoundError, match="not a result store"):
        open_store(uri, "existing")  # the bucket exists, but `run` never wrote this prefix
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    t0 = time.time()
    assert cli.main(["run", str(spec_file), "--store", uri, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the bucket" in err and uri in err, err
    assert time.time() - t0 < 30
    assert not (tmp_path / "c.txt").exists()  # nothing ran
    monkeypatch.undo()
    for key in FAKE_ENV:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert cli.main(["status", str(spec_file), "--store", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "credentials" in err.lower(), err


def test_local_paths_and_file_uris_are_local_stores(tmp_path):
    from ray_jobs.store import Store

    assert isinstance(open_store(str(tmp_path / "a")), Store)
    store = open_store(f"file://{tmp_path / 'b'}")
    assert isinstance(store, Store) and store.root == tmp_path / "b" and (tmp_path / "b" / "runs").is_dir()
    with pytest.raises(ValueError, match="PROTOCOL://bucket"):
        ObjectStore("s3://")
    with pytest.raises(StoreUnavailableError, match="store nosuchproto://b/x: no filesystem for 'nosuchproto'"):
        open_store("nosuchproto://b/x")


@pytest.mark.ray
@pytest.mark.slow  # ~30 s on a loaded 2-core machine (Ray start)
def test_cli_run_status_results_and_report_on_the_bucket(uri, tmp_path, monkeypatch, capsys):
    """`python -m ray_jobs run/status/results --store s3://...` with the embedded Ray, then
    `python -m figures report --store s3://...`."""
    import ray

    from figures.report import main as report_main

    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))  # before Ray starts: its workers inherit it
    counter = tmp_path / "counter.txt"
    spec_file = tmp_path / "chain.toml"
    spec_file.write_text(
        f'[spec]\nname = "objchain"\nkind_modules = ["{MOD}"]\n'
        f'[stages.train]\nkind = "toy_train"\n[stages.train.config]\ncounter = "{counter}"\n'
        f'[stages.train.grid]\nx = [1, 2]\n'
        f'[stages.eval]\nkind = "toy_eval"\nneeds = {{ model = "train" }}\n[stages.eval.config]\n'
        f'counter = "{counter}"\noffset = 100\n[stages.eval.grid]\nx = [1, 2]\n')
    assert cli.main(["run", str(spec_file), "--dry-run", "--store", uri]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "totals: done 0, failed 0, blocked 0, running 0, pending 4"
    try:
        assert cli.main(["run", str(spec_file), "--store", uri, "--num-cpus", "2", "--no-progress"]) == 0
    finally:
        ray.shutdown()
    assert count(counter) == Counter({"train 1": 1, "train 2": 1, "eval 1": 1, "eval 2": 1})
    capsys.readouterr()
    assert cli.main(["status", str(spec_file), "--store", uri]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"store {uri}") and out[-1] == "totals: done 4, failed 0, blocked 0, running 0, pending 0"
    assert cli.main(["results", str(spec_file), "--store", uri, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["metrics"].get("value", r["metrics"].get("w")) for r in rows) == [3, 6, 103, 106]
    assert report_main(["--store", uri, "--out", str(tmp_path / "report"), "--spec", str(spec_file)]) == 0
    report = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"--store {uri}" in report and "Total missing runs: 0." in report
    assert "| eval | x=2 | done | value 106 |" in report and "| train | x=1 | done |" in report


def fake_cluster(store: ObjectStore, pool):
    """The scheduler's Cluster with threads instead of Ray tasks; the driver records each outcome, as
    runner.ray_cluster does."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from ray_jobs.scheduler import Cluster

    def start(run):
        return pool.submit(execute_run, _run_payload(run), str(store.root), None, [MOD])

    return Cluster(start=start, wait=lambda refs, t: list(wait(refs, t, return_when=FIRST_COMPLETED)[0]),
                   get=lambda ref: store.record_result(ref.result()), cancel=lambda ref: ref.cancel(),
                   totals=lambda: {"CPU": 4.0})


def test_two_drivers_on_one_store_uri_do_each_run_once(uri, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from ray_jobs.scheduler import ResourcePolicy, Scheduler, Summary

    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    counter = tmp_path / "counter.txt"
    spec = chain_spec(counter, xs=(1, 2, 3))
    runs = unique_runs(spec)
    ObjectStore.create(uri)
    summaries, errors = [], []

    def driver():
        store = ObjectStore(uri)
        for run in runs:
            store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
        with ThreadPoolExecutor(2) as pool:
            scheduler = Scheduler(spec.name, runs, store, driver_identity(), fake_cluster(store, pool),
                                  ResourcePolicy(fixed=True), Summary(), poll_s=0.05)
            try:
                summaries.append(scheduler.run())
            except Exception as err:  # noqa: BLE001 - reported by the assertion below
                errors.append(err)
            finally:
                scheduler.release_all()

    threads = [threading.Thread(target=driver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(summaries) == 2 and all(s.ok for s in summaries)
    assert count(counter) == Counter({f"{stage} {x}": 1 for stage in ("train", "eval") for x in (1, 2, 3)})
    executed = summaries[0].executed + summaries[1].executed
    assert sorted(executed) == sorted(r.hash for r in runs)  # each run executed by exactly one driver
    store = ObjectStore(uri)
    assert [store.metrics(r.hash)["value"] for r in runs if r.stage == "eval"] == [103, 106, 109]


@pytest.mark.slow
def test_real_kinds_each_stage_on_its_own_node(uri, tmp_path, monkeypatch, data_root):
    """train -> construct (det) -> train on it -> eval, real deep kinds at tiny size, each stage on a node
    that has never seen the others' files: the eval's node fetches its model and, through the model's
    recipe, the constructed dataset."""
    base = {"model": "mlp", "method": "standard", "epochs": 1, "batch_size": 64, "lr": 0.05, "eval_n": 100}
    spec = parse_spec({"stages": {
        "train": {"kind": "train", "config": {**base, "first_n": 512}, "grid": {"dataset": ["mnist"]}},
        "make": {"kind": "construct", "needs": {"source": "train"},
                 "config": {"n": 128, "eps": 2.0, "step": 0.4, "steps": 5},
                 "grid": {"dataset": ["mnist"], "construct": ["det"]}},
        "retrain": {"kind": "train", "needs": {"dataset": "make"}, "config": base,
                    "grid": {"dataset": ["mnist"], "_construct": ["det"]}},
        "eval": {"kind": "eval", "needs": {"model": "retrain"},
                 "config": {"first_n": 100, "suite": ["fgsm"], "eps": 0.1, "norm": "linf"},
                 "grid": {"dataset": ["mnist"], "_construct": ["det"]}},
    }})
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
