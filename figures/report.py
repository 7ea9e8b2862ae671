"""REPORT.md and the experiment figures, read from the ray_jobs result store.

Which run fills which table row is declared in the spec files (a stage's ``report.rows``, strings
``"TABLE:ROW"`` whose ``{axis}`` placeholders are filled from the run's axes). The report expands
each spec, looks every expected run up in the store by its hash, and prints each table beside the
paper's published numbers (``../shared/docs/SPEC.md``). A run that is not done in the store is
listed as MISSING with its state; nothing is ever drawn from a placeholder.

Accuracies in eval metrics (``deep.evaluate``) are fractions in [0, 1]; the report shows percent.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ray_jobs.spec import Run, Spec, expand, load_spec
from ray_jobs.store import Store

SPEC_DIR = Path(__file__).resolve().parents[1] / "ray_jobs" / "specs"
PLUGIN_GLOB = "report_*.py"  # figures/report_<topic>.py: extra TABLES entries and RENDERERS


@dataclass(frozen=True)
class Table:
    """A paper table: its rows, its columns, how to read a column from eval metrics, and the
    published numbers (percent) keyed by row, for the dataset they were published on."""

    title: str
    source: str
    rows: dict[str, str]                     # row key -> row label
    columns: dict[str, Callable[[dict[str, Any]], float | None]]
    paper: dict[str, tuple[float, ...]]      # row key -> published values, one per column
    paper_dataset: str


def _clean(m: dict[str, Any]) -> float | None:
    return m.get("clean")


def _worst(m: dict[str, Any]) -> float | None:
    return m.get("worst_case")


def _attack(name: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda m: (m.get("attacks") or {}).get(name)


TABLES: dict[str, Table] = {
    "il-fig2b": Table(
        title="[IL] Figure 2(b): accuracy on the original test set after training on D, D_R, D_NR",
        source="SPEC §5 (CIFAR-10, ResNet-50; robust accuracy at l2 eps 0.25)",
        rows={"std-D": "standard training on D", "adv-D": "adversarial training on D",
              "std-DR": "standard training on D_R", "std-DNR": "standard training on D_NR"},
        columns={"standard acc": _clean, "robust acc": _worst},
        paper={"std-D": (95.25, 4.49), "adv-D": (90.83, 82.47), "std-DR": (84.10, 48.27), "std-DNR": (87.68, 0.82)},
        paper_dataset="cifar10",
    ),
    "il-table1": Table(
        title="[IL] Table 1: test accuracy on the original test set after training on D, D_rand, D_det",
        source="SPEC §5 (CIFAR-10, ResNet-50)",
        rows={"D": "D", "D_rand": "D_rand", "D_det": "D_det"},
        columns={"test acc": _clean},
        paper={"D": (95.3,), "D_rand": (63.3,), "D_det": (43.7,)},
        paper_dataset="cifar10",
    ),
    "mart-table2-mnist": Table(
        title="[MART] Table 2 (MNIST columns): white-box accuracy, linf eps 0.3",
        source="SPEC §6 (SmallCNN, 100 epochs)",
        rows={"pgd": "Standard AT", "trades": "TRADES", "mart": "MART"},
        columns={"natural": _clean, "FGSM": _attack("fgsm"), "PGD-20": _attack("pgd-20"), "CW-20": _attack("cw-20")},
        paper={"pgd": (99.11, 97.17, 94.62, 94.25), "trades": (99.25, 96.67, 94.58, 94.03),
               "mart": (98.74, 97.87, 96.48, 96.10)},
        paper_dataset="mnist",
    ),
}


@dataclass
class Entry:
    table: str
    row: str           # may carry a suffix "@model" (e.g. D_det@vgg16)
    dataset: str
    run: Run
    state: str
    metrics: dict[str, Any] | None
    run_dir: Path | None = None  # the run's folder in the store (renderers read its artifacts)


# A renderer draws one figure or table from runs whose metrics are not a plain accuracy table (weight
# pictures, curves over a grid). A stage names it with ``report = { render = ["NAME"] }``; the
# renderer gets every Entry of that name in one spec (done or not; ``metrics`` is None when not done),
# the output folder, a file-name stem and a caption naming the spec and command, writes its PNG/PDF
# there and returns the Markdown lines for REPORT.md (it must list the MISSING entries itself).
Renderer = Callable[[list["Entry"], Path, str, str], list[str]]
RENDERERS: dict[str, Renderer] = {}


def register_renderer(name: str) -> Callable[[Renderer], Renderer]:
    def deco(fn: Renderer) -> Renderer:
        RENDERERS[name] = fn
        return fn

    return deco


def load_plugins() -> None:
    """Import every ``figures/report_*.py`` so its TABLES entries and RENDERERS are registered."""
    import importlib

    for path in sorted(Path(__file__).resolve().parent.glob(PLUGIN_GLOB)):
        importlib.import_module(f"figures.{path.stem}")


def _fill(template: str, run: Run) -> str:
    axes = {k.lstrip("_"): v for k, v in {**run.config, **run.axes}.items()}
    try:
        return template.format(**axes)
    except KeyError as err:
        raise ValueError(f"report row {template!r} of stage {run.stage!r} names unknown axis {err}") from err


def collect(spec: Spec, store: Store) -> list[Entry]:
    load_plugins()
    entries = []
    for run in expand(spec):
        for name in run.report.get("render", []):
            if name not in RENDERERS:
                raise ValueError(f"stage {run.stage!r}: unknown report renderer {name!r}; known: {sorted(RENDERERS)}")
            state = store.state(run.hash)
            metrics = store.metrics(run.hash) if state == "done" else None
            entries.append(Entry(f"render:{name}", name, str(run.config.get("dataset", "?")), run, state, metrics,
                                 store.run_dir(run.hash)))
        for tag in run.report.get("rows", []):
            table, _, row = tag.partition(":")
            if table not in TABLES:
                raise ValueError(f"stage {run.stage!r}: unknown report table {table!r}; known: {sorted(TABLES)}")
            state = store.state(run.hash)
            metrics = store.metrics(run.hash) if state == "done" else None
            dataset = str(run.config.get("dataset", "?"))
            entries.append(Entry(table, _fill(row, run), dataset, run, state, metrics))
    return entries


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def _paper_values(table: Table, row: str, dataset: str) -> tuple[float, ...] | None:
    base = row.split("@")[0]
    if dataset.split("-")[0] != table.paper_dataset.split("-")[0]:
        return None  # the paper published no number for this dataset
    if "@" in row and not row.endswith("@resnet50"):
        return None  # Table 1 is for ResNet-50; other architectures are Fig 3 (read off a figure)
    return table.paper.get(base)


def _markdown_table(table: Table, entries: list[Entry]) -> list[str]:
    dataset = entries[0].dataset
    cols = list(table.columns)
    head = ["training", *[f"ours: {c}" for c in cols], *[f"paper: {c}" for c in cols], "run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        label = table.rows.get(e.row.split("@")[0], e.row) + (f" ({e.row.split('@')[1]})" if "@" in e.row else "")
        if e.metrics is None:
            ours = [f"MISSING ({e.state})"] + [""] * (len(cols) - 1)
        else:
            ours = [pct(fn(e.metrics)) for fn in table.columns.values()]
        paper = _paper_values(table, e.row, dataset)
        theirs = [f"{v:.2f}" for v in paper] if paper else ["—"] * len(cols)
        lines.append("| " + " | ".join([label, *ours, *theirs, f"`{e.run.hash}`"]) + " |")
    return lines


def _figure(table: Table, entries: list[Entry], path: Path, caption: str) -> list[Path]:
    """Grouped bars, ours (solid) beside the paper (hatched); only runs that are done are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [e for e in entries if e.metrics is not None]
    cols = list(table.columns)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(done) * len(cols) / 2 + 1.5, 3.6))
    width = 0.8 / (2 * len(cols))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (col, fn) in enumerate(table.columns.items()):
        ours = [100 * (fn(e.metrics) or 0.0) for e in done]
        xs = [i + (2 * j) * width for i in range(len(done))]
        ax.bar(xs, ours, width, color=colors[j % len(colors)], label=f"ours: {col}")
        paper = [_paper_values(table, e.row, e.dataset) for e in done]
        px = [x + width for x, p in zip(xs, paper) if p]
        pv = [p[j] for p in paper if p]
        if pv:
            ax.bar(px, pv, width, color="white", edgecolor=colors[j % len(colors)], hatch="//",
                   label=f"paper: {col}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(done))])
    ax.set_xticklabels([e.row for e in done], rotation=15)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{table.title.split(':')[0]} — {entries[0].dataset}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.text(0.01, 0.01, caption, fontsize=6, wrap=True)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    outs = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for out in outs:
        fig.savefig(out, dpi=130)
    plt.close(fig)
    return outs


# [IL] Fig 3 (SPEC §5): architectures trained on D_det built from a standard ResNet-50; x = their test
# accuracy, y = success rate of the ResNet-50's adversarial examples on them (read off the figure).
IL_FIG3_PAPER: dict[str, tuple[float, float]] = {
    "VGG-16": (27.9, 65.7), "Inception-v3": (39.4, 82.8), "ResNet-18": (40.8, 92.1),
    "DenseNet": (41.7, 92.7), "ResNet-50": (44.7, 98.7)}


@register_renderer("il-fig3")
def render_il_fig3(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    """Transfer runs (kind ``transfer`` with a ``det`` input): test accuracy after training on D_det
    against the transfer success of the source model's adversarial examples, ours beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = "[IL] Figure 3: transfer success vs test accuracy after training on D_det"
    lines = [f"### {title}", "",
             "Paper numbers: SPEC §5 (CIFAR-10, source ResNet-50; read off the figure). Ours: the spec's source "
             "model's untargeted adversarial examples on each architecture trained on D (transfer success = "
             "fraction of the test images it classifies correctly that the examples flip), and the same "
             "architecture trained on D_det scored on the real test set.", "",
             "| architecture | dataset | ours: test acc on D_det | ours: transfer success | target clean acc | "
             "source clean acc | attack | run |", "|---|---|---|---|---|---|---|---|"]
    done = []
    for e in entries:
        arch = str(e.run.config.get("model", e.run.axes.get("model", "?")))
        m = e.metrics
        if m is None:
            lines.append(f"| {arch} | {e.dataset} | MISSING ({e.state}) | | | | | `{e.run.hash}` |")
            continue
        x, y = m.get("det_test_acc"), m.get("transfer_success")
        lines.append(f"| {arch} | {e.dataset} | {pct(x)} | {pct(y)} | {pct(m.get('target_clean'))} | "
                     f"{pct(m.get('source_clean'))} | {m.get('attack')} {m.get('norm')} eps {m.get('eps')} | `{e.run.hash}` |")
        if x is not None and y is not None:
            done.append((arch, 100 * x, 100 * y))
    lines += ["", "| paper architecture | test acc on D_det | transfer success |", "|---|---|---|"]
    lines += [f"| {a} | {x:.1f} | {y:.1f} |" for a, (x, y) in IL_FIG3_PAPER.items()]
    if not done:
        return lines + ["", "No figure: every transfer run is MISSING."]
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    ax.scatter([d[1] for d in done], [d[2] for d in done], color="C0", label="ours (CPU scale)", zorder=3)
    for arch, x, y in done:
        ax.annotate(arch, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color="C0")
    px = [v[0] for v in IL_FIG3_PAPER.values()]
    py = [v[1] for v in IL_FIG3_PAPER.values()]
    ax.scatter(px, py, facecolors="white", edgecolors="C1", marker="s", label="paper (CIFAR-10, ResNet-50 source)")
    nudge = {"ResNet-18": (-50, -4), "ResNet-50": (6, -2)}  # three paper points nearly coincide
    for arch, (x, y) in IL_FIG3_PAPER.items():
        ax.annotate(arch, (x, y), textcoords="offset points", xytext=nudge.get(arch, (4, -9)), fontsize=7, color="C1")
    ax.set_xlabel("test accuracy after training on D_det (%)")
    ax.set_ylabel("transfer success of source adversarial examples (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title.split(":")[0] + f" — {', '.join(sorted({e.dataset for e in entries}))}", fontsize=10)
    fig.text(0.01, 0.01, caption, fontsize=6, wrap=True)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    for suffix in (".png", ".pdf"):
        fig.savefig(out_dir / f"{stem}{suffix}", dpi=130)
    plt.close(fig)
    return lines + ["", f"![{title}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


MAIN_SPEC = "laptop"


def default_specs(store: Store | None = None) -> list[Path]:
    """The main job's spec, plus every other shipped spec with at least one run in the store."""
    present = set(store.all_hashes()) if store is not None else set()
    chosen = []
    for path in sorted(SPEC_DIR.glob("*.toml")):
        if path.stem == MAIN_SPEC or (present and any(r.hash in present for r in expand(load_spec(path)))):
            chosen.append(path)
    return chosen


def write_report(store: Path | str, out: Path | str, specs: Sequence[Path | str] | None = None) -> Path:
    """Write ``out/REPORT.md`` and ``out/exp-*.png|pdf`` from the store; return the REPORT.md path.
    ``specs``: spec files to report on (default: :func:`default_specs`)."""
    store_obj = Store(store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec_paths = [Path(p) for p in (specs if specs is not None else default_specs(store_obj))]
    lines = ["# Experiment report", "",
             f"Generated from the result store `{store_obj.root}` by `figures/report.py`. Every number "
             "below was read from a run's `metrics.json`; a run that is not done is listed as MISSING.", ""]
    if (out / "theory_captions.md").exists():  # written by `python -m figures theory` into the same folder
        lines += ["The theory figures and their captions: [theory_captions.md](theory_captions.md).", ""]
    missing_all: list[str] = []
    for spec_path in spec_paths:
        spec = load_spec(spec_path)
        runs = expand(spec)
        states = {r.hash: store_obj.state(r.hash) for r in runs}
        shipped = spec_path.resolve().parent == SPEC_DIR and spec_path.stem == spec.name
        spec_arg = spec.name if shipped else str(spec_path)
        command = f"python -m ray_jobs run {spec_arg} --store {store_obj.root}"
        lines += [f"## Spec `{spec.name}`", "", spec.description, "",
                  f"Produced by `{command}` (spec file `{spec_path}`), then "
                  f"`python -m figures report --store {store_obj.root}`.", "",
                  "Runs: " + ", ".join(f"{s} {sum(1 for v in states.values() if v == s)}"
                                        for s in ("done", "failed", "blocked", "running", "pending")), ""]
        entries = collect(spec, store_obj)
        groups: dict[tuple[str, str], list[Entry]] = {}
        for e in entries:
            # a renderer sees all its runs at once, whatever their datasets
            groups.setdefault((e.table, "" if e.table.startswith("render:") else e.dataset), []).append(e)
        for (table_key, dataset), group in groups.items():
            if table_key.startswith("render:"):
                name = table_key.split(":", 1)[1]
                stem = f"exp-{spec.name}-{name}"
                caption = f"Spec {spec.name} ({spec_path.name}); command: {command}."
                lines += RENDERERS[name](group, out, stem, caption)
                lines.append("")
                continue
            table = TABLES[table_key]
            lines += [f"### {table.title} — `{dataset}`", "",
                      f"Paper numbers: {table.source}" + ("" if dataset.split("-")[0] == table.paper_dataset
                                                          else f"; none were published for `{dataset}`") + ".", ""]
            lines += _markdown_table(table, group)
            setting = sorted({f"{e.metrics.get('norm')} eps {e.metrics.get('eps')}, {e.metrics.get('n')} test images"
                              for e in group if e.metrics is not None and e.metrics.get("eps")})  # eps 0: clean only
            if setting:  # our attack setting can differ from the paper's (e.g. MNIST)
                lines += ["", "Our evaluation: " + "; ".join(setting) + "."]
            if any(e.metrics is not None for e in group):
                stem = f"exp-{spec.name}-{table_key}-{dataset}"
                caption = f"Spec {spec.name} ({spec_path.name}); command: {command}; hatched: paper ({table.source})."
                _figure(table, group, out / stem, caption)
                lines += ["", f"![{table.title}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]
            else:
                lines += ["", "No figure: every run of this table is MISSING."]
            lines.append("")
        missing = [r for r in runs if states[r.hash] != "done"]
        if missing:
            lines += [f"### Missing results of `{spec.name}` ({len(missing)} of {len(runs)} runs)", ""]
            for r in missing:
                status = store_obj.status(r.hash)
                why = f": {str(status.get('error')).splitlines()[0]}" if status.get("error") else ""
                lines.append(f"- MISSING `{r.hash}` {r.label()} — {states[r.hash]}{why}")
                missing_all.append(r.hash)
            lines.append("")
    lines += [f"Total missing runs: {len(missing_all)}.", ""]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures report", description="write REPORT.md from the store")
    parser.add_argument("--store", default="store")
    parser.add_argument("--out", default="figures/out")
    parser.add_argument("--spec", action="append", default=None,
                        help="spec file or name (repeatable; default: laptop + specs with runs in the store)")
    args = parser.parse_args(argv)
    specs = None
    if args.spec:
        from ray_jobs.cli import resolve_spec_path

        specs = [resolve_spec_path(s) for s in args.spec]
    path = write_report(Path(args.store), Path(args.out), specs)
    print(f"report written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
