"""The loopback cluster demo (ray start head + a declared-GPU worker node + ray job submit), ~40 s."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(400)
def test_cluster_demo_places_gpu_runs_on_the_gpu_node(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
           "RAY_DEMO_PORT": "6393", "RAY_DEMO_DASHBOARD_PORT": "8268", "RAY_DEMO_TEMP_DIR": f"/tmp/ray_demo_test_{os.getpid()}"}  # short: AF_UNIX paths <= 107 bytes
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([str(REPO / "ray_jobs" / "cluster_demo.sh"), "cluster-demo", str(store)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    placed: dict[str, set[str]] = {"gpu": set(), "cpu": set()}
    for run in (store / "runs").iterdir():
        stage = json.loads((run / "config.json").read_text())["labels"][0]["stage"]
        metrics = json.loads((run / "metrics.json").read_text())
        placed[stage].add(metrics["node_id"])
        assert metrics["device"] == ("cuda" if metrics["cuda_available"] else "cpu")
        assert (len(metrics["gpu_ids"]) == 1) == (stage == "gpu")
    assert len(placed["gpu"]) == 1 and placed["gpu"].isdisjoint(placed["cpu"])
    assert "[demo] cluster stopped" in proc.stdout
