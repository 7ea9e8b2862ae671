"""figures.report on a store where some results exist and some are missing."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import figures.__main__ as fig_main
from figures import report as engine
from figures.paper_table import Table, attack, clean, register_table
from figures.report import SPEC_DIR, default_specs, pct, write_report
from ray_jobs.spec import expand, load_spec
from ray_jobs.store import Store

# A table that only this test uses (the shipped MART renderers are figures/report_mart.py's).
register_table("mart-table2-mnist", Table(
    title="[MART] Table 2 (MNIST columns): white-box accuracy, linf eps 0.3",
    source="SPEC §6 (SmallCNN, 100 epochs)",
    rows={"pgd": "Standard AT", "trades": "TRADES", "mart": "MART"},
    columns={"natural": clean, "FGSM": attack("fgsm"), "PGD-20": attack("pgd-20"), "CW-20": attack("cw-20")},
    paper={"pgd": (99.11, 97.17, 94.62, 94.25), "trades": (99.25, 96.67, 94.58, 94.03),
           "mart": (98.74, 97.87, 96.48, 96.10)},
    paper_dataset="mnist",
))

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
    return {"clean": rng.random(), "attacks": attacks, "worst_case": min(attacks.values()), "n": 100, "eps": 0.5,
            "norm": "l2"}


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
    # the caption mentions hatched paper bars only where the paper published numbers (and they are drawn)
    assert "; hatched: paper (SPEC §5 (CIFAR-10" in text and "; hatched: paper (SPEC §6" in text
    assert "no paper numbers" not in text  # every drawn table here has paper numbers for its dataset
    assert "No figure: every run of this table is MISSING." in text
    assert f"python -m ray_jobs run {spec_file} --store {store.root}" in text


def test_default_specs_are_those_with_runs_in_the_store(tmp_path: Path):
    store = Store(tmp_path / "store")
    store.runs_dir.mkdir(parents=True)
    assert default_specs(store) == []  # an empty store reports no spec (no 41 MISSING laptop rows)
    text = write_report(store.root, tmp_path / "out").read_text()
    assert "No shipped spec has a run in this store" in text and "Total missing runs: 0." in text
    smoke = SPEC_DIR / "smoke.toml"
    first = expand(load_spec(smoke))[0]
    store.finish(first.hash, {"epochs": 1})
    assert [p.stem for p in default_specs(store)] == ["smoke"]


def test_missing_store_is_a_one_line_error_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_report(tmp_path / "nowhere", tmp_path / "out")
    assert fig_main.main(["report", "--store", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "error" in err
    assert not (tmp_path / "out").exists()


def test_pct_never_formats_a_non_fraction_as_a_percentage():
    assert pct(0.5) == "50.00" and pct(1.0) == "100.00" and pct(0.0) == "0.00" and pct(0.12345, 1) == "12.3"
    assert pct(None) == "—"
    assert pct(1e9) == "INVALID (1000000000.0)"
    for bad in (-0.01, 1.0000001, float("nan"), "0.5", True):
        assert pct(bad).startswith("INVALID"), bad


@pytest.mark.parametrize("bad, why", [
    ({"clean": 1e9}, "clean = 1000000000.0 is outside [0, 1]"),
    ({"clean": "high"}, "clean = 'high' is not a number"),
    ({"attacks": {"pgd-20": 2.5}}, "attacks.pgd-20 = 2.5 is outside [0, 1]"),
    ({"attacks": [0.1]}, "attacks = [0.1] is not an object"),
    ({"n": "100"}, "n = '100' is not a non-negative integer"),
    ({"eps": float("inf")}, "eps = inf is not a finite number >= 0"),
])
def test_metrics_problem_names_the_bad_value(bad: dict, why: str):
    good = {"clean": 0.9, "attacks": {"pgd-20": 0.4}, "worst_case": 0.4, "n": 100, "eps": 0.3, "norm": "linf"}
    assert engine.metrics_problem(good) is None
    assert engine.metrics_problem({**good, **bad}) == why
    assert engine.metrics_problem({}) == "empty or not a JSON object"


def test_one_bad_metrics_file_is_shown_invalid_and_the_rest_is_reported(tmp_path: Path):
    spec_file = tmp_path / "mini.toml"
    spec_file.write_text(SPEC)
    runs = {r.label(): r for r in expand(load_spec(spec_file))}
    store = Store(tmp_path / "store")
    rng = random.Random(2)
    good, bad, typed = (runs["eval[dataset=cifar10-subset]"], runs["eval_mart[_method=mart]"],
                        runs["eval_mart[_method=pgd]"])
    m = eval_metrics(rng)
    store.finish(good.hash, m)
    _damage(store, bad.hash, {**eval_metrics(rng), "clean": 1e9})
    _damage(store, typed.hash, {**eval_metrics(rng), "attacks": {"fgsm": "x"}})
    torn = runs["eval_mart[_method=trades]"]
    _damage(store, torn.hash, {})
    (store.run_dir(torn.hash) / "metrics.json").write_text('{"clean": 0.5, "att')
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert f"| standard training on D | {100 * m['clean']:.2f} |" in text
    bad_file, typed_file = (store.run_dir(h) / "metrics.json" for h in (bad.hash, typed.hash))
    why = f"invalid: {bad_file}: clean = 1000000000.0 is an accuracy-like value outside [0, 1]"
    assert f"| MART | MISSING ({why}) |" in text
    assert f"| Standard AT | MISSING (invalid: {typed_file}: attacks.fgsm = 'x' is not a number) |" in text
    assert "100000000000" not in text
    assert f"- MISSING `{bad.hash}` eval_mart[_method=mart] — {why}" in text
    assert f"| TRADES | MISSING (invalid: corrupt JSON file {store.run_dir(torn.hash) / 'metrics.json'}" in text
    assert "invalid 3" in text  # the run counts of the spec
    assert bad_file.is_file() and typed_file.is_file()  # the report reads; it moves nothing aside


def _damage(store: Store, run_hash: str, metrics: dict) -> None:
    """A done run whose metrics.json was damaged after it finished (the store refuses to write one)."""
    folder = store.run_dir(run_hash)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    store.update_status(run_hash, state="done")


DUP_SPEC = """
[spec]
name = "dup"
[stages.first]
kind = "theory"
[stages.first.config]
module = "theory.gaussian"
[stages.second]
kind = "theory"
[stages.second.config]
module = "theory.gaussian"
[stages.other]
kind = "theory"
[stages.other.config]
module = "theory.tradeoff"
"""


def test_a_run_reached_twice_is_counted_once_and_untagged_specs_get_the_generic_table(tmp_path: Path):
    spec_file = tmp_path / "dup.toml"
    spec_file.write_text(DUP_SPEC)
    runs = expand(load_spec(spec_file))
    assert len(runs) == 3 and runs[0].hash == runs[1].hash  # two stages, one computation
    store = Store(tmp_path / "store")
    store.finish(runs[2].hash, {"clean": 0.875, "seconds": 2.5, "note": "text is skipped"})
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert "Runs: done 1, failed 0, blocked 0, running 0, pending 1" in text
    assert "(1 of 2 runs)" in text and "Total missing runs: 1." in text
    assert "### Every run (this spec has no report tags)" in text
    assert f"| other | — | done | clean 87.50%, seconds 2.5 | `{runs[2].hash}` |" in text
    assert f"| first | — | MISSING (pending) |  | `{runs[0].hash}` |" in text
    assert text.count(f"`{runs[0].hash}`") == 2  # one table row, one MISSING line: never twice each


def test_generic_table_summarises_eval_and_train_results():
    from deep.evaluation import EvalResult
    from figures.report_generic import main_metrics

    m = {"clean": 0.9, "worst_case": 0.25, "attacks": {"pgd-20": 0.25}, "eps": 0.3, "norm": "linf", "n": 100}
    assert main_metrics(EvalResult.from_dict(m), "eval") == \
        "clean 90.00%, worst case 25.00%, pgd-20 25.00%, linf eps 0.3, n 100"
    ident = {"dataset": "mnist", "n": 60, "shape": [1, 28, 28], "sha256": None}
    train = {"status": "done", "epochs_done": 2, "epochs": 2, "data": ident, "eval_data": ident, "torch": "2",
             "python": "3.11", "device": "cpu", "threads": 1, "steps_per_epoch": 3, "seconds_total": 12.4,
             "last": {"epoch": 2, "train_clean_acc": 0.5, "train_adv_acc": None, "loss": 0.7}}
    assert main_metrics(train, "train") == "epochs 2/2, train_clean_acc 50.00%, 12 s"
    assert main_metrics({"epochs": 2, "loss": 0.7}, "train") == "epochs 2, loss 0.7"  # not a TrainResult


def test_a_broken_plugin_stops_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = Store(tmp_path / "store")
    store.runs_dir.mkdir(parents=True)

    def broken(name: str):
        raise ImportError(f"cannot import {name}")

    monkeypatch.setattr(engine.importlib, "import_module", broken)
    with pytest.raises(ImportError, match="figures.report_"):
        fig_main.main(["report", "--store", str(store.root), "--out", str(tmp_path / "out")])


def test_a_renderer_name_is_registered_once():
    def other(entries, out_dir, stem, caption):
        return []

    with pytest.raises(ValueError, match="registered twice"):
        engine.register_renderer("il-fig3")(other)


def test_importing_and_rendering_leave_matplotlib_global_state_alone(tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import matplotlib\n"
        "before = (matplotlib.get_backend(), dict(matplotlib.rcParams))\n"
        "import figures, figures.__main__, figures.report, figures.theory_figs\n"
        "from figures.report import load_plugins, RENDERERS\n"
        "load_plugins()\n"
        "from figures.style import styled, subplots, save\n"
        "with styled():\n"
        "    fig, ax = subplots()\n"
        "    ax.plot([0, 1])\n"
        f"    save(fig, __import__('pathlib').Path({str(tmp_path)!r}), 'x')\n"
        "after = (matplotlib.get_backend(), dict(matplotlib.rcParams))\n"
        "assert before == after, 'global matplotlib state changed'\n"
        "import matplotlib.pyplot as plt\n"
        "assert plt.get_fignums() == [], plt.get_fignums()\n"
    )
    env = {**__import__("os").environ, "MPLBACKEND": "svg"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.png").stat().st_size > 0


def test_help_is_argparse_help(capsys: pytest.CaptureFixture[str]):
    assert fig_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m figures") and "{theory,report}" in out
    assert fig_main.main(["report", "--help"]) == 0
    assert "--store" in capsys.readouterr().out

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


def test_il_figures_name_rows_for_people_and_state_the_threat_model(tmp_path: Path):
    from deep.evaluation import EvalResult
    from figures.paper_table import _label, setting
    from figures.report_ilyas import FIG2B, TABLE1

    ticks = {**FIG2B.rows, **FIG2B.figure_rows}
    assert [_label(FIG2B, k, ticks, "\n") for k in ("std-D", "adv-D", "std-DR", "std-DNR")] == [
        "Std. training\non $D$", "Adv. training\non $D$", "Std. training\non $\\hat{D}_R$",
        "Std. training\non $\\hat{D}_{NR}$"]
    assert _label(TABLE1, "D_det@vgg16", {**TABLE1.rows, **TABLE1.figure_rows}, "\n") == \
        "Std. training\non $\\hat{D}_{det}$\n(vgg16)"
    (tmp_path / "mini.toml").write_text(SPEC)
    runs = expand(load_spec(tmp_path / "mini.toml"))
    result = EvalResult.from_dict({**eval_metrics(random.Random(3)), "eps": 8 / 255, "norm": "linf"})
    entries = [engine.Entry("il-fig2b", "std-D", "cifar10", runs[0], "done", result)]
    assert setting(entries) == "$\\ell_\\infty$ ε = 8/255, attacks: fgsm, pgd-20, cw-20, n = 100"


def test_a_figure_without_paper_numbers_does_not_promise_hatched_bars(tmp_path: Path):
    spec_file = tmp_path / "mini.toml"
    spec_file.write_text(SPEC)
    runs = {r.label(): r for r in expand(load_spec(spec_file))}
    store = Store(tmp_path / "store")
    store.finish(runs["eval[dataset=mnist]"].hash, eval_metrics(random.Random(4)))
    text = write_report(store.root, tmp_path / "out", [spec_file]).read_text()
    assert "; no paper numbers for `mnist` (SPEC §5" in text and "hatched" not in text
    assert (tmp_path / "out" / "exp-mini-il-fig2b-mnist.png").stat().st_size > 1000
