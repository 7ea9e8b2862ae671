"""AutoAttack beside PGD in the paper tables, and warnings under them (figures/robust.py, issue 11 item 5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deep.evaluation import EvalResult
from figures.report import RENDERERS, Entry, load_plugins
from figures.robust import AA_SUITES, aa_accuracy, aa_exact, aa_gap, aa_label, warnings
from ray_jobs.spec import expand, parse_spec

N = 10


def _bits(k: int) -> np.ndarray:
    """The first k of N examples correct."""
    return np.arange(N) < k


def _aa_result(flags: list[str] | None = None) -> EvalResult:
    """PGD-10 keeps 5/10; APGD-CE keeps examples 0-3 and 6 (5/10), APGD-T keeps 0-4 (5/10): both keep 0-3."""
    ce = _bits(4) | (np.arange(N) == 6)
    correct = {"clean": _bits(8), "pgd-10": _bits(5), "apgd-ce": ce, "apgd-t": _bits(5)}
    correct["worst_case"] = np.logical_and.reduce(list(correct.values()))
    return EvalResult(clean=0.8, attacks={"pgd-10": 0.5, "apgd-ce": 0.5, "apgd-t": 0.5}, worst_case=0.4, n=N,
                      eps=0.25, norm="l2", correct=correct, flags=flags or [])


def test_aa_suites_are_autoattacks_suite_names():
    from deep.attacks.autoattack import SUITES

    assert set(AA_SUITES) == set(SUITES)


def test_aa_number_is_the_per_example_worst_case_when_the_result_has_it_else_the_minimum():
    r = _aa_result()
    assert aa_exact(r) and aa_accuracy(r) == 0.4 and abs(aa_gap(r) - 0.1) < 1e-12
    plain = {"attacks": {"pgd-20": 0.6, "apgd-ce": 0.5, "apgd-t": 0.45}}  # no per-example vectors
    assert not aa_exact(plain) and aa_accuracy(plain) == 0.45 and abs(aa_gap(plain) - 0.15) < 1e-12
    assert aa_accuracy({"attacks": {"pgd-20": 0.6}}) is None and aa_gap({"attacks": {"aa-standard": 0.3}}) is None
    assert aa_label(["apgd-ce", "apgd-t"]) == "APGD-CE+T" and aa_label(["aa-standard"]) == "AA-standard"
    assert aa_label(["apgd-ce", "square"]) == "APGD-CE+Square"


def test_warnings_are_the_flags_and_the_failed_masking_checks_once():
    r = _aa_result(["apgd-t: there are zero gradients", "masking large-eps: robust accuracy 0.1000; expected 0"])
    r["masking_checks"] = [{"check": "large-eps", "passed": False, "detail": "robust accuracy 0.1000; expected 0"},
                           {"check": "black-box", "passed": False, "detail": "2 of 10 broken by square only"},
                           {"check": "monotone-eps", "passed": True, "detail": "fine"},
                           {"check": "autoattack", "passed": False, "detail": "apgd-t: there are zero gradients"}]
    assert warnings(r) == ["apgd-t: there are zero gradients", "masking large-eps: robust accuracy 0.1000; expected 0",
                           "masking black-box: 2 of 10 broken by square only"]
    assert warnings(None) == [] and warnings({"clean": 1.0}) == []


FIG2B = {"train": {"kind": "train", "grid": {"_row": ["std-D", "adv-D"]}},
         "eval": {"kind": "eval", "needs": {"model": "train"}, "config": {"dataset": "cifar10-subset"},
                  "report": {"rows": ["il-fig2b:{row}"]}, "grid": {"_row": ["std-D", "adv-D"]}}}


def _fig2b_lines(tmp_path: Path, adv: EvalResult, std: EvalResult) -> tuple[list[str], dict[str, str]]:
    load_plugins()
    runs = {r.config["_row"]: r for r in expand(parse_spec({"stages": FIG2B})) if r.stage == "eval"}
    entries = [Entry("il-fig2b", row, "cifar10-subset", runs[row], "done", m) for row, m in (("std-D", std), ("adv-D", adv))]
    return RENDERERS["il-fig2b"](entries, tmp_path, "f2b", "caption"), {k: r.hash for k, r in runs.items()}


def _plain(pgd: float, flags: list[str] | None = None) -> EvalResult:
    return EvalResult(clean=0.9, attacks={"pgd-10": pgd}, worst_case=pgd, n=N, eps=0.25, norm="l2", flags=flags or [])


def test_fig2b_shows_pgd_autoattack_and_the_gap_and_dashes_where_aa_did_not_run(tmp_path: Path):
    lines, hashes = _fig2b_lines(tmp_path, _aa_result(), _plain(0.3))
    head = next(ln for ln in lines if ln.startswith("| training |"))
    assert head == ("| training | ours: standard acc | ours: robust acc | ours: PGD-10 | ours: AA (APGD-CE+T) | "
                    "ours: PGD − AA (pp) | paper: standard acc | paper: robust acc | run |")
    assert f"| adversarial training on D | 80.00 | 40.00 | 50.00 | 40.00 | +10.00 | 90.83 | 82.47 | `{hashes['adv-D']}` |" in lines
    assert f"| standard training on D | 90.00 | 30.00 | 30.00 | — | — | 95.25 | 4.49 | `{hashes['std-D']}` |" in lines
    assert any("per-example worst case over the AA entries" in ln for ln in lines)
    assert not any("Warnings" in ln for ln in lines)


def test_fig2b_without_autoattack_keeps_its_columns(tmp_path: Path):
    lines, _ = _fig2b_lines(tmp_path, _plain(0.5), _plain(0.3))
    head = next(ln for ln in lines if ln.startswith("| training |"))
    assert head == "| training | ours: standard acc | ours: robust acc | paper: standard acc | paper: robust acc | run |"


def test_warnings_are_listed_under_the_table_and_the_number_stays(tmp_path: Path):
    flag = "masking large-eps: pgd-20 at eps 55.4 (l2): robust accuracy 0.3000 on 10 examples; expected 0"
    lines, hashes = _fig2b_lines(tmp_path, _plain(0.5, [flag]), _plain(0.3))
    table_end = max(i for i, ln in enumerate(lines) if ln.startswith("| "))
    at = lines.index(f"- adversarial training on D (`{hashes['adv-D']}`): {flag}")
    assert at > table_end and lines[at - 2].startswith("**Warnings**")
    assert f"| adversarial training on D | 90.00 | 50.00 | 90.83 | 82.47 | `{hashes['adv-D']}` |" in lines


def test_mart_table2_adds_autoattack_and_gap_columns(tmp_path: Path):
    load_plugins()
    stages = {"train": {"kind": "train", "grid": {"_r": ["pgd", "mart"]}},
              "eval": {"kind": "eval", "needs": {"model": "train"}, "report": {"render": ["mart-table2"]},
                       "config": {"dataset": "mnist"}, "grid": {"_r": ["pgd", "mart"]}}}
    runs = {r.config["_r"]: r for r in expand(parse_spec({"stages": stages})) if r.stage == "eval"}
    aa = {"clean": 0.99, "attacks": {"pgd-20": 0.95, "aa-standard": 0.91}, "worst_case": 0.9,
          "n": 500, "flags": ["aa-standard: potentially a randomised defence"]}
    plain = {"clean": 0.99, "attacks": {"pgd-20": 0.93}, "worst_case": 0.93, "n": 500}
    entries = [Entry("mart-table2", "mart-table2", "mnist", runs["pgd"], "done", plain),
               Entry("mart-table2", "mart-table2", "mnist", runs["mart"], "done", aa)]
    lines = RENDERERS["mart-table2"](entries, tmp_path, "t2", "caption")
    head = next(ln for ln in lines if ln.startswith("| defence |"))
    assert head == "| defence | natural | FGSM | PGD-20 | CW-20 | worst case | AA (AA-standard) | PGD − AA (pp) | n | run |"
    mart = [c.strip() for c in next(ln for ln in lines if ln.startswith("| MART |")).strip("|").split("|")]
    assert mart[6:8] == ["91.0", "+4.0"] and mart[5] == "90.0"  # worst case stays over everything
    std = [c.strip() for c in next(ln for ln in lines if ln.startswith("| Standard AT (Madry) |")).strip("|").split("|")]
    assert std[6:8] == ["—", "—"]
    assert f"- MART (`{runs['mart'].hash}`): aa-standard: potentially a randomised defence" in lines


def test_generic_table_lists_the_warnings_of_eval_results(tmp_path: Path):
    load_plugins()
    (run,) = expand(parse_spec({"stages": {"ev": {"kind": "eval", "grid": {"eps": [0.5]}}}}))
    lines = RENDERERS["generic"]([Entry("generic", "generic", "mnist", run, "done", _plain(0.4, ["pgd-10: odd"]))],
                                 tmp_path, "g", "caption")
    assert lines[-1] == f"- ev[eps=0.5] (`{run.hash}`): pgd-10: odd" and "40.00%" in lines[-5]
