"""The generic report table, for a spec whose stages carry no report tags: one row per run.

Columns: stage, the run's grid axes, its state, its main metrics, its hash. The main metrics are:
for an eval run (a deep.evaluation.EvalResult) clean, worst-case and per-attack accuracy in percent,
the threat model and n; for a train run (read as a deep.runfolder.TrainResult) the epochs done, the
last epoch's accuracies in percent and the training time; otherwise the first top-level numbers of the
result (fractions named in ``figures.report.FRACTION_KEYS`` in percent).
No figure: the runs of an arbitrary spec have nothing in common to plot. The warnings of the eval results
(figures/robust.py) are listed under the table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from figures.report import FRACTION_KEYS, GENERIC, Entry, pct, register_renderer
from figures.robust import warning_lines

MAX_NUMBERS = 6


def _number(key: str, v: Any) -> str:
    return f"{pct(v)}%" if key in FRACTION_KEYS else f"{v:g}"


def _eval_summary(r: Any) -> str:
    parts = [f"clean {pct(r.clean)}%", f"worst case {pct(r.worst_case)}%"]
    parts += [f"{name} {pct(v)}%" for name, v in r.attacks.items()]
    if r.eps:
        parts.append(f"{r.norm} eps {r.eps:g}")
    return ", ".join([*parts, f"n {r.n}"])


def _train_summary(m: dict[str, Any]) -> str | None:
    """Epochs, the last epoch's accuracies and the time of a train result; None when it is not one."""
    from deep.runfolder import TrainResult

    try:
        r = TrainResult.from_dict(m)
    except ValueError:
        return None
    accs = [f"{k} {pct(v)}%" for k, v in (r.last or {}).items() if k.endswith("_acc") and v is not None]
    seconds = [] if r.seconds_total is None else [f"{r.seconds_total:.0f} s"]
    return ", ".join([f"epochs {r.epochs_done}/{r.epochs}", *accs, *seconds])


def main_metrics(m: Any, kind: str = "") -> str:
    """A short summary of one result (see the module docstring)."""
    if hasattr(m, "worst_case"):  # an EvalResult
        return _eval_summary(m)
    if kind == "train" and (text := _train_summary(m)) is not None:
        return text
    numbers = [(k, v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_number(k, v)}" for k, v in numbers[:MAX_NUMBERS]) or "—"


@register_renderer(GENERIC)
def render_generic(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### Every run (this spec has no report tags)", "",
             "| stage | axes | state | main metrics | run |", "|---|---|---|---|---|"]
    for e in entries:
        axes = ", ".join(f"{k}={v}" for k, v in e.run.axes.items()) or "—"
        metrics = "" if e.metrics is None else main_metrics(e.metrics, e.run.kind)
        state = e.state if e.metrics is not None else f"MISSING ({e.state})"
        lines.append(f"| {e.run.stage} | {axes} | {state} | {metrics} | `{e.run.hash}` |")
    evals = [e for e in entries if e.metrics is not None and hasattr(e.metrics, "worst_case")]
    return lines + warning_lines((e.run.label(), e.run.hash, e.metrics) for e in evals)
