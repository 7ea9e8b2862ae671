"""The multi-node run with a fault (ray_jobs/multinode.py): a 3-node loopback Ray cluster, the store on
moto's S3 server, paper-cifar10's miniature submitted with `ray job submit`, one worker node's raylet
SIGKILLed mid-grid. Several minutes on a 2-core machine; `make test-multinode`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from ray_jobs.multinode import run_demo  # noqa: E402


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(2700)
def test_grid_survives_a_killed_worker_node_and_stores_each_result_once(tmp_path):
    out = run_demo(tmp_path / "demo", "paper-cifar10", "smoke", min_done=3, job_timeout=2000)
    detail = json.dumps({k: v for k, v in out.__dict__.items() if k != "metrics_puts"}, indent=1, default=str)
    assert out.problems == [], detail
    assert out.job_status == "SUCCEEDED", detail
    # The kill hit a run mid-way (its scratch status on the dead node still says running) ...
    assert out.interrupted and 3 <= out.killed_at_done < out.runs, detail
    # ... and every run of the grid (34 in paper-cifar10's miniature) has its metrics.json PUT exactly once.
    assert out.runs == 34 and sorted(set(out.metrics_puts.values())) == [1] and len(out.metrics_puts) == 34, detail
    assert Path(out.report).is_file()
    # Nothing of the cluster is left running: no process names the demo's bucket.
    bucket = out.store.split("/")[2]
    assert not [p for p in os.listdir("/proc") if p.isdigit() and bucket.encode() in _cmdline(p)]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
