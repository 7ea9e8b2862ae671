"""The generic report table, for a spec whose stages carry no report tags: one row per run.

Columns: stage, the run's grid axes, its state, its main metrics, its hash. The main metrics are the
accuracies of an eval result (clean, worst case, each attack, in percent, and n) and otherwise the
first top-level numbers of the result (fractions named in ``figures.report.FRACTION_KEYS`` in percent).
No figure: the runs of an arbitrary spec have nothing in common to plot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from figures.report import FRACTION_KEYS, GENERIC, Entry, pct, register_renderer

MAX_NUMBERS = 6


def _number(key: str, v: Any) -> str:
    return f"{pct(v)}%" if key in FRACTION_KEYS else f"{v:g}"


def main_metrics(m: dict[str, Any]) -> str:
    """A short summary of one result (see the module docstring)."""
    if "clean" in m and isinstance(m.get("attacks"), dict):
        parts = [f"clean {pct(m['clean'])}%"]
        if m.get("worst_case") is not None:
            parts.append(f"worst case {pct(m['worst_case'])}%")
        parts += [f"{name} {pct(v)}%" for name, v in m["attacks"].items()]
        if m.get("eps"):
            parts.append(f"{m.get('norm')} eps {m['eps']:g}")
        if m.get("n") is not None:
            parts.append(f"n {m['n']}")
        return ", ".join(parts)
    numbers = [(k, v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return ", ".join(f"{k} {_number(k, v)}" for k, v in numbers[:MAX_NUMBERS]) or "—"


@register_renderer(GENERIC)
def render_generic(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### Every run (this spec has no report tags)", "",
             "| stage | axes | state | main metrics | run |", "|---|---|---|---|---|"]
    for e in entries:
        axes = ", ".join(f"{k}={v}" for k, v in e.run.axes.items()) or "—"
        metrics = "" if e.metrics is None else main_metrics(e.metrics)
        state = e.state if e.metrics is not None else f"MISSING ({e.state})"
        lines.append(f"| {e.run.stage} | {axes} | {state} | {metrics} | `{e.run.hash}` |")
    return lines
