"""Seeds (issue 12 item 5): a seed grid axis expands and is inherited downstream (ray_jobs/spec.py), and the
report shows runs that differ only in seed as one row, mean ± sample sd (n) (figures/aggregate.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from figures.aggregate import Stat, seed_groups
from figures.report import RENDERERS, Entry, load_plugins, write_report
from ray_jobs.spec import SpecError, expand, load_spec, parse_spec
from ray_jobs.store import Store

PIPELINE = """
[stages.train]
kind = "train"
[stages.train.config]
{train_seed}
[stages.train.grid]
{seed_axis}
dataset = ["cifar10-subset", "mnist"]
[stages.construct]
kind = "construct"
needs = {{ source = {{ stage = "train", on = ["dataset"] }} }}
[stages.construct.config]
seed = 0
[stages.construct.grid]
dataset = ["cifar10-subset", "mnist"]
[stages.train_on]
kind = "train"
needs = {{ dataset = "construct" }}
[stages.train_on.grid]
dataset = ["cifar10-subset", "mnist"]
[stages.eval]
kind = "eval"
needs = {{ model = {{ stage = "train", on = ["dataset"] }} }}
report = {{ rows = ["il-fig2b:std-D"] }}
[stages.eval.grid]
dataset = ["cifar10-subset", "mnist"]
[stages.eval_on]
kind = "eval"
needs = {{ model = "train_on" }}
report = {{ rows = ["il-fig2b:std-DR"] }}
[stages.eval_on.grid]
dataset = ["cifar10-subset", "mnist"]
"""


def _spec(tmp_path: Path, seeded: bool) -> Path:
    path = tmp_path / ("seeded.toml" if seeded else "plain.toml")
    path.write_text(PIPELINE.format(train_seed="" if seeded else "seed = 0",
                                    seed_axis="seed = [0, 1, 2]" if seeded else ""))
    return path


def test_a_seed_axis_is_inherited_by_every_downstream_stage_and_keeps_the_seed_0_hashes(tmp_path: Path):
    plain = expand(load_spec(_spec(tmp_path, False)))
    seeded = expand(load_spec(_spec(tmp_path, True)))
    assert len(plain) == 10 and len(seeded) == 30  # every stage runs once per seed
    by_hash = {r.hash: r for r in seeded}
    for r in seeded:
        if r.stage == "train":
            continue
        assert r.axes["seed"] in (0, 1, 2), r.label()
        up = by_hash[next(iter(r.inputs.values()))]
        assert up.axes["seed"] == r.axes["seed"] and up.config["dataset"] == r.config["dataset"]
    # the seed-0 runs are the runs of the spec with `seed = 0` in the config: same hashes, no re-run
    seed0 = {r.hash for r in seeded if r.axes["seed"] == 0}
    assert seed0 == {r.hash for r in plain}
    # an inherited seed is not put into the config (so the kind gets what it got before)
    ev = next(r for r in seeded if r.stage == "eval" and r.axes["seed"] == 2)
    assert "seed" not in ev.config


def test_a_stage_with_its_own_seed_axis_takes_the_input_of_its_seed_without_listing_it_in_on():
    stages = {"train": {"kind": "train", "grid": {"seed": [0, 1], "dataset": ["a"]}},
              "eval": {"kind": "eval", "needs": {"model": {"stage": "train", "on": ["dataset"]}},
                       "grid": {"seed": [1, 0], "dataset": ["a"]}}}
    runs = expand(parse_spec({"stages": stages}))
    by_hash = {r.hash: r for r in runs}
    evals = [r for r in runs if r.stage == "eval"]
    assert [(r.config["seed"], by_hash[r.inputs["model"]].config["seed"]) for r in evals] == [(1, 1), (0, 0)]


def test_inputs_with_different_seeds_are_a_spec_error():
    stages = {"a": {"kind": "train", "grid": {"seed": [0, 1]}},
              "b": {"kind": "train", "grid": {"seed": [0, 1, 2]}},
              "c": {"kind": "eval", "needs": {"x": "a", "y": "b"}}}
    with pytest.raises(SpecError, match=r"stage 'c'.*different seed axes.*'a': \[0, 1\].*'b': \[0, 1, 2\]"):
        expand(parse_spec({"stages": stages}))


def test_stat_is_the_mean_and_the_sample_sd():
    s = Stat((0.60, 0.62, 0.67))
    # mean 63; deviations -3, -1, 4 points; sample variance (9 + 1 + 16) / 2 = 13 → sd √13 = 3.6056 points
    assert s.text() == "63.00 ± 3.61 (n=3)" and s.text(1) == "63.0 ± 3.6 (n=3)"
    assert Stat((0.655,)).text(1) == "65.5"  # one seed: as before, never "± 0"
    assert Stat((0.655,), of=3).text(1) == "65.5 (n=1 of 3)" and Stat((0.6, 0.62), of=3).text(0) == "61 ± 1 (n=2 of 3)"
    assert Stat((-0.05, -0.03)).text(1, signed=True) == "-4.0 ± 1.4 (n=2)"
    with pytest.raises(ValueError, match="at least one value"):
        Stat(())


def _metrics(clean: float, pgd: float) -> dict:
    return {"clean": clean, "attacks": {"pgd-10": pgd}, "worst_case": pgd, "n": 100, "eps": 0.25, "norm": "l2"}


def test_report_aggregates_the_seeds_of_a_row(tmp_path: Path):
    spec_file = _spec(tmp_path, True)
    runs = expand(load_spec(spec_file))
    store = Store(tmp_path / "store")
    evals = {r.axes["seed"]: r for r in runs if r.stage == "eval" and r.config["dataset"] == "cifar10-subset"}
    for seed, (clean, pgd) in zip((0, 1, 2), ((0.60, 0.30), (0.62, 0.33), (0.67, 0.36))):
        store.finish(evals[seed].hash, _metrics(clean, pgd))
    single = next(r for r in runs if r.stage == "eval_on" and r.config["dataset"] == "cifar10-subset"
                  and r.axes["seed"] == 1)
    store.finish(single.hash, _metrics(0.5, 0.25))
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    hashes = ", ".join(f"`{evals[s].hash}`" for s in (0, 1, 2))
    # clean: 63.00 ± √13; robust: 33 ± 3 (30, 33, 36); the paper's 95.25 / 4.49 beside them
    assert f"| standard training on D | 63.00 ± 3.61 (n=3) | 33.00 ± 3.00 (n=3) | 95.25 | 4.49 | {hashes} |" in text
    # a row with one of its three seeds done says so; the two missing seeds are listed as MISSING
    assert "| standard training on D_R | 50.00 (n=1 of 3) | 25.00 (n=1 of 3) | 84.10 | 48.27 |" in text
    others = [r for r in runs if r.stage == "eval_on" and r.config["dataset"] == "cifar10-subset" and r is not single]
    assert all(f"- MISSING `{r.hash}`" in text for r in others)
    assert "| standard training on D | MISSING (pending) |" in text  # mnist: no seed done
    assert (tmp_path / "out" / "exp-seeded-il-fig2b-cifar10-subset.png").stat().st_size > 1000


def _entry(renderer: str, run, metrics) -> Entry:
    return Entry(renderer, renderer, str(run.config.get("dataset", "mnist")), run, "done" if metrics else "pending",
                 metrics)


def test_mart_table2_and_comparisons_aggregate_seeds(tmp_path: Path):
    load_plugins()
    stages = {"train": {"kind": "train", "grid": {"seed": [0, 1, 2], "_r": ["pgd", "mart"]}},
              "eval": {"kind": "eval", "needs": {"model": "train"}, "report": {"render": ["mart-table2"]},
                       "config": {"dataset": "mnist"}, "grid": {"_r": ["pgd", "mart"]}}}
    runs = [r for r in expand(parse_spec({"stages": stages})) if r.stage == "eval"]
    pgd = {0: 0.90, 1: 0.92, 2: 0.97}  # PGD-20 of the mart rows: mean 93, sd √13
    entries = []
    for r in runs:
        p = pgd[r.axes["seed"]] if r.config["_r"] == "mart" else 0.5
        entries.append(_entry("mart-table2", r, {"clean": 0.99, "attacks": {"pgd-20": p}, "worst_case": p, "n": 500}))
    lines = RENDERERS["mart-table2"](entries, tmp_path, "t2", "caption")
    row = next(ln for ln in lines if ln.startswith("| MART |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"99.0 ± 0.0 (n=3) (98.74; {99.0 - 98.74:+.1f})"
    assert cells[3] == f"93.0 ± 3.6 (n=3) (96.48; {93.0 - 96.48:+.1f})"
    assert cells[2] == cells[4] == "—"  # no FGSM / CW-20 in these results
    assert sum(ln.startswith("| MART |") for ln in lines) == 1 and (tmp_path / "t2.png").exists()


def test_goodfellow_table_aggregates_seeds(tmp_path: Path):
    load_plugins()
    stages = {"eval": {"kind": "goodfellow-eval", "config": {"_row": "rbf", "dataset": "mnist"},
                       "report": {"render": ["goodfellow-table"]}, "grid": {"seed": [0, 1]}}}
    runs = expand(parse_spec({"stages": stages}))
    entries = [_entry("goodfellow-table", r, {"clean_error": 0.02, "fgsm_error": fgsm, "fgsm_confidence_on_errors": 0.3})
               for r, fgsm in zip(runs, (0.50, 0.54))]
    lines = RENDERERS["goodfellow-table"](entries, tmp_path, "gf", "caption")
    (row,) = [ln for ln in lines if ln.startswith("| shallow RBF")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # FGSM error 50 and 54: mean 52, sd √8 = 2.83; Δ to the paper's 55.4 from the mean
    assert cells[1] == "2.00 ± 0.00 (n=2)" and cells[3:6] == ["52.0 ± 2.8 (n=2)", "55.4", f"{52.0 - 55.4:+.1f}"]
    assert cells[-1] == ", ".join(f"`{r.hash}`" for r in runs)
    assert (tmp_path / "gf.png").exists()


def test_groups_keep_apart_runs_that_differ_in_more_than_the_seed():
    stages = {"eval": {"kind": "eval", "report": {"render": ["generic"]}, "grid": {"seed": [0, 1], "eps": [0.1, 0.2]}}}
    runs = expand(parse_spec({"stages": stages}))
    groups = seed_groups(Entry("generic", "generic", "mnist", r, "pending", None) for r in runs)
    assert [[e.run.config["seed"] for e in g.entries] for g in groups] == [[0, 1], [0, 1]]
    assert [g.first.run.config["eps"] for g in groups] == [0.1, 0.2]


def test_fig3_aggregates_the_seeds_of_an_architecture(tmp_path: Path):
    load_plugins()
    stages = {"transfer": {"kind": "transfer", "config": {"dataset": "cifar10-subset"},
                           "report": {"render": ["il-fig3"]}, "grid": {"model": ["mlp"], "seed": [0, 1]}}}
    runs = expand(parse_spec({"stages": stages}))
    metrics = [{"det_test_acc": x, "transfer_success": 0.8, "target_clean": 0.5, "source_clean": 0.6,
                "attack": "pgd-10", "norm": "l2", "eps": 0.5} for x in (0.30, 0.34)]
    entries = [Entry("il-fig3", "il-fig3", "cifar10-subset", r, "done", m) for r, m in zip(runs, metrics)]
    lines = RENDERERS["il-fig3"](entries, tmp_path, "f3", "caption")
    (row,) = [ln for ln in lines if ln.startswith("| mlp |")]
    # 30 and 34: mean 32, sd √8 = 2.83
    assert row.startswith("| mlp | cifar10-subset | 32.00 ± 2.83 (n=2) | 80.00 ± 0.00 (n=2) | 50.00 ± 0.00 (n=2) |")
    assert (tmp_path / "f3.png").exists()


def test_on_may_list_the_seed_of_a_stage_that_inherits_it():
    stages = {"train": {"kind": "train", "grid": {"seed": [0, 1], "dataset": ["a"]}},
              "eval": {"kind": "eval", "needs": {"model": {"stage": "train", "on": ["dataset", "seed"]}},
                       "grid": {"dataset": ["a"]}}}
    evals = [r for r in expand(parse_spec({"stages": stages})) if r.stage == "eval"]
    assert [r.axes for r in evals] == [{"dataset": "a", "seed": 0}, {"dataset": "a", "seed": 1}]
    stages["eval"]["needs"]["model"]["on"] = ["dataset", "eps"]
    with pytest.raises(SpecError, match="on axis 'eps', which is not one of its grid axes"):
        expand(parse_spec({"stages": stages}))
