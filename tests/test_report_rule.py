"""[IL] Fig 2(b) at the eps rule (laptop spec stages rule_*, table ``il-fig2b-rule``): every row on every
dataset, one eps per dataset, and Fashion-MNIST's rows are the eval_* runs themselves (its eps already
follows the rule), so the rule costs no second evaluation there."""
from __future__ import annotations

from pathlib import Path

from figures.report import RENDERERS, Entry, load_plugins
from ray_jobs.spec import expand, load_spec

LAPTOP = Path(__file__).resolve().parents[1] / "ray_jobs" / "specs" / "laptop.toml"
ROWS = ("std-D", "adv-D", "std-DR", "std-DNR")


def test_rule_rows_cover_every_dataset_at_one_eps_each() -> None:
    runs = expand(load_spec(LAPTOP))
    rule = [r for r in runs if any(t.startswith("il-fig2b-rule:") for t in r.report.get("rows", []))]
    seen = {(r.report["rows"][0].split(":")[1], r.config["dataset"]) for r in rule}
    assert seen == {(row, d) for row in ROWS for d in ("mnist", "fashion-mnist", "cifar10-subset")}
    eps = {d: {r.config["eps"] for r in rule if r.config["dataset"] == d} for d in ("mnist", "cifar10-subset")}
    assert eps == {"mnist": {3.0}, "cifar10-subset": {0.75}}
    fig2b = ("eval_std", "eval_adv", "eval_on_robust", "eval_on_nonrobust")
    plain = {r.hash for r in runs if r.stage in fig2b and r.config["dataset"] == "fashion-mnist"}
    assert {r.hash for r in rule if r.config["dataset"] == "fashion-mnist"} == plain


def test_rule_table_renders_its_own_title_and_lists_missing(tmp_path: Path) -> None:
    load_plugins()
    run = next(r for r in expand(load_spec(LAPTOP)) if r.stage == "rule_std")
    lines = RENDERERS["il-fig2b-rule"]([Entry("il-fig2b-rule", "std-D", run.config["dataset"], run, "pending", None)],
                                       tmp_path, "rule", "caption")
    text = "\n".join(lines)
    assert "at the eps rule" in text and f"`{run.hash}`" in text and "MISSING" in text


def test_a_run_two_stages_reach_fills_both_tables(tmp_path: Path) -> None:
    from figures.report import collect
    from ray_jobs.store import Store

    entries = collect(load_spec(LAPTOP), Store(tmp_path / "store"))
    fashion_std = [e for e in entries if e.dataset == "fashion-mnist" and e.row == "std-D"
                   and e.renderer.startswith("il-fig2b")]
    assert {e.renderer for e in fashion_std} == {"il-fig2b", "il-fig2b-rule"}
    assert len({e.run.hash for e in fashion_std}) == 1  # one run behind both rows
