"""The cluster launch files under ray_jobs/launch/ load and carry the fields their tools need.

Each entrypoint they run is parsed by the real ``python -m ray_jobs`` parser and names a shipped
spec, so a renamed flag or spec breaks this test rather than a cluster job hours later.
"""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import ray
import yaml

from ray_jobs.cli import build_parser, resolve_spec_path

LAUNCH = Path(__file__).resolve().parents[2] / "ray_jobs" / "launch"


def _check_ray_jobs_command(command: str) -> None:
    argv = shlex.split(command)
    start = argv.index("ray_jobs") + 1          # after `python -m ray_jobs`
    args = build_parser().parse_args(argv[start:])
    assert resolve_spec_path(args.spec).is_file()


def test_ray_up_yaml_has_gpu_workers_and_installs_the_package():
    cfg = yaml.safe_load((LAUNCH / "cluster.yaml").read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "setup_commands",
                "head_start_ray_commands", "worker_start_ray_commands", "file_mounts"):
        assert key in cfg, key
    nodes = cfg["available_node_types"]
    assert cfg["head_node_type"] in nodes
    gpu = [n for n in nodes.values() if n.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu and all(n["min_workers"] == 0 and n["max_workers"] >= 1 for n in gpu)
    assert any("pip install" in c and "advfeat" in c for c in cfg["setup_commands"])
    assert "." in cfg["file_mounts"].values()  # this checkout travels to the nodes


def test_kuberay_rayjob_manifest():
    doc = yaml.safe_load((LAUNCH / "rayjob.yaml").read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    _check_ray_jobs_command(spec["entrypoint"])
    cluster = spec["rayClusterSpec"]
    major_minor = ".".join(ray.__version__.split(".")[:2])
    assert cluster["rayVersion"].startswith(major_minor), "the manifest's Ray must match the package's"
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    groups = cluster["workerGroupSpecs"]
    limits = [c["resources"]["limits"] for g in groups for c in g["template"]["spec"]["containers"]]
    assert any(int(lim.get("nvidia.com/gpu", 0)) >= 1 for lim in limits)
    mounts = {m["mountPath"] for g in groups for c in g["template"]["spec"]["containers"]
              for m in c.get("volumeMounts", [])}
    assert any(spec["entrypoint"].split("--store ")[1].startswith(m) for m in mounts), \
        "the store must be on a volume every worker mounts"


def test_slurm_script_is_valid_bash_and_starts_head_workers_and_driver():
    path = LAUNCH / "slurm.sbatch"
    text = path.read_text()
    subprocess.run(["bash", "-n", str(path)], check=True)
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, re.M))
    assert int(directives["nodes"]) >= 2 and "gpus-per-node" in directives
    assert "ray\" start --head" in text and "--address=\"$HEAD_IP:$PORT\"" in text
    driver = next(line for line in text.splitlines() if "-m ray_jobs run" in line)
    command = driver.replace('"$PY/python"', "python").split(" || ")[0]
    command = command.replace('"$SPEC"', "paper-cifar10").replace('"$HEAD_IP:$PORT"', "h:1")
    _check_ray_jobs_command(command.replace('"$STORE"', "/tmp/store"))
