"""A real multi-node run with a fault, on one machine: a 3-node Ray cluster on 127.0.0.1, the store on
an S3-compatible server, a spec submitted with ``ray job submit``, one worker node killed mid-grid.

    python -m ray_jobs.multinode [--spec paper-cifar10] [--scale smoke] [--work DIR] [--min-done 3]

What it does, in order (``make test-multinode`` runs it as the slow test
``tests/ray_jobs/test_ray_multinode.py``):

1. starts moto's S3 server (``python -m moto.server``) on a free loopback port, with fake credentials,
   and creates a bucket; the server's access log (one line per request) is kept in ``WORK/moto.log``;
2. starts ``ray start`` nodes with token auth (``RAY_AUTH_MODE=token``): a head with 0 CPUs (the job
   driver runs there), ``worker-a`` with 1 CPU and a declared GPU (``--num-gpus 1``, a fake one), and
   ``worker-b`` with 1 CPU. Each node gets its own ``ADVFEAT_SCRATCH`` (``WORK/scratch-<node>``), so no
   scratch folder is shared; every port is chosen free, so it can run beside other Ray instances;
3. submits ``python -m ray_jobs run SPEC --scale SCALE --address auto --store s3://BUCKET/grid`` with
   ``ray job submit --no-wait``;
4. once ``--min-done`` results are in the bucket and ``worker-a`` is computing a run that is not done,
   SIGKILLs ``worker-a``'s raylet (found by its ``--node_manager_port``); its workers die with it and
   Ray retries their tasks (``max_retries``) on ``worker-b``;
5. checks: the job SUCCEEDED; ``ray_jobs status`` shows every run done; every run's ``metrics.json``
   was PUT exactly once (counted in the server's access log, i.e. no result was written twice); the run
   that was interrupted on the killed node is done in the bucket; ``python -m figures report`` renders
   from the S3 store without MISSING sections.

Cleanup (always, also on failure or Ctrl-C): the job is stopped, then only this demo's processes are
killed, by pid: those it started, and those whose command line names its private Ray temp dir or its
bucket (the Ray workers and the job's driver). ``ray stop`` is not used: it would stop every Ray on
the machine. The outcome is printed as JSON and written to ``WORK/outcome.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ray_jobs.s3local import FAKE_CREDENTIALS, start_moto

REPO = Path(__file__).resolve().parents[1]
FAKE_AWS = FAKE_CREDENTIALS
EXCLUDES = [".*", "store", "runs", "figures/out", "**/__pycache__", "*.egg-info"]
# A request line of werkzeug's access log: "PUT /bucket/key HTTP/1.1" status
_PUT = re.compile(r'"PUT /([^ ?]+)[^ ]* HTTP/1\.[01]\S*" (\d+)')


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and what was seen."""


@dataclass
class Node:
    name: str
    num_cpus: int
    num_gpus: int
    scratch: Path
    manager_port: int = 0
    node_id: str = ""


