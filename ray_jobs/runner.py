"""Execute an expanded spec on Ray: one remote task per run, scheduled as soon as its inputs are done.

Fault handling:

* A worker process that dies mid-run (OOM, SIGKILL, node loss) is retried by Ray up to the stage's
  ``max_retries``; the retry runs in the same run folder, so kinds that checkpoint resume.
* An exception raised by the kind is caught *inside* the task and recorded in ``status.json``
  (``state = failed``, ``error``, ``traceback``); the runner re-submits it at most ``retry_failed``
  times. Runs that need a failed run are marked ``blocked`` with the reason; everything else
  still completes.
* Two drivers on one store: each run is claimed (``Store.claim``) before it is submitted; a run
  claimed by another live driver is not submitted but waited for (done there: counted done here;
  released unfinished: claimed and run here), so no run is ever computed by two drivers at once.
* GPUs are requested only when the cluster has any (``ray.cluster_resources()["GPU"]``); on a
  machine without GPUs a stage asking for ``num_gpus`` runs on the CPU (deep/ picks its device with
  ``torch.cuda.is_available()``).
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray_jobs.kinds import RunContext, get_kind
from ray_jobs.spec import Run, Spec, expand, strip_tags
from ray_jobs.store import Store, driver_identity

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def unique_runs(spec: Spec) -> list[Run]:
    """Expanded runs with duplicates (same hash reached twice) removed, order kept."""
    seen: dict[str, Run] = {}
    for run in expand(spec):
        seen.setdefault(run.hash, run)
    return list(seen.values())


def execute_run(run: dict[str, Any], store_root: str, data_root: str | None,
                kind_modules: list[str]) -> dict[str, Any]:
    """The body of one Ray task. Application errors are recorded, not raised, so Ray only retries
    real worker deaths; the runner decides about re-attempts of failed runs."""
    store = Store(store_root)
    run_hash = run["hash"]
    if store.is_done(run_hash):  # a duplicate submission or a retry after the result was written
        return {"state": "done"}
    attempt = int(store.status(run_hash).get("attempts", 0)) + 1
    store.update_status(run_hash, state="running", attempts=attempt, host=socket.gethostname(),
                        pid=os.getpid(), started=time.time(), error=None, traceback=None)
    store.log(run_hash, f"attempt {attempt} started on {socket.gethostname()} pid {os.getpid()}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        fn = get_kind(run["kind"], kind_modules)
        inputs = {name: store.run_dir(h) for name, h in run["inputs"].items()}
        ctx = RunContext(store=store, run_hash=run_hash, data_root=data_root, attempt=attempt)
        metrics = fn(strip_tags(run["config"]), inputs, store.run_dir(run_hash), ctx)
        if not isinstance(metrics, dict):
            raise TypeError(f"kind {run['kind']!r} returned {type(metrics).__name__}, expected a dict")
        # CPU seconds of this worker process during the run (one run per worker at a time): on a shared
        # machine the wall time says little about the cost, the CPU time does.
        store.update_status(run_hash, cpu_seconds=time.process_time() - cpu0, wall_seconds=time.perf_counter() - wall0)
        store.finish(run_hash, metrics)
        store.log(run_hash, f"attempt {attempt} done")
        return {"state": "done"}
    except Exception as err:  # noqa: BLE001 - every application error is recorded with its traceback
        tb = traceback.format_exc()
        store.update_status(run_hash, state="failed", error=f"{type(err).__name__}: {err}", traceback=tb)
        store.log(run_hash, f"attempt {attempt} failed: {type(err).__name__}: {err}\n{tb}")
        return {"state": "failed", "error": f"{type(err).__name__}: {err}"}


def _run_payload(run: Run) -> dict[str, Any]:
    return {"hash": run.hash, "kind": run.kind, "config": run.config, "inputs": run.inputs}


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Start an embedded Ray (default) or connect to ``address``; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # Workers must import ray_jobs and the spec's kind modules from this checkout.
        paths = [str(REPO_ROOT), os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 runtime_env={"env_vars": env}, log_to_driver=True)
    return True


def progress_text(prog: dict[str, Any]) -> str:
    """'epoch 2/5', 'step 3/8', the phase, or '' from a run's status.json progress."""
    if "epoch" in prog:
        return f"epoch {prog['epoch']}/{prog.get('epochs', '?')}"
    if "step" in prog:
        return f"step {prog['step']}/{prog.get('steps', '?')}"
    return str(prog.get("phase", ""))


