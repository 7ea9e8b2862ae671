"""The reading rules every result store shares, whatever holds its files (a folder or a bucket).

A store keeps, per run, ``status.json`` (``{"state": one of STATES, ...}``), ``config.json`` (a JSON
object) and a result. A store subclass says how to read a run's JSON file (``_read``), how to move a
damaged file aside (``_set_aside``) and how to fetch a validated result (``_result``); this class turns
those into the public reading API, so the rules below hold for every backend:

* a missing or damaged ``status.json`` reads as pending (the damaged file is moved aside);
* a ``config.json`` that is not a JSON object reads as absent (moved aside);
* a run is done only when its status says so AND its result passes the checks of
  ``ray_jobs.results``; a done status with a missing or invalid result reads as pending.
"""
from __future__ import annotations

import time
from typing import Any

STATES = ("pending", "running", "done", "failed", "blocked")
_PENDING: dict[str, Any] = {"state": "pending", "attempts": 0}


class RunRecords:
    """Mixin: the run layout (runs/<hash>) and status / config / metrics / is_done / state on top of
    _read, _set_aside and _result."""

    def _read(self, run_hash: str, name: str) -> Any | None:
        raise NotImplementedError

    def _set_aside(self, run_hash: str, name: str, why: str) -> None:
        raise NotImplementedError

    def _result(self, run_hash: str) -> dict[str, Any] | None:
        raise NotImplementedError

    root: Any  # a Path, or an ObjectPath of the bucket: both join with /

    @property
    def runs_dir(self) -> Any:
        return self.root / "runs"

    def run_dir(self, run_hash: str) -> Any:
        """runs/<hash>; a hash that could leave the runs folder is refused."""
        if not run_hash or "/" in run_hash or run_hash.startswith("."):
            raise ValueError(f"invalid run hash {run_hash!r}")
        return self.runs_dir / run_hash

    def _merged_status(self, run_hash: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The status with ``fields`` merged in and ``updated`` stamped (for update_status to write)."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown run state {fields['state']!r}; expected one of {STATES}")
        status = self.status(run_hash)
        status.update(fields)
        status["updated"] = time.time()
        return status

    def status(self, run_hash: str) -> dict[str, Any]:
        """status.json, or a pending status when it is missing or damaged (then moved aside)."""
        status = self._read(run_hash, "status.json")
        if status is None:
            return dict(_PENDING)
        if not isinstance(status, dict) or status.get("state") not in STATES:
            self._set_aside(run_hash, "status.json", f"{self.run_dir(run_hash) / 'status.json'}: not a status "
                                                     f"record (state must be one of {STATES})")
            return dict(_PENDING)
        return status

    def config(self, run_hash: str) -> dict[str, Any] | None:
        """config.json, or None when it is missing or not a JSON object (then moved aside)."""
        cfg = self._read(run_hash, "config.json")
        if cfg is not None and not isinstance(cfg, dict):
            self._set_aside(run_hash, "config.json", f"{self.run_dir(run_hash) / 'config.json'}: expected a JSON "
                                                     f"object, got {type(cfg).__name__}")
            return None
        return cfg

    def metrics(self, run_hash: str) -> dict[str, Any] | None:
        """The result of a done run; None for every run that is not done, including one whose result is
        missing or fails the checks (never an error, so a report renders it as missing)."""
        if self.status(run_hash).get("state") != "done":
            return None
        return self._result(run_hash)

    def is_done(self, run_hash: str) -> bool:
        return self.metrics(run_hash) is not None

    def state(self, run_hash: str) -> str:
        """The status's state, except that 'done' without a valid result reads as pending."""
        state = self.status(run_hash)["state"]
        if state == "done" and self._result(run_hash) is None:
            return "pending"
        return state
