"""Report plugin for [MART] Wang et al. 2020 vs TRADES vs Madry (SPEC §6): five renderers.

Every run of the MART specs carries a tag ``_r`` naming its training setting (the eval stages match
the train stages on it); the renderers pick their rows by that name:

| ``_r``                                   | setting                                               |
|------------------------------------------|-------------------------------------------------------|
| ``pgd`` / ``trades`` / ``mart``          | [MART] Table 2: Standard AT, TRADES (β of the spec), MART (λ of the spec) |
| ``mart-no-weight`` / ``mart-no-kl`` / ``mart-ce`` | the loss ablations                            |
| ``mart-lam-<λ>`` / ``trades-beta-<β>``    | the λ / β grids (``mart`` / ``trades`` are the grids' table points) |
| ``pgd-perturb-correct`` / ``pgd-perturb-misclassified`` | Standard AT attacking only S⁺ / only S⁻ |
| ``mart-unlabeled``                       | MART on labeled + pseudo-labeled data                 |

Renderers: ``mart-table2`` (Table 2 beside SPEC §6's numbers, bars), ``mart-ablation``,
``mart-sensitivity`` (natural and PGD-20 accuracy vs λ and β), ``mart-sets`` (S⁻/S⁺),
``mart-unlabeled`` (which also reads the ``mart-pseudolabel`` run for the pseudo-labels' accuracy).
Accuracies are fractions in the metrics and percent here. Each renderer lists its MISSING runs.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from figures.aggregate import SeedGroup, bar, cell, seed_groups
from figures.paper_table import setting
from figures.report import Entry, pct, register_renderer
from figures.robust import aa_accuracy, aa_gap, aa_note, aa_suite, warning_lines
from figures.style import colour_cycle, save, subplots

# SPEC §6, [MART] Table 2 (white-box accuracy, %): natural, FGSM, PGD-20, CW∞. MNIST: SmallCNN, ε = 0.3;
# CIFAR-10: ResNet-18, ε = 8/255. No worst-case / AutoAttack column was published for these rows.
PAPER_TABLE2: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "mnist": {"pgd": (99.11, 97.17, 94.62, 94.25), "trades": (99.25, 96.67, 94.58, 94.03),
              "mart": (98.74, 97.87, 96.48, 96.10)},
    "cifar10": {"pgd": (84.44, 61.89, 47.55, 45.98), "trades": (82.90, 62.82, 50.25, 48.29),
                "mart": (83.07, 65.65, 55.57, 54.87)},
}
ROW_LABELS = {"pgd": "Standard AT (Madry)", "trades": "TRADES", "mart": "MART",
              "mart-no-weight": "MART without the (1 − p_y) weight", "mart-no-kl": "MART without the KL term",
              "mart-ce": "MART with CE instead of BCE", "pgd-perturb-correct": "AT, S⁻ left natural (only S⁺ attacked)",
              "pgd-perturb-misclassified": "AT, S⁺ left natural (only S⁻ attacked)",
              "mart-unlabeled": "MART, labeled + pseudo-labeled", "mart-labeled-only": "MART, labeled part only"}
SHORT = {"pgd": "Standard AT", "trades": "TRADES", "mart": "MART", "mart-no-weight": "no (1−p) weight",
         "mart-no-kl": "no KL", "mart-ce": "CE not BCE", "pgd-perturb-correct": "S⁻ natural",
         "pgd-perturb-misclassified": "S⁺ natural", "mart-unlabeled": "MART + pseudo",
         "mart-labeled-only": "MART labeled"}
COLUMNS = (("natural", lambda m: m.get("clean")), ("FGSM", lambda m: (m.get("attacks") or {}).get("fgsm")),
           ("PGD-20", lambda m: (m.get("attacks") or {}).get("pgd-20")),
           ("CW-20", lambda m: (m.get("attacks") or {}).get("cw-20")), ("worst case", lambda m: m.get("worst_case")))
CLAIMS = {
    "ablation": "SPEC §6: removing the (1 − p) weight, the KL term, or both lowers robustness; replacing BCE by CE "
                "lowers it. SPEC gives no numbers for the ablations.",
    "sensitivity": "SPEC §6: MART's robustness is flat in λ over about 1–10, peaking near λ ≈ 6 (read off a figure). "
                   "SPEC gives no β-sensitivity numbers for TRADES.",
    "sets": "SPEC §6 ([MART] motivation): not perturbing the misclassified examples S⁻ during adversarial training "
            "hurts final robustness far more than not perturbing the correctly classified S⁺. SPEC gives no numbers.",
    "unlabeled": "[MART] also trains with extra pseudo-labeled data (Carmon et al.'s setting). SPEC §6 records no "
                 "number for it, so there is no paper value to compare with here.",
}


# ------------------------------------------------------------------------------------------- helpers
def row_of(e: Entry) -> str:
    return str(e.run.axes.get("_r", e.run.config.get("_r", "?")))


def dataset_of(e: Entry) -> str:
    return str(e.run.config.get("dataset", "?"))


def paper_key(dataset: str) -> str | None:
    """The dataset SPEC §6 published numbers for: cifar10 also stands for the CIFAR-10 subset (marked)."""
    base = dataset.split("-")[0]
    return base if base in PAPER_TABLE2 else None


def se(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p measured on n examples."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def _pct(v: float | None) -> str:
    return pct(v, 1)


def _missing(entries: list[Entry]) -> list[str]:
    return [f"- MISSING `{e.run.hash}` {e.run.label()} — {e.state}" for e in entries if e.metrics is None]


def _save(fig, out_dir: Path, stem: str, caption: str) -> list[str]:
    fig.text(0.01, -0.04, caption, fontsize=6, wrap=True)
    save(fig, out_dir, stem)
    return ["", f"![{stem}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


def _by_row(entries: list[Entry]) -> dict[tuple[str, str], SeedGroup]:
    """The eval entries by (dataset, ``_r``): the runs of one setting that differ only in seed are one group."""
    groups = seed_groups([e for e in entries if e.run.kind == "eval"], key=lambda e: (dataset_of(e), row_of(e)))
    return {(dataset_of(g.first), row_of(g.first)): g for g in groups}


def _n(e: Entry) -> int:
    return int((e.metrics or {}).get("n", 0))


def _done_rows(by: dict[tuple[str, str], SeedGroup], dataset: str, names: tuple[str, ...], lines: list[str],
               n_blank: int) -> Iterator[tuple[str, SeedGroup]]:
    """(row, group) for each of ``names`` on ``dataset`` with a done seed, in order. Rows without a group are
    skipped; for a group without any done seed a MISSING table row (then ``n_blank`` empty cells) is
    appended to ``lines`` as the loop reaches it, so the table keeps the order of ``names``."""
    for row in names:
        g = by.get((dataset, row))
        if g is None:
            continue
        if not g.done:
            lines.append(f"| {ROW_LABELS.get(row, row)} | MISSING ({g.state()}) |" + " |" * n_blank)
            continue
        yield row, g


def _mean_se(g: SeedGroup, col: str) -> tuple[float, float] | None:
    """(mean, standard error) of a column: over the seeds (sd / √k) when there are k > 1, else binomial."""
    s = g.stat(dict(COLUMNS)[col])
    if s is None:
        return None
    return s.mean, (s.sd / math.sqrt(s.n) if s.sd is not None else se(s.mean, _n(g.done[0])))


def _diff_cell(a: SeedGroup, b: SeedGroup, col: str) -> str:
    """a − b in percentage points with ±2 standard errors of the difference (independent estimates)."""
    ma, mb = _mean_se(a, col), _mean_se(b, col)
    if ma is None or mb is None:
        return "—"
    s = 2 * math.hypot(ma[1], mb[1])
    d = ma[0] - mb[0]
    return f"{100 * d:+.1f} ± {100 * s:.1f}" + (" (within noise)" if abs(d) <= s else "")


def _warnings(groups: list[tuple[str, SeedGroup]]) -> list[str]:
    return warning_lines((ROW_LABELS.get(row, row), e.run.hash, e.metrics) for row, g in groups for e in g.done)


# ------------------------------------------------------------------------------------------- Table 2
def _table2_cells(row: str, g: SeedGroup, paper: tuple[float, ...] | None, aa: bool) -> list[str]:
    cells = []
    for j, (_, fn) in enumerate(COLUMNS):
        s = g.stat(fn)
        if paper is not None and j < len(paper) and s is not None:
            cells.append(f"{s.text(1)} ({paper[j]:.2f}; {100 * s.mean - paper[j]:+.1f})")
        else:
            cells.append(cell(g, fn, 1))
    if aa:
        cells += [cell(g, aa_accuracy, 1), cell(g, aa_gap, 1, signed=True)]
    return cells


def _table2_figure(plotted: list[tuple[str, SeedGroup]], datasets: list[str], out_dir: Path, stem: str,
                   caption: str) -> list[str]:
    # Only datasets with a finished row get a panel (a dataset whose rows are all MISSING has no bars).
    datasets = [d for d in datasets if any(pd == d for pd, _ in plotted)]
    fig, axes = subplots(1, len(datasets), figsize=(6.5 * len(datasets), 3.4), squeeze=False)
    colors = colour_cycle()
    seeded = any(len(g.done) > 1 for _, g in plotted)
    for ax, dataset in zip(axes[0], datasets):
        done = [g for d, g in plotted if d == dataset]
        width = 0.8 / (2 * len(COLUMNS))
        for j, (col, fn) in enumerate(COLUMNS):
            xs = [i + 2 * j * width for i in range(len(done))]
            means, sds = zip(*(bar(g, fn) for g in done))
            ax.bar(xs, means, width, yerr=sds if seeded else None, capsize=2, color=colors[j], label=f"ours: {col}")
            paper = [PAPER_TABLE2.get(paper_key(dataset) or "", {}).get(row_of(g.first)) for g in done]
            px = [x + width for x, p in zip(xs, paper) if p and j < len(p)]
            pv = [p[j] for p in paper if p and j < len(p)]
            if pv:
                ax.bar(px, pv, width, color="white", edgecolor=colors[j], hatch="//", label=f"paper: {col}")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(done))])
        ax.set_xticklabels([ROW_LABELS[row_of(g.first)] for g in done], fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)" + (", mean ± sd over seeds" if seeded else ""))
        ax.set_title(f"[MART] Table 2 — {dataset}\n{setting([g.done[0] for g in done])}", fontsize=9)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, stem, caption + " Solid: ours; hatched: paper (SPEC §6).")


@register_renderer("mart-table2")
def render_table2(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    rows = _by_row(entries)
    datasets = sorted({d for d, r in rows if r in ("pgd", "trades", "mart")})
    lines = ["### [MART] Table 2: Standard AT vs TRADES vs MART (white-box accuracy, %)", "",
             "Each cell: ours (paper; ours − paper). Paper: SPEC §6 ([MART] Table 2; MNIST SmallCNN ε 0.3, "
             "CIFAR-10 ResNet-18 ε 8/255). Worst case = per example over clean + every attack of the suite "
             "(SPEC §6 gives no such column for these rows). Runs that differ only in seed: mean ± sd (n seeds).", ""]
    plotted: list[tuple[str, SeedGroup]] = []
    for dataset in datasets:
        pk = paper_key(dataset)
        note = "" if pk == dataset else (f" (paper numbers are for full {pk})" if pk else " (no paper numbers)")
        groups = [g for (d, r), g in rows.items() if d == dataset and r in ("pgd", "trades", "mart")]
        suite = aa_suite(e.metrics for g in groups for e in g.done)
        aa_head = [f"AA ({suite})", "PGD − AA (pp)"] if suite else []
        lines += [f"`{dataset}`{note}:", "",
                  "| defence | " + " | ".join([c for c, _ in COLUMNS] + aa_head) + " | n | run |",
                  "|---|" + "---|" * (len(COLUMNS) + len(aa_head) + 2)]
        shown: list[tuple[str, SeedGroup]] = []
        for row, g in _done_rows(rows, dataset, ("pgd", "trades", "mart"), lines, len(COLUMNS) + len(aa_head) + 1):
            paper = PAPER_TABLE2.get(pk or "", {}).get(row)
            lines.append(f"| {ROW_LABELS[row]} | " + " | ".join(_table2_cells(row, g, paper, bool(suite)))
                         + f" | {_n(g.done[0])} | {g.hashes()} |")
            shown.append((row, g))
            plotted.append((dataset, g))
        if suite:
            lines += [""] + aa_note(e.metrics for g in groups for e in g.done)
        lines += _warnings(shown) + [""]
    if plotted:
        lines += _table2_figure(plotted, datasets, out_dir, stem, caption)
    else:
        lines.append("No figure: every Table 2 run is MISSING.")
    missing = [e for e in entries if row_of(e) in ("pgd", "trades", "mart") and e.metrics is None]
    return lines + ([""] + _missing(missing) if missing else [])


# ------------------------------------------------------------------------------------------- comparisons
def _comparison_figure(drawn: list[tuple[str, SeedGroup]], cols: tuple[str, ...], title: str, out_dir: Path,
                       stem: str, caption: str) -> list[str]:
    fig, ax = subplots(figsize=(1.6 + 1.3 * len(drawn), 3.2))
    colors = colour_cycle()
    width = 0.8 / len(cols)
    for j, col in enumerate(cols):
        pts = [(i, _mean_se(g, col)) for i, (_, g) in enumerate(drawn)]
        pts = [(i, ms) for i, ms in pts if ms is not None]  # a run not evaluated with this attack: no bar
        ax.bar([i + j * width for i, _ in pts], [100 * m for _, (m, _) in pts], width,
               yerr=[200 * s for _, (_, s) in pts], capsize=2, color=colors[j], label=col)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(drawn))])
    ax.set_xticklabels([SHORT.get(row_of(g.first), row_of(g.first)) for _, g in drawn], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%) ± 2 SE")
    ax.set_title(f"{title}\n{setting([g.done[0] for _, g in drawn])}", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, stem, caption)


def _comparison(entries: list[Entry], out_dir: Path, stem: str, caption: str, *, title: str, claim: str,
                base: str, rows: tuple[str, ...]) -> list[str]:
    """A table of natural / PGD-20 / CW-20 / worst-case accuracy per row and the difference to ``base``,
    with a bar figure; used by the ablation, S⁻/S⁺ and unlabeled renderers. Seeds: mean ± sd per cell; the
    difference's SE is then over the seeds (sd / √k) instead of binomial."""
    by = _by_row(entries)
    lines = [f"### {title}", "", f"Paper: {claim}", "",
             "Worst case: per example over clean + the attacks that run was evaluated with (its `n` test images); "
             "a run evaluated with PGD-20 only has no CW-20 and its worst case is clean ∧ PGD-20.", ""]
    cols = ("natural", "PGD-20", "CW-20", "worst case")
    drawn: list[tuple[str, SeedGroup]] = []
    for dataset in sorted({d for d, r in by if r in (base, *rows)}):
        b = by.get((dataset, base))
        lines += [f"`{dataset}`:", "", "| training | " + " | ".join(cols) + f" | PGD-20 − {ROW_LABELS.get(base, base)} "
                  "(pp, ± 2 SE) | n | run |", "|---|" + "---|" * (len(cols) + 3)]
        shown: list[tuple[str, SeedGroup]] = []
        for row, g in _done_rows(by, dataset, (base, *rows), lines, len(cols) + 2):
            diff = "—" if row == base or b is None or not b.done else _diff_cell(g, b, "PGD-20")
            lines.append(f"| {ROW_LABELS.get(row, row)} | " + " | ".join(cell(g, dict(COLUMNS)[c], 1) for c in cols)
                         + f" | {diff} | {_n(g.done[0])} | {g.hashes()} |")
            shown.append((row, g))
            drawn.append((dataset, g))
        lines += _warnings(shown) + [""]
    if drawn:
        lines += _comparison_figure(drawn, cols, title, out_dir, stem, caption)
    else:
        lines.append("No figure: every run of this comparison is MISSING.")
    missing = [e for e in entries if e.run.kind == "eval" and row_of(e) in (base, *rows) and e.metrics is None]
    return lines + ([""] + _missing(missing) if missing else [])


