"""The result store: one folder per run, keyed by the run's hash.

Layout of ``STORE/runs/<hash>/``:

* ``config.json``  – kind, resolved config, input hashes, and the spec/stage labels that reached it
* ``status.json``  – ``state`` (pending | running | done | failed | blocked), ``attempts``, ``error``,
  ``traceback``, ``progress`` (written by the run, e.g. the epoch), timestamps
* ``metrics.json`` – the kind's result; written atomically (temp file + ``os.replace``) *before*
  ``status.json`` says ``done``, so a crash never leaves a run that looks done without its result
* ``log.txt``      – the run's own log lines
* artifacts        – whatever the kind writes (the folder is train's ``out_dir``, so its
  ``checkpoint.pt`` resume works across attempts)

A run counts as done only when ``status.json`` says ``done`` *and* ``metrics.json`` parses.

Two drivers on one store (two ``python -m ray_jobs run`` at once, e.g. two specs sharing runs) are kept
apart per run by ``claim.json``: a driver claims a run before submitting it (under an fcntl lock on
``STORE/.lock``, held only for the check-and-write) and releases it when the run ends; a run claimed
by another live driver is not started twice (the runner waits for it). A claim whose driver process is gone (same
host, dead pid) is stale and is taken over; a claim from another host is never guessed stale.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

STATES = ("pending", "running", "done", "failed", "blocked")
CLAIM = "claim.json"


def driver_identity() -> dict[str, Any]:
    """Who claims runs: a fresh id per driver plus its host and pid (for the staleness check)."""
    return {"driver": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


def claim_is_stale(holder: dict[str, Any]) -> bool:
    """True when the claiming driver ran on this host and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _plain(obj: Any) -> Any:
    """numpy/torch scalars and arrays (anything with .tolist()) and paths as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=True, default=_plain)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is missing or unreadable (a torn write never parses)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


class Store:
    def __init__(self, root: str | Path) -> None:
        # Absolute, because on a cluster the driver's cwd is a temporary job directory.
        self.root = Path(root).expanduser().resolve()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_hash: str) -> Path:
        if not run_hash or "/" in run_hash or run_hash.startswith("."):
            raise ValueError(f"invalid run hash {run_hash!r}")
        return self.runs_dir / run_hash

    def status(self, run_hash: str) -> dict[str, Any]:
        status = read_json(self.run_dir(run_hash) / "status.json")
        return status if isinstance(status, dict) else {"state": "pending", "attempts": 0}

    def metrics(self, run_hash: str) -> dict[str, Any] | None:
        metrics = read_json(self.run_dir(run_hash) / "metrics.json")
        return metrics if isinstance(metrics, dict) else None

    def config(self, run_hash: str) -> dict[str, Any] | None:
        cfg = read_json(self.run_dir(run_hash) / "config.json")
        return cfg if isinstance(cfg, dict) else None

    def is_done(self, run_hash: str) -> bool:
        return self.status(run_hash).get("state") == "done" and self.metrics(run_hash) is not None

    def state(self, run_hash: str) -> str:
        """done only when the metrics exist; a 'done' status without metrics reads as pending."""
        state = self.status(run_hash).get("state", "pending")
        if state == "done" and self.metrics(run_hash) is None:
            return "pending"
        return state

    def update_status(self, run_hash: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and return the new status."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown run state {fields['state']!r}; expected one of {STATES}")
        status = self.status(run_hash)
        status.update(fields)
        status["updated"] = time.time()
        write_json_atomic(self.run_dir(run_hash) / "status.json", status)
        return status

    def write_config(self, run_hash: str, identity: dict[str, Any], label: dict[str, Any]) -> None:
        """config.json: the hashed identity plus every (spec, stage, axes) label that names this run."""
        path = self.run_dir(run_hash) / "config.json"
        current = read_json(path) or {}
        labels = current.get("labels", [])
        if label not in labels:
            labels.append(label)
        write_json_atomic(path, {**identity, "hash": run_hash, "labels": labels})

    def finish(self, run_hash: str, metrics: dict[str, Any]) -> None:
        """Metrics first, then the done mark: the order is what makes 'done' trustworthy."""
        write_json_atomic(self.run_dir(run_hash) / "metrics.json", metrics)
        self.update_status(run_hash, state="done", error=None, traceback=None, finished=time.time())

    @contextlib.contextmanager
    def _claims_locked(self):
        """An exclusive fcntl lock on ``STORE/.lock`` for the few file operations of a claim or release,
        so two drivers never both decide that a run is free."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def claim(self, run_hash: str, owner: dict[str, Any]) -> dict[str, Any] | None:
        """Claim ``run_hash`` for the driver ``owner`` (:func:`driver_identity`). Returns None when the
        claim is ours (new, already ours, or taken over from a driver that died), else the holder's record."""
        path = self.run_dir(run_hash) / CLAIM
        with self._claims_locked():
            holder = read_json(path)
            if isinstance(holder, dict) and holder.get("driver") != owner.get("driver") and not claim_is_stale(holder):
                return holder
            write_json_atomic(path, owner)
            return None

    def release(self, run_hash: str, owner: dict[str, Any]) -> None:
        """Drop ``owner``'s claim on ``run_hash`` (a claim held by another driver is left alone)."""
        path = self.run_dir(run_hash) / CLAIM
        with self._claims_locked():
            holder = read_json(path)
            if isinstance(holder, dict) and holder.get("driver") == owner.get("driver"):
                path.unlink(missing_ok=True)

    def claim_holder(self, run_hash: str) -> dict[str, Any] | None:
        return read_json(self.run_dir(run_hash) / CLAIM)

    def log(self, run_hash: str, line: str) -> None:
        path = self.run_dir(run_hash) / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def all_hashes(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
