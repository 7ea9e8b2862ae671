"""Claims with a lease (ray_jobs.claims): expiry and take-over, live leases respected, heartbeats,
unreadable claim files, and exactly one winner among drivers racing in threads and in processes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ray_jobs import claims
from ray_jobs.claims import Claim, claim_is_stale, driver_identity
from ray_jobs.store import Store

REPO = Path(__file__).resolve().parents[2]


def remote_driver():
    """A driver on another host: never judged by pid, only by its lease."""
    return replace(driver_identity(), host=socket.gethostname() + "-elsewhere", pid=1)


def write_claim(store: Store, h: str, record: dict, age_s: float = 0.0) -> Path:
    path = store.run_dir(h) / "claim.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_an_expired_lease_is_taken_over_and_a_live_one_respected(tmp_path):
    store = Store(tmp_path / "store")
    me, other = driver_identity(), remote_driver()
    now = time.time()
    write_claim(store, "old", Claim(other, now - 601, 600).to_json(), age_s=601)
    write_claim(store, "live", Claim(other, now - 500, 600).to_json(), age_s=500)
    assert store.claim("old", me) is None and store.claim_holder("old").driver == me
    holder = store.claim("live", me)
    assert holder is not None and holder.driver == other and holder.lease_s == 600
    assert store.live_claim("live").driver == other and store.live_claim("nothing") is None
    store.release("old", me)


def test_the_holders_lease_counts_not_the_readers(tmp_path):
    store = Store(tmp_path / "store", lease_s=1.0)  # a reader with a short lease ...
    other = remote_driver()
    write_claim(store, "h", Claim(other, time.time() - 30, 60).to_json(), age_s=30)
    assert store.claim("h", driver_identity()).driver == other  # ... respects the holder's 60 s


def test_a_claim_in_the_old_format_expires_by_its_file_time(tmp_path):
    """Claims written before leases existed: {driver, host, pid, since}; a restarted pod's claim no longer
    needs deleting by hand."""
    store = Store(tmp_path / "store")
    other = remote_driver()
    old = {"driver": other.token, "host": other.host, "pid": 1, "since": time.time() - 7200}
    write_claim(store, "stale", old, age_s=7200)
    write_claim(store, "fresh", old, age_s=10)  # since is old, but the file was written 10 s ago
    me = driver_identity()
    assert store.claim("stale", me) is None
    assert store.claim("fresh", me).driver.token == other.token
    store.release("stale", me)


def test_claim_is_stale():
    other, me = remote_driver(), driver_identity()
    claim = Claim(other, heartbeat=1000.0, lease_s=600.0)
    assert not claim_is_stale(claim, now=1600.0) and claim_is_stale(claim, now=1600.5)
    assert not claim_is_stale(claim, mtime=1100.0, now=1650.0)  # a later file time extends it
    assert not claim_is_stale(Claim(me, time.time(), 600.0))  # this very process
    assert claim_is_stale(Claim(replace(me, pid=2 ** 22 + 1), time.time(), 600.0))  # no such pid here
    assert not claim_is_stale(Claim(replace(me, pid=1), time.time(), 600.0))  # pid 1 started before the driver
    # a live pid whose process started after the driver did: the pid was reused, the driver is gone
    assert claim_is_stale(Claim(replace(me, pid=1, since=0.0), time.time(), 600.0))


def test_a_heartbeat_keeps_a_long_run_claimed_and_stops_at_release(tmp_path):
    # lease 1 s (a renewal every 0.25 s): long enough that a busy CI machine never delays a renewal past it
    a, b = Store(tmp_path / "store", lease_s=1.0), Store(tmp_path / "store", lease_s=1.0)
    me, other = driver_identity(), driver_identity()
    assert a.claim("h", me) is None
    first = a.claim_holder("h").heartbeat
    time.sleep(2.5)  # two and a half leases
    assert a.claim_holder("h").heartbeat > first + 1.25
    assert b.claim("h", other).driver == me
    a.release("h", me)
    time.sleep(0.5)
    assert a.claim_holder("h") is None and a._heartbeat.held == {}
    assert b.claim("h", other) is None
    b.release("h", other)


def test_a_driver_that_stopped_renewing_loses_its_claim(tmp_path):
    a, b = Store(tmp_path / "store", lease_s=0.3), Store(tmp_path / "store", lease_s=0.3)
    me, other = replace(driver_identity(), host="elsewhere"), driver_identity()
    assert a.claim("h", me) is None
    with a._lock:
        a._heartbeat.held.clear()  # as if the driver were suspended
    time.sleep(0.5)
    assert b.claim("h", other) is None and b.claim_holder("h").driver == other
    assert claims.renew(a.run_dir("h") / "claim.json", Claim(me, time.time(), 0.3)) is False
    b.release("h", other)


def test_an_unreadable_claim_is_held_until_its_lease_runs_out_then_moved_aside(tmp_path):
    store = Store(tmp_path / "store", lease_s=60)
    me = driver_identity()
    write_claim(store, "h", {}, age_s=0).write_text("")  # e.g. caught between O_EXCL create and write
    holder = store.claim("h", me)
    assert holder is not None and holder.driver.token == ""
    path = store.run_dir("h") / "claim.json"
    os.utime(path, (time.time() - 61, time.time() - 61))
    assert store.claim("h", me) is None and store.claim_holder("h").driver == me
    assert len(list(store.run_dir("h").glob("claim.json.corrupt-*"))) == 1
    store.release("h", me)


def test_a_claim_that_changed_since_it_was_judged_stale_is_not_broken(tmp_path):
    store = Store(tmp_path / "store")
    path = write_claim(store, "h", Claim(remote_driver(), time.time() - 700, 600).to_json(), age_s=700)
    seen = claims.read_claim(path, 600)
    fresh = Claim(remote_driver(), time.time(), 600).to_json()
    path.write_text(json.dumps(fresh))  # renewed (or re-claimed) in between
    claims._break(path, seen)
    assert json.loads(path.read_text()) == fresh and not (path.parent / "claim.json.break").exists()


def test_a_break_file_left_by_a_dead_driver_is_cleared(tmp_path):
    store = Store(tmp_path / "store")
    path = write_claim(store, "h", Claim(remote_driver(), time.time() - 700, 600).to_json(), age_s=700)
    breaker = path.parent / "claim.json.break"
    breaker.touch()
    os.utime(breaker, (time.time() - 61, time.time() - 61))
    me = driver_identity()
    assert store.claim("h", me) is None and not breaker.exists()
    store.release("h", me)


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_drivers_racing_in_threads_exactly_one_wins(tmp_path, stale):
    runs = [f"r{i}" for i in range(20)]
    if stale:
        for h in runs:
            write_claim(Store(tmp_path / "store"), h, Claim(remote_driver(), time.time() - 700, 600).to_json(), 700)
    drivers = [(Store(tmp_path / "store"), driver_identity()) for _ in range(6)]
    start = threading.Barrier(len(drivers))
    won: dict[str, list[str]] = {h: [] for h in runs}

    def race(store: Store, me) -> None:
        start.wait()
        for h in runs:
            if store.claim(h, me) is None:
                won[h].append(me.token)

    threads = [threading.Thread(target=race, args=d) for d in drivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {h: len(w) for h, w in won.items()} == {h: 1 for h in runs}
    for h in runs:
        assert drivers[0][0].claim_holder(h).driver.token == won[h][0]


RACER = """
import json, sys, time
from ray_jobs.store import Store, driver_identity
store, me, t0 = Store(sys.argv[1]), driver_identity(), float(sys.argv[2])
while time.time() < t0:
    time.sleep(0.001)
print(json.dumps([h for h in sys.argv[3:] if store.claim(h, me) is None]), flush=True)
sys.stdin.read()  # stay alive (a live driver) until every racer has finished
"""


def test_drivers_racing_in_processes_exactly_one_wins(tmp_path):
    runs = [f"r{i}" for i in range(30)]
    t0 = time.time() + 2.0  # every process imported and waiting by then
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "store"), str(t0), *runs],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    wins = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        p.communicate(timeout=60)
    assert sorted(h for w in wins for h in w) == sorted(runs)  # every run won once, by one process
