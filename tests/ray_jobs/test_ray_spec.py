"""Spec parsing, grid expansion, hashing, the store and the dry run (no Ray started)."""
from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from ray_jobs import cli
from ray_jobs.kinds import EVAL_KEYS, KINDS
from ray_jobs.spec import SpecError, expand, load_spec, parse_spec, strip_tags
from ray_jobs.store import Store

SPECS = sorted((Path(__file__).resolve().parents[2] / "ray_jobs" / "specs").glob("*.toml"))


def spec_of(stages: dict) -> dict:
    return {"spec": {"name": "t"}, "stages": stages}


def test_grid_is_the_cartesian_product():
    axes = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5, 1.5]}
    runs = expand(parse_spec(spec_of({"s": {"kind": "k", "config": {"base": 7}, "grid": axes}})))
    got = [(r.config["a"], r.config["b"], r.config["c"]) for r in runs]
    assert got == list(itertools.product(*axes.values()))
    assert all(r.config["base"] == 7 for r in runs)
    assert len({r.hash for r in runs}) == len(runs)


def test_zipped_axis_moves_together():
    grid = {"seed": [0, 1], "data": [{"dataset": "mnist", "eps": 2.0}, {"dataset": "cifar", "eps": 1.5}]}
    runs = expand(parse_spec(spec_of({"s": {"kind": "k", "grid": grid}})))
    pairs = {(r.config["dataset"], r.config["eps"], r.config["seed"]) for r in runs}
    assert pairs == {("mnist", 2.0, 0), ("mnist", 2.0, 1), ("cifar", 1.5, 0), ("cifar", 1.5, 1)}
    assert set(runs[0].axes) == {"seed", "dataset", "eps"}


def test_hash_is_sha256_of_canonical_identity_and_ignores_key_order():
    a = expand(parse_spec(spec_of({"s": {"kind": "k", "config": {"x": 1, "y": [1, 2]}}})))[0]
    b = expand(parse_spec(spec_of({"s": {"kind": "k", "config": {"y": [1, 2], "x": 1}}})))[0]
    c = expand(parse_spec(spec_of({"s": {"kind": "k", "config": {"x": 2, "y": [1, 2]}}})))[0]
    text = json.dumps({"config": {"x": 1, "y": [1, 2]}, "inputs": {}, "kind": "k"}, sort_keys=True, separators=(",", ":"))
    assert a.hash == b.hash == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert c.hash != a.hash


def test_needs_match_on_shared_axes_and_input_hash_changes_identity():
    stages = {
        "train": {"kind": "k", "grid": {"dataset": ["m", "c"], "seed": [0, 1]}},
        "eval": {"kind": "e", "needs": {"model": "train"}, "grid": {"dataset": ["m", "c"], "seed": [0, 1]}},
        "pick": {"kind": "e", "needs": {"model": {"stage": "train", "on": ["dataset", "seed"]}},
                 "grid": {"dataset": ["c"], "seed": [1], "eps": [0.25]}},
    }
    runs = expand(parse_spec(spec_of(stages)))
    train = {(r.config["dataset"], r.config["seed"]): r.hash for r in runs if r.stage == "train"}
    for r in runs:
        if r.stage != "train":
            assert r.inputs == {"model": train[(r.config["dataset"], r.config["seed"])]}
    # same eval config, different upstream -> different identity
    ev = [r for r in runs if r.stage == "eval"]
    assert len({r.hash for r in ev}) == 4


def test_tags_match_untagged_axes_and_are_stripped():
    stages = {
        "make": {"kind": "k", "grid": {"construct": ["rand", "det"]}},
        "use": {"kind": "t", "needs": {"dataset": "make"}, "grid": {"_construct": ["det"]}, "config": {"lr": 0.1}},
    }
    runs = expand(parse_spec(spec_of(stages)))
    make = {r.config["construct"]: r.hash for r in runs if r.stage == "make"}
    use = next(r for r in runs if r.stage == "use")
    assert use.inputs == {"dataset": make["det"]}
    assert strip_tags(use.config) == {"lr": 0.1}


