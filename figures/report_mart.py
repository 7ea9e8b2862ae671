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
from typing import Any

from figures.paper_table import setting
from figures.report import Entry, pct, register_renderer
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


def _get(m: dict[str, Any], col: str) -> float | None:
    return dict(COLUMNS)[col](m)


def _missing(entries: list[Entry]) -> list[str]:
    return [f"- MISSING `{e.run.hash}` {e.run.label()} — {e.state}" for e in entries if e.metrics is None]


def _save(fig, out_dir: Path, stem: str, caption: str) -> list[str]:
    fig.text(0.01, -0.04, caption, fontsize=6, wrap=True)
    save(fig, out_dir, stem)
    return ["", f"![{stem}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


def _by_row(entries: list[Entry]) -> dict[tuple[str, str], Entry]:
    return {(dataset_of(e), row_of(e)): e for e in entries if e.run.kind == "eval"}


def _n(e: Entry) -> int:
    return int((e.metrics or {}).get("n", 0))


def _done_rows(by: dict[tuple[str, str], Entry], dataset: str, names: tuple[str, ...], lines: list[str],
               n_blank: int) -> Iterator[tuple[str, Entry]]:
    """(row, entry) for each of ``names`` on ``dataset`` with metrics, in order. Rows without an entry are
    skipped; for an entry without metrics a MISSING table row (then ``n_blank`` empty cells) is appended
    to ``lines`` as the loop reaches it, so the table keeps the order of ``names``."""
    for row in names:
        e = by.get((dataset, row))
        if e is None:
            continue
        if e.metrics is None:
            lines.append(f"| {ROW_LABELS.get(row, row)} | MISSING ({e.state}) |" + " |" * n_blank)
            continue
        yield row, e


def _diff_cell(a: Entry, b: Entry, col: str) -> str:
    """a − b in percentage points with ±2 standard errors of the difference (independent binomials)."""
    va, vb = _get(a.metrics, col), _get(b.metrics, col)
    if va is None or vb is None:
        return "—"
    s = 2 * math.hypot(se(va, _n(a)), se(vb, _n(b)))
    d = va - vb
    return f"{100 * d:+.1f} ± {100 * s:.1f}" + (" (within noise)" if abs(d) <= s else "")


# ------------------------------------------------------------------------------------------- Table 2
@register_renderer("mart-table2")
def render_table2(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    rows = _by_row(entries)
    datasets = sorted({d for d, r in rows if r in ("pgd", "trades", "mart")})
    lines = ["### [MART] Table 2: Standard AT vs TRADES vs MART (white-box accuracy, %)", "",
             "Each cell: ours (paper; ours − paper). Paper: SPEC §6 ([MART] Table 2; MNIST SmallCNN ε 0.3, "
             "CIFAR-10 ResNet-18 ε 8/255). Worst case = per example over clean + every attack of the suite "
             "(our stand-in for AutoAttack; SPEC §6 gives no such column for these rows).", ""]
    plotted: list[tuple[str, Entry]] = []
    for dataset in datasets:
        pk = paper_key(dataset)
        note = "" if pk == dataset else (f" (paper numbers are for full {pk})" if pk else " (no paper numbers)")
        lines += [f"`{dataset}`{note}:", "",
                  "| defence | " + " | ".join(c for c, _ in COLUMNS) + " | n | run |",
                  "|---|" + "---|" * (len(COLUMNS) + 2)]
        for row, e in _done_rows(rows, dataset, ("pgd", "trades", "mart"), lines, len(COLUMNS) + 1):
            paper = PAPER_TABLE2.get(pk or "", {}).get(row)
            cells = []
            for j, (col, _) in enumerate(COLUMNS):
                v = _get(e.metrics, col)
                if paper is not None and j < len(paper) and v is not None:
                    cells.append(f"{_pct(v)} ({paper[j]:.2f}; {100 * v - paper[j]:+.1f})")
                else:
                    cells.append(_pct(v))
            lines.append(f"| {ROW_LABELS[row]} | " + " | ".join(cells) + f" | {_n(e)} | `{e.run.hash}` |")
            plotted.append((dataset, e))
        lines.append("")
    if plotted:
        fig, axes = subplots(1, len(datasets), figsize=(6.5 * len(datasets), 3.4), squeeze=False)
        colors = colour_cycle()
        for ax, dataset in zip(axes[0], datasets):
            done = [e for d, e in plotted if d == dataset]
            width = 0.8 / (2 * len(COLUMNS))
            for j, (col, _) in enumerate(COLUMNS):
                xs = [i + 2 * j * width for i in range(len(done))]
                ax.bar(xs, [100 * (_get(e.metrics, col) or 0.0) for e in done], width, color=colors[j],
                       label=f"ours: {col}")
                paper = [PAPER_TABLE2.get(paper_key(dataset) or "", {}).get(row_of(e)) for e in done]
                px = [x + width for x, p in zip(xs, paper) if p and j < len(p)]
                pv = [p[j] for p in paper if p and j < len(p)]
                if pv:
                    ax.bar(px, pv, width, color="white", edgecolor=colors[j], hatch="//", label=f"paper: {col}")
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(done))])
            ax.set_xticklabels([ROW_LABELS[row_of(e)] for e in done], fontsize=8)
            ax.set_ylim(0, 100)
            ax.set_ylabel("accuracy (%)")
            ax.set_title(f"[MART] Table 2 — {dataset}\n{setting(done)}", fontsize=9)
        axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        lines += _save(fig, out_dir, stem, caption + " Solid: ours; hatched: paper (SPEC §6).")
    else:
        lines.append("No figure: every Table 2 run is MISSING.")
    missing = [e for e in entries if row_of(e) in ("pgd", "trades", "mart") and e.metrics is None]
    return lines + ([""] + _missing(missing) if missing else [])


