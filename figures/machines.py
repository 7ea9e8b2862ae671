"""Which machine measured a spec's runs, for the report's "Measured on" line.

Reads the ``machine`` field that the worker writes into each run's ``status.json``
(``ray_jobs.runner.machine``)::

    "machine": {"cpu": "AMD EPYC 7B13", "cpu_capability": "AVX2", "gpu": null, "torch": "2.14.1"}

``gpu`` is the CUDA device's name, or null when the run used none. Runs done before the field was
recorded have no ``machine``; they are counted as unknown. The report must not import torch, and this
module does not.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

__all__ = ["Machine", "machine_of", "measured_on"]


@dataclass(frozen=True)
class Machine:
    """The hardware a run was measured on (the torch version is not part of it: the label is hardware)."""

    cpu: str
    cpu_capability: str
    gpu: str | None = None

    def label(self) -> str:
        return f"{self.cpu} ({self.cpu_capability})" + (f" + GPU {self.gpu}" if self.gpu else "")


def machine_of(status: Mapping[str, Any]) -> Machine | None:
    """The run's machine from its status.json contents; None when the field is absent or malformed."""
    raw = status.get("machine")
    if not isinstance(raw, Mapping) or not isinstance(raw.get("cpu"), str):
        return None
    gpu = raw.get("gpu")
    return Machine(raw["cpu"], str(raw.get("cpu_capability", "?")), gpu if isinstance(gpu, str) else None)


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def measured_on(statuses: Iterable[Mapping[str, Any]]) -> str | None:
    """One Markdown line naming each machine with its number of runs, most runs first, then the count
    of runs that recorded none ("unknown"); None when there are no statuses (no done runs)."""
    counts = Counter(machine_of(s) for s in statuses)
    unknown = counts.pop(None, 0)
    if not counts and not unknown:
        return None
    parts = [f"{m.label()} × {_runs(n)}" for m, n in sorted(counts.items(), key=lambda mn: (-mn[1], mn[0].label()))]
    if unknown:
        parts.append(f"unknown × {_runs(unknown)}")
    return "Measured on: " + ", ".join(parts)