@pytest.mark.parametrize("stages, fragment", [
    ({"s": {"kind": "k", "gird": {}}}, "stage 's': unknown key(s) ['gird']"),
    ({"s": {"config": {}}}, "stage 's': missing 'kind'"),
    ({"s": {"kind": "k", "grid": {"a": []}}}, "grid axis 'a' must be a non-empty list"),
    ({"s": {"kind": "k", "grid": {"a": 3}}}, "grid axis 'a' must be a non-empty list"),
    ({"s": {"kind": "k", "needs": {"m": "later"}}, "later": {"kind": "k"}}, "needs.m = 'later' is not an earlier stage"),
    ({"s": {"kind": "k", "resources": {"gpus": 1}}}, "stage 's': 'resources' must be a table"),
    ({"s": {"kind": "k", "resources": {"num_cpus": -1}}}, "resources.num_cpus must be a number >= 0"),
    ({"s": {"kind": "k", "resources": {"num_gpus": "one"}}}, "resources.num_gpus must be a number >= 0, got 'one'"),
    ({"s": {"kind": "k", "max_retries": 99}}, "max_retries must be an int in [0, 10]"),
    ({"s": {"kind": "k", "grid": {"a": [1, 2]}}, "u": {"kind": "k", "needs": {"m": "s"}}}, "needs 's' matched 2 runs"),
    ({"s": {"kind": "k", "grid": {"a": [1, 2]}}, "u": {"kind": "k", "needs": {"m": "s"}, "grid": {"a": [3]}}},
     "needs 's' matched 0 runs"),
])
def test_validation_errors_name_stage_and_key(stages, fragment):
    with pytest.raises(SpecError) as err:
        expand(parse_spec(spec_of(stages)))
    assert fragment in str(err.value)


