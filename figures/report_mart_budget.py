"""Report plugin for the equal-cost budget study of Madry vs TRADES vs MART (issue 12, item 4;
ray_jobs/specs/mart-budget.toml): renderer ``mart-budget``.

Each eval run carries the tags ``_r`` (``pgd`` / ``trades`` / ``mart``) and ``_first_n``; its model's recipe
(``EvalResult.extra["model_recipe"]``) gives the cost. **Budget** = attack gradient evaluations in training
= first_n × epochs × steps (one input gradient per example per inner step; equal for the three methods at
one budget, which is the point of the study).

Gaps are *paired*: the three models are evaluated on the same test images, so the standard error of
MART − X is the sd of the per-example differences of correctness / √n (from ``EvalResult.correct``), not
the two binomial errors combined. The crossing is where a least-squares line of the gap against
log10(budget) meets zero: an extrapolation from the measured points, reported only when the line rises
toward zero, and never drawn beyond where it was asked for.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from figures.report import Entry, pct, register_renderer
from figures.report_mart import COLUMNS, ROW_LABELS, _missing, _save, row_of
from figures.robust import aa_accuracy, warning_lines
from figures.style import colour_cycle, subplots

METHODS = ("pgd", "trades", "mart")
#: The robust numbers the gap is taken on: the paper's column, and the honest one (worst case over every
#: attack of the suite, AutoAttack included).
GAP_ON = (("PGD-20", "pgd-20"), ("worst case", "worst_case"))
CLAIM = ("[MART] Table 2 (MNIST, SmallCNN, ε 0.3, 100 epochs on 60k images): MART 96.48% PGD-20 against "
         "Madry 94.62% and TRADES 94.58%, i.e. MART leads by about +1.9 points.")


def budget(m: Any) -> int | None:
    """Attack gradient evaluations of the model's training (module docstring); None without a recipe."""
    r = m.extra.get("model_recipe") or {}
    if not all(isinstance(r.get(k), int) for k in ("first_n", "epochs", "steps")):
        return None
    return r["first_n"] * r["epochs"] * r["steps"]


def paired_gap(a: Any, b: Any, key: str) -> tuple[float, float] | None:
    """(mean, standard error) of a − b in correctness ``key`` over the same test images, or None when
    either lacks the per-example vector or they were evaluated on different numbers of images."""
    ca, cb = a.correct.get(key), b.correct.get(key)
    if ca is None or cb is None or len(ca) != len(cb):
        return None
    d = ca.astype(np.float64) - cb.astype(np.float64)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def crossing(points: list[tuple[int, float]]) -> str:
    """Where a least-squares line of gap (fraction) vs log10(budget) crosses zero, in words."""
    if len(points) < 2:
        return "too few budgets to fit a line"
    x = np.log10([b for b, _ in points])
    y = np.array([g for _, g in points])
    slope, icpt = np.polyfit(x, y, 1)
    per_decade = f"{100 * slope:+.1f} points per 10× budget"
    if y[-1] >= 0:
        return f"MART level or ahead at the largest budget ({per_decade})"
    if slope <= 0:
        return f"no crossing in sight: the gap does not shrink with budget ({per_decade})"
    cross = 10 ** (-icpt / slope)
    if cross <= max(b for b, _ in points):  # the fit crosses inside the grid, yet the last point is behind
        return (f"{per_decade}, but not monotone: the fitted line crosses 0 at ≈ {cross:.2g}, inside the "
                "measured range, and MART is behind again at the largest budget")
    return f"{per_decade}; the line reaches 0 at ≈ {cross:.2g} attack gradient evaluations (extrapolated)"


Grid = dict[int, dict[str, Entry]]  # budget -> method -> its done eval entry


def _rows(entries: list[Entry]) -> tuple[Grid, list[Entry]]:
    """The done eval entries by budget and method, and the eval entries that are not done."""
    table: Grid = {}
    missing = []
    for e in entries:
        if e.run.kind != "eval":
            continue
        r = row_of(e)
        b = budget(e.metrics) if e.metrics is not None else None
        if e.metrics is None or b is None or r not in METHODS:
            missing.append(e)
            continue
        table.setdefault(b, {})[r] = e
    return table, missing


