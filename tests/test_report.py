"""figures.report on a store where some results exist and some are missing."""
from __future__ import annotations

import random
from pathlib import Path

from figures.report import SPEC_DIR, default_specs, write_report
from ray_jobs.spec import expand, load_spec
from ray_jobs.store import Store

SPEC = """
[spec]
name = "mini"
description = "test spec"
[stages.train]
kind = "train"
[stages.train.grid]
dataset = ["cifar10-subset", "mnist"]
[stages.eval]
kind = "eval"
needs = { model = "train" }
report = { rows = ["il-fig2b:std-D", "il-table1:D"] }
[stages.eval.grid]
dataset = ["cifar10-subset", "mnist"]
[stages.train_mart]
kind = "train"
[stages.train_mart.grid]
method = ["pgd", "trades", "mart"]
[stages.eval_mart]
kind = "eval"
needs = { model = "train_mart" }
report = { rows = ["mart-table2-mnist:{method}"] }
[stages.eval_mart.config]
dataset = "mnist"
[stages.eval_mart.grid]
_method = ["pgd", "trades", "mart"]
"""


def eval_metrics(rng: random.Random) -> dict:
    attacks = {name: rng.random() for name in ("fgsm", "pgd-20", "cw-20")}
    return {"clean": rng.random(), "attacks": attacks, "worst_case": min(attacks.values()), "n": 100}


def test_report_tables_figures_and_missing(tmp_path: Path):
    spec_file = tmp_path / "mini.toml"
    spec_file.write_text(SPEC)
    runs = {r.label(): r for r in expand(load_spec(spec_file))}
    store = Store(tmp_path / "store")
    rng = random.Random(0)
    cifar = runs["eval[dataset=cifar10-subset]"]
    mart = runs["eval_mart[_method=mart]"]
    done = {cifar.hash: eval_metrics(rng), mart.hash: eval_metrics(rng)}
    for h, m in done.items():
        store.finish(h, m)
    failed = runs["eval[dataset=mnist]"]
    store.update_status(failed.hash, state="failed", error="RuntimeError: out of memory")

    report = write_report(store.root, tmp_path / "out", [spec_file])
    text = report.read_text()
    # our numbers, in percent, beside the paper's (independently formatted here)
    m = done[cifar.hash]
    assert f"| standard training on D | {100 * m['clean']:.2f} | {100 * m['worst_case']:.2f} | 95.25 | 4.49 |" in text
    assert f"| D | {100 * m['clean']:.2f} | 95.30 |" in text
    mm = done[mart.hash]
    row = [100 * mm["clean"], 100 * mm["attacks"]["fgsm"], 100 * mm["attacks"]["pgd-20"], 100 * mm["attacks"]["cw-20"]]
    assert "| MART | " + " | ".join(f"{v:.2f}" for v in row) + " | 98.74 | 97.87 | 96.48 | 96.10 |" in text
    # missing results are listed as missing, with their state and error, never filled in
    assert "| standard training on D | MISSING (failed) |" in text  # mnist row: no paper numbers either
    assert "| Standard AT | MISSING (pending) |" in text and "| TRADES | MISSING (pending) |" in text
    assert f"- MISSING `{failed.hash}` eval[dataset=mnist] — failed: RuntimeError: out of memory" in text
    n_missing = len(runs) - 2
    assert f"({n_missing} of {len(runs)} runs)" in text and f"Total missing runs: {n_missing}." in text
    # figures exist only for tables with at least one result, PNG and PDF
    out = tmp_path / "out"
    for stem in ("exp-mini-il-fig2b-cifar10-subset", "exp-mini-il-table1-cifar10-subset", "exp-mini-mart-table2-mnist-mnist"):
        assert (out / f"{stem}.png").stat().st_size > 1000 and (out / f"{stem}.pdf").stat().st_size > 1000
        assert f"({stem}.png)" in text
    assert not (out / "exp-mini-il-fig2b-mnist.png").exists()
    assert "No figure: every run of this table is MISSING." in text
    assert f"python -m ray_jobs run {spec_file} --store {store.root}" in text


def test_default_report_lists_every_laptop_run_missing_and_adds_specs_with_runs(tmp_path: Path):
    store = Store(tmp_path / "store")
    text = write_report(store.root, tmp_path / "out").read_text()
    laptop = [p for p in default_specs() if p.stem == "laptop"]
    assert default_specs(store) == laptop
    assert f"Total missing runs: {len(expand(load_spec(laptop[0])))}." in text
    assert not list((tmp_path / "out").glob("*.png"))
    smoke = SPEC_DIR / "smoke.toml"
    first = expand(load_spec(smoke))[0]
    store.finish(first.hash, {"status": "done"})
    assert [p.stem for p in default_specs(store)] == ["laptop", "smoke"]


FIG3_SPEC = """
[spec]
name = "fig3"
[stages.transfer]
kind = "transfer"
report = { render = ["il-fig3"] }
[stages.transfer.config]
dataset = "cifar10-subset"
eps = 0.5
norm = "l2"
[stages.transfer.grid]
model = ["cifar-cnn", "mlp"]
"""


def test_transfer_figure_beside_paper_and_missing(tmp_path: Path):
    spec_file = tmp_path / "fig3.toml"
    spec_file.write_text(FIG3_SPEC)
    runs = {r.config["model"]: r for r in expand(load_spec(spec_file))}
    store = Store(tmp_path / "store")
    rng = random.Random(1)
    m = {"det_test_acc": rng.random(), "transfer_success": rng.random(), "target_clean": rng.random(),
         "source_clean": rng.random(), "attack": "pgd-10", "norm": "l2", "eps": 0.5}
    store.finish(runs["cifar-cnn"].hash, m)
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert (f"| cifar-cnn | cifar10-subset | {100 * m['det_test_acc']:.2f} | {100 * m['transfer_success']:.2f} | "
            f"{100 * m['target_clean']:.2f} | {100 * m['source_clean']:.2f} |") in text
    assert "| mlp | cifar10-subset | MISSING (pending) |" in text
    assert "| ResNet-50 | 44.7 | 98.7 |" in text and "| VGG-16 | 27.9 | 65.7 |" in text  # SPEC §5
    stem = tmp_path / "out" / "exp-fig3-il-fig3"
    assert stem.with_suffix(".png").stat().st_size > 1000 and stem.with_suffix(".pdf").stat().st_size > 1000
    assert f"- MISSING `{runs['mlp'].hash}`" in text
