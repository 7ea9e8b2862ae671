"""Claims on the object store, against a real S3-compatible server (moto, the ``s3_server`` fixture of
tests/ray_jobs/conftest.py): racing drivers, stale claims taken over, live ones renewed, and two
drivers on one store URI doing each run once."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from _objstore_s3 import MOD, chain_spec, count, prepared  # noqa: E402
from ray_jobs.claims import Claim, driver_identity  # noqa: E402
from ray_jobs.nodecache import SCRATCH_ENV  # noqa: E402
from ray_jobs.objstore import ObjectStore  # noqa: E402
from ray_jobs.runner import _run_payload, execute_run, unique_runs  # noqa: E402


def race_for_claim(stores, drivers, run_hash):
    """Every store's driver claims run_hash at the same moment (threads behind a barrier); exactly one
    must win. Returns each claim() result (None for the winner) and the winner's index."""
    results, barrier = [None] * len(stores), threading.Barrier(len(stores))

    def race(i):
        barrier.wait()
        results[i] = stores[i].claim(run_hash, drivers[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    return results, winners[0]


def test_claims_two_drivers_exactly_one_wins(uri):
    ObjectStore.create(uri)
    stores = [ObjectStore(uri) for _ in range(4)]
    drivers = [driver_identity() for _ in stores]
    for h in ("r1", "r2"):
        results, w = race_for_claim(stores, drivers, h)
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
    results, w = race_for_claim(stores, drivers, "r1")
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
