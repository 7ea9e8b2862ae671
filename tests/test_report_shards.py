"""The ``shards`` renderer (figures/report_shards.py): one evaluation in shards, shown whole, issue 11 item 5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deep.evaluation import EvalResult
from figures.report import RENDERERS, SPEC_DIR, Entry, _fill, load_plugins
from ray_jobs.spec import expand, load_spec, parse_spec

STAGES = {
    "train": {"kind": "train"},
    "full": {"kind": "eval", "needs": {"model": "train"}, "report": {"rows": ["shards:one run"]},
             "config": {"dataset": "mnist", "eps": 0.3, "norm": "linf", "suite": ["pgd-20"]}},
    "aa": {"kind": "eval", "needs": {"model": "train"}, "report": {"rows": ["shards:sharded"]},
           "config": {"dataset": "mnist", "first_n": 4, "eps": 0.3, "norm": "linf", "suite": ["pgd-20", "apgd-ce"]},
           "grid": {"offset": [0, 4, 8]}},
}


def _result(clean: list[int], pgd: list[int], ce: list[int] | None = None, flags: list[str] | None = None) -> EvalResult:
    correct = {"clean": np.array(clean, bool), "pgd-20": np.array(pgd, bool)}
    if ce is not None:
        correct["apgd-ce"] = np.array(ce, bool)
    correct["worst_case"] = np.logical_and.reduce(list(correct.values()))
    attacks = {k: float(v.mean()) for k, v in correct.items() if k not in ("clean", "worst_case")}
    return EvalResult(clean=float(correct["clean"].mean()), attacks=attacks, worst_case=float(correct["worst_case"].mean()),
                      n=len(clean), eps=0.3, norm="linf", seed=0, correct=correct, seconds={"pgd-20": 2.0},
                      flags=flags or [])


RESULTS = {  # the shard at offset 4 has not run
    ("full", None): _result([1] * 10 + [0] * 2, [1] * 9 + [0] * 3),
    ("aa", 0): _result([1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]),
    ("aa", 8): _result([1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], ["apgd-ce: a warning"]),
}


def _lines(tmp_path: Path) -> tuple[list[str], list[Entry]]:
    load_plugins()
    entries = []
    for run in expand(parse_spec({"stages": STAGES})):
        if run.kind != "eval":
            continue
        m = RESULTS.get((run.stage, run.config.get("offset")))
        row = _fill(run.report["rows"][0], run).partition(":")[2]
        entries.append(Entry("shards", row, "mnist", run, "done" if m else "pending", m))
    return RENDERERS["shards"](entries, tmp_path, "s", "caption"), entries


def test_sharded_row_concatenates_the_finished_shards_and_says_it_is_partial(tmp_path: Path) -> None:
    lines, _ = _lines(tmp_path)
    table = [ln for ln in lines if ln.startswith("| ")]
    assert table[0] == "| row | images done | clean | pgd-20 | apgd-ce | worst case | attack seconds |"
    # one run: 10/12 clean, 9/12 PGD; no APGD-CE there
    assert table[1] == "| one run | 12 of 12 (1/1 shards) | 83.33 | 75.00 | — | 75.00 | 2 |"
    # shards at offsets 0 and 8 (8 images): clean 7/8, PGD 5/8, APGD-CE 3/8, worst case 3/8
    assert table[2] == "| sharded | **partial**: 8 of 12 (2/3 shards) | 87.50 | 62.50 | 37.50 | 37.50 | 4 |"
    assert "PGD − AutoAttack on the same images (points): sharded +25.00." in lines
    assert "- sharded (`3 runs`): shard 1: apgd-ce: a warning" in lines


def test_no_finished_shard_gives_dashes(tmp_path: Path) -> None:
    load_plugins()
    run = next(r for r in expand(parse_spec({"stages": STAGES})) if r.stage == "aa")
    lines = RENDERERS["shards"]([Entry("shards", "sharded", "mnist", run, "pending", None)], tmp_path, "s", "c")
    assert "| row | images done | clean | worst case | attack seconds |" in lines
    assert "| sharded | **partial**: 0 of 4 (0/1 shards) | — | — | — |" in lines


def test_shipped_spec_shards_cover_the_test_set_once() -> None:
    runs = [r for r in expand(load_spec(SPEC_DIR / "mnist-pgd-at.toml")) if r.stage == "eval_aa"]
    ranges = sorted((r.config["offset"], r.config["offset"] + r.config["first_n"]) for r in runs)
    assert ranges[0][0] == 0 and ranges[-1][1] == 10_000
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous, no overlap


def test_overlapping_or_unlike_shards_are_invalid_rows_not_a_crash(tmp_path: Path) -> None:
    load_plugins()
    runs = [r for r in expand(parse_spec({"stages": STAGES})) if r.stage == "aa"]
    a = _result([1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0])
    wide = _result([1] * 6, [1] * 6, [1] * 6)  # 6 images from offset 0 reach into the shard at offset 4
    entries = [Entry("shards", "x", "mnist", runs[0], "done", wide), Entry("shards", "x", "mnist", runs[1], "done", a)]
    lines = RENDERERS["shards"](entries, tmp_path, "s", "c")
    assert any(ln.startswith("| x | 0 of 8 (2/2 shards) | INVALID (shards overlap: offsets 0 and 4) |") for ln in lines)
    other = _result([1, 1, 1, 1], [1, 1, 1, 0])  # no apgd-ce: another suite
    entries = [Entry("shards", "y", "mnist", runs[0], "done", a), Entry("shards", "y", "mnist", runs[1], "done", other)]
    lines = RENDERERS["shards"](entries, tmp_path, "s", "c")
    assert any("INVALID (shard 1 ran attacks ['pgd-20']" in ln for ln in lines)
