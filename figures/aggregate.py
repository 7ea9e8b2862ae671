"""Runs that differ only in their seed, reported as one row: mean ± sample sd over the seeds (issue 12).

A *seed group* is the entries of one report row whose runs come from the same stage and whose axes agree
on everything except the seed axis (``ray_jobs.spec.SEED_AXIS``: a grid axis ``seed = [0, 1, 2]`` of the
stage, or the axis a run inherits from seeded inputs; ray_jobs/spec.py, "Seeds"). Every renderer that
aggregates (figures/paper_table.py, report_mart.py, report_goodfellow.py) builds its rows with
:func:`seed_groups` and formats a number with :class:`Stat`:

* one seed: the number as before (``"65.70"``), never ``"± 0"``;
* n > 1 seeds with a value: ``"65.70 ± 1.20 (n=3)"`` = mean ± sample standard deviation (n − 1 in the
  denominator) over the seeds, in the table's unit (percent for accuracies).

Seeds whose run is not done are left out of the mean and the cell says so (``"65.70 (n=1 of 3)"``,
``"65.70 ± 1.20 (n=2 of 3)"``); the engine lists them as MISSING. Figures draw the mean with an error bar of ± 1 sd where n > 1.
"""
from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from figures.report import Entry
from ray_jobs.spec import SEED_AXIS

Value = Callable[[Any], "float | None"]  # reads one number (a fraction) from a run's result


@dataclass(frozen=True)
class Stat:
    """The values of one number over the seeds of a row (fractions, or points for differences)."""

    values: tuple[float, ...]
    of: int | None = None  # the seeds the row has, done or not (None: as many as values)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("Stat needs at least one value, got none")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def sd(self) -> float | None:
        """Sample standard deviation (n − 1); None for a single seed."""
        return statistics.stdev(self.values) if self.n > 1 else None

    def text(self, digits: int = 2, *, scale: float = 100.0, signed: bool = False) -> str:
        """``scale × mean`` with ``digits`` decimals, ``" ± sd (n=k)"`` when there are k > 1 seeds, and
        ``"(n=k of m)"`` when only k of the row's m seeds are done."""
        sign = "+" if signed else ""
        head = f"{scale * self.mean:{sign}.{digits}f}"
        if self.sd is not None:
            head += f" ± {scale * self.sd:.{digits}f}"
        partial = self.of is not None and self.of > self.n
        if self.sd is None and not partial:
            return head
        return f"{head} (n={self.n}" + (f" of {self.of})" if partial else ")")


def seed_of(e: Entry) -> Any:
    """The run's seed axis (tagged or not), or None when it has none."""
    return next((v for k, v in e.run.axes.items() if k.lstrip("_") == SEED_AXIS), None)


def group_key(e: Entry) -> Hashable:
    """What a seed group shares: renderer, row, dataset, stage and every axis but the seed."""
    axes = {k: v for k, v in e.run.axes.items() if k.lstrip("_") != SEED_AXIS}
    return e.renderer, e.row, e.dataset, e.run.stage, json.dumps(axes, sort_keys=True, default=str)


@dataclass(frozen=True)
class SeedGroup:
    """The entries of one row, one per seed, in the order the spec expands them."""

    entries: tuple[Entry, ...]

    @property
    def first(self) -> Entry:
        return self.entries[0]

    @property
    def done(self) -> list[Entry]:
        return [e for e in self.entries if e.metrics is not None]

    @property
    def missing(self) -> list[Entry]:
        return [e for e in self.entries if e.metrics is None]

    @property
    def seeds(self) -> list[Any]:
        return [seed_of(e) for e in self.entries]

    def stat(self, value: Value) -> Stat | None:
        """``value`` over the done seeds that have it; None when none has."""
        got = [value(e.metrics) for e in self.done]
        vals = tuple(float(v) for v in got if v is not None)
        return Stat(vals, len(self.entries)) if vals else None

    def hashes(self) -> str:
        """The runs' hashes as Markdown code, comma-separated."""
        return ", ".join(f"`{e.run.hash}`" for e in self.entries)

    def state(self) -> str:
        """The state shown for a row without any done seed: the states of its runs."""
        return ", ".join(dict.fromkeys(e.state for e in self.entries))


def seed_groups(entries: Iterable[Entry], key: Callable[[Entry], Hashable] = group_key) -> list[SeedGroup]:
    """The entries grouped by ``key`` (default: :func:`group_key`), groups in first-seen order."""
    groups: dict[Hashable, list[Entry]] = {}
    for e in entries:
        groups.setdefault(key(e), []).append(e)
    return [SeedGroup(tuple(g)) for g in groups.values()]


def cell(group: SeedGroup, value: Value, digits: int = 2, *, signed: bool = False) -> str:
    """A table cell: the group's :class:`Stat` in percent (points when ``signed``), "—" when no seed has it."""
    s = group.stat(value)
    if s is None:
        return "—"
    if not signed and not all(0.0 <= v <= 1.0 for v in s.values):  # never format a non-fraction as percent
        return f"INVALID ({list(s.values)!r})"
    return s.text(digits, signed=signed)


def bar(group: SeedGroup, value: Value) -> tuple[float, float]:
    """(mean, sd) in percent for a figure: sd 0 for a single seed, (0, 0) when no seed has the value."""
    s = group.stat(value)
    if s is None:
        return 0.0, 0.0
    return 100 * s.mean, 100 * (s.sd or 0.0)