def test_load_spec_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="spec file not found"):
        load_spec(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[stages.x\nkind=")
    with pytest.raises(SpecError, match="invalid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="unknown top-level"):
        parse_spec({"stage": {}})


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_expand_with_known_kinds(path):
    import importlib

    spec = load_spec(path)
    for module in spec.kind_modules:  # the modules that register the spec's extra kinds
        importlib.import_module(module)
    runs = expand(spec)
    assert runs and spec.name == path.stem
    for run in runs:
        assert run.kind in KINDS, run.label()
        if run.kind == "eval":
            assert set(strip_tags(run.config)) <= EVAL_KEYS, run.label()
            assert ("model" in run.inputs) != ("external_model" in run.config), run.label()
        for h in run.inputs.values():
            assert any(r.hash == h for r in runs)


def test_store_done_needs_metrics_and_writes_are_atomic(tmp_path):
    store = Store(tmp_path)
    store.update_status("abc", state="done", attempts=1)
    assert store.state("abc") == "pending" and not store.is_done("abc")  # no metrics: not done
    store.finish("abc", {"acc": 0.5})
    assert store.is_done("abc") and store.metrics("abc") == {"acc": 0.5}
    (store.run_dir("abc") / "metrics.json").write_text('{"acc": 0.')  # a torn write never reads as done
    assert not store.is_done("abc")
    assert not [p for p in store.run_dir("abc").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="unknown run state"):
        store.update_status("abc", state="weird")
    with pytest.raises(ValueError, match="invalid run hash"):
        store.run_dir("../x")


def test_dry_run_lists_grid_and_states_without_ray(tmp_path, capsys):
    import ray

    spec_file = tmp_path / "s.toml"
    # kind_modules: validation refuses kinds nobody registered
    spec_file.write_text('[spec]\nkind_modules = ["tests.ray_jobs.toy_kinds"]\n[stages.a]\nkind = "square"\n[stages.a.grid]\nx = [1, 2]\n'
                         '[stages.b]\nkind = "add_inputs"\nneeds = { src = "a" }\n[stages.b.grid]\nx = [1, 2]\n')
    runs = expand(load_spec(spec_file))
    store = Store(tmp_path / "store")
    store.finish(runs[0].hash, {"value": 1})
    store.update_status(runs[1].hash, state="failed", error="ValueError: boom\nmore")
    assert cli.main(["run", str(spec_file), "--dry-run", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not ray.is_initialized()
    rows = {line.split()[1]: line.split()[0] for line in out[1:-1]}
    assert rows == {runs[0].hash: "done", runs[1].hash: "failed", runs[2].hash: "pending", runs[3].hash: "pending"}
    assert "[ValueError: boom]" in out[2] and "<- src=" + runs[0].hash in out[3]
    assert out[-1] == "totals: done 1, failed 1, blocked 0, running 0, pending 2"
    assert cli.main(["status", str(spec_file), "--store", str(store.root)]) == 0
    assert cli.main(["run", "no-such-spec", "--dry-run"]) == 2
    assert "neither a file nor a spec name" in capsys.readouterr().err


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_configs_are_accepted_by_deep(path, tmp_path):
    """Every train config is a valid Recipe, every construct config binds to construct_dataset,
    every eval suite parses: a typo in a spec fails here, not 20 minutes into the main job."""
    import inspect

    try:
        from deep.construct import construct_dataset
        from deep.evaluate import parse_attack
        from deep.train import Recipe
    except ImportError as err:
        pytest.skip(f"deep/ not complete yet: {err}")
    for run in expand(load_spec(path)):
        config = strip_tags(run.config)
        if run.kind == "train":
            if "dataset" in run.inputs:  # replaced by the constructed dataset's folder at run time
                config["dataset"] = str(tmp_path)
            Recipe.from_dict(config)
        elif run.kind == "construct":
            options = {k: v for k, v in config.items() if k not in ("construct", "dataset", "min_source_acc")}
            assert 0.0 <= config.get("min_source_acc", 0.0) < 1.0
            inspect.signature(construct_dataset).bind(config["construct"], source_run="x", dataset=config["dataset"],
                                                      out_dir="y", data_root=None, progress=False, **options)
            assert config["construct"] in ("robust", "nonrobust", "rand", "det")
        elif run.kind == "eval":
            # eps 0 only for a clean-accuracy-only evaluation (an empty suite)
            assert config["norm"] in ("linf", "l2") and (config["eps"] > 0 or config["suite"] == [])
            for name in config["suite"]:
                parse_attack(name, eps=config["eps"])
        elif run.kind == "transfer":
            from ray_jobs.kinds import TRANSFER_KEYS

            assert set(config) <= TRANSFER_KEYS and config["norm"] in ("linf", "l2") and config["eps"] > 0
            assert "target" in run.inputs and ("source" in run.inputs) != ("source_model" in config)
            parse_attack(config.get("attack", "pgd-20"), eps=config["eps"])


def test_theory_kind_calls_a_theory_function_and_rejects_others(tmp_path):
    from ray_jobs.kinds import RunContext, theory_kind

    ctx = RunContext(store=Store(tmp_path), run_hash="h", data_root=None, attempt=1)
    with pytest.raises(ValueError, match="must be 'theory.module:function'"):
        theory_kind({"function": "os:getcwd"}, {}, tmp_path, ctx)
    with pytest.raises(ValueError, match="has no function 'nope'"):
        theory_kind({"function": "theory.cli:nope"}, {}, tmp_path, ctx)
    try:
        from theory.cli import tradeoff_report
    except ImportError as err:
        pytest.skip(f"theory/ not complete yet: {err}")
    kwargs = {"p": 0.95, "eta": None, "d": 100}
    assert theory_kind({"function": "theory.cli:tradeoff_report", "kwargs": kwargs}, {}, tmp_path, ctx) \
        == tradeoff_report(**kwargs)


def test_progress_line_without_terminal_prints_on_change(capsys):
    from ray_jobs.progress import Display

    display = Display(total=5, initial=1, name="g", enabled=True)
    display.update(1, 0, [("train[mnist]", {"epoch": 2, "epochs": 3})], queued=2)
    display.update(1, 0, [("train[mnist]", {"epoch": 2, "epochs": 3})], queued=2)  # unchanged: silent
    display.update(2, 1, [], queued=0)
    display.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["[g] done 1/5, failed 0, running 1, queued 2: train[mnist] epoch 2/3",
                     "[g] done 2/5, failed 1, running 0, queued 0"]


def test_command_line_key_names_in_a_spec_name_the_same_runs():
    """`n`, `attacks` and (construct) `alpha` are the CLI's names; a spec may use them or the recorded
    keys first_n / suite / step, with the same hashes, so stores written either way resume."""
    def spec(eval_cfg, construct_grid):
        return {"stages": {
            "t": {"kind": "train", "config": {"dataset": "mnist", "model": "mlp"}},
            "c": {"kind": "construct", "needs": {"source": "t"}, "config": {"construct": "rand", "eps": 1.0},
                  "grid": {"setting": construct_grid}},
            "e": {"kind": "eval", "needs": {"model": "t"}, "config": eval_cfg}}}
    recorded = expand(parse_spec(spec({"first_n": 100, "suite": ["fgsm"], "eps": 0.3},
                                      [{"step": 0.1, "steps": 5}])))
    cli_names = expand(parse_spec(spec({"n": 100, "attacks": ["fgsm"], "eps": 0.3},
                                       [{"alpha": 0.1, "steps": 5}])))
    assert [r.hash for r in recorded] == [r.hash for r in cli_names]
    assert cli_names[-1].config["first_n"] == 100 and "n" not in cli_names[-1].config
    with pytest.raises(SpecError, match="'attacks' and 'suite' name the same setting"):
        parse_spec(spec({"attacks": ["fgsm"], "suite": ["fgsm"], "eps": 0.3}, [{"step": 0.1}]))