@dataclass
class Outcome:
    spec: str
    scale: str
    store: str
    runs: int = 0
    job_status: str = ""
    victim: str = ""
    killed_at_done: int = 0
    interrupted: list[str] = field(default_factory=list)
    metrics_puts: dict[str, int] = field(default_factory=dict)
    report: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    load_start: tuple[float, ...] = ()
    load_end: tuple[float, ...] = ()
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pids_naming(marker: str) -> list[int]:
    """Pids (not this process) whose command line contains ``marker`` (a path or name unique to this demo)."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me and marker in _cmdline(int(p))]


class Demo:
    """The cluster, the S3 server and the job of one demo; ``close()`` stops all of it."""

    def __init__(self, work: Path, spec: str, scale: str):
        self.work, self.spec, self.scale = work, spec, scale
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="rmn_", dir="/tmp"))  # short: AF_UNIX paths <= 107 bytes
        self.bucket = f"advfeat-mn-{os.getpid()}-{int(time.time())}"
        self.store = f"s3://{self.bucket}/grid"
        self.gcs_port, self.dash_port, self.s3_port = free_port(), free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.started: list[subprocess.Popen] = []
        self.job_id, self.submitted = f"advfeat-mn-{os.getpid()}", False
        self.nodes = [Node("head", 0, 0, work / "scratch-head"), Node("worker-a", 1, 1, work / "scratch-worker-a"),
                      Node("worker-b", 1, 0, work / "scratch-worker-b")]

    def env(self, scratch: Path | None = None) -> dict[str, str]:
        env = {**os.environ, **FAKE_AWS, "AWS_ENDPOINT_URL": self.endpoint, "RAY_AUTH_MODE": "token",
               "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        env.pop("RAY_ADDRESS", None)
        if scratch is not None:
            env["ADVFEAT_SCRATCH"] = str(scratch)
        return env

    def sh(self, args: list[str], timeout: float, what: str, scratch: Path | None = None,
           stderr: bool = False) -> str:
        """stdout of ``args`` (with stderr after it if ``stderr``); DemoError when it fails."""
        proc = subprocess.run(args, cwd=REPO, env=self.env(scratch), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise DemoError(f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n"
                            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return proc.stdout + (proc.stderr if stderr else "")

    # -- the S3 server -------------------------------------------------------------------------
    def start_s3(self) -> None:
        log = open(self.work / "moto.log", "w")  # noqa: SIM115 - closed with the process
        try:
            proc, _ = start_moto(self.s3_port, log=log, env=self.env())
        except RuntimeError as err:
            raise DemoError(f"{err}; see {self.work / 'moto.log'}") from None
        self.started.append(proc)
        self.s3().create_bucket(Bucket=self.bucket)

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def done_hashes(self) -> set[str]:
        """Runs whose metrics.json is in the bucket."""
        out: set[str] = set()
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="grid/runs/"):
            out |= {o["Key"].split("/")[2] for o in page.get("Contents", []) if o["Key"].endswith("/metrics.json")}
        return out

    def metrics_puts(self) -> dict[str, int]:
        """Successful PUTs of each run's metrics.json, from the server's access log."""
        counts: dict[str, int] = {}
        for key, code in _PUT.findall((self.work / "moto.log").read_text(errors="replace")):
            parts = key.split("/")
            if parts[0] == self.bucket and parts[-1] == "metrics.json" and code.startswith("2"):
                counts[parts[3]] = counts.get(parts[3], 0) + 1
        return counts

    # -- the cluster ---------------------------------------------------------------------------
    def start_node(self, node: Node) -> None:
        node.scratch.mkdir(parents=True, exist_ok=True)
        node.manager_port = free_port()
        common = ["--node-ip-address=127.0.0.1", f"--num-cpus={node.num_cpus}", f"--num-gpus={node.num_gpus}",
                  f"--temp-dir={self.ray_tmp}", "--disable-usage-stats", f"--node-manager-port={node.manager_port}",
                  f"--object-manager-port={free_port()}", f"--metrics-export-port={free_port()}",
                  f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                  f"--runtime-env-agent-port={free_port()}"]
        if node.name == "head":
            args = ["ray", "start", "--head", f"--port={self.gcs_port}", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dash_port}", *common]
        else:
            args = ["ray", "start", f"--address=127.0.0.1:{self.gcs_port}", *common]
        self.sh(args, 240, f"ray start ({node.name})", node.scratch)

    def wait_nodes(self, timeout: float = 180) -> None:
        """Until every node is alive in ray.nodes(); records each node's id (matched by its port)."""
        code = ("import json, ray, sys, time\n"
                f"ray.init(address='127.0.0.1:{self.gcs_port}', logging_level='ERROR')\n"
                f"end = time.time() + {timeout}\n"
                "while True:\n"
                "    alive = {n['NodeManagerPort']: n['NodeID'] for n in ray.nodes() if n['Alive']}\n"
                f"    if len(alive) >= {len(self.nodes)} or time.time() > end: break\n"
                "    time.sleep(1)\n"
                "print(json.dumps(alive))\n")
        alive = {int(k): v for k, v in json.loads(self.sh([sys.executable, "-c", code], timeout + 120,
                                                          "waiting for the nodes").strip().splitlines()[-1]).items()}
        for node in self.nodes:
            if node.manager_port not in alive:
                raise DemoError(f"node {node.name} (node manager port {node.manager_port}) did not register "
                                f"within {timeout} s; alive: {alive}")
            node.node_id = alive[node.manager_port]

    def raylet_pid(self, node: Node) -> int:
        pids = [p for p in pids_naming(str(self.ray_tmp)) if "raylet" in _cmdline(p).split(" ")[0]
                and f"node_manager_port={node.manager_port}" in _cmdline(p)]
        if len(pids) != 1:
            raise DemoError(f"expected one raylet of {node.name} (port {node.manager_port}), found {pids}")
        return pids[0]

    # -- the job -------------------------------------------------------------------------------
    def ray_job(self, *args: str, timeout: float = 120) -> str:
        return self.sh(["ray", "job", args[0], "--address", f"http://127.0.0.1:{self.dash_port}", *args[1:]],
                       timeout, f"ray job {args[0]}", stderr=args[0] == "status")

    def submit(self) -> None:
        runtime_env = {"excludes": EXCLUDES, "env_vars": {**FAKE_AWS, "AWS_ENDPOINT_URL": self.endpoint}}
        self.ray_job("submit", "--no-wait", "--submission-id", self.job_id, "--working-dir", ".",
                     "--runtime-env-json", json.dumps(runtime_env), "--", "python", "-m", "ray_jobs", "run",
                     self.spec, "--scale", self.scale, "--address", "auto", "--store", self.store, "--no-progress",
                     timeout=300)
        self.submitted = True

    def job_status(self) -> str:
        # The CLI logs e.g. "Job 'ID' succeeded" / "failed" / "was stopped" / "is currently running".
        out = self.ray_job("status", self.job_id)
        found = re.findall(rf"Job '{self.job_id}' (?:was |is currently |has )?"
                           r"(succeeded|failed|stopped|running|pending)", out)
        return found[-1].upper() if found else "UNKNOWN"

    def close(self) -> None:
        try:
            if self.submitted:
                subprocess.run(["ray", "job", "stop", self.job_id, "--address", f"http://127.0.0.1:{self.dash_port}",
                                "--no-wait"], cwd=REPO, env=self.env(), capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = {*pids_naming(str(self.ray_tmp)), *pids_naming(self.bucket),
                    *(p.pid for p in self.started if p.poll() is None)}
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3 if pids else 0)
        for proc in self.started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["rm", "-rf", str(self.ray_tmp)], check=False)