class _Display:
    """Runs done/failed/running and the progress of the running runs: a tqdm line on a terminal,
    otherwise a plain line whenever the counts change (and every 30 s while progress moves)."""

    def __init__(self, total: int, initial: int, name: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.enabled, self.total, self.name = enabled, total, name
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="run", file=sys.stderr,
                        dynamic_ncols=True, disable=not (enabled and self.tty))
        self.last_counts: tuple[int, int, int, int] | None = None
        self.last_print = 0.0

    def update(self, done: int, failed: int, running: list[tuple[str, dict[str, Any]]], queued: int = 0) -> None:
        parts = [f"{label} {progress_text(prog)}".rstrip() for label, prog in running[:3]]
        if self.tty:
            self.bar.n = done
            self.bar.set_postfix_str(" | ".join([f"failed={failed}", f"running={len(running)}", f"queued={queued}",
                                                 *parts]), refresh=True)
            return
        counts = (done, failed, len(running), queued)
        now = time.time()
        if self.enabled and (counts != self.last_counts or now - self.last_print > 30):
            print(f"[{self.name}] done {done}/{self.total}, failed {failed}, running {len(running)}, queued {queued}"
                  + (": " + " | ".join(parts) if parts else ""), file=sys.stderr, flush=True)
            self.last_counts, self.last_print = counts, now

    def close(self) -> None:
        self.bar.close()