def _table(table: Grid) -> list[str]:
    cols = [c for c, _ in COLUMNS]
    lines = ["| budget (attack grads) | images × epochs | method | " + " | ".join(cols) + " | AA (APGD-CE+T) | n | run |",
             "|---|---|---|" + "---|" * (len(cols) + 3)]
    for b in sorted(table):
        for r in METHODS:
            e = table[b].get(r)
            if e is None:
                lines.append(f"| {b:,} | | {ROW_LABELS[r]} | MISSING |" + " |" * (len(cols) + 2))
                continue
            m, rec = e.metrics, e.metrics.extra["model_recipe"]
            cells = [pct(fn(m), 1) for _, fn in COLUMNS] + [pct(aa_accuracy(m), 1)]
            lines.append(f"| {b:,} | {rec['first_n']:,} × {rec['epochs']} | {ROW_LABELS[r]} | " + " | ".join(cells)
                         + f" | {m.n} | `{e.run.hash}` |")
    return lines


def _gaps(table: Grid) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """{(other method, gap label): [(budget, MART − other, se)]} over the budgets where both are done."""
    out: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
    for b in sorted(table):
        mart = table[b].get("mart")
        for other in ("pgd", "trades"):
            o = table[b].get(other)
            for label, key in GAP_ON:
                g = paired_gap(mart.metrics, o.metrics, key) if mart is not None and o is not None else None
                if g is not None:
                    out.setdefault((other, label), []).append((b, *g))
    return out


def _figure(table: Grid, gaps: dict, out_dir: Path, stem: str, caption: str) -> list[str]:
    fig, (left, right) = subplots(1, 2, figsize=(10, 3.6))
    colors = dict(zip(METHODS, colour_cycle()))
    for r in METHODS:
        pts = [(b, table[b][r].metrics) for b in sorted(table) if r in table[b]]
        bs = [b for b, _ in pts]
        left.plot(bs, [100 * m.attacks.get("pgd-20", math.nan) for _, m in pts], "o-", color=colors[r],
                  label=f"{ROW_LABELS[r]}: PGD-20")
        left.plot(bs, [100 * m.worst_case for _, m in pts], "s--", color=colors[r], label=f"{ROW_LABELS[r]}: worst case")
    left.set_ylabel("robust accuracy (%)")
    left.set_title("Robust accuracy at equal cost", fontsize=9)
    for (other, label), pts in sorted(gaps.items()):
        style = "o-" if label == "PGD-20" else "s--"
        right.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[200 * p[2] for p in pts], fmt=style,
                       capsize=2, color=colors[other], label=f"MART − {ROW_LABELS[other]} ({label})")
    right.axhline(0.0, color="black", lw=0.8)
    right.set_ylabel("MART − other (points) ± 2 SE, paired")
    right.set_title("MART's gap against the budget", fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("attack gradient evaluations in training")
        ax.legend(fontsize=6)
    return _save(fig, out_dir, stem, caption)


@register_renderer("mart-budget")
def render_budget(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    table, missing = _rows(entries)
    lines = ["### Madry vs TRADES vs MART at equal cost, over the training budget", "", f"Paper: {CLAIM}", "",
             "Every row: MNIST SmallCNN, ℓ∞ ε 0.3, fine-tuned from one shared standard model with the same "
             "number of attack gradient evaluations per budget (ray_jobs/specs/mart-budget.toml). Worst case = "
             "per example over clean and every attack, AutoAttack's APGD-CE + APGD-T included.", ""]
    lines += _table(table) if table else ["No finished run."]
    gaps = _gaps(table)
    if gaps:
        lines += ["", "| MART − | on | " + " | ".join(f"{b:,}" for b in sorted(table)) + " | trend |",
                  "|---|---|" + "---|" * (len(table) + 1)]
        for (other, label), pts in sorted(gaps.items()):
            by = {b: (g, s) for b, g, s in pts}
            cells = [f"{100 * by[b][0]:+.1f} ± {200 * by[b][1]:.1f}" if b in by else "—" for b in sorted(table)]
            lines.append(f"| {ROW_LABELS[other]} | {label} | " + " | ".join(cells)
                         + f" | {crossing([(b, g) for b, g, _ in pts])} |")
        lines += ["", "Gaps in points ± 2 paired standard errors (module docstring of figures/report_mart_budget.py)."]
        lines += _figure(table, gaps, out_dir, stem, caption)
    lines += warning_lines((f"{ROW_LABELS[r]}, budget {b:,}", e.run.hash, e.metrics)
                           for b, row in sorted(table.items()) for r, e in row.items())
    return lines + ([""] + _missing(missing) if missing else [])
