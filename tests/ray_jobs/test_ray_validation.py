"""Spec validation before anything runs: kind schemas, grid size limit, CLI errors, results export."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ray_jobs import cli
from ray_jobs.schema import validate_spec
from ray_jobs.spec import SpecError, check_grid_size, expand, load_spec, parse_spec
from ray_jobs.store import Store

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "ray_jobs" / "specs").glob("*.toml"))
TRAIN = {"dataset": "mnist", "model": "mlp", "method": "standard", "epochs": 1, "lr": 0.05}
EVAL = {"eps": 0.1, "norm": "linf", "suite": ["fgsm"]}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_spec_validates(path):
    validate_spec(load_spec(path))


def two_stage(train: dict, ev: dict, ev_kind: str = "eval") -> dict:
    return {"stages": {"train": {"kind": "train", "config": train},
                       "ev": {"kind": ev_kind, "needs": {"model": "train"}, "config": ev}}}


BAD = [  # (train config, eval config, stage, expected fragment)
    (TRAIN, {**EVAL, "epsilon": 0.1}, "ev", "unknown key 'epsilon'; did you mean 'eps'?"),
    ({**TRAIN, "learning_rate": 0.1}, EVAL, "train", "learning_rate"),
    (TRAIN, {**EVAL, "norm": "l3"}, "ev", "key 'norm' = 'l3': expected one of ('linf', 'l2')"),
    (TRAIN, {**EVAL, "suite": ["pgd-x"]}, "ev", "key 'suite'"),
    (TRAIN, {**EVAL, "eps": -1}, "ev", "key 'eps' = -1: expected a finite number >= 0"),
    (TRAIN, {**EVAL, "eps": "8/0"}, "ev", "key 'eps' = '8/0'"),
    ({**TRAIN, "epochs": 0}, EVAL, "train", "epochs"),
    ({**TRAIN, "model": "resnet-9000"}, EVAL, "train", "model"),
    (TRAIN, {**EVAL, "dataset": "mnsit"}, "ev", "key 'dataset' = 'mnsit': expected a known dataset"),
    (TRAIN, {**EVAL, "batch_size": "256"}, "ev", "key 'batch_size' = '256': expected an integer in [1, 1000000]"),
    (TRAIN, {**EVAL, "first_n": 0}, "ev", "key 'first_n' = 0"),
    (TRAIN, {**EVAL, "offset": -5}, "ev", "key 'offset' = -5"),
    (TRAIN, {"suite": ["fgsm"], "norm": "linf"}, "ev", "missing required key 'eps'"),
    ({**TRAIN, "method": "pgdd"}, EVAL, "train", "method"),
]


@pytest.mark.parametrize("train,ev,stage,fragment", BAD, ids=[b[3][:30] for b in BAD])
def test_misspelled_configs_are_refused_naming_file_stage_and_key(tmp_path, train, ev, stage, fragment, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(toml(two_stage(train, ev)))
    assert cli.main(["run", str(path), "--dry-run", "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and f"stage {stage!r}" in err and fragment in err, err
    assert not (tmp_path / "s").exists()  # nothing was created


def toml(data: dict) -> str:
    """A tiny TOML writer for the stage tables of these tests (scalars, lists, inline tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)
    lines = []
    for name, stage in data["stages"].items():
        lines.append(f"[stages.{name}]")
        lines += [f"{k} = {value(v)}" for k, v in stage.items() if k not in ("config", "grid")]
        for table in ("config", "grid"):
            if table in stage:
                lines.append(f"[stages.{name}.{table}]")
                lines += [f"{k} = {value(v)}" for k, v in stage[table].items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind,config,fragment", [
    ("theory", {"function": "theory_x:f"}, "key 'function' = 'theory_x:f'"),
    ("theory", {"function": "os:getcwd"}, "'theory.module:function' with module one of"),
    ("construct", {"construct": "random", "dataset": "mnist"}, "key 'construct' = 'random'"),
    ("construct", {"construct": "det"}, "missing required key 'dataset'"),
    ("nope", {}, "unknown kind 'nope'"),
])
def test_other_kinds_and_unknown_kinds(kind, config, fragment):
    spec = parse_spec({"stages": {"s": {"kind": kind, "config": config}}})
    with pytest.raises(SpecError, match="stage 's'") as err:
        validate_spec(spec)
    assert fragment in str(err.value)


def test_theory_kind_runs_only_real_theory_modules(tmp_path):
    from ray_jobs.kinds import RunContext, theory_kind, theory_modules

    assert "theory.cli" in theory_modules() and all(m == "theory" or m.startswith("theory.") for m in theory_modules())
    ctx = RunContext(store=Store(tmp_path), run_hash="h", data_root=None, attempt=1)
    with pytest.raises(ValueError, match="'theory.module:function' with module one of"):
        theory_kind({"function": "theory_x:f"}, {}, tmp_path, ctx)