def run_spec(spec: Spec, store: Store, *, address: str | None = None, num_cpus: int | None = None,
             data_root: str | None = None, progress: bool = True, poll_s: float = 0.5,
             shutdown: bool | None = None) -> Summary:
    """Run every run of ``spec`` that is not done yet; return their final states."""
    import ray

    runs = unique_runs(spec)
    by_hash = {r.hash: r for r in runs}
    for run in runs:
        store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
    summary = Summary()
    for run in runs:
        if store.is_done(run.hash):
            summary.states[run.hash] = "done"
            summary.skipped.append(run.hash)
    todo = [r for r in runs if r.hash not in summary.states]
    if not todo:
        return summary

    owner = driver_identity()
    claimed: set[str] = set()
    started = connect(address, num_cpus)
    try:
        resources = ray.cluster_resources()
        has_gpu = resources.get("GPU", 0) > 0
        total_cpus = resources.get("CPU", 0)
        task = ray.remote(execute_run)
        display = _Display(len(runs), len(summary.skipped), spec.name, progress)
        in_flight: dict[Any, str] = {}  # ObjectRef -> hash
        app_failures: dict[str, int] = {}
        external: dict[str, dict[str, Any]] = {}  # hash -> claim of the other driver running it
        waiting = list(todo)

        def finish(h: str, state: str, error: str | None = None) -> None:
            summary.states[h] = state
            if error is not None and state != "done":
                store.update_status(h, state=state, error=error)
            if h in claimed:
                store.release(h, owner)
                claimed.discard(h)

        def submit(run: Run) -> None:
            num_gpus = run.num_gpus if has_gpu else 0.0
            if run.num_cpus > total_cpus:
                finish(run.hash, "failed", f"asks for num_cpus={run.num_cpus} but the cluster has {total_cpus}")
                return
            holder = store.claim(run.hash, owner)
            if holder is not None:
                if run.hash not in external:
                    print(f"[{spec.name}] {run.label()} ({run.hash}) is being run by another driver "
                          f"(host {holder.get('host')}, pid {holder.get('pid')}); waiting for it. If that driver "
                          f"is gone, delete {store.run_dir(run.hash) / 'claim.json'}", file=sys.stderr, flush=True)
                external[run.hash] = holder
                return
            external.pop(run.hash, None)
            claimed.add(run.hash)
            if run.hash not in summary.executed:
                summary.executed.append(run.hash)
            ref = task.options(num_cpus=run.num_cpus, num_gpus=num_gpus, max_retries=run.max_retries,
                               retry_exceptions=False, name=run.label()).remote(
                _run_payload(run), str(store.root), data_root, list(spec.kind_modules))
            in_flight[ref] = run.hash

        while waiting or in_flight or external:
            for h in list(external):
                if store.is_done(h):  # the other driver finished it
                    external.pop(h)
                    summary.states[h] = "done"
                else:
                    submit(by_hash[h])  # runs it here once the other driver has released it
            still = []
            for run in waiting:
                bad = [(n, h) for n, h in run.inputs.items() if summary.states.get(h) in ("failed", "blocked")]
                if bad:
                    reason = "; ".join(f"input {n} ({by_hash[h].label()}, {h}) {summary.states[h]}" for n, h in bad)
                    finish(run.hash, "blocked", f"blocked: {reason}")
                elif all(summary.states.get(h) == "done" for h in run.inputs.values()):
                    submit(run)
                else:
                    still.append(run)
            if not in_flight and not external and waiting and len(still) == len(waiting):
                raise RuntimeError(f"no run can start: {[r.label() for r in still]} wait for inputs outside the grid")
            waiting = still
            if not in_flight:
                time.sleep(poll_s)  # only other drivers' runs to wait for
            else:
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_s)
                for ref in ready:
                    h = in_flight.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - worker death after all retries
                        attempts = store.status(h).get("attempts", "?")
                        finish(h, "failed", f"worker died ({attempts} attempts, max_retries="
                                            f"{by_hash[h].max_retries}): {type(err).__name__}: {err}")
                        continue
                    if result["state"] == "failed" and app_failures.get(h, 0) < by_hash[h].retry_failed:
                        app_failures[h] = app_failures.get(h, 0) + 1
                        submit(by_hash[h])
                    else:
                        finish(h, result["state"])
            statuses = {h: store.status(h) for h in in_flight.values()}
            running = [(by_hash[h].short_label(), st.get("progress") or {}) for h, st in statuses.items()
                       if st.get("state") == "running"]
            display.update(summary.count("done"), summary.count("failed") + summary.count("blocked"), running,
                           queued=len(in_flight) - len(running))
        display.close()
    finally:
        for h in list(claimed):
            store.release(h, owner)
        if shutdown if shutdown is not None else started:
            ray.shutdown()
    return summary


def _stale(status: dict[str, Any]) -> bool:
    """A 'running' status whose process on this host no longer exists."""
    if status.get("host") != socket.gethostname() or not isinstance(status.get("pid"), int):
        return False
    try:
        os.kill(status["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe(spec: Spec, store: Store) -> str:
    """The expanded grid, one line per run: state, hash, label, inputs, and error or progress."""
    runs = unique_runs(spec)
    lines = [f"spec {spec.name}: {len(runs)} runs, store {store.root}"]
    for run in runs:
        status = store.status(run.hash)
        state = store.state(run.hash)
        if state == "running" and _stale(status):
            state = "stopped"  # its process is gone (an interrupted driver); the next run resumes it
        extra = ""
        if run.inputs:
            extra += " <- " + ", ".join(f"{n}={h}" for n, h in run.inputs.items())
        if state in ("failed", "blocked") and status.get("error"):
            extra += f"  [{str(status['error']).splitlines()[0]}]"
        elif state == "running" and status.get("progress"):
            extra += f"  [{progress_text(status['progress'])}]"
        lines.append(f"{state:8s} {run.hash}  {run.label()}{extra}")
    states = [line.split()[0] for line in lines[1:]]
    counts = {s: states.count(s) for s in ("done", "failed", "blocked", "running", "stopped", "pending")}
    lines.append("totals: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v or k != "stopped"))
    return "\n".join(lines)