def interrupted_runs(node: Node) -> list[str]:
    """Runs that ``node`` was computing when it died: their scratch status.json still says running."""
    out = []
    for status in node.scratch.glob("*/runs/*/status.json"):
        try:
            if json.loads(status.read_text()).get("state") == "running":
                out.append(status.parent.name)
        except (OSError, ValueError):
            continue
    return sorted(out)


def kill_when_busy(demo: Demo, victim: Node, min_done: int, timeout: float) -> int:
    """SIGKILL ``victim``'s raylet once ``min_done`` results are stored and the victim is computing a
    run that is not done; returns how many were done then."""
    end, polls = time.time() + timeout, 0
    while time.time() < end:
        done = demo.done_hashes()
        busy = [h for h in interrupted_runs(victim) if h not in done]
        if len(done) >= min_done and busy:
            os.kill(demo.raylet_pid(victim), signal.SIGKILL)
            return len(done)
        polls += 1
        if polls % 10 == 0 and demo.job_status() in ("SUCCEEDED", "FAILED", "STOPPED"):  # the CLI costs ~2 CPU-s
            raise DemoError(f"the job ended ({demo.job_status()}) before {victim.name} could be killed mid-grid "
                            f"({len(done)} results stored)")
        time.sleep(2)
    raise DemoError(f"no moment with >= {min_done} results stored and {victim.name} busy within {timeout} s")


def wait_job(demo: Demo, timeout: float) -> str:
    end = time.time() + timeout
    while time.time() < end:
        status = demo.job_status()
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(10)
    raise DemoError(f"the job did not finish within {timeout} s")