def test_eps_fraction_strings_are_accepted_and_hashed_as_written():
    a = parse_spec(two_stage(TRAIN, {**EVAL, "eps": "8/255"}))
    b = parse_spec(two_stage(TRAIN, {**EVAL, "eps": 8 / 255}))
    validate_spec(a)
    validate_spec(b)
    assert expand(a)[1].config["eps"] == "8/255" and expand(a)[1].hash != expand(b)[1].hash
    assert expand(a)[0].hash == expand(b)[0].hash


def test_grid_size_is_checked_before_expanding():
    axes = {f"a{i}": list(range(10)) for i in range(7)}  # 10^7 runs: never materialised
    spec = parse_spec({"stages": {"big": {"kind": "probe", "grid": axes}}})
    with pytest.raises(SpecError, match=r"the grid has 10,000,000 runs \(stage 'big': 10,000,000\), above the "
                                        r"limit of 10,000; .* --max-runs"):
        expand(spec)
    small = parse_spec({"stages": {"s": {"kind": "probe", "grid": {"i": [1, 2, 3]}}}})
    assert check_grid_size(small, 3) == 3
    with pytest.raises(SpecError, match="3 runs"):
        expand(small, max_runs=2)


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ray_jobs", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,fragment", [
    (["run", "smoke", "--num-cpus", "-1"], "argument --num-cpus: must be an integer >= 1, got '-1'"),
    (["run", "smoke", "--max-runs", "0", "--dry-run"], "argument --max-runs: must be an integer >= 1"),
    (["run", "smoke", "--resource-timeout", "nan"], "must be a positive number of seconds"),
    (["run", "smoke", "--store", "FILE"], "is an existing file"),
    (["status", "smoke", "--store", "MISSING"], "does not exist"),
    (["results", "smoke", "--store", "MISSING", "--csv"], "does not exist"),
    (["run", "smoke", "--max-runs", "1", "--dry-run"], "the grid has 2 runs"),
])
def test_cli_user_errors_are_one_line_and_exit_2(tmp_path, args, fragment, capsys):
    from deep.cli.errors import run_cli as error_convention  # what python -m ray_jobs runs main under

    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / a) if a in ("FILE", "MISSING") else a for a in args]
    assert error_convention(cli.main, args, prog="python -m ray_jobs") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "MISSING").exists()


def test_entry_point_bad_flag_is_one_line_exit_2():
    proc = run_cli("run", "smoke", "--num-cpus", "-1")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "python -m ray_jobs run: error: argument --num-cpus: must be an integer >= 1, got '-1' "
        "(see python -m ray_jobs run --help)"]


def test_ctrl_c_hint_names_the_store_and_the_resume_command(tmp_path):
    hint = cli.interrupted_message(["run", "laptop", "--store", str(tmp_path / "s")])
    assert hint == (f"finished runs are kept in {tmp_path / 's'}; rerun `python -m ray_jobs run laptop --store "
                    f"{tmp_path / 's'}` to run the rest (interrupted runs resume)")
    assert cli.interrupted_message(["status", "laptop"]) == "nothing was changed"


def test_results_csv_and_json_one_row_per_run(tmp_path, capsys):
    spec_file = tmp_path / "g.toml"
    spec_file.write_text(toml({"stages": {"p": {"kind": "probe", "grid": {"i": [1, 2]}}}}))
    spec = load_spec(spec_file)
    store = Store.create(tmp_path / "store")
    done, pending = expand(spec)
    store.finish(done.hash, {"node_id": "n", "gpu_ids": [], "acc": {"clean": 0.5}})
    assert cli.main(["results", str(spec_file), "--store", str(store.root), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == [
        {"stage": "p", "kind": "probe", "hash": done.hash, "state": "done", "error": None, "config": {"i": 1},
         "metrics": {"node_id": "n", "gpu_ids": [], "acc": {"clean": 0.5}}},
        {"stage": "p", "kind": "probe", "hash": pending.hash, "state": "pending", "error": None,
         "config": {"i": 2}, "metrics": {}}]
    assert cli.main(["results", str(spec_file), "--store", str(store.root), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows == [
        {"stage": "p", "kind": "probe", "hash": done.hash, "state": "done", "error": "", "config/i": "1",
         "node_id": "n", "gpu_ids": "[]", "acc.clean": "0.5"},
        {"stage": "p", "kind": "probe", "hash": pending.hash, "state": "pending", "error": "", "config/i": "2",
         "node_id": "", "gpu_ids": "", "acc.clean": ""}]