# ------------------------------------------------------------------------------------------- comparisons
def _comparison(entries: list[Entry], out_dir: Path, stem: str, caption: str, *, title: str, claim: str,
                base: str, rows: tuple[str, ...]) -> list[str]:
    """A table of natural / PGD-20 / CW-20 / worst-case accuracy per row and the difference to ``base``,
    with a bar figure; used by the ablation, S⁻/S⁺ and unlabeled renderers."""
    by = _by_row(entries)
    lines = [f"### {title}", "", f"Paper: {claim}", "",
             "Worst case: per example over clean + the attacks that run was evaluated with (its `n` test images); "
             "a run evaluated with PGD-20 only has no CW-20 and its worst case is clean ∧ PGD-20.", ""]
    cols = ("natural", "PGD-20", "CW-20", "worst case")
    drawn: list[tuple[str, Entry]] = []
    for dataset in sorted({d for d, r in by if r in (base, *rows)}):
        b = by.get((dataset, base))
        lines += [f"`{dataset}`:", "", "| training | " + " | ".join(cols) + f" | PGD-20 − {ROW_LABELS.get(base, base)} "
                  "(pp, ± 2 SE) | n | run |", "|---|" + "---|" * (len(cols) + 3)]
        for row, e in _done_rows(by, dataset, (base, *rows), lines, len(cols) + 2):
            diff = "—" if row == base or b is None or b.metrics is None else _diff_cell(e, b, "PGD-20")
            lines.append(f"| {ROW_LABELS.get(row, row)} | " + " | ".join(_pct(_get(e.metrics, c)) for c in cols)
                         + f" | {diff} | {_n(e)} | `{e.run.hash}` |")
            drawn.append((dataset, e))
        lines.append("")
    if drawn:
        fig, ax = subplots(figsize=(1.6 + 1.3 * len(drawn), 3.2))
        colors = colour_cycle()
        width = 0.8 / len(cols)
        for j, col in enumerate(cols):
            pts = [(i, _get(e.metrics, col), _n(e)) for i, (_, e) in enumerate(drawn)]
            pts = [(i, v, n) for i, v, n in pts if v is not None]  # a run not evaluated with this attack: no bar
            ax.bar([i + j * width for i, _, _ in pts], [100 * v for _, v, _ in pts], width,
                   yerr=[200 * se(v, n) for _, v, n in pts], capsize=2, color=colors[j], label=col)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(drawn))])
        ax.set_xticklabels([SHORT.get(row_of(e), row_of(e)) for _, e in drawn], fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%) ± 2 SE")
        ax.set_title(f"{title}\n{setting([e for _, e in drawn])}", fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        lines += _save(fig, out_dir, stem, caption)
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
    series: dict[tuple[str, str], list[tuple[float, float, float, float, int]]] = {}
    for e in sorted(grid, key=lambda e: (dataset_of(e), _family(row_of(e)), _weight(e, _family(row_of(e))) or 0)):
        fam = _family(row_of(e))
        w = _weight(e, fam)
        name = "MART λ" if fam == "mart" else "TRADES β"
        if e.metrics is None:
            lines.append(f"| {name} ({dataset_of(e)}) | {'?' if w is None else f'{w:g}'} | MISSING ({e.state}) | | | "
                         f"`{e.run.hash}` |")
            continue
        nat, pgd = e.metrics.get("clean"), (e.metrics.get("attacks") or {}).get("pgd-20")
        lines.append(f"| {name} ({dataset_of(e)}) | {w:g} | {_pct(nat)} | {_pct(pgd)} | {_n(e)} | `{e.run.hash}` |")
        if nat is not None and pgd is not None and w is not None:
            series.setdefault((dataset_of(e), fam), []).append((w, nat, pgd, se(pgd, _n(e)), _n(e)))
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
