"""The Scheduler on a fake cluster (no Ray): order, failures, retries, resources, observers."""
from __future__ import annotations

import itertools
from typing import Any

import pytest

from ray_jobs.progress import Snapshot
from ray_jobs.scheduler import Cluster, ResourcePolicy, Scheduler, Summary
from ray_jobs.spec import Run, expand, parse_spec
from ray_jobs.store import Store, driver_identity


class FakeCluster:
    """Tasks 'run' when waited for: outcome(run) gives the worker's result dict or raises (a death)."""

    def __init__(self, outcome, totals: dict[str, float] | None = None, hold: set[str] = frozenset()) -> None:
        self.outcome, self.resources, self.hold = outcome, totals or {"CPU": 2.0}, hold
        self.started: list[tuple[str, float]] = []  # (stage label, num_gpus passed)
        self.cancelled: list[str] = []
        self.refs: dict[int, Run] = {}
        self.ids = itertools.count()

    def view(self, policy: ResourcePolicy) -> Cluster:
        def start(run: Run) -> int:
            ref = next(self.ids)
            self.refs[ref] = run
            self.started.append((run.label(), policy.gpus(run, self.resources)))
            return ref

        def wait(refs: list[int], timeout: float) -> list[int]:
            return [r for r in refs if self.refs[r].stage not in self.hold][:1]

        return Cluster(start=start, wait=wait, get=lambda ref: self.outcome(self.refs[ref]),
                       cancel=lambda ref: self.cancelled.append(self.refs[ref].label()), totals=lambda: self.resources)


def make(tmp_path, stages: dict, fake: FakeCluster, policy: ResourcePolicy | None = None):
    runs = expand(parse_spec({"stages": stages}))
    store = Store.create(tmp_path / "store")
    policy = policy or ResourcePolicy(fixed=True)
    sched = Scheduler("t", runs, store, driver_identity(), fake.view(policy), policy, Summary(), poll_s=0.0)
    return sched, runs, store


def ok(run: Run) -> dict[str, Any]:
    return {"state": "done"}


STAGES = {"a": {"kind": "probe", "grid": {"x": [1, 2]}},
          "b": {"kind": "probe", "needs": {"src": "a"}, "grid": {"x": [1, 2]}}}


def test_runs_start_after_their_inputs_and_observers_see_each_step(tmp_path):
    fake = FakeCluster(ok)
    sched, runs, store = make(tmp_path, STAGES, fake)
    seen: list[Snapshot] = []
    sched.observers.append(type("O", (), {"on_step": lambda self, s: seen.append(s)})())
    summary = sched.run()
    assert summary.ok and summary.executed == [r.hash for r in runs]
    assert [label for label, _ in fake.started] == ["a[x=1]", "a[x=2]", "b[x=1]", "b[x=2]"]
    assert [s.done for s in seen] == [1, 2, 3, 4] and all(s.failed == 0 for s in seen)
    assert all(store.claim_holder(r.hash) is None for r in runs)  # every claim released


def test_failure_blocks_dependents_and_retry_failed_is_bounded(tmp_path):
    calls: list[str] = []

    def outcome(run: Run) -> dict[str, Any]:
        calls.append(run.label())
        return {"state": "failed"} if run.axes["x"] == 1 and run.stage == "a" else {"state": "done"}

    stages = {**STAGES, "a": {**STAGES["a"], "retry_failed": 2}}
    sched, runs, store = make(tmp_path, stages, FakeCluster(outcome))
    summary = sched.run()
    by = {r.label(): r.hash for r in runs}
    assert calls.count("a[x=1]") == 3  # first attempt + 2 re-attempts
    assert summary.states == {by["a[x=1]"]: "failed", by["a[x=2]"]: "done", by["b[x=1]"]: "blocked",
                              by["b[x=2]"]: "done"}
    assert store.status(by["b[x=1]"])["error"] == f"blocked: input src (a[x=1], {by['a[x=1]']}) failed"


