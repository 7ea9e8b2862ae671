"""``python -m ray_jobs results``: one row per run of a spec, like a Ray Tune results frame.

Each row holds the run's ``stage``, ``kind``, ``hash``, ``state`` (done | failed | blocked | running |
pending), its grid axes as ``config/<axis>`` (tags keep their leading ``_``), the first line of its
``error`` when it failed, and its metrics (the validated ``metrics.json``; none unless done):

* ``--json``: a JSON list of ``{"stage", "kind", "hash", "state", "error", "config": {axis: value},
  "metrics": {...}}`` objects, the metrics as stored;
* ``--csv``: one header line, then one line per run. Nested metrics are flattened to dotted columns
  (``attacks.pgd-20``); lists are written as JSON text. Columns are the union over all runs in order
  of first appearance; a run without a column has an empty cell.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from ray_jobs.runner import unique_runs
from ray_jobs.spec import Spec
from ray_jobs.store import Store

BASE_COLUMNS = ("stage", "kind", "hash", "state", "error")


def result_rows(spec: Spec, store: Store) -> list[dict[str, Any]]:
    """One record per run of ``spec`` (the ``--json`` form)."""
    rows = []
    for run in unique_runs(spec):
        state = store.state(run.hash)
        error = store.status(run.hash).get("error") if state in ("failed", "blocked") else None
        rows.append({"stage": run.stage, "kind": run.kind, "hash": run.hash, "state": state,
                     "error": str(error).splitlines()[0] if error else None, "config": dict(run.axes),
                     "metrics": (store.metrics(run.hash) or {}) if state == "done" else {}})
    return rows


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """A ``--json`` record as one CSV row (module docstring)."""
    row = {key: record[key] for key in BASE_COLUMNS}
    for axis, value in record["config"].items():
        _flatten(f"config/{axis}", value, row)
    metrics: dict[str, Any] = {}
    _flatten("", record["metrics"], metrics)
    row.update(metrics)
    return row


def to_csv(records: list[dict[str, Any]]) -> str:
    rows = [flat_row(r) for r in records]
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(BASE_COLUMNS)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=1, sort_keys=False, default=str) + "\n"