def check(demo: Demo, out: Outcome, victim: Node) -> None:
    """The grid's end state; each problem found goes to ``out.problems``."""
    (demo.work / "job.log").write_text(demo.ray_job("logs", demo.job_id))
    if out.job_status != "SUCCEEDED":
        out.problems.append(f"job {out.job_status}; see {demo.work / 'job.log'}")
    status = demo.sh([sys.executable, "-m", "ray_jobs", "status", demo.spec, "--scale", demo.scale,
                      "--store", demo.store], 300, "ray_jobs status")
    (demo.work / "status.txt").write_text(status)
    out.runs = int(re.search(r"^spec \S+: (\d+) runs", status, re.M).group(1))
    totals = status.strip().splitlines()[-1]  # "totals: done 34, failed 0, blocked 0, running 0, pending 0"
    if not totals.startswith(f"totals: done {out.runs},") or re.search(r"[1-9]", totals.split(",", 1)[1]):
        out.problems.append(f"not every run is done: {totals!r}")
    out.metrics_puts = demo.metrics_puts()
    twice = {h: n for h, n in out.metrics_puts.items() if n != 1}
    if twice or len(out.metrics_puts) != out.runs:
        out.problems.append(f"metrics.json PUTs: {len(out.metrics_puts)} runs stored for {out.runs} runs; "
                            f"written more than once: {twice}")
    out.interrupted = interrupted_runs(victim)
    if not out.interrupted:
        out.problems.append(f"no run was interrupted on {victim.name}")
    elif missing := set(out.interrupted) - demo.done_hashes():
        out.problems.append(f"interrupted runs not done in the bucket: {sorted(missing)}")
    report = demo.work / "report"
    demo.sh([sys.executable, "-m", "figures", "report", "--store", demo.store, "--spec", demo.spec,
             "--scale", demo.scale, "--out", str(report)], 600, "figures report")
    out.report = str(report / "REPORT.md")
    text = (report / "REPORT.md").read_text() if (report / "REPORT.md").exists() else ""
    if "Total missing runs: 0." not in text:  # the report's own count of runs that are not done
        out.problems.append(f"the report is missing or lists MISSING runs: {out.report}")


def run_demo(work: Path, spec: str = "paper-cifar10", scale: str = "smoke", min_done: int = 3,
             job_timeout: float = 1800) -> Outcome:
    """The whole demo (module docstring); the outcome lists any problem found instead of raising,
    except for a step that could not be done at all (DemoError)."""
    work.mkdir(parents=True, exist_ok=True)
    demo, t0 = Demo(work, spec, scale), time.perf_counter()
    out = Outcome(spec, scale, demo.store, load_start=os.getloadavg())
    subprocess.run(["ray", "get-auth-token", "--generate"], env=demo.env(), capture_output=True, check=True)
    try:
        demo.start_s3()
        for node in demo.nodes:
            demo.start_node(node)
        demo.wait_nodes()
        out.seconds["cluster_up"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        demo.submit()
        victim = demo.nodes[1]
        out.victim = f"{victim.name} ({victim.node_id[:12]}, {victim.num_gpus} declared GPU)"
        out.killed_at_done = kill_when_busy(demo, victim, min_done, job_timeout)
        out.seconds["to_kill"] = time.perf_counter() - t1
        out.job_status = wait_job(demo, job_timeout)
        out.seconds["job"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        check(demo, out, victim)
        out.seconds["checks_and_report"] = time.perf_counter() - t2
    finally:
        demo.close()
        out.seconds["total"] = time.perf_counter() - t0
        out.load_end = os.getloadavg()
        (work / "outcome.json").write_text(json.dumps(asdict(out), indent=1))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs.multinode", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="paper-cifar10")
    parser.add_argument("--scale", default="smoke")
    parser.add_argument("--work", type=Path, default=None, help="output folder (default: a new temp folder)")
    parser.add_argument("--min-done", type=int, default=3, help="results stored before the worker is killed")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the cleanup in run_demo runs
    work = args.work or Path(tempfile.mkdtemp(prefix="advfeat-multinode-"))
    out = run_demo(work, args.spec, args.scale, args.min_done)
    print(json.dumps(asdict(out), indent=1))
    return 1 if out.problems else 0


if __name__ == "__main__":
    sys.exit(main())
