"""The goodfellow spec expands as intended, and its report renderers list MISSING runs and compute Δ."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.report import RENDERERS, Entry, load_plugins
from ray_jobs.spec import expand, load_spec

SPEC = Path(__file__).resolve().parents[2] / "ray_jobs" / "specs" / "goodfellow.toml"
NAMES = ("goodfellow-table", "goodfellow-fig2", "goodfellow-fig4", "goodfellow-l1")


def _runs():
    return expand(load_spec(SPEC))


def test_spec_pairs_the_transfer_with_the_standard_and_the_fgsm_trained_mlp():
    runs = _runs()
    by_hash = {r.hash: r for r in runs}
    (tr,) = [r for r in runs if r.stage == "transfer"]
    a, b = by_hash[tr.inputs["a"]], by_hash[tr.inputs["b"]]
    assert (a.config["model"], a.config["method"]) == ("mlp", "standard")
    assert (b.config["model"], b.config["method"]) == ("mlp", "fgsm") and b.config["fgsm_alpha"] == 0.5
    for r in runs:  # the paper's ε everywhere
        assert r.config.get("eps", 0.25) == 0.25
    evals = [r for r in runs if r.kind == "goodfellow-eval"]
    assert {by_hash[r.inputs["model"]].config["_row"] for r in evals} == {r.config["_row"] for r in evals}


def test_renderers_list_missing_runs_and_draw_nothing(tmp_path):
    load_plugins()
    runs = _runs()
    for name in NAMES:
        mine = [r for r in runs if name in r.report.get("render", [])]
        assert mine, name
        entries = [Entry(name, name, "mnist", r, "pending", None) for r in mine]
        lines = RENDERERS[name](entries, tmp_path, f"x-{name}", "caption")
        text = "\n".join(lines)
        for r in mine:
            assert f"MISSING `{r.hash}`" in text
    assert not list(tmp_path.glob("*.png"))


def test_table_renderer_shows_ours_beside_the_paper_with_the_difference(tmp_path):
    load_plugins()
    (rbf,) = [r for r in _runs() if r.stage == "eval" and r.config["_row"] == "rbf"]
    metrics = {"clean_error": 0.02, "fgsm_error": 0.5, "fgsm_confidence_on_errors": 0.3,
               "rbf_max_response": {"clean": 0.6, "fgsm": 0.2}}
    lines = RENDERERS["goodfellow-table"]([Entry("goodfellow-table", "goodfellow-table", "mnist", rbf, "done",
                                                 metrics)], tmp_path, "t", "caption")
    row = next(ln for ln in lines if ln.startswith("| shallow RBF"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:6] == ["50.0", "55.4", f"{50.0 - 55.4:+.1f}"]  # ours, paper (SPEC §4), Δ
    assert cells[6:8] == ["30.0", "1.2"]
    assert (tmp_path / "t.png").exists() and (tmp_path / "t.pdf").exists()


def test_fig4_renderer_draws_curves_from_metrics(tmp_path):
    load_plugins()
    (ev,) = [r for r in _runs() if r.stage == "eval" and r.config["_row"] == "mlp"]
    grid = np.linspace(-1, 1, 5)
    logits = np.stack([np.outer(grid, np.arange(3)) for _ in range(2)])  # [2, 5, 3]
    f4 = {"eps_grid": grid.tolist(), "labels": [0, 1], "logits": logits.tolist(), "attack_eps": 0.25,
          "summary_n": 2, "summary": {"r2_median": 1.0, "r2_min": 1.0, "argmax_changes_mean": 1.0,
                                      "wrong_fraction_beyond_eps": 0.5, "flip_eps_median": 0.5, "never_flipped": 1}}
    lines = RENDERERS["goodfellow-fig4"]([Entry("goodfellow-fig4", "goodfellow-fig4", "mnist", ev, "done",
                                                {"figure4": f4})], tmp_path, "f", "caption")
    assert any("ReLU MLP, standard | 2 | 1.000" in ln for ln in lines)
    assert (tmp_path / "f.png").exists()
