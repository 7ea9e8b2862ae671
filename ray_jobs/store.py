"""The result store: one folder per run, keyed by the run's hash. This docstring is its format reference.

Folders are created 0755 and files 0644 (whatever the umask), so teammates on a shared filesystem can
read a store. Layout of ``STORE/runs/<hash>/``:

* ``config.json``  – kind, resolved config, input hashes, and the spec/stage labels that reached it
* ``status.json``  – ``state`` (pending | running | done | failed | blocked), ``attempts``, ``error``,
  ``traceback``, ``progress`` (written by the run, e.g. the epoch), ``host``/``pid`` of the worker,
  ``cpu_seconds``/``wall_seconds``, ``machine`` (cpu, cpu_capability, gpu, torch: ``runner.machine``;
  absent in runs done before it was recorded), timestamps
* ``metrics.json`` – the kind's result, a JSON object. Checked before it is written and on every read
  (the rules are in :mod:`ray_jobs.results`: non-empty, finite numbers, accuracy-like values in
  [0, 1], plus any check the kind registered with ``register_result_validator``)
* ``claim.json``   – the driver running this run: ``driver`` (a random token per driver), ``host``,
  ``pid``, ``since`` (driver start), ``machine`` (boot id / pid namespace), ``heartbeat`` (renewed
  every ``lease_s / 4`` s) and ``lease_s`` (default 600 s, ``$ADVFEAT_CLAIM_LEASE_S`` or
  ``Store(lease_s=...)``). Absent when no driver runs it. Protocol: :mod:`ray_jobs.claims`
  (``claim.json.break`` exists for an instant while a stale claim is taken over).
* ``log.txt``      – the run's own log lines, including every damaged file moved aside
* ``<file>.corrupt-<UTC time>`` – a damaged file moved aside (never deleted)
* artifacts        – whatever the kind writes (the folder is train's ``out_dir``, so its
  ``checkpoint.pt`` resume works across attempts)

**Done** means: ``status.json`` says ``done`` *and* ``metrics.json`` passes the checks. All writes are
atomic (``deep.io``), and the result is written before the done mark, so a crash never leaves a run
that looks done without its result. :meth:`Store.finish` never rewrites a valid result of a done run.

**Damage is repaired by redoing, never by deleting.** When status.json says done but metrics.json is
missing, empty, truncated or fails the checks, the run reads as pending and :meth:`Store.metrics`
returns None (no error: renderers show it as missing); a file that exists is moved aside. The next
``run`` redoes it; the train kind resumes from its own complete checkpoint. A torn or malformed
``status.json`` or ``config.json`` is moved aside and reads as pending (no status) or absent (no
config); nothing else in the folder is touched. A metrics.json of a run that is not done is never
judged: it may be a kind's file in progress (deep.train writes its own). A reader that cannot move
a file (a read-only store) logs a warning and still treats the run as not done.

**Exactly once.** A driver claims a run (:meth:`Store.claim`) before submitting it and releases it
when the run ends; a live claim of another driver is respected (the runner waits), a stale one
(lease expired, or its process gone from this machine) is taken over. No fcntl: the claim is an
atomic create-if-absent, which also works across hosts on NFS.

Commands open a store with :meth:`Store.create` (``run``) or :meth:`Store.open_existing` (read-only
commands such as ``status`` and the report); both name the path when it is a file or missing.

**On object storage** (``--store s3://bucket/prefix``; :mod:`ray_jobs.objstore`, opened through
``ray_jobs.objstore.open_store``) the layout is the same, and the driver is the only writer of run
state (``status.json``, ``config.json``, ``log.txt``, ``claim.json``): workers compute in node-local
scratch and upload only finished run folders, ``metrics.json`` last (:mod:`ray_jobs.nodecache`).
Between drivers, claims on ``s3://`` are conditional writes (``If-None-Match`` / ``If-Match``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from deep.io import CorruptFileError, json_text, quarantine, read_json, write_json
from ray_jobs.claims import (Claim, Driver, Heartbeat, acquire, claim_is_stale, default_lease_s, driver_identity,
                             read_claim, release)
from ray_jobs.records import STATES, RunRecords
from ray_jobs.results import InvalidResultError, check_result

__all__ = ["STATES", "Store", "Claim", "Driver", "driver_identity", "claim_is_stale", "InvalidResultError"]

log = logging.getLogger(__name__)

CLAIM = "claim.json"
DIR_MODE, FILE_MODE = 0o755, 0o644


class Store(RunRecords):
    """A store rooted at ``root`` (need not exist yet; it must not be a file)."""

    def __init__(self, root: str | Path, *, lease_s: float | None = None) -> None:
        # Absolute, because on a cluster the driver's cwd is a temporary job directory.
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"store {self.root} is an existing file; the store must be a folder "
                                     f"(give a folder path)")
        if lease_s is not None and not (isinstance(lease_s, (int, float)) and 0 < lease_s < math.inf):
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.lease_s = float(lease_s) if lease_s is not None else default_lease_s()
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(self._lock)

    @classmethod
    def create(cls, root: str | Path, *, lease_s: float | None = None) -> Store:
        """Open the store at ``root`` for writing, creating its folders (0755) if needed."""
        store = cls(root, lease_s=lease_s)
        store._mkdirs(store.runs_dir)
        return store

    @classmethod
    def open_existing(cls, root: str | Path, *, lease_s: float | None = None) -> Store:
        """Open a store that must exist already (for read-only commands): FileNotFoundError naming the
        path when it is missing or is a folder without ``runs/``; NotADirectoryError when it is a file."""
        path = Path(root).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"store {path} does not exist; give the --store that `run` wrote to")
        store = cls(path, lease_s=lease_s)
        if not store.runs_dir.is_dir():
            raise FileNotFoundError(f"{store.root} is not a result store: it has no runs/ folder")
        return store

    def __getstate__(self) -> dict[str, Any]:  # the lock and heartbeat thread stay in their process
        return {"root": self.root, "lease_s": self.lease_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], lease_s=state["lease_s"])  # type: ignore[misc]

    # ------------------------------------------------------------------------------------- layout
    def _mkdirs(self, folder: Path) -> Path:
        """Create ``folder`` and its missing parents as 0755 whatever the umask (existing ones untouched)."""
        missing = []
        for p in (folder, *folder.parents):
            if p.is_dir():
                break
            missing.append(p)
        for p in reversed(missing):
            with contextlib.suppress(FileExistsError):
                p.mkdir()
                os.chmod(p, DIR_MODE)
        return folder

    def _folder(self, run_hash: str) -> Path:
        return self._mkdirs(self.run_dir(run_hash))

    # ------------------------------------------------------------------------------------ reading
    def _read(self, run_hash: str, name: str) -> Any | None:
        """The JSON in a run's file; None when it is missing, or corrupt (then moved aside)."""
        path = self.run_dir(run_hash) / name
        try:
            return read_json(path)
        except FileNotFoundError:
            return None
        except CorruptFileError as err:
            self._set_aside(run_hash, name, str(err))
            return None

    def _set_aside(self, run_hash: str, name: str, why: str) -> None:
        path = self.run_dir(run_hash) / name
        try:
            moved = quarantine(path)
        except FileNotFoundError:
            return  # another reader moved it first
        except OSError as err:
            log.warning("%s (could not move it aside: %s)", why, err)
            return
        with contextlib.suppress(OSError):
            self.log(run_hash, f"moved the damaged {path.name} aside to {moved.name}: {why}")

    def _result(self, run_hash: str) -> dict[str, Any] | None:
        """metrics.json if it passes the checks; a damaged or invalid file is moved aside. Call only for
        runs whose status says done (before that, the file may be a kind's work in progress)."""
        result = self._read(run_hash, "metrics.json")
        if result is None:
            return None
        path = self.run_dir(run_hash) / "metrics.json"
        try:
            check_result(result, (self.config(run_hash) or {}).get("kind"), str(path))
        except InvalidResultError as err:
            self._set_aside(run_hash, "metrics.json", str(err))
            return None
        return result

    def all_hashes(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ------------------------------------------------------------------------------------ writing
    def update_status(self, run_hash: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json (atomically) and return the new status."""
        status = self._merged_status(run_hash, fields)
        write_json(self._folder(run_hash) / "status.json", status)
        return status

    def write_config(self, run_hash: str, identity: dict[str, Any], label: dict[str, Any]) -> None:
        """config.json: the hashed identity plus every (spec, stage, axes) label that names this run."""
        labels = (self.config(run_hash) or {}).get("labels", [])
        if label not in labels:
            labels.append(label)
        write_json(self._folder(run_hash) / "config.json", {**identity, "hash": run_hash, "labels": labels})

    def finish(self, run_hash: str, metrics: dict[str, Any]) -> bool:
        """Record the result, then the done mark (the order is what makes 'done' trustworthy).

        InvalidResultError when ``metrics`` fails the checks (nothing is written). A run that is done
        already keeps its result: nothing is written, a line goes to its log, and False is returned."""
        # JSON round trip: numpy/torch scalars become plain numbers before they are checked.
        plain = json.loads(json_text(metrics, allow_nan=True))
        check_result(plain, (self.config(run_hash) or {}).get("kind"), f"result of run {run_hash}")
        if self.is_done(run_hash):
            self.log(run_hash, "finish: kept the existing result (a finished result is never rewritten)")
            return False
        write_json(self._folder(run_hash) / "metrics.json", plain)
        self.update_status(run_hash, state="done", error=None, traceback=None, finished=time.time())
        return True

    def log(self, run_hash: str, line: str) -> None:
        path = self._folder(run_hash) / "log.txt"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            if os.fstat(fd).st_size == 0:
                with contextlib.suppress(PermissionError):
                    os.fchmod(fd, FILE_MODE)  # a new file: 0644 whatever the umask
            os.write(fd, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------- claims
    def claim(self, run_hash: str, driver: Driver) -> Claim | None:
        """Claim ``run_hash`` for ``driver`` (:func:`driver_identity`): None when the claim is ours (new,
        already ours, or taken over from a stale holder), else the live holder's claim. Our claims are
        renewed by a heartbeat thread until :meth:`release`."""
        path = self._folder(run_hash) / CLAIM
        with self._lock:
            holder = acquire(path, Claim(driver, time.time(), self.lease_s))
            if holder is None:
                self._heartbeat.add(path, Claim(driver, time.time(), self.lease_s))
        return holder

    def release(self, run_hash: str, driver: Driver) -> None:
        """Drop ``driver``'s claim on ``run_hash`` (a claim held by another driver is left alone)."""
        path = self.run_dir(run_hash) / CLAIM
        with self._lock:
            release(path, driver)
            held = self._heartbeat.held.get(path)
            if held is not None and held.driver.token == driver.token:
                del self._heartbeat.held[path]

    def claim_holder(self, run_hash: str) -> Claim | None:
        """The claim on ``run_hash`` as recorded (live or stale), or None."""
        seen = read_claim(self.run_dir(run_hash) / CLAIM, self.lease_s)
        return seen.claim if seen is not None else None

    def live_claim(self, run_hash: str) -> Claim | None:
        """The claim on ``run_hash`` when some driver holds it and it is not stale, else None. A 'running'
        status without a live claim belongs to an interrupted driver; the next ``run`` resumes it."""
        seen = read_claim(self.run_dir(run_hash) / CLAIM, self.lease_s)
        return seen.claim if seen is not None and not claim_is_stale(seen.claim, seen.mtime) else None
