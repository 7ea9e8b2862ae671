"""Report plugin ``aa-check``: AutoAttack re-check of the robust models on a small test subset (issue 11 item 5).

Eval stages that only re-evaluate robust models with AutoAttack (and a PGD attack on the same images)
tag their runs ``report = { rows = ["aa-check:ROW"] }``. Known row keys (any other key is shown as is):

| row key                                   | model                                        |
|-------------------------------------------|----------------------------------------------|
| ``std-D`` / ``adv-D``                     | [IL] standard / adversarial training on D    |
| ``std-DR`` / ``std-DNR``                  | [IL] standard training on D̂_R / D̂_NR        |
| ``mart-pgd`` / ``mart-trades`` / ``mart-mart`` | [MART] Table 2: Standard AT, TRADES, MART |
| ``mart-mart-no-weight`` ... ``mart-mart-unlabeled`` | [MART] loss ablations, λ / β, S⁻ / S⁺, pseudo-labels |
| ``gf-mlp-adv``                            | [GF] FGSM adversarial training (MLP)          |
| ``ts-linf-E`` / ``ts-l2-E``               | [TS] PGD adversarial training at ε_train E   |
| ``tsc-std`` / ``tsc-l2-0.5``              | [TS] the CIFAR-subset models of the pictures |

One table per spec, rows by dataset then the order above; runs that differ only in seed are one row,
mean ± sd (figures/aggregate.py). The AA and PGD numbers and the warnings come from figures/robust.py.
Under the table, the *conclusion check*: for each dataset and threat with both rows of a compared pair
(D̂_R vs D̂_NR, MART vs Standard AT), the difference under PGD and under AutoAttack and whether the
ordering survives AutoAttack.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deep.units import format_eps, parse_eps  # torch-free (deep/units.py)
from figures.aggregate import SeedGroup, cell, seed_groups
from figures.report import Entry, register_renderer
from figures.robust import aa_accuracy, aa_exact, aa_gap, aa_suite, pgd_accuracy, pgd_suite, warning_lines

ROW_LABELS: dict[str, str] = {
    "std-D": "standard training on D", "adv-D": "adversarial training on D",
    "std-DR": "standard training on D̂_R", "std-DNR": "standard training on D̂_NR",
    "mart-pgd": "[MART] Standard AT (Madry)", "mart-trades": "TRADES", "mart-mart": "MART",
    "mart-mart-no-weight": "MART without the (1 − p) weight", "mart-mart-no-kl": "MART without the KL term",
    "mart-mart-ce": "MART with CE in place of BCE", "mart-mart-lam-1": "MART λ 1", "mart-mart-lam-20": "MART λ 20",
    "mart-trades-beta-5": "TRADES β 5", "mart-trades-beta-20": "TRADES β 20",
    "mart-pgd-perturb-correct": "Standard AT, S⁻ left natural",
    "mart-pgd-perturb-misclassified": "Standard AT, S⁺ left natural",
    "mart-mart-unlabeled": "MART + 1,500 pseudo-labeled images",
    "tsc-std": "[TS] standard training (cifar-cnn)",
    "tsc-l2-0.5": "[TS] adversarial training, ℓ2 ε_train = 0.5 (cifar-cnn)",
    "gf-mlp-adv": "[GF] FGSM adversarial training (MLP, α = 0.5)"}
ROW_ORDER: tuple[str, ...] = tuple(ROW_LABELS)


@dataclass(frozen=True)
class Pair:
    """Two rows whose ordering is a published conclusion: ``first`` − ``second`` is the difference shown."""

    first: str
    second: str
    text: str


PAIRS: tuple[Pair, ...] = (Pair("std-DR", "std-DNR", "D̂_R vs D̂_NR"),
                           Pair("mart-mart", "mart-pgd", "MART vs Standard AT"))
TITLE = "AutoAttack re-check of the robust models"
_NORMS = {"linf": "ℓ∞", "l2": "ℓ2"}


def label(row: str) -> str:
    if row.startswith("ts-") and "-" in row[3:]:  # ts-linf-0.1: one row per eps_train of the Tsipras grid
        norm, _, eps = row[3:].partition("-")
        return f"[TS] adversarial training, {_NORMS.get(norm, norm)} ε_train = {eps}"
    return ROW_LABELS.get(row, row)


def _sort_key(g: SeedGroup) -> tuple[Any, ...]:
    row = g.first.row
    known = ROW_ORDER.index(row) if row in ROW_ORDER else len(ROW_ORDER)
    return g.first.dataset, known, row, threat(g)


def _setting(g: SeedGroup, key: str) -> Any:
    """A setting of the row: from a done result, else from the run's config."""
    for e in g.done:
        if e.metrics.get(key) is not None:
            return e.metrics.get(key)
    return g.first.run.config.get(key)


def threat(g: SeedGroup) -> str:
    """The row's norm and ε ("ℓ2 ε = 0.25"); "?" for what neither the result nor the config names."""
    norm, eps = _setting(g, "norm"), _setting(g, "eps")
    return f"{_NORMS.get(norm, norm or '?')} ε = {'?' if eps is None else format_eps(parse_eps(eps))}"


def _n(g: SeedGroup) -> str:
    ns = list(dict.fromkeys(e.metrics.get("n") for e in g.done))
    return "/".join(str(n) for n in ns)


