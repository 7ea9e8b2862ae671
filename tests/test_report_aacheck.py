"""The ``aa-check`` renderer (figures/report_aacheck.py): AutoAttack beside PGD on a test subset, issue 11 item 5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deep.evaluation import EvalResult
from figures.report import RENDERERS, SPEC_DIR, Entry, _fill, load_plugins
from figures.report_aacheck import ROW_LABELS, render_aa_check
from ray_jobs.spec import expand, load_spec, parse_spec

N = 10


def _result(pgd: int, ce: set[int], t: set[int], flags: list[str] | None = None, linf: bool = False) -> EvalResult:
    """9/10 clean; PGD keeps the first ``pgd`` examples; APGD-CE keeps ``ce``, APGD-T keeps ``t``, so the
    AA number is |ce ∩ t| / 10, below the minimum of the two entries whenever they break different examples."""
    idx = np.arange(N)
    correct = {"clean": idx < 9, "pgd-10": idx < pgd, "apgd-ce": np.isin(idx, sorted(ce)), "apgd-t": np.isin(idx, sorted(t))}
    correct["worst_case"] = np.logical_and.reduce(list(correct.values()))
    return EvalResult(clean=0.9, attacks={k: float(v.mean()) for k, v in correct.items() if k not in ("clean", "worst_case")},
                      worst_case=float(correct["worst_case"].mean()), n=N, eps=0.3 if linf else 0.25,
                      norm="linf" if linf else "l2", correct=correct,
                      flags=flags or [])


STAGES = {
    "train": {"kind": "train", "grid": {"_row": ["std-DR", "std-DNR"]}},
    "aa": {"kind": "eval", "needs": {"model": "train"}, "report": {"rows": ["aa-check:{_row}"]},
           "config": {"dataset": "cifar10-subset", "first_n": N, "eps": 0.25, "norm": "l2",
                      "suite": ["pgd-10", "apgd-ce", "apgd-t"]},
           "grid": {"_row": ["std-DR", "std-DNR"], "seed": [0, 1]}},
    "train_m": {"kind": "train", "grid": {"_r": ["pgd", "mart"]}},
    "aa_m": {"kind": "eval", "needs": {"model": "train_m"}, "report": {"rows": ["aa-check:mart-{r}"]},
             "config": {"dataset": "mnist", "first_n": N, "eps": 0.3, "norm": "linf",
                        "suite": ["pgd-10", "apgd-ce", "apgd-t"]}, "grid": {"_r": ["pgd", "mart"]}},
}
FLAG = "apgd-t: there are zero gradients"
RESULTS = {  # (row, seed) -> result; std-DNR seed 1 is not done
    ("std-DR", 0): _result(5, {0, 1, 2, 3, 6}, {0, 1, 2, 3, 4}),           # PGD 50, AA 40
    ("std-DR", 1): _result(7, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 8}),     # PGD 70, AA 50
    ("std-DNR", 0): _result(4, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 6, 7, 8}),    # PGD 40, AA 30
    ("mart-pgd", None): _result(6, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4}, linf=True),   # PGD 60, AA 50
    ("mart-mart", None): _result(7, {0, 1, 2}, {0, 1, 2, 3}, [FLAG], True),    # PGD 70, AA 30
}


def _entries() -> tuple[list[Entry], dict[tuple[str, object], str]]:
    load_plugins()
    entries, hashes = [], {}
    for run in expand(parse_spec({"stages": STAGES})):
        if run.kind != "eval":
            continue
        row = _fill(run.report["rows"][0], run).partition(":")[2]
        key = (row, run.axes.get("seed"))
        hashes[key] = run.hash
        m = RESULTS.get(key)
        entries.append(Entry("aa-check", row, run.config["dataset"], run, "done" if m else "pending", m))
    return entries, hashes


def _lines(tmp_path: Path) -> tuple[list[str], dict[tuple[str, object], str]]:
    entries, hashes = _entries()
    return RENDERERS["aa-check"](entries, tmp_path, "aa", "caption"), hashes


def test_table_rows_are_sorted_and_show_pgd_aa_and_the_signed_gap(tmp_path: Path):
    lines, h = _lines(tmp_path)
    assert RENDERERS["aa-check"].draw is render_aa_check
    assert lines[0] == f"### AutoAttack re-check of the robust models (first {N} test images)"
    assert "per-example worst case over the AA entries" in lines[2] and "PGD-10 number is measured on the same images" in lines[2]
    table = [ln for ln in lines if ln.startswith("| ")]
    assert table[0] == "| model | dataset | threat | n | clean | PGD-10 | AutoAttack (APGD-CE+T) | gap (pp) | run |"
    assert table[1:] == [
        f"| standard training on D̂_R | cifar10-subset | ℓ2 ε = 0.25 | 10 | 90.0 ± 0.0 (n=2) | 60.0 ± 14.1 (n=2) | "
        f"45.0 ± 7.1 (n=2) | +15.0 ± 7.1 (n=2) | `{h['std-DR', 0]}`, `{h['std-DR', 1]}` |",
        f"| standard training on D̂_NR | cifar10-subset | ℓ2 ε = 0.25 | 10 | 90.0 (n=1 of 2) | 40.0 (n=1 of 2) | "
        f"30.0 (n=1 of 2) | +10.0 (n=1 of 2) | `{h['std-DNR', 0]}`, `{h['std-DNR', 1]}` |",
        f"| [MART] Standard AT (Madry) | mnist | ℓ∞ ε = 0.3 | 10 | 90.0 | 60.0 | 50.0 | +10.0 | `{h['mart-pgd', None]}` |",
        f"| MART | mnist | ℓ∞ ε = 0.3 | 10 | 90.0 | 70.0 | 30.0 | +40.0 | `{h['mart-mart', None]}` |"]


def test_conclusion_check_says_whether_autoattack_keeps_each_ordering(tmp_path: Path):
    lines, _ = _lines(tmp_path)
    assert [ln for ln in lines if ln.startswith("- ") and " vs " in ln] == [
        "- cifar10-subset, ℓ2 ε = 0.25: D̂_R vs D̂_NR under PGD: +20.0 pp; under AutoAttack: +15.0 pp (same ordering)",
        "- mnist, ℓ∞ ε = 0.3: MART vs Standard AT under PGD: +10.0 pp; under AutoAttack: -20.0 pp (ordering flips)"]


def test_warnings_go_under_the_table_and_missing_rows_say_so(tmp_path: Path):
    entries, h = _entries()
    lines = render_aa_check(entries, tmp_path, "aa", "caption")
    assert lines[-1] == f"- MART (`{h['mart-mart', None]}`): {FLAG}"
    assert lines.index(lines[-1]) > max(i for i, ln in enumerate(lines) if ln.startswith("| "))
    pending = [e for e in entries if e.row == "std-D" or e.row == "mart-pgd"]  # mart-pgd as not done
    for e in pending:
        e.metrics, e.state = None, "failed"
    lines = render_aa_check(pending, tmp_path, "aa", "caption")
    assert f"| [MART] Standard AT (Madry) | mnist | ℓ∞ ε = 0.3 | MISSING (failed) | | | | | `{h['mart-pgd', None]}` |" in lines
    assert "AutoAttack (—)" in lines[4] and "- no compared pair" in lines[-1]


def test_unknown_rows_are_shown_as_written_after_the_known_ones(tmp_path: Path):
    entries, _ = _entries()
    odd = next(e for e in entries if e.row == "mart-pgd")
    odd.row = "my-model"
    rows = [ln.split(" | ")[0] for ln in render_aa_check(entries, tmp_path, "aa", "c") if ln.startswith("| ")]
    assert rows[-2:] == ["| MART", "| my-model"]


def test_the_shipped_specs_rows_fill_and_name_known_models():
    for path in (SPEC_DIR / "laptop.toml", SPEC_DIR / "mart.toml"):
        rows = {_fill(t, r).partition(":")[2] for r in expand(load_spec(path)) for t in r.report.get("rows", [])
                if t.startswith("aa-check:")}
        assert rows and rows <= set(ROW_LABELS), rows


def test_a_table_mixing_pgd_attacks_names_each_rows_pgd(tmp_path: Path):
    entries, h = _entries()
    mart = next(e for e in entries if e.row == "mart-mart")
    mart.metrics = {"clean": 0.9, "attacks": {"pgd-20": 0.7, "aa-standard": 0.6}, "worst_case": 0.6, "n": N,
                    "eps": 0.3, "norm": "linf"}
    lines = render_aa_check(entries, tmp_path, "aa", "c")
    assert lines[4] == ("| model | dataset | threat | n | clean | PGD-10 / PGD-20 | AutoAttack (APGD-CE+T / AA-standard) "
                        "| gap (pp) | run |")
    assert f"| MART | mnist | ℓ∞ ε = 0.3 | 10 | 90.0 | 70.0 (PGD-20) | 60.0 | +10.0 | `{h['mart-mart', None]}` |" in lines
    assert lines[-1] == ("- mnist, ℓ∞ ε = 0.3: MART vs Standard AT under PGD: +10.0 pp; under AutoAttack: +10.0 pp "
                         "(same ordering; attacks differ: PGD-20 vs PGD-10, AA-standard vs APGD-CE+T)")


def test_goodfellow_tsipras_and_mart_rows_are_labelled():
    from figures.report_aacheck import label

    assert label("gf-mlp-adv") == "[GF] FGSM adversarial training (MLP, α = 0.5)"
    assert label("mart-pgd-perturb-correct") == "Standard AT, S⁻ left natural"
    assert label("ts-linf-0.15") == "[TS] adversarial training, ℓ∞ ε_train = 0.15"
    assert label("ts-l2-2") == "[TS] adversarial training, ℓ2 ε_train = 2"
    assert label("something-else") == "something-else"  # unknown rows are shown as they are
    for stem, stage in (("goodfellow", "aa_check"), ("tsipras", "aa_tradeoff"), ("tsipras", "aa_cifar"),
                        ("mart", "aa_table2"),
                        ("mart", "aa_unlabeled")):
        runs = [r for r in expand(load_spec(SPEC_DIR / f"{stem}.toml")) if r.stage == stage]
        keys = [_fill(r.report["rows"][0], r).partition(":")[2] for r in runs]
        assert keys and all(label(key) != key for key in keys), keys
