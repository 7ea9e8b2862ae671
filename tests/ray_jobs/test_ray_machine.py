"""Issue 12: every run records the machine it was measured on (status.json ``machine``), and the report
names the machines of each spec's done runs. In-process: no Ray cluster is started."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from deep.precision import cpu_model
from figures.machines import Machine, machine_of, measured_on
from figures.report import write_report
from ray_jobs.runner import execute_run
from ray_jobs.spec import expand, load_spec
from ray_jobs.store import Store

TOY = "tests.ray_jobs.toy_kinds"
AVX2 = {"cpu": "AMD EPYC 7B13", "cpu_capability": "AVX2", "gpu": None, "torch": "2.14.1"}
AMX = {"cpu": "Intel Xeon 8480+", "cpu_capability": "AVX512", "gpu": None, "torch": "2.14.1"}
H200 = {**AMX, "gpu": "NVIDIA H200"}


def expected_machine() -> dict:
    gpu = torch.cuda.get_device_name(torch.cuda.current_device()) if torch.cuda.is_initialized() else None
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "gpu": gpu,
            "torch": torch.__version__}


def test_a_run_records_the_machine_it_ran_on(tmp_path: Path):
    store = Store.create(tmp_path / "store")
    run = {"hash": "m1", "kind": "square", "config": {"x": 3, "counter": str(tmp_path / "c.txt")}, "inputs": {}}
    store.write_config("m1", {"kind": "square", "config": run["config"], "inputs": {}}, {})
    assert execute_run(run, str(store.root), None, [TOY]) == {"state": "done"}
    status = store.status("m1")
    assert status["machine"] == expected_machine() and status["machine"]["cpu"]
    assert store.metrics("m1") == {"value": 9}


@pytest.mark.skipif(not (importlib.util.find_spec("moto") and importlib.util.find_spec("s3fs")),
                    reason="needs moto and s3fs")
def test_an_object_store_run_records_the_machine_through_the_driver(uri, tmp_path, monkeypatch):
    from _objstore_s3 import on_node, prepared

    store, runs = prepared(uri, tmp_path, xs=(1,))
    train = runs[("train", 1)]
    assert on_node(monkeypatch, tmp_path / "node-a", train, store)["state"] == "done"
    assert store.status(train.hash)["machine"] == expected_machine()


def test_machine_of_reads_the_field_and_tolerates_old_or_malformed_statuses():
    assert machine_of({"machine": AVX2}) == Machine("AMD EPYC 7B13", "AVX2", None)
    assert machine_of({"machine": H200}) == Machine("Intel Xeon 8480+", "AVX512", "NVIDIA H200")
    assert machine_of({"state": "done", "host": "h", "cpu_seconds": 1.0}) is None  # written before the field
    assert machine_of({"machine": "AMD"}) is None and machine_of({"machine": {"cpu": 3}}) is None


def test_measured_on_counts_runs_per_machine_most_first_then_unknown():
    statuses = [{"machine": AMX}, {"machine": AVX2}, {"machine": AVX2}, {"machine": H200}, {}, {"machine": None}]
    assert measured_on(statuses) == ("Measured on: AMD EPYC 7B13 (AVX2) × 2 runs, Intel Xeon 8480+ (AVX512) × 1 run, "
                                     "Intel Xeon 8480+ (AVX512) + GPU NVIDIA H200 × 1 run, unknown × 2 runs")
    assert measured_on([{}]) == "Measured on: unknown × 1 run"
    assert measured_on([]) is None


SPEC = """
[spec]
name = "machines"
description = "three theory runs"
[stages.a]
kind = "theory"
[stages.a.config]
module = "theory.gaussian"
[stages.b]
kind = "theory"
[stages.b.config]
module = "theory.tradeoff"
[stages.c]
kind = "theory"
[stages.c.config]
module = "theory.other"
"""


def write_store(tmp_path: Path, machines: list[dict | None]) -> tuple[Path, Store]:
    spec_file = tmp_path / "machines.toml"
    spec_file.write_text(SPEC)
    runs = expand(load_spec(spec_file))
    store = Store.create(tmp_path / "store")
    for run, machine in zip(runs, machines):
        store.finish(run.hash, {"clean": 0.5})
        if machine is not None:
            store.update_status(run.hash, machine=machine)
    return spec_file, store


def test_the_report_names_the_machines_of_the_done_runs_under_the_runs_line(tmp_path: Path):
    spec_file, store = write_store(tmp_path, [AVX2, AVX2, None])
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert ("Runs: done 3, failed 0, blocked 0, running 0, pending 0\n\n"
            "Measured on: AMD EPYC 7B13 (AVX2) × 2 runs, unknown × 1 run\n") in text


def test_the_report_has_no_measured_line_without_done_runs(tmp_path: Path):
    spec_file, store = write_store(tmp_path, [])
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert "Runs: done 0, failed 0, blocked 0, running 0, pending 3" in text and "Measured on" not in text
