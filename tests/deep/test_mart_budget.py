"""The equal-cost budget study (ray_jobs/specs/mart-budget.toml, figures/report_mart_budget.py): the spec
really gives the three methods equal attack cost at each budget, and the renderer's paired gaps and
zero crossing are the exact numbers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deep.evaluation.result import EvalResult
from deep.train import Recipe
from figures.report import RENDERERS, Entry, load_plugins
from figures.report_mart_budget import crossing, paired_gap
from ray_jobs.spec import expand, load_spec, strip_tags

SPECS = Path(__file__).resolve().parents[2] / "ray_jobs" / "specs"


def _cost(cfg: dict) -> int:
    return cfg["first_n"] * cfg["epochs"] * cfg["steps"]


def test_spec_gives_equal_attack_cost_per_budget_and_shares_the_table2_runs() -> None:
    runs = expand(load_spec(SPECS / "mart-budget.toml"))
    train = [r for r in runs if r.stage == "train"]
    by_budget: dict[int, list] = {}
    for r in train:
        Recipe.from_dict(strip_tags(r.config))
        by_budget.setdefault(_cost(r.config), []).append(r)
    assert len(by_budget) == 4
    for same in by_budget.values():
        assert sorted(r.config["_r"] for r in same) == ["mart", "pgd", "trades"]
        assert len({(r.config["batch_size"], r.inputs["init"]) for r in same}) == 1  # one warm start, one batch
    by_hash = {r.hash: r for r in runs}
    for e in (r for r in runs if r.stage == "eval"):
        model = by_hash[e.inputs["model"]]
        assert (model.config["_r"], model.config["first_n"]) == (e.config["_r"], e.config["_first_n"])
    table2 = {r.hash for r in expand(load_spec(SPECS / "mart.toml")) if r.stage == "train"}
    assert {r.hash for r in train if r.config["first_n"] == 1500} <= table2


def test_paired_gap_is_the_mean_and_standard_error_of_the_differences() -> None:
    a = EvalResult(0.5, {}, 0.5, 4, 0.3, "linf", correct={"worst_case": np.array([1, 1, 0, 0], bool)})
    b = EvalResult(0.5, {}, 0.25, 4, 0.3, "linf", correct={"worst_case": np.array([1, 0, 0, 0], bool)})
    mean, se = paired_gap(a, b, "worst_case")
    d = np.array([0.0, 1.0, 0.0, 0.0])
    assert mean == pytest.approx(0.25) and se == pytest.approx(d.std(ddof=1) / 2)
    assert paired_gap(a, b, "pgd-20") is None  # no per-example vector: no gap, not a made-up one


def test_crossing_is_where_the_log_budget_line_meets_zero() -> None:
    assert "≈ 1e+05" in crossing([(1_000, -0.04), (10_000, -0.02)])  # +2 points per decade from -4
    assert "+2.0 points per 10× budget" in crossing([(1_000, -0.04), (10_000, -0.02)])
    assert "no crossing in sight" in crossing([(1_000, -0.02), (10_000, -0.03)])
    assert "level or ahead" in crossing([(1_000, -0.02), (10_000, 0.01)])
    inside = crossing([(1_000, -0.10), (10_000, 0.05), (100_000, -0.01)])  # the fit crosses near 28,000
    assert "not monotone" in inside and "extrapolated" not in inside
    assert "too few" in crossing([(1_000, -0.02)])


def _result(r: str, first_n: int, robust: np.ndarray) -> EvalResult:
    acc = float(robust.mean())
    return EvalResult(0.95, {"fgsm": 0.8, "pgd-20": acc, "cw-20": acc, "apgd-ce": acc, "apgd-t": acc}, acc,
                      len(robust), 0.3, "linf", correct={"pgd-20": robust, "worst_case": robust},
                      extra={"model_recipe": {"first_n": first_n, "epochs": 2, "steps": 5, "method": r}})


def test_renderer_table_gaps_figure_and_missing(tmp_path: Path) -> None:
    load_plugins()
    runs = [r for r in expand(load_spec(SPECS / "mart-budget.toml")) if r.stage == "eval"]
    rng = np.random.default_rng(0)
    robust = {("pgd", 1500): 0.6, ("mart", 1500): 0.5, ("trades", 1500): 0.55}
    entries, vectors = [], {}
    for r in runs:
        key = (r.config["_r"], r.config["_first_n"])
        if key not in robust:
            entries.append(Entry("mart-budget", "mart-budget", "mnist", r, "pending", None))
            continue
        vectors[key] = rng.random(400) < robust[key]
        entries.append(Entry("mart-budget", "mart-budget", "mnist", r, "done", _result(*key, vectors[key])))
    text = "\n".join(RENDERERS["mart-budget"](entries, tmp_path, "mb", "caption"))
    want = vectors[("mart", 1500)].astype(float) - vectors[("pgd", 1500)].astype(float)
    se2 = 2 * want.std(ddof=1) / math.sqrt(400)
    assert f"| Standard AT (Madry) | PGD-20 | {100 * want.mean():+.1f} ± {100 * se2:.1f} |" in text
    assert "| 15,000 | 1,500 × 2 | MART |" in text
    assert sum(f"MISSING `{r.hash}`" in text for r in runs) == len(runs) - 3
    assert (tmp_path / "mb.png").exists()
