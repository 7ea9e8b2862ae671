"""A paper's accuracy table as a report renderer: ours beside the published numbers, as Markdown and bars.

:func:`register_table` registers a :class:`Table` under its name as a ``per_dataset`` renderer
(figures.report), fed by spec tags ``report = { rows = ["NAME:ROW"] }``. A row key may carry a model
suffix ``ROW@model`` (e.g. ``D_det@vgg16``); the paper's number is shown only when that model is the
table's ``paper_model`` and the dataset is the table's ``paper_dataset`` (a ``-subset`` variant counts
as the dataset). Accuracies are fractions in the metrics and percent here.

Runs of a row that differ only in their seed are one row, mean ± sd (figures/aggregate.py); the figure
draws the mean with ± 1 sd error bars. A table with a ``robust`` column gets, when any of its results
ran AutoAttack, three more columns after it (figures/robust.py): the PGD number, the AutoAttack number
(named by its suite, e.g. "APGD-CE+T") and the gap PGD − AA in points; rows without AutoAttack show
"—". Each result's warnings (attack flags, failed gradient-masking checks) are listed under the table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from deep.units import format_eps
from figures.aggregate import SeedGroup, bar, cell, seed_groups
from figures.report import Entry, register_renderer
from figures.robust import aa_accuracy, aa_gap, aa_note, aa_suite, pgd_accuracy, pgd_suite, warning_lines
from figures.style import colour_cycle, save, styled, subplots

Column = Callable[[Any], Any]  # reads one value from a deep.evaluation.EvalResult


@dataclass(frozen=True)
class Table:
    """A paper table: its rows (key → Markdown label), columns (name → value read from an EvalResult) and
    published numbers (percent, one per column) for ``paper_dataset`` / ``paper_model``."""

    title: str
    source: str
    rows: dict[str, str]
    columns: dict[str, Column]
    paper: dict[str, tuple[float, ...]]
    paper_dataset: str
    paper_model: str | None = None  # rows "KEY@model" get paper numbers only for this model
    figure_rows: dict[str, str] = field(default_factory=dict)  # key → tick label (mathtext); default: rows
    robust: str | None = None  # the column holding the robust number: AutoAttack columns go after it


def clean(r: Any) -> float:
    return r.clean


def worst(r: Any) -> float:
    return r.worst_case


def attack(name: str) -> Column:
    """The accuracy under attack ``name``; None (shown "—") when the run did not use that attack."""
    return lambda r: r.attacks.get(name)


def _split(row: str) -> tuple[str, str | None]:
    base, _, model = row.partition("@")
    return base, (model or None)


def paper_values(table: Table, row: str, dataset: str) -> tuple[float, ...] | None:
    base, model = _split(row)
    if dataset.split("-")[0] != table.paper_dataset.split("-")[0]:
        return None  # the paper published no number for this dataset
    if model is not None and model != table.paper_model:
        return None  # published for the paper's own architecture only
    return table.paper.get(base)


def _label(table: Table, row: str, labels: dict[str, str], sep: str = " ") -> str:
    base, model = _split(row)
    return labels.get(base, row) + (f"{sep}({model})" if model else "")


OurColumn = tuple[str, Column, bool]  # (header, value, shown as signed points instead of percent)


def our_columns(table: Table, groups: list[SeedGroup]) -> list[OurColumn]:
    """The table's columns, with PGD / AutoAttack / gap after ``table.robust`` when a result ran AutoAttack."""
    cols: list[OurColumn] = [(name, fn, False) for name, fn in table.columns.items()]
    results = [e.metrics for g in groups for e in g.done]
    suite = aa_suite(results)
    if table.robust is None or suite is None:
        return cols
    at = list(table.columns).index(table.robust) + 1
    extra = [(pgd_suite(results), pgd_accuracy, False), (f"AA ({suite})", aa_accuracy, False),
             ("PGD − AA (pp)", aa_gap, True)]
    return cols[:at] + extra + cols[at:]