def subset_size(groups: list[SeedGroup]) -> str:
    """The N of the title: the stages' ``first_n`` (else the results' n); several values joined by "/"."""
    sizes = [e.run.config.get("first_n") for g in groups for e in g.entries]
    if None in sizes:
        sizes = [s for s in sizes if s is not None] + [e.metrics.get("n") for g in groups for e in g.done]
    shown = list(dict.fromkeys(str(s) for s in sizes if s is not None))
    return "/".join(shown) or "?"


def _row(g: SeedGroup, mixed: bool) -> str:
    """A table row; ``mixed``: the table's rows ran different PGD attacks, so each PGD cell names its own."""
    e = g.first
    head = f"| {label(e.row)} | {e.dataset} | {threat(g)} |"
    if not g.done:
        return f"{head} MISSING ({g.state()}) | | | | | {g.hashes()} |"
    pgd = cell(g, pgd_accuracy, 1) + (f" ({pgd_suite(e.metrics for e in g.done)})" if mixed else "")
    return (f"{head} {_n(g)} | {cell(g, lambda m: m.get('clean'), 1)} | {pgd} | "
            f"{cell(g, aa_accuracy, 1)} | {cell(g, aa_gap, 1, signed=True)} | {g.hashes()} |")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _diff(a: SeedGroup, b: SeedGroup, value: Any) -> float | None:
    """Mean of ``a`` − mean of ``b`` in points (fractions × 100); None unless both have the value."""
    sa, sb = a.stat(value), b.stat(value)
    return None if sa is None or sb is None else 100 * (sa.mean - sb.mean)


def ordering_line(pair: Pair, where: str, a: SeedGroup, b: SeedGroup) -> str:
    """One conclusion-check bullet: the difference under PGD and under AutoAttack, and whether they agree."""
    pgd, aa = _diff(a, b, pgd_accuracy), _diff(a, b, aa_accuracy)
    text = (f"- {where}: {pair.text} under PGD: {'—' if pgd is None else f'{pgd:+.1f} pp'}; "
            f"under AutoAttack: {'—' if aa is None else f'{aa:+.1f} pp'}")
    if pgd is None or aa is None:
        return text + " (cannot compare: a number is missing)"
    if _sign(pgd) == _sign(aa):
        verdict = "same ordering"
    else:
        verdict = "ordering flips" if _sign(pgd) * _sign(aa) < 0 else "a tie under one attack only"
    return f"{text} ({verdict}{_attacks_differ(a, b)})"


def _attacks_differ(a: SeedGroup, b: SeedGroup) -> str:
    """"; attacks differ: …" when the two rows ran different PGD or AA attacks (the difference then mixes
    attack strength with model robustness), else ""."""
    ra, rb = [e.metrics for e in a.done], [e.metrics for e in b.done]
    pairs = [(pgd_suite(ra), pgd_suite(rb)), (aa_suite(ra), aa_suite(rb))]
    differ = [f"{x} vs {y}" for x, y in pairs if x != y]
    return "; attacks differ: " + ", ".join(differ) if differ else ""


def conclusion_check(groups: list[SeedGroup]) -> list[str]:
    """The bullets of every compared pair present (with a done run) on one dataset and threat."""
    by = {(g.first.dataset, threat(g), g.first.row): g for g in groups if g.done}
    lines = []
    for dataset, thr in dict.fromkeys((d, t) for d, t, _ in by):
        for pair in PAIRS:
            a, b = by.get((dataset, thr, pair.first)), by.get((dataset, thr, pair.second))
            if a is not None and b is not None:
                lines.append(ordering_line(pair, f"{dataset}, {thr}", a, b))
    return lines


def _caption(results: list[Any], pgd: str) -> str:
    how = ("the per-example worst case over the AA entries" if all(aa_exact(r) for r in results) else
           "the minimum of the AA entries' accuracies (some results keep no per-example correctness, so the "
           "true worst case can be lower)")
    return (f"The AutoAttack number is {how}, and the {pgd} number is measured on the same images; "
            "gap = PGD − AutoAttack in percentage points (positive: PGD overestimated robustness).")


@register_renderer("aa-check")
def render_aa_check(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    groups = sorted(seed_groups(e for e in entries if e.run.kind == "eval"), key=_sort_key)
    results = [e.metrics for g in groups for e in g.done]
    pgd, aa = pgd_suite(results), aa_suite(results)
    lines = [f"### {TITLE} (first {subset_size(groups)} test images)", "", _caption(results, pgd), "",
             f"| model | dataset | threat | n | clean | {pgd} | AutoAttack ({aa or '—'}) | gap (pp) | run |",
             "|---|---|---|---|---|---|---|---|---|", *(_row(g, " / " in pgd) for g in groups), "", f"*{caption}*", "",
             "**Conclusion check** (does AutoAttack change an ordering the README states?):", ""]
    checks = conclusion_check(groups)
    lines += checks or ["- no compared pair (std-DR with std-DNR, mart-mart with mart-pgd) has both rows done "
                        "on one dataset and threat."]
    lines += warning_lines((label(e.row), e.run.hash, e.metrics) for g in groups for e in g.done)
    return lines