@register_renderer("mart-ablation")
def render_ablation(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    return _comparison(entries, out_dir, stem, caption, title="[MART] ablations of the MART loss",
                       claim=CLAIMS["ablation"], base="mart", rows=("mart-no-weight", "mart-no-kl", "mart-ce"))


@register_renderer("mart-sets")
def render_sets(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    return _comparison(entries, out_dir, stem, caption,
                       title="[MART] §3: adversarial training with S⁻ or S⁺ left unperturbed",
                       claim=CLAIMS["sets"], base="pgd", rows=("pgd-perturb-correct", "pgd-perturb-misclassified"))


@register_renderer("mart-unlabeled")
def render_unlabeled(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    # the baseline is MART on the labeled part alone: the Table 2 MART run when the labeled part is its
    # training set (mart.toml), else a run tagged mart-labeled-only (mart-paper.toml)
    base = "mart-labeled-only" if any(row_of(e) == "mart-labeled-only" for e in entries) else "mart"
    lines = _comparison(entries, out_dir, stem, caption, title="MART with pseudo-labeled extra data",
                        claim=CLAIMS["unlabeled"], base=base, rows=("mart-unlabeled",))
    for e in entries:
        if e.run.kind != "mart-pseudolabel":
            continue
        if e.metrics is None:
            lines += ["", f"- MISSING `{e.run.hash}` {e.run.label()} — {e.state} (the pseudo-labeled set)"]
            continue
        m = e.metrics
        lines += ["", f"Pseudo-labeled set (`{e.run.hash}`): the first {m.get('labeled_n')} training images of "
                  f"`{m.get('source_dataset')}` with their labels + the next {m.get('unlabeled_n')} labeled by a "
                  f"standard model trained on the labeled part; the pseudo-labels agree with the withheld true labels "
                  f"on {_pct(m.get('pseudo_label_accuracy'))}% of them."]
    return lines


# ------------------------------------------------------------------------------------------- λ / β
def _weight(e: Entry, family: str) -> float | None:
    """λ (MART) or β (TRADES) of the model behind an eval entry: from its recipe when done, else the tag."""
    key = "lam" if family == "mart" else "beta"
    recipe = (e.metrics or {}).get("model_recipe") or {}
    if key in recipe:
        return float(recipe[key])
    prefix = "mart-lam-" if family == "mart" else "trades-beta-"
    row = row_of(e)
    return float(row[len(prefix):]) if row.startswith(prefix) else None


def _sort_key(e: Entry) -> tuple[str, str, float]:
    fam = _family(row_of(e)) or ""
    return dataset_of(e), fam, _weight(e, fam) or 0.0


def _family(row: str) -> str | None:
    if row == "mart" or row.startswith("mart-lam-"):
        return "mart"
    if row == "trades" or row.startswith("trades-beta-"):
        return "trades"
    return None


@register_renderer("mart-sensitivity")
def render_sensitivity(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    grid = [e for e in entries if e.run.kind == "eval" and _family(row_of(e))]
    lines = ["### λ sensitivity of MART vs β sensitivity of TRADES", "", f"Paper: {CLAIMS['sensitivity']}", "",
             "| method | weight | natural | PGD-20 | n | run |", "|---|---|---|---|---|---|"]
    series: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for g in sorted(_by_row(grid).values(), key=lambda g: _sort_key(g.first)):
        e = g.done[0] if g.done else g.first
        fam = _family(row_of(e))
        w = _weight(e, fam)
        name = "MART λ" if fam == "mart" else "TRADES β"
        if not g.done:
            lines.append(f"| {name} ({dataset_of(e)}) | {'?' if w is None else f'{w:g}'} | MISSING ({g.state()}) | | | "
                         f"{g.hashes()} |")
            continue
        nat, pgd = _mean_se(g, "natural"), _mean_se(g, "PGD-20")
        lines.append(f"| {name} ({dataset_of(e)}) | {w:g} | {cell(g, dict(COLUMNS)['natural'], 1)} | "
                     f"{cell(g, dict(COLUMNS)['PGD-20'], 1)} | {_n(e)} | {g.hashes()} |")
        if nat is not None and pgd is not None and w is not None:
            series.setdefault((dataset_of(e), fam), []).append((w, nat[0], pgd[0], pgd[1]))
    if series:
        fams = ("mart", "trades")
        fig, axes = subplots(1, 2, figsize=(8.5, 3.2), sharey=True)
        for ax, fam in zip(axes, fams):
            for (dataset, f), pts in sorted(series.items()):
                if f != fam:
                    continue
                pts.sort()
                ws = [p[0] for p in pts]
                ax.plot(ws, [100 * p[1] for p in pts], "o-", label=f"natural ({dataset})")
                ax.errorbar(ws, [100 * p[2] for p in pts], yerr=[200 * p[3] for p in pts], fmt="s--", capsize=2,
                            label=f"PGD-20 ({dataset})")
            ax.set_xscale("log")
            ticks = sorted({p[0] for (d, f), pts in series.items() if f == fam for p in pts})
            if ticks:  # label the grid's own values instead of powers of ten
                ax.set_xticks(ticks)
                ax.set_xticklabels([f"{t:g}" for t in ticks])
                ax.minorticks_off()
            ax.set_xlabel("λ (MART)" if fam == "mart" else "β (TRADES)")
            ax.set_title("MART: accuracy vs λ" if fam == "mart" else "TRADES: accuracy vs β")
            if fam == "mart":
                ax.axvline(6.0, color="grey", lw=0.8, ls=":", label="paper's peak λ ≈ 6 (fig)")
            ax.legend(fontsize=6)
        fig.suptitle(setting([e for e in grid if e.metrics is not None]), fontsize=8)
        axes[0].set_ylabel("accuracy (%), PGD-20 ± 2 SE")
        axes[0].set_ylim(0, 100)
        lines += _save(fig, out_dir, stem, caption)
    else:
        lines += ["", "No figure: every run of the λ/β grids is MISSING."]
    missing = [e for e in grid if e.metrics is None]
    return lines + ([""] + _missing(missing) if missing else [])
