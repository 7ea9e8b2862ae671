"""The embedded Ray binds loopback only, keeps a private temp dir and runs workers at normal priority."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ray_jobs.embedded import MAX_TEMP_DIR_CHARS, private_temp_dir, restrict_modes

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter so that no other test's Ray instance is reused. Lists every listening
# TCP socket of the driver and of all processes it started (GCS, raylet, agents, workers).
PROBE = r"""
import json, os, sys
import ray, psutil  # ray first: it puts its bundled psutil on sys.path
from ray_jobs.runner import connect

connect(None, 1)

@ray.remote
def worker_nice():
    return os.nice(0)

nice = ray.get(worker_nice.remote())
me = psutil.Process()
procs = [me, *me.children(recursive=True)]
binds = []
for proc in procs:
    try:
        conns = proc.net_connections(kind="inet")
        name = proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        continue
    binds += [[name, c.laddr.ip, c.laddr.port] for c in conns if c.status == psutil.CONN_LISTEN]
temp = ray._private.worker._global_node.get_temp_dir_path()
print(json.dumps({"binds": binds, "nice": nice, "temp": temp, "procs": len(procs)}))
ray.shutdown()
"""


@pytest.fixture
def short_dir():
    """A folder with a short path (pytest's tmp_path is too long for Ray's unix sockets)."""
    path = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))
    assert len(str(path / "c" / "advfeat" / "ray")) <= MAX_TEMP_DIR_CHARS
    yield path
    shutil.rmtree(path, ignore_errors=True)


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1" or ip.startswith("::ffff:127.")


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_embedded_ray_listens_on_loopback_only_with_a_private_temp_dir(short_dir):
    cache = short_dir / "c"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["procs"] >= 3 and len(report["binds"]) >= 3  # GCS, raylet, workers: the probe saw them
    exposed = [b for b in report["binds"] if not is_loopback(b[1])]
    assert exposed == [], f"non-loopback listening sockets: {exposed}"
    assert report["nice"] == 0  # Ray's default worker niceness is 15
    private = cache / "advfeat" / "ray"
    assert report["temp"] == str(private / "t")  # Ray's temp dir lies inside the private folder
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and private.stat().st_uid == os.getuid()
    sessions = [p for p in (private / "t").iterdir() if p.name.startswith("session_2")]
    assert len(sessions) == 1 and (sessions[0] / "sockets").is_dir()


def test_private_temp_dir_modes_and_long_paths(short_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(short_dir / "c"))
    private = private_temp_dir()
    assert private == short_dir / "c" / "advfeat" / "ray" and stat.S_IMODE(private.stat().st_mode) == 0o700
    private.chmod(0o777)
    assert stat.S_IMODE(private_temp_dir().stat().st_mode) == 0o700  # reopened by hand: closed again
    root = private / "t"
    (root / "session_x" / "logs").mkdir(parents=True)
    (root / "session_x").chmod(0o777)
    (root / "session_x" / "logs").chmod(0o777)
    restrict_modes(root)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (root, root / "session_x", root / "session_x" / "logs")] \
        == [0o755, 0o755, 0o755]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ("long" * 20)))
    assert private_temp_dir() == Path(f"/tmp/advfeat-ray-{os.getuid()}")  # socket paths would be too long
