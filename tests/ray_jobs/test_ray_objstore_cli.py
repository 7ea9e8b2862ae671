"""The object store from the command line, against a real S3-compatible server (moto, the ``s3_server``
fixture of tests/ray_jobs/conftest.py): unreachable endpoints, missing buckets and credentials, local
paths as stores, and run/status/results/report on a bucket."""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from _objstore_s3 import MOD, count  # noqa: E402
from ray_jobs.s3local import FAKE_CREDENTIALS as FAKE_ENV, free_port  # noqa: E402
from ray_jobs import cli  # noqa: E402
from ray_jobs.nodecache import SCRATCH_ENV  # noqa: E402
from ray_jobs.objstore import ObjectStore, StoreUnavailableError, open_store  # noqa: E402


def test_unreachable_endpoint_missing_bucket_and_missing_credentials_fail_first(uri, tmp_path, monkeypatch, capsys):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(f'[spec]\nkind_modules = ["{MOD}"]\n[stages.t]\nkind = "toy_train"\n'
                         f'[stages.t.config]\ncounter = "{tmp_path / "c.txt"}"\n[stages.t.grid]\nx = [1]\n')
    with pytest.raises(StoreUnavailableError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x")
    with pytest.raises(FileNotFoundError, match="not a result store"):
        open_store(uri, "existing")  # the bucket exists, but `run` never wrote this prefix
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    t0 = time.time()
    assert cli.main(["run", str(spec_file), "--store", uri, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the bucket" in err and uri in err, err
    assert time.time() - t0 < 30
    assert not (tmp_path / "c.txt").exists()  # nothing ran
    monkeypatch.undo()
    for key in FAKE_ENV:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert cli.main(["status", str(spec_file), "--store", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "credentials" in err.lower(), err


def test_local_paths_and_file_uris_are_local_stores(tmp_path):
    from ray_jobs.store import Store

    assert isinstance(open_store(str(tmp_path / "a")), Store)
    store = open_store(f"file://{tmp_path / 'b'}")
    assert isinstance(store, Store) and store.root == tmp_path / "b" and (tmp_path / "b" / "runs").is_dir()
    with pytest.raises(ValueError, match="PROTOCOL://bucket"):
        ObjectStore("s3://")
    with pytest.raises(StoreUnavailableError, match="store nosuchproto://b/x: no filesystem for 'nosuchproto'"):
        open_store("nosuchproto://b/x")


@pytest.mark.ray
@pytest.mark.slow  # ~30 s on a loaded 2-core machine (Ray start)
def test_cli_run_status_results_and_report_on_the_bucket(uri, tmp_path, monkeypatch, capsys):
    """`python -m ray_jobs run/status/results --store s3://...` with the embedded Ray, then
    `python -m figures report --store s3://...`."""
    import ray

    from figures.report import main as report_main

    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))  # before Ray starts: its workers inherit it
    counter = tmp_path / "counter.txt"
    spec_file = tmp_path / "chain.toml"
    spec_file.write_text(
        f'[spec]\nname = "objchain"\nkind_modules = ["{MOD}"]\n'
        f'[stages.train]\nkind = "toy_train"\n[stages.train.config]\ncounter = "{counter}"\n'
        f'[stages.train.grid]\nx = [1, 2]\n'
        f'[stages.eval]\nkind = "toy_eval"\nneeds = {{ model = "train" }}\n[stages.eval.config]\n'
        f'counter = "{counter}"\noffset = 100\n[stages.eval.grid]\nx = [1, 2]\n')
    assert cli.main(["run", str(spec_file), "--dry-run", "--store", uri]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "totals: done 0, failed 0, blocked 0, running 0, pending 4"
    try:
        assert cli.main(["run", str(spec_file), "--store", uri, "--num-cpus", "2", "--no-progress"]) == 0
    finally:
        ray.shutdown()
    assert count(counter) == Counter({"train 1": 1, "train 2": 1, "eval 1": 1, "eval 2": 1})
    capsys.readouterr()
    assert cli.main(["status", str(spec_file), "--store", uri]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"store {uri}") and out[-1] == "totals: done 4, failed 0, blocked 0, running 0, pending 0"
    assert cli.main(["results", str(spec_file), "--store", uri, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["metrics"].get("value", r["metrics"].get("w")) for r in rows) == [3, 6, 103, 106]
    assert report_main(["--store", uri, "--out", str(tmp_path / "report"), "--spec", str(spec_file)]) == 0
    report = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"--store {uri}" in report and "Total missing runs: 0." in report
    assert "| eval | x=2 | done | value 106 |" in report and "| train | x=1 | done |" in report