def markdown(table: Table, entries: list[Entry]) -> list[str]:
    """The table's Markdown rows (one per seed group), the AA note and the warnings under it."""
    dataset = entries[0].dataset
    groups = seed_groups(entries)
    cols = our_columns(table, groups)
    head = ["training", *[f"ours: {c}" for c, _, _ in cols], *[f"paper: {c}" for c in table.columns], "run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        if not g.done:
            ours = [f"MISSING ({g.state()})"] + [""] * (len(cols) - 1)
        else:
            ours = [cell(g, fn, signed=signed) for _, fn, signed in cols]
        paper = paper_values(table, g.first.row, dataset)
        theirs = [f"{v:.2f}" for v in paper] if paper else ["—"] * len(table.columns)
        lines.append("| " + " | ".join([_label(table, g.first.row, table.rows), *ours, *theirs, g.hashes()]) + " |")
    if len(cols) > len(table.columns):
        lines += [""] + aa_note(e.metrics for g in groups for e in g.done)
    return lines + warning_lines((_label(table, e.row, table.rows), e.run.hash, e.metrics)
                                 for g in groups for e in g.done)


_NORMS = {"linf": r"$\ell_\infty$", "l2": r"$\ell_2$"}


def setting(entries: list[Entry]) -> str:
    """Our evaluation setting on the figure: norm, ε, the attacks and n (one clause per distinct setting)."""
    parts = []
    for e in entries:
        m = e.metrics
        if m is None or not m.get("eps"):
            continue
        attacks = ", ".join(m.get("attacks") or {}) or "none"
        text = f"{_NORMS.get(m.get('norm'), m.get('norm'))} ε = {format_eps(m['eps'])}, attacks: {attacks}, n = {m.get('n')}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts) if parts else "clean accuracy only"


def figure(table: Table, entries: list[Entry], out_dir: Path, stem: str, caption: str) -> bool:
    """Grouped bars, ours (solid) beside the paper (hatched) where it published a number; only runs that
    are done are drawn. Returns whether any paper bar was drawn."""
    groups = [g for g in seed_groups(entries) if g.done]
    done = [g.done[0] for g in groups]  # one done run per bar: its row, dataset and setting
    cols = list(table.columns)
    width = 0.8 / (2 * len(cols))
    hatched = False
    with styled():
        fig, ax = subplots(figsize=(1.6 + 1.4 * len(done) * len(cols) / 2 + 1.5, 3.9))
        colors = colour_cycle()
        for j, (col, fn) in enumerate(table.columns.items()):
            xs = [i + (2 * j) * width for i in range(len(done))]
            means, sds = zip(*(bar(g, fn) for g in groups))
            seeded = any(len(g.done) > 1 for g in groups)
            ax.bar(xs, means, width, yerr=sds if seeded else None, capsize=2, color=colors[j % len(colors)],
                   label=f"ours: {col}" + (" (mean ± sd over seeds)" if seeded else ""))
            paper = [paper_values(table, e.row, e.dataset) for e in done]
            pv = [(x + width, p[j]) for x, p in zip(xs, paper) if p]
            if pv:
                hatched = True
                ax.bar([x for x, _ in pv], [v for _, v in pv], width, color="white",
                       edgecolor=colors[j % len(colors)], hatch="//", label=f"paper: {col}")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(done))])
        ax.set_xticklabels([_label(table, e.row, {**table.rows, **table.figure_rows}, "\n") for e in done], fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{table.title.split(':')[0]} — {entries[0].dataset}\n{setting(done)}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.text(0.01, 0.01, caption, fontsize=6, wrap=True)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        save(fig, out_dir, stem, dpi=130, tight=False)
    return hatched


def _check_eval(table: Table, entries: list[Entry]) -> None:
    for e in entries:
        if e.metrics is not None and not hasattr(e.metrics, "worst_case"):
            raise ValueError(f"report table {table.title.split(':')[0]!r} reads eval results, but stage "
                             f"{e.run.stage!r} is of kind {e.run.kind!r}")


def render(table: Table, entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    """The Markdown section of one dataset's rows, with its figure when any run is done."""
    _check_eval(table, entries)
    dataset = entries[0].dataset
    published = dataset.split("-")[0] == table.paper_dataset
    lines = [f"### {table.title} — `{dataset}`", "",
             f"Paper numbers: {table.source}" + ("" if published else f"; none were published for `{dataset}`") + ".",
             ""] + markdown(table, entries)
    evaluated = sorted({f"{e.metrics.norm} eps {e.metrics.eps}, {e.metrics.n} test images"
                        for e in entries if e.metrics is not None and e.metrics.eps})  # eps 0: clean only
    if evaluated:  # our attack setting can differ from the paper's (e.g. MNIST)
        lines += ["", "Our evaluation: " + "; ".join(evaluated) + "."]
    if not any(e.metrics is not None for e in entries):
        return lines + ["", "No figure: every run of this table is MISSING."]
    base = caption.removesuffix(".")
    has_paper = any(paper_values(table, e.row, dataset) for e in entries if e.metrics is not None)
    caption = f"{base}; hatched: paper ({table.source})." if has_paper else \
        f"{base}; no paper numbers for `{dataset}` ({table.source})."
    figure(table, entries, out_dir, stem, caption)
    return lines + ["", f"![{table.title}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


def register_table(name: str, table: Table) -> Table:
    """Register ``table`` as the per-dataset renderer ``name``."""
    def draw(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
        return render(table, entries, out_dir, stem, caption)

    draw.__qualname__ = f"table[{name}]"
    register_renderer(name, per_dataset=True)(draw)
    return table
