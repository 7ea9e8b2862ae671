"""What Ray and the store add per run: a grid of trivial runs through the real runner.

    python benchmarks/ray_overhead.py [--runs 120] [--num-cpus 2] [--json out.json] [--profile]

The grid is one stage of ``tests/ray_jobs/toy_kinds.py``'s ``square`` kind (it appends one line to a
counter file and returns x², so the run itself costs well under a millisecond), imported by the
workers through the spec's ``kind_modules``. It is run by ``ray_jobs.runner.run_spec`` (claims,
scheduler, Ray tasks, result checks, run state) on the embedded Ray, after Ray has started (Ray's own
start-up is reported separately), twice:

* ``local``: a local store in a temp folder;
* ``s3``: an S3 store on moto's S3 server, started here on 127.0.0.1 with fake credentials (the
  workers compute in node-local scratch and upload; the driver writes run state and claims with
  conditional writes).

Per-run overhead = wall time of ``run_spec`` / runs. Printed with the 1/5/15-minute load average and
the CPU model, since the machine may be shared. ``--profile`` also prints the driver's top functions
(cProfile, cumulative time) for the S3 case.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ray_jobs.runner import connect, run_spec  # noqa: E402
from ray_jobs.spec import parse_spec  # noqa: E402
from ray_jobs.s3local import client_env, start_moto  # noqa: E402
from deep.precision import cpu_model  # noqa: E402



def grid(runs: int, counter: Path, name: str):
    return parse_spec({"spec": {"name": name, "kind_modules": ["tests.ray_jobs.toy_kinds"]}, "stages": {
        "sq": {"kind": "square", "config": {"counter": str(counter)}, "grid": {"x": list(range(runs))}}}})


def start_s3() -> tuple[subprocess.Popen, str]:
    """moto's S3 server; its endpoint and fake credentials go into os.environ before Ray starts, so the
    workers inherit them."""
    proc, endpoint = start_moto()
    os.environ.update(client_env(endpoint))
    return proc, endpoint


def timed(spec, store, runs: int, profile: bool) -> tuple[float, str]:
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    summary = run_spec(spec, store, progress=False, shutdown=False)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    if not summary.ok or len(summary.executed) != runs:
        raise RuntimeError(f"grid did not complete: {summary}")
    text = ""
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
        text = buf.getvalue()
    return wall, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    from ray_jobs.objstore import ObjectStore, filesystem
    from ray_jobs.store import Store

    moto, endpoint = start_s3()
    work = Path(tempfile.mkdtemp(prefix="advfeat-overhead-"))
    os.environ["ADVFEAT_SCRATCH"] = str(work / "scratch")
    result = {"runs": args.runs, "num_cpus": args.num_cpus, "cpu": cpu_model(), "cores": os.cpu_count(),
              "load_start": os.getloadavg()}
    try:
        t0 = time.perf_counter()
        connect(None, args.num_cpus)
        result["ray_start_s"] = time.perf_counter() - t0
        wall, _ = timed(grid(args.runs, work / "local.txt", "overhead-local"), Store.create(work / "store"),
                        args.runs, False)
        result["local"] = {"wall_s": wall, "per_run_s": wall / args.runs}
        filesystem("s3").mkdir("overhead")
        wall, prof = timed(grid(args.runs, work / "s3.txt", "overhead-s3"),
                           ObjectStore.create("s3://overhead/grid"), args.runs, args.profile)
        result["s3"] = {"wall_s": wall, "per_run_s": wall / args.runs}
    finally:
        import ray

        ray.shutdown()
        moto.terminate()
        moto.wait(10)
    result["load_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if prof:
        print(prof)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
