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
* Resources go to Ray as the spec declares them (``ray_jobs.scheduler.ResourcePolicy``): on the
  embedded Ray a run asking for more CPUs or GPUs than the machine has fails at once with the
  reason; on a cluster it waits (an autoscaler may add a node) and fails after ``--resource-timeout``
  seconds with the reason. A GPU stage never silently runs on the CPU; ``--allow-cpu`` opts in.
* The scheduling itself is ``ray_jobs.scheduler.Scheduler``; the progress line is its observer
  (``ray_jobs.progress.Display``).
"""
from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from ray_jobs.embedded import start_embedded
from ray_jobs.kinds import RunContext, get_kind
from ray_jobs.progress import Display, progress_text
from ray_jobs.scheduler import Cluster, ResourcePolicy, Scheduler, Summary
from ray_jobs.spec import Run, Spec, expand, strip_tags
from ray_jobs.objstore import ObjectStore, is_uri
from ray_jobs.store import Store, driver_identity

__all__ = ["Summary", "connect", "describe", "execute_run", "machine", "progress_text", "run_spec", "unique_runs"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def unique_runs(spec: Spec) -> list[Run]:
    """Expanded runs with duplicates (same hash reached twice) removed, order kept."""
    seen: dict[str, Run] = {}
    for run in expand(spec):
        seen.setdefault(run.hash, run)
    return list(seen.values())


def execute_run(run: dict[str, Any], store_root: str, data_root: str | None,
                kind_modules: list[str]) -> dict[str, Any]:
    """The body of one Ray task. Application errors are recorded, not raised, so Ray only retries
    real worker deaths; the runner decides about re-attempts of failed runs. A ``store_root`` that is
    an object-store URI runs in node-local scratch instead (ray_jobs/nodecache.py)."""
    if is_uri(store_root):
        from ray_jobs.nodecache import execute_object_run

        return execute_object_run(run, store_root, data_root, kind_modules)
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
        store.update_status(run_hash, cpu_seconds=time.process_time() - cpu0, wall_seconds=time.perf_counter() - wall0,
                            machine=machine())
        store.finish(run_hash, metrics)
        store.log(run_hash, f"attempt {attempt} done")
        return {"state": "done"}
    except Exception as err:  # noqa: BLE001 - every application error is recorded with its traceback
        tb = traceback.format_exc()
        store.update_status(run_hash, state="failed", error=f"{type(err).__name__}: {err}", traceback=tb)
        store.log(run_hash, f"attempt {attempt} failed: {type(err).__name__}: {err}\n{tb}")
        return {"state": "failed", "error": f"{type(err).__name__}: {err}"}


def machine() -> dict[str, Any]:
    """What this worker computed on, for status.json's ``machine`` (read by figures/machines.py): ``cpu``
    (model name), ``cpu_capability`` (torch's SIMD level: bf16 speed depends on it), ``gpu`` (the CUDA
    device's name when this process initialised CUDA, i.e. a kind used it; else None) and ``torch``.
    torch is imported here so that the driver and the report never need it."""
    import torch

    from deep.precision import cpu_model

    gpu = torch.cuda.get_device_name(torch.cuda.current_device()) if torch.cuda.is_initialized() else None
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "gpu": gpu,
            "torch": torch.__version__}


def _run_payload(run: Run) -> dict[str, Any]:
    return {"hash": run.hash, "kind": run.kind, "config": run.config, "inputs": run.inputs}


def connect(address: str | None, num_cpus: int | None) -> bool:
    """Start an embedded Ray (default; loopback only, see ray_jobs/embedded.py) or connect to
    ``address``; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # Workers must import ray_jobs and the spec's kind modules from this checkout.
        paths = [str(REPO_ROOT), os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
        start_embedded(num_cpus or os.cpu_count() or 1, {"env_vars": env})
    return True


def largest_node() -> dict[str, float]:
    """The most of each resource one alive node offers (what a single task can get)."""
    import ray

    best: dict[str, float] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for key, value in (node.get("Resources") or {}).items():
                best[key] = max(best.get(key, 0.0), float(value))
    return best


def ray_cluster(store: Store, data_root: str | None, kind_modules: list[str], policy: ResourcePolicy) -> Cluster:
    """The scheduler's view of the connected Ray: one ``execute_run`` task per run."""
    import ray

    task = ray.remote(execute_run)

    def start(run: Run) -> Any:
        return task.options(num_cpus=run.num_cpus, num_gpus=policy.gpus(run, largest_node()),
                            max_retries=run.max_retries, retry_exceptions=False, name=run.label()).remote(
            _run_payload(run), str(store.root), data_root, kind_modules)

    def wait(refs: list[Any], timeout: float) -> list[Any]:
        return ray.wait(refs, num_returns=1, timeout=timeout)[0]

    def get(ref: Any) -> dict[str, Any]:
        result = ray.get(ref)
        # On an object store the driver alone writes run state: it records what the worker reported.
        return store.record_result(result) if isinstance(store, ObjectStore) else result

    return Cluster(start=start, wait=wait, get=get, cancel=lambda ref: ray.cancel(ref, force=True),
                   totals=largest_node)


def run_spec(spec: Spec, store: Store, *, address: str | None = None, num_cpus: int | None = None,
             data_root: str | None = None, progress: bool = True, poll_s: float = 0.5,
             shutdown: bool | None = None, resource_timeout_s: float = 3600.0, allow_cpu: bool = False) -> Summary:
    """Run every run of ``spec`` that is not done yet; return their final states."""
    import ray

    runs = unique_runs(spec)
    for run in runs:
        store.write_config(run.hash, run.identity(), {"spec": spec.name, "stage": run.stage, "axes": run.axes})
    summary = Summary()
    for run in runs:
        if store.is_done(run.hash):
            summary.states[run.hash] = "done"
            summary.skipped.append(run.hash)
    if len(summary.skipped) == len(runs):
        return summary
    started = connect(address, num_cpus)
    policy = ResourcePolicy(fixed=not address, wait_s=resource_timeout_s, allow_cpu=allow_cpu)
    scheduler = Scheduler(spec.name, runs, store, driver_identity(),
                          ray_cluster(store, data_root, list(spec.kind_modules), policy), policy, summary, poll_s)
    try:
        display = Display(len(runs), len(summary.skipped), spec.name, progress)
        scheduler.observers.append(display)
        scheduler.run()
        display.close()
    finally:
        scheduler.release_all()
        if shutdown if shutdown is not None else started:
            ray.shutdown()
    return summary


def describe(spec: Spec, store: Store) -> str:
    """The expanded grid, one line per run: state, hash, label, inputs, and error or progress."""
    runs = unique_runs(spec)
    lines = [f"spec {spec.name}: {len(runs)} runs, store {store.root}"]
    for run in runs:
        status = store.status(run.hash)
        state = store.state(run.hash)
        if state == "running" and store.live_claim(run.hash) is None:
            state = "stopped"  # no live driver holds it (an interrupted driver); the next run resumes it
        elif state == "pending" and isinstance(store, ObjectStore) and store.live_claim(run.hash) is not None:
            state = "running"  # on object storage only the driver writes status: a live claim is the sign
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