def test_worker_death_is_recorded(tmp_path):
    def outcome(run: Run) -> dict[str, Any]:
        raise RuntimeError("node lost")

    sched, runs, store = make(tmp_path, {"a": {"kind": "probe", "max_retries": 3}}, FakeCluster(outcome))
    assert sched.run().states == {runs[0].hash: "failed"}
    assert store.status(runs[0].hash)["error"] == "worker died (0 attempts, max_retries=3): RuntimeError: node lost"


def test_embedded_machine_refuses_what_it_lacks_unless_allow_cpu(tmp_path):
    stages = {"g": {"kind": "probe", "resources": {"num_gpus": 1}}, "c": {"kind": "probe"}}
    fake = FakeCluster(ok, totals={"CPU": 2.0})
    sched, runs, store = make(tmp_path, stages, fake)
    summary = sched.run()
    assert summary.states == {runs[0].hash: "failed", runs[1].hash: "done"}
    assert fake.started == [("c", 0.0)]  # the GPU run never started on the CPU
    assert store.status(runs[0].hash)["error"] == (
        "asks for num_gpus=1 but this machine's Ray has 0; run it on a cluster with GPU nodes (--address), "
        "or pass --allow-cpu to run GPU stages on the CPU")
    fake = FakeCluster(ok, totals={"CPU": 2.0})
    sched, runs, _ = make(tmp_path / "b", stages, fake, ResourcePolicy(fixed=True, allow_cpu=True))
    assert sched.run().ok and fake.started == [("g", 0.0), ("c", 0.0)]


def test_cluster_passes_gpu_requests_as_declared_and_times_out_with_a_reason(tmp_path, monkeypatch):
    stages = {"g": {"kind": "probe", "resources": {"num_gpus": 1}}}
    fake = FakeCluster(ok, totals={"CPU": 8.0}, hold={"g"})  # no GPU node: the task never starts
    policy = ResourcePolicy(fixed=False, wait_s=60.0)
    sched, runs, store = make(tmp_path, stages, fake, policy)
    clock = iter([0.0, 10.0, 30.0, 61.0, 61.0, 61.0])
    monkeypatch.setattr("ray_jobs.scheduler.time.monotonic", lambda: next(clock))
    sched.poll()
    assert fake.started == [("g", 1.0)] and sched.in_flight  # requested as declared, waiting
    sched.poll()
    assert sched.in_flight and not fake.cancelled  # 30 s < 60 s: still waiting
    sched.poll()
    assert fake.cancelled == ["g"] and not sched.active and sched.summary.states == {runs[0].hash: "failed"}
    assert store.status(runs[0].hash)["error"] == ("waited 61 s (limit 60 s, --resource-timeout) for num_gpus=1 "
                                                   "(cluster has 0); no node that fits joined the cluster")


def test_inputs_outside_the_grid_are_an_error(tmp_path):
    sched, runs, _ = make(tmp_path, STAGES, FakeCluster(ok))
    sched.waiting = [r for r in runs if r.stage == "b"]  # their inputs will never be done
    with pytest.raises(RuntimeError, match="no run can start"):
        sched.poll()


def test_object_store_status_of_runs_in_flight_is_read_once_per_submission(tmp_path):
    """On an object store only the driver writes a held run's status, so poll() must not GET it again
    after every finished task (that was 15 reads for 6 runs in flight, O(runs^2); now one per run)."""
    from ray_jobs.objstore import ObjectStore, filesystem

    runs = expand(parse_spec({"stages": {"a": {"kind": "probe", "grid": {"x": [1, 2, 3, 4, 5, 6]}}}}))
    filesystem("memory").mkdir(f"sched-{tmp_path.name}")
    store = ObjectStore.create(f"memory://sched-{tmp_path.name}/grid")
    reads: list[str] = []
    real_status = store.status
    store.status = lambda h: reads.append(h) or real_status(h)  # type: ignore[method-assign]
    policy = ResourcePolicy(fixed=True)
    sched = Scheduler("t", runs, store, driver_identity(), FakeCluster(ok).view(policy), policy, Summary(), poll_s=0.0)
    assert sched.run().ok
    assert len(reads) == len(set(reads)) == len(runs) - 1  # the first result came before any status read
