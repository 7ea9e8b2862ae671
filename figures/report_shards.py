"""Report plugin ``shards``: evaluations run as disjoint shards of consecutive test images, shown whole.

Eval stages tag their runs ``report = { rows = ["shards:LABEL"] }``; the runs of one LABEL are the shards
of one evaluation (an ``offset`` axis with ``first_n`` images each; an unsharded run is one shard). Each
row concatenates the finished shards in image order (deep/evaluation/shards.py: accuracies recomputed
from the per-example results, so exact), and says how many of the planned images that covers. Until
every shard is in, the numbers are those of the images done, and the row says so; the shards still to
run are listed with the report's MISSING runs. One table per spec, rows in the spec's order; the
columns are clean accuracy, each attack of any row, and the per-example worst case. Under the table:
the PGD − AutoAttack gap on the same images, and every shard's warnings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from figures.report import Entry, pct, register_renderer
from figures.robust import aa_gap, warning_lines


def _offset(e: Entry) -> int:
    return int(e.run.config.get("offset", 0))


def _planned(shards: list[Entry]) -> int | None:
    """Images the row will cover when every shard is done; None when a shard has no ``first_n`` and has
    not run (its size is unknown until then)."""
    total = 0
    for e in shards:
        size = e.run.config.get("first_n") or (e.metrics.n if e.metrics is not None else None)
        if size is None:
            return None
        total += int(size)
    return total


def _overlap(shards: list[Entry]) -> str | None:
    """Where two finished shards share images ("offsets 0 and 250"), else None: joining them would count
    those images twice."""
    spans = sorted((_offset(e), _offset(e) + e.metrics.n) for e in shards if e.metrics is not None)
    for (a0, a1), (b0, _) in zip(spans, spans[1:]):
        if b0 < a1:
            return f"offsets {a0} and {b0}"
    return None


def _join(shards: list[Entry]) -> tuple[Any, str | None]:
    """(the finished shards joined in image order, or None; why they cannot be joined, or None)."""
    from deep.evaluation.shards import concatenate  # late: the report's import stays free of torch

    where = _overlap(shards)
    if where is not None:
        return None, f"shards overlap: {where}"
    done = [e.metrics for e in sorted(shards, key=_offset) if e.metrics is not None]
    try:
        return (concatenate(done) if done else None), None
    except ValueError as err:  # shards of different suites, ε, ... : shown, never averaged
        return None, str(err)


def _coverage(shards: list[Entry], merged: Any) -> str:
    planned = _planned(shards)
    done = 0 if merged is None else merged.n
    finished = sum(e.metrics is not None for e in shards)
    of = f"{planned:,}" if planned is not None else "?"
    text = f"{done:,} of {of} ({finished}/{len(shards)} shards)"
    return text if finished == len(shards) else f"**partial**: {text}"


@register_renderer("shards")
def render_shards(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    rows: dict[str, list[Entry]] = {}
    for e in entries:  # a seed axis (``--seeds``) makes one evaluation per seed, each its own row
        seed = e.run.axes.get("seed")
        rows.setdefault(e.row if seed is None else f"{e.row} (seed {seed})", []).append(e)
    joined = {row: _join(shards) for row, shards in rows.items()}
    merged = {row: m for row, (m, _) in joined.items()}
    attacks = list(dict.fromkeys(a for m in merged.values() if m is not None for a in m.attacks))
    lines = ["### Evaluations in shards (accuracy %, over the images done)", "", caption, "",
             "| " + " | ".join(["row", "images done", "clean", *attacks, "worst case", "attack seconds"]) + " |",
             "|---|---|---|" + "---|" * len(attacks) + "---|---|"]
    for row, shards in rows.items():
        m = merged[row]
        cells = ["—"] * (len(attacks) + 3) if m is None else [
            pct(m.clean), *(pct(m.attacks[a]) if a in m.attacks else "—" for a in attacks), pct(m.worst_case),
            f"{sum(m.seconds.values()):,.0f}"]
        problem = joined[row][1]
        if problem is not None:
            cells = [f"INVALID ({problem})"] + [""] * (len(attacks) + 2)
        lines.append(f"| {row} | {_coverage(shards, m)} | " + " | ".join(cells) + " |")
    gaps = [(row, aa_gap(m)) for row, m in merged.items() if m is not None and aa_gap(m) is not None]
    if gaps:
        lines += ["", "PGD − AutoAttack on the same images (points): "
                  + "; ".join(f"{row} {100 * g:+.2f}" for row, g in gaps) + "."]
    return lines + warning_lines((row, f"{len(rows[row])} runs", m) for row, m in merged.items() if m is not None)
