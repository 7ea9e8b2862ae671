"""Shrinking a spec without editing it: ``--set STAGE.KEY=VALUE`` and ``--scale NAME`` (ray_jobs/overrides.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ray_jobs import cli
from ray_jobs.overrides import OverrideError, parse_set, parse_value
from ray_jobs.schema import validate_spec
from ray_jobs.spec import SpecError, expand, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "ray_jobs" / "specs"
PAPER = ["paper-cifar10", "goodfellow-paper", "tsipras-paper", "mart-paper"]

TWO = {"stages": {
    "train": {"kind": "train", "config": {"model": "mlp", "method": "standard", "epochs": 5, "lr": 0.05},
              "grid": {"row": [{"dataset": "mnist", "first_n": 1000}, {"dataset": "cifar10", "first_n": 2000}],
                       "seed": [0, 1]}},
    "ev": {"kind": "eval", "needs": {"model": "train"}, "config": {"eps": 0.1, "norm": "linf", "suite": ["pgd-20"]},
           "grid": {"data": [{"dataset": "mnist"}, {"dataset": "cifar10"}], "seed": [0, 1]}},
}}


def graph(spec) -> list[tuple]:
    """What a miniature must keep: stages, kinds, inputs, match axes, report tags."""
    return [(s.name, s.kind, s.needs, s.match_on, s.report) for s in spec.stages]


@pytest.mark.parametrize("name", PAPER)
def test_paper_smoke_scale_validates_and_keeps_the_stage_graph(name):
    full = load_spec(SPECS / f"{name}.toml")
    mini = load_spec(SPECS / f"{name}.toml", scale="smoke")
    validate_spec(mini)
    assert graph(mini) == graph(full)
    full_runs, mini_runs = expand(full), expand(mini)
    assert [(r.stage, list(r.axes)) for r in mini_runs] == [(r.stage, list(r.axes)) for r in full_runs]
    assert not {r.hash for r in mini_runs} & {r.hash for r in full_runs}  # never one run folder
    assert all(r.num_gpus == 0 for r in mini_runs)  # runs on a GPU-less machine without --allow-cpu
    trains = [r for r in mini_runs if "epochs" in r.config]
    assert trains and all(r.config["epochs"] == 1 for r in trains)
    assert "[changed by scale smoke]" in mini.description


def test_a_scale_table_leaves_the_full_specs_hashes_alone(tmp_path):
    text = (SPECS / "goodfellow-paper.toml").read_text()
    plain = tmp_path / "plain.toml"
    plain.write_text(text[: text.index("\n[scale.smoke]")])
    assert [r.hash for r in expand(load_spec(SPECS / "goodfellow-paper.toml"))] == \
           [r.hash for r in expand(load_spec(plain))]


def test_values_are_toml_else_text():
    assert parse_value("1") == 1 and parse_value("0.5") == 0.5 and parse_value("[1, 2]") == [1, 2]
    assert parse_value("true") is True and parse_value('"a b"') == "a b"
    assert parse_value("cifar10-subset") == "cifar10-subset"
    o = parse_set("*.dataset[cifar10]=cifar10-subset")
    assert (o.stage, o.key, o.when, o.value) == ("*", "dataset", "cifar10", "cifar10-subset")


@pytest.mark.parametrize("text", ["epochs=1", "train.epochs", ".epochs=1", "train.1bad=1"])
def test_malformed_set_is_refused(text):
    with pytest.raises(OverrideError):
        parse_set(text)


def test_set_reaches_config_and_zipped_rows_and_changes_hashes():
    base = expand(parse_spec(TWO))
    runs = expand(parse_spec(TWO, overrides=(parse_set("*.epochs=1"), parse_set("train.first_n=300"))))
    trains = [r for r in runs if r.stage == "train"]
    assert [r.config["first_n"] for r in trains] == [300, 300, 300, 300]
    assert all(r.config["epochs"] == 1 for r in trains)
    assert [(r.stage, list(r.axes)) for r in runs] == [(r.stage, list(r.axes)) for r in base]
    assert all(a.hash != b.hash for a, b in zip(runs, base))  # eval runs change through their inputs


def test_key_with_old_value_replaces_only_that_value():
    runs = expand(parse_spec(TWO, overrides=(parse_set("*.dataset[cifar10]=cifar10-subset"),)))
    assert [r.config["dataset"] for r in runs if r.stage == "train"] == ["mnist", "mnist", "cifar10-subset",
                                                                        "cifar10-subset"]


def test_resources_are_merged_and_leave_hashes():
    spec = parse_spec(TWO, overrides=(parse_set("*.resources={ num_gpus = 0.5 }"),))
    assert [(s.num_cpus, s.num_gpus) for s in spec.stages] == [(1.0, 0.5), (1.0, 0.5)]
    assert [r.hash for r in expand(spec)] == [r.hash for r in expand(parse_spec(TWO))]


@pytest.mark.parametrize("text, fragment", [
    ("nostage.epochs=1", "no stage 'nostage'"),
    ("*.nokey=1", "no stage has key 'nokey'"),
    ("train.seed=3", "'seed' is a grid axis"),
    ("*.dataset[fashion]=mnist", "equal to 'fashion'"),
])
def test_overrides_that_name_nothing_fail(text, fragment):
    with pytest.raises(SpecError, match=fragment.replace("[", r"\[")):
        parse_spec(TWO, overrides=(parse_set(text),))


def test_a_typo_fails_schema_validation_before_anything_runs(tmp_path, capsys):
    args = ["run", "laptop", "--dry-run", "--store", str(tmp_path / "s"), "--set", "train_std.learning_rate=0.1"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "unknown key 'learning_rate'" in err and "train_std" in err


def test_unknown_scale_and_bad_scale_table_fail(tmp_path, capsys):
    assert cli.main(["run", "mart", "--dry-run", "--store", str(tmp_path / "s"), "--scale", "smoke"]) == 2
    assert "no [scale.smoke] table; scales: none" in capsys.readouterr().err
    with pytest.raises(SpecError, match="no stage 'trian'"):  # a typo in an unused scale fails the full spec too
        parse_spec({**TWO, "scale": {"smoke": {"trian": {"epochs": 1}}}})


def test_dry_run_of_a_scale_prints_the_miniature(tmp_path, capsys):
    assert cli.main(["run", "goodfellow-paper", "--scale", "smoke", "--dry-run", "--store", str(tmp_path / "s")]) == 0
    assert "pending 15" in capsys.readouterr().out


# -- issue 10's audit of the paper specs --------------------------------------------------------------
def runs_of(name: str, stage: str) -> list:
    return [r for r in expand(load_spec(SPECS / f"{name}.toml")) if r.stage == stage]


@pytest.mark.parametrize("name", PAPER)
def test_every_paper_spec_states_where_its_settings_come_from(name):
    header = (SPECS / f"{name}.toml").read_text()
    for line in ("# From the paper:", "# From the official code:", "# Our choice:"):
        assert line in header


def test_audited_settings():
    maxout = [r.config for r in runs_of("goodfellow-paper", "train") if r.config["model"] == "maxout"]
    assert [c["model_options"] for c in maxout] == [{"dropout": 0.5}]
    assert {c["model_options"]["hidden"][0] for c in map(lambda r: r.config, runs_of("goodfellow-paper",
                                                                                      "train_robust"))} == {1600}
    assert [r.config["random_start"] for r in runs_of("paper-cifar10", "train_adv")] == [False]
    mnist = [r.config for r in runs_of("mart-paper", "train_table") if r.config["dataset"] == "mnist"]
    assert all(c["schedule"] == "step" and c["milestones"] == [55] for c in mnist)
    cifar_evals = [r.config for r in expand(load_spec(SPECS / "mart-paper.toml"))
                   if r.kind == "eval" and r.config.get("dataset") == "cifar10"]
    assert cifar_evals and all(c["alpha"] == 0.003 for c in cifar_evals)
    samples = runs_of("tsipras-paper", "train_samples_cifar10")
    assert all(r.config["epochs"] // r.config["checkpoint_every"] in (10, 20) for r in samples)
    assert {r.num_gpus for r in runs_of("tsipras-paper", "train_tradeoff_mnist")} == {0.25}


def test_eval_kind_takes_a_step_size():
    from ray_jobs.schema import kind_schema

    schema = kind_schema("eval")
    assert schema.problems({"eps": 0.031, "norm": "linf", "alpha": 0.003}) == []
    assert "key 'alpha' = 0" in schema.problems({"eps": 0.031, "norm": "linf", "alpha": 0})[0]
