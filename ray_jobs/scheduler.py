"""The grid scheduler: submits each run as a Ray task as soon as its inputs are done.

:class:`Scheduler` keeps the state of one ``run_spec`` call (runs waiting for inputs, tasks in
flight, runs another driver holds, re-attempt counts) and is driven by :meth:`Scheduler.poll`:

* :meth:`ready` - the waiting runs whose inputs are all done (runs with a failed or blocked input are
  marked ``blocked`` on the way);
* :meth:`submit` - claim a run in the store and start its task (a run claimed by another live driver
  is waited for instead);
* :meth:`on_result` - record a finished task: done, failed (re-submitted up to ``retry_failed``
  times), or its worker died after Ray's ``max_retries``;
* :meth:`poll` - one step: the other drivers' runs, the ready runs, one wait on the tasks in flight,
  then a :class:`~ray_jobs.progress.Snapshot` to every observer (the progress display is one).

Resources are passed to Ray as the spec declares them (see :class:`ResourcePolicy`).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ray_jobs.objstore import ObjectStore
from ray_jobs.progress import Snapshot
from ray_jobs.spec import Run
from ray_jobs.store import Store

FAILED_STATES = ("failed", "blocked")


@dataclass
class Summary:
    """Outcome of one ``run_spec`` call: the final state of every run and which ones executed."""

    states: dict[str, str] = field(default_factory=dict)  # hash -> done | failed | blocked
    executed: list[str] = field(default_factory=list)      # hashes whose task ran in this call
    skipped: list[str] = field(default_factory=list)       # already done before this call

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)

    @property
    def ok(self) -> bool:
        return all(s == "done" for s in self.states.values())


class Observer(Protocol):
    def on_step(self, snap: Snapshot) -> None: ...


@dataclass(frozen=True)
class ResourcePolicy:
    """How a run's ``num_cpus``/``num_gpus`` meet the cluster.

    Requests go to Ray exactly as declared, so an autoscaler sees them. On the embedded instance
    (``fixed``: no autoscaler, the machine is all there is) a request larger than the machine is
    refused at once with the reason. On a cluster a request the cluster cannot place now waits;
    after ``wait_s`` seconds without starting, while the cluster still lacks what it asks for, the
    run fails with a message saying so, instead of running on the CPU."""

    fixed: bool
    wait_s: float = 3600.0
    allow_cpu: bool = False  # --allow-cpu: GPU requests are dropped when the cluster has no GPU at all

    def gpus(self, run: Run, totals: dict[str, float]) -> float:
        """The num_gpus passed to Ray: as declared, unless ``allow_cpu`` and the cluster has none."""
        return 0.0 if self.allow_cpu and totals.get("GPU", 0.0) == 0 else run.num_gpus

    def never_fits(self, run: Run, totals: dict[str, float]) -> str | None:
        """Why ``run`` can never start on a fixed cluster with these totals, or None."""
        if not self.fixed:
            return None
        for name, asked in (("CPU", run.num_cpus), ("GPU", self.gpus(run, totals))):
            have = totals.get(name, 0.0)
            if asked > have:
                where = "this machine's Ray" if name == "GPU" else "the cluster"
                return (f"asks for num_{name.lower()}s={asked:g} but {where} has {have:g}"
                        + ("; run it on a cluster with GPU nodes (--address), or pass --allow-cpu to run "
                           "GPU stages on the CPU" if name == "GPU" else ""))
        return None

    def starved(self, run: Run, waited_s: float, totals: dict[str, float]) -> str | None:
        """Why a submitted, not yet started run is given up, or None to keep waiting."""
        if waited_s < self.wait_s:
            return None
        asked = (("CPU", run.num_cpus), ("GPU", self.gpus(run, totals)))
        lacking = [f"num_{n.lower()}s={a:g} (cluster has {totals.get(n, 0.0):g})" for n, a in asked
                   if a > totals.get(n, 0.0)]
        if not lacking:
            return None  # the cluster has it now; the run is only queued behind others
        return (f"waited {waited_s:.0f} s (limit {self.wait_s:g} s, --resource-timeout) for "
                f"{', '.join(lacking)}; no node that fits joined the cluster")


@dataclass
class Cluster:
    """What the scheduler needs from Ray: start a task, wait for some, fetch a result, cancel one."""

    start: Callable[[Run], Any]                 # -> ObjectRef
    wait: Callable[[list[Any], float], list[Any]]  # (refs, timeout) -> the ready refs
    get: Callable[[Any], dict[str, Any]]
    cancel: Callable[[Any], None]
    totals: Callable[[], dict[str, float]]


class Scheduler:
    """One grid's scheduling state; see the module docstring."""

    def __init__(self, name: str, runs: list[Run], store: Store, owner: dict[str, Any], cluster: Cluster,
                 policy: ResourcePolicy, summary: Summary, poll_s: float = 0.5) -> None:
        self.name, self.store, self.owner, self.cluster, self.policy = name, store, owner, cluster, policy
        self.summary, self.poll_s = summary, poll_s
        self.by_hash = {r.hash: r for r in runs}
        self.waiting = [r for r in runs if r.hash not in summary.states]
        self.in_flight: dict[Any, str] = {}          # ObjectRef -> hash
        self.submitted_at: dict[str, float] = {}     # hash -> time of its latest submission
        self.claimed: set[str] = set()
        self.external: dict[str, dict[str, Any]] = {}  # hash -> claim of the other driver running it
        self.app_failures: dict[str, int] = {}
        self.observers: list[Observer] = []
        self.known_status: dict[str, dict[str, Any]] = {}  # object store: hash -> status, read once per submission

    @property
    def active(self) -> bool:
        return bool(self.waiting or self.in_flight or self.external)

    def finish(self, h: str, state: str, error: str | None = None) -> None:
        self.summary.states[h] = state
        if error is not None and state != "done":
            self.store.update_status(h, state=state, error=error)
        if h in self.claimed:
            self.store.release(h, self.owner)
            self.claimed.discard(h)

    def release_all(self) -> None:
        for h in list(self.claimed):
            self.store.release(h, self.owner)
        self.claimed.clear()

    def ready(self) -> list[Run]:
        """Waiting runs whose inputs are done (removed from waiting); blocks runs with a failed input."""
        states, out, still = self.summary.states, [], []
        for run in self.waiting:
            bad = [(n, h) for n, h in run.inputs.items() if states.get(h) in FAILED_STATES]
            if bad:
                reason = "; ".join(f"input {n} ({self.by_hash[h].label()}, {h}) {states[h]}" for n, h in bad)
                self.finish(run.hash, "blocked", f"blocked: {reason}")
            elif all(states.get(h) == "done" for h in run.inputs.values()):
                out.append(run)
            else:
                still.append(run)
        self.waiting = still
        return out

    def submit(self, run: Run) -> None:
        """Claim ``run`` and start its task, or wait for the other driver that holds it."""
        reason = self.policy.never_fits(run, self.cluster.totals())
        if reason is not None:
            self.finish(run.hash, "failed", reason)
            return
        holder = self.store.claim(run.hash, self.owner)
        if holder is not None:
            if run.hash not in self.external:
                print(f"[{self.name}] {run.label()} ({run.hash}) is being run by another driver "
                      f"(host {holder.driver.host}, pid {holder.driver.pid}); waiting for it. If that driver is "
                      f"gone, its claim is taken over {holder.lease_s:.0f} s after its last heartbeat",
                      file=sys.stderr, flush=True)
            self.external[run.hash] = holder
            return
        self.external.pop(run.hash, None)
        self.claimed.add(run.hash)
        if run.hash not in self.summary.executed:
            self.summary.executed.append(run.hash)
        self.known_status.pop(run.hash, None)
        self.in_flight[self.cluster.start(run)] = run.hash
        self.submitted_at[run.hash] = time.monotonic()

    def on_result(self, h: str, result: dict[str, Any] | None, error: BaseException | None = None) -> None:
        """A task ended: ``result`` from the worker, or ``error`` when the worker died for good."""
        run = self.by_hash[h]
        if error is not None:
            attempts = self.store.status(h).get("attempts", "?")
            self.finish(h, "failed", f"worker died ({attempts} attempts, max_retries={run.max_retries}): "
                                     f"{type(error).__name__}: {error}")
        elif result is not None and result["state"] == "failed" and self.app_failures.get(h, 0) < run.retry_failed:
            self.app_failures[h] = self.app_failures.get(h, 0) + 1
            self.submit(run)
        else:
            self.finish(h, (result or {}).get("state", "failed"))

    def _check_external(self) -> None:
        for h in list(self.external):
            if self.store.is_done(h):  # the other driver finished it
                self.external.pop(h)
                self.summary.states[h] = "done"
            else:
                self.submit(self.by_hash[h])  # runs it here once the other driver has released it

    def _collect(self) -> None:
        if not self.in_flight:
            time.sleep(self.poll_s)  # only other drivers' runs to wait for
            return
        for ref in self.cluster.wait(list(self.in_flight), self.poll_s):
            h = self.in_flight.pop(ref)
            try:
                result = self.cluster.get(ref)
            except Exception as err:  # noqa: BLE001 - worker death after all retries
                self.on_result(h, None, err)
                continue
            self.on_result(h, result)

    def _give_up_starved(self, statuses: dict[str, dict[str, Any]]) -> None:
        """Cancel runs that never started because the cluster lacks what they ask for."""
        now, totals = time.monotonic(), None
        for ref, h in list(self.in_flight.items()):
            if statuses[h].get("state") == "running":
                continue
            totals = totals if totals is not None else self.cluster.totals()  # once per poll: ray.nodes() is a GCS call
            reason = self.policy.starved(self.by_hash[h], now - self.submitted_at[h], totals)
            if reason is not None:
                self.cluster.cancel(ref)
                self.in_flight.pop(ref)
                self.finish(h, "failed", reason)

    def in_flight_status(self, h: str) -> dict[str, Any]:
        """The status of a run in flight. On an object store only this driver writes the status of a run
        it holds (the workers' progress stays in their scratch), so it is read once per submission, not
        after every finished task: that was one GET per run in flight per result, O(runs^2) on a wide grid."""
        if not isinstance(self.store, ObjectStore):
            return self.store.status(h)
        if h not in self.known_status:
            self.known_status[h] = self.store.status(h)
        return self.known_status[h]

    def poll(self) -> None:
        """One scheduling step (see the module docstring)."""
        self._check_external()
        before = len(self.waiting)
        ready = self.ready()
        for run in ready:
            self.submit(run)
        if not self.in_flight and not self.external and self.waiting and not ready and len(self.waiting) == before:
            raise RuntimeError(f"no run can start: {[r.label() for r in self.waiting]} wait for inputs outside the grid")
        self._collect()
        statuses = {h: self.in_flight_status(h) for h in self.in_flight.values()}
        self._give_up_starved(statuses)
        running = [(self.by_hash[h].short_label(), st.get("progress") or {}) for h, st in statuses.items()
                   if st.get("state") == "running" and h in self.in_flight.values()]
        snap = Snapshot(self.summary.count("done"), self.summary.count("failed") + self.summary.count("blocked"),
                        running, queued=len(self.in_flight) - len(running))
        for observer in self.observers:
            observer.on_step(snap)

    def run(self) -> Summary:
        while self.active:
            self.poll()
        return self.summary
