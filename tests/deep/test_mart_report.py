"""The MART specs expand into valid recipes, and figures/report_mart.py's renderers list MISSING runs,
put ours beside SPEC §6's numbers with the right differences, and draw their figures."""
from __future__ import annotations

from pathlib import Path

import pytest

from deep.train import Recipe
from figures.report import RENDERERS, Entry, load_plugins
from ray_jobs.kinds import EVAL_KEYS
from ray_jobs.spec import expand, load_spec, strip_tags

SPECS = Path(__file__).resolve().parents[2] / "ray_jobs" / "specs"
NAMES = ("mart-table2", "mart-ablation", "mart-sensitivity", "mart-sets", "mart-unlabeled")


@pytest.mark.parametrize("name", ["mart.toml", "mart-paper.toml"])
def test_spec_runs_are_valid_recipes_and_evals(name: str) -> None:
    runs = expand(load_spec(SPECS / name))
    by_hash = {r.hash: r for r in runs}
    for r in runs:
        cfg = strip_tags(r.config)
        if r.kind in ("train", "mart-train"):
            Recipe.from_dict(cfg)  # raises ValueError on any bad field
        elif r.kind == "eval":
            assert set(cfg) <= EVAL_KEYS
            model = by_hash[r.inputs["model"]]
            assert model.config["_r"] == r.config["_r"]  # each eval scores the setting it is named for
            assert model.config["dataset"] == cfg["dataset"]


def test_cpu_spec_shares_runs_between_the_experiments() -> None:
    runs = expand(load_spec(SPECS / "mart.toml"))
    train = {r.config["_r"]: r for r in runs if r.stage == "train"}
    assert len(train) == len({r.hash for r in train.values()})  # one run per setting, none duplicated
    assert train["mart"].config["lam"] == 5.0 and train["trades"].config["beta"] == 1.0
    unl = next(r for r in runs if r.stage == "train_unlabeled")
    # same SGD steps as the labeled-only MART run: (labeled + unlabeled) x epochs = labeled x epochs
    pl = next(r for r in runs if r.stage == "pseudolabel")
    assert (pl.config["labeled_n"] + pl.config["unlabeled_n"]) * unl.config["epochs"] == \
        train["mart"].config["first_n"] * train["mart"].config["epochs"]


def _metrics(clean: float, pgd: float, n: int = 500, lam: float | None = None) -> dict:
    m = {"clean": clean, "attacks": {"fgsm": pgd + 0.1, "pgd-20": pgd, "cw-20": pgd - 0.01},
         "worst_case": pgd - 0.02, "n": n, "model_recipe": {}}
    if lam is not None:
        m["model_recipe"] = {"lam": lam, "beta": lam}
    return m


def test_renderers_list_missing_runs_and_draw_nothing(tmp_path: Path) -> None:
    load_plugins()
    runs = expand(load_spec(SPECS / "mart.toml"))
    for name in NAMES:
        mine = [r for r in runs if name in r.report.get("render", [])]
        assert mine, name
        entries = [Entry(name, name, "mnist", r, "pending", None) for r in mine]
        text = "\n".join(RENDERERS[name](entries, tmp_path, f"x-{name}", "caption"))
        relevant = [r for r in mine if name != "mart-sensitivity" or
                    r.config["_r"].startswith(("mart-lam", "trades-beta")) or r.config["_r"] in ("mart", "trades")]
        for r in relevant:
            if name in ("mart-ablation", "mart-sets", "mart-table2") and r.config["_r"] not in {
                    "mart-table2": ("pgd", "trades", "mart"),
                    "mart-ablation": ("mart", "mart-no-weight", "mart-no-kl", "mart-ce"),
                    "mart-sets": ("pgd", "pgd-perturb-correct", "pgd-perturb-misclassified")}[name]:
                continue
            if name == "mart-unlabeled" and r.kind == "eval" and r.config["_r"] not in ("mart", "mart-unlabeled"):
                continue
            assert f"MISSING `{r.hash}`" in text, (name, r.label())
    assert not list(tmp_path.glob("*.png"))


def test_table2_cells_show_ours_paper_and_difference(tmp_path: Path) -> None:
    load_plugins()
    runs = [r for r in expand(load_spec(SPECS / "mart.toml")) if r.stage == "eval"]
    entries = [Entry("mart-table2", "mart-table2", "mnist", r, "done", _metrics(0.95, 0.62)) for r in runs
               if r.config["_r"] in ("pgd", "mart")]
    lines = RENDERERS["mart-table2"](entries, tmp_path, "t2", "caption")
    row = next(ln for ln in lines if ln.startswith("| Standard AT"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"95.0 (99.11; {95.0 - 99.11:+.1f})"
    assert cells[3] == f"62.0 (94.62; {62.0 - 94.62:+.1f})"
    assert cells[5] == "60.0"  # worst case: no paper number
    assert (tmp_path / "t2.png").exists() and (tmp_path / "t2.pdf").exists()
    assert not any("TRADES" in ln and "MISSING" in ln for ln in lines)  # rows absent from entries are skipped


def test_comparison_reports_difference_with_two_standard_errors(tmp_path: Path) -> None:
    load_plugins()
    runs = {r.config["_r"]: r for r in expand(load_spec(SPECS / "mart.toml")) if r.stage == "eval"}
    entries = [Entry("mart-ablation", "mart-ablation", "mnist", runs["mart"], "done", _metrics(0.9, 0.5)),
               Entry("mart-ablation", "mart-ablation", "mnist", runs["mart-no-kl"], "done", _metrics(0.9, 0.4)),
               Entry("mart-ablation", "mart-ablation", "mnist", runs["mart-ce"], "done", _metrics(0.9, 0.49))]
    lines = RENDERERS["mart-ablation"](entries, tmp_path, "ab", "caption")
    se2 = 2 * ((0.5 * 0.5 / 500 + 0.4 * 0.6 / 500) ** 0.5)
    no_kl = next(ln for ln in lines if "without the KL" in ln)
    assert f"-10.0 ± {100 * se2:.1f}" in no_kl and "within noise" not in no_kl
    assert "within noise" in next(ln for ln in lines if "CE instead of BCE" in ln)
    assert (tmp_path / "ab.png").exists()


def test_sensitivity_reads_the_weight_from_the_model_recipe(tmp_path: Path) -> None:
    load_plugins()
    runs = {r.config["_r"]: r for r in expand(load_spec(SPECS / "mart.toml")) if r.stage == "eval"}
    entries = [Entry("mart-sensitivity", "mart-sensitivity", "mnist", runs[k], "done", _metrics(0.9, p, lam=w))
               for k, p, w in (("mart", 0.5, 5.0), ("mart-lam-1", 0.4, 1.0), ("trades", 0.45, 1.0))]
    entries.append(Entry("mart-sensitivity", "mart-sensitivity", "mnist", runs["mart-lam-20"], "failed", None))
    lines = RENDERERS["mart-sensitivity"](entries, tmp_path, "sens", "caption")
    rows = [ln for ln in lines if ln.startswith("| MART λ")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "5", "20"]  # sorted by λ; 20 from the tag
    assert "MISSING (failed)" in rows[2]
    assert (tmp_path / "sens.png").exists()
