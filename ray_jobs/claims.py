"""Run claims: one driver at a time runs a run, on one host or many, without fcntl.

A claim is the file ``claim.json`` in the run's folder (its fields are listed in :mod:`ray_jobs.store`).

* **Acquire** is an atomic create-if-absent: the record is written whole to a temporary file, which is
  then hard-linked to ``claim.json`` (``os.link`` fails if the name exists). This works on local
  filesystems and on NFSv3+; the link count of the temporary file is checked afterwards, because an
  NFS server may answer a retransmitted link with EEXIST although it made it. Filesystems without
  hard links fall back to ``os.open(O_CREAT | O_EXCL)``; a reader that catches that file before its
  record is written sees an unreadable claim, which counts as held until its lease runs out.
* **Lease.** The holder rewrites ``heartbeat`` every ``lease_s / 4`` seconds (a daemon thread in
  the driver, :class:`Heartbeat`). A claim is stale (:func:`claim_is_stale`) when
  ``now > max(heartbeat, file mtime) + lease_s``, or at once when its driver ran on this machine
  (same hostname, kernel boot and pid namespace) and that process is gone. Hosts' clocks must
  agree to well within the lease (NTP does).
* **Take-over** of a stale claim: under ``claim.json.break`` (itself created with O_EXCL, so one
  driver breaks at a time), the claim is re-read, and removed only if it is byte for byte the
  record judged stale; then the driver tries to acquire as above. Of drivers racing for a free or
  stale claim, exactly one ends up holding it. An unreadable claim is moved aside
  (``claim.json.corrupt-<time>``), not deleted. A break file older than 60 s was left by a driver
  that died in the middle of a break and is removed.
* A driver that stalls for longer than its lease (a suspended VM, a partitioned node) can lose its
  claim to another driver while it still runs; the store then refuses to overwrite the first result
  written (``Store.finish``), so the stored result is never rewritten.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deep.io import quarantine, write_json

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 600.0
LEASE_ENV = "ADVFEAT_CLAIM_LEASE_S"
BREAK_SUFFIX = ".break"
BREAK_TIMEOUT_S = 60.0
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def default_lease_s() -> float:
    """``$ADVFEAT_CLAIM_LEASE_S`` seconds, else 600."""
    value = os.environ.get(LEASE_ENV)
    if value is None:
        return DEFAULT_LEASE_S
    try:
        lease = float(value)
    except ValueError:
        lease = float("nan")
    if not lease > 0 or lease == float("inf"):
        raise ValueError(f"{LEASE_ENV}={value!r}: expected a positive number of seconds")
    return lease


def _machine() -> str:
    """Kernel boot id and pid namespace: two containers that share a hostname but not a pid space must
    not judge each other's pids."""
    parts = []
    for reader in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                   lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(reader())
        except OSError:
            parts.append("?")
    return "/".join(parts)


@dataclass(frozen=True)
class Driver:
    """Who claims runs: a random token per driver, with where it runs (for messages and the pid check)."""

    token: str
    host: str
    pid: int
    since: float
    machine: str = ""


def driver_identity() -> Driver:
    """A new driver identity (a fresh token on every call) for this process."""
    return Driver(token=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid(), since=time.time(),
                  machine=_machine())


@dataclass(frozen=True)
class Claim:
    """One ``claim.json``: the driver, its last heartbeat and the lease it promised to renew within."""

    driver: Driver
    heartbeat: float
    lease_s: float

    def to_json(self) -> dict[str, Any]:
        d = self.driver
        return {"driver": d.token, "host": d.host, "pid": d.pid, "since": d.since, "machine": d.machine,
                "heartbeat": self.heartbeat, "lease_s": self.lease_s}

    @classmethod
    def from_json(cls, obj: Any, default_lease_s: float) -> Claim:
        """Parse a record (also the older ``{driver, host, pid, since}`` one); ValueError if malformed."""
        if not isinstance(obj, dict) or not isinstance(obj.get("driver"), str):
            raise ValueError(f"not a claim record: {obj!r}")
        since, pid = obj.get("since"), obj.get("pid")
        heartbeat, lease = obj.get("heartbeat", since), obj.get("lease_s", default_lease_s)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (since, heartbeat, lease)):
            raise ValueError(f"claim record with non-numeric times: {obj!r}")
        driver = Driver(token=obj["driver"], host=str(obj.get("host", "?")),
                        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else -1,
                        since=float(since), machine=str(obj.get("machine", "")))
        return cls(driver=driver, heartbeat=float(heartbeat), lease_s=float(lease))


def _unknown_claim(mtime: float, lease_s: float) -> Claim:
    """Stands for an unreadable claim file: held by nobody we can name, until its lease runs out."""
    return Claim(Driver(token="", host="?", pid=-1, since=mtime), heartbeat=mtime, lease_s=lease_s)


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of process ``pid`` from /proc, or None where that is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(float(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime"))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def process_is_gone(driver: Driver) -> bool:
    """True when ``driver`` ran on this machine and its process no longer exists (or its pid now belongs
    to a process started after the driver was). Drivers elsewhere are never judged by pid."""
    if driver.host != socket.gethostname() or driver.pid <= 0:
        return False
    if driver.machine and driver.machine != _machine():
        return False
    try:
        os.kill(driver.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    started = _process_started(driver.pid)
    return started is not None and started > driver.since + 1.0  # 1 s: /proc's clock-tick rounding


def claim_is_stale(claim: Claim, mtime: float | None = None, now: float | None = None) -> bool:
    """The one staleness rule: the lease ran out (``now > max(heartbeat, mtime) + lease_s``), or the
    holder's process is gone from this machine."""
    now = time.time() if now is None else now
    return now > max(claim.heartbeat, mtime or 0.0) + claim.lease_s or process_is_gone(claim.driver)


@dataclass(frozen=True)
class _Seen:
    """A claim file as read: its bytes (to detect a change), parsed record and mtime."""

    raw: bytes
    claim: Claim
    mtime: float
    readable: bool


def read_claim(path: Path, default_lease_s: float) -> _Seen | None:
    try:
        with open(path, "rb") as fh:
            raw, mtime = fh.read(), os.fstat(fh.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        return _Seen(raw, Claim.from_json(json.loads(raw.decode("utf-8")), default_lease_s), mtime, True)
    except (ValueError, UnicodeDecodeError):
        return _Seen(raw, _unknown_claim(mtime, default_lease_s), mtime, False)


def _create(path: Path, claim: Claim) -> bool:
    """Create ``path`` holding ``claim`` if no file has that name; True when this call created it."""
    tmp = path.with_name(f".{path.name}.{claim.driver.token}.{threading.get_ident()}.tmp")
    write_json(tmp, claim.to_json())
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError as err:
            if err.errno not in _NO_LINKS:
                raise
            return _create_exclusive(path, claim)
        return os.stat(tmp).st_nlink == 2
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(path: Path, claim: Claim) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o644)
        json.dump(claim.to_json(), fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _break(path: Path, seen: _Seen) -> None:
    """Remove the stale claim ``seen`` unless it changed since it was read (see the module docstring)."""
    breaker = path.with_name(path.name + BREAK_SUFFIX)
    try:
        os.close(os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        try:
            if time.time() - breaker.stat().st_mtime > BREAK_TIMEOUT_S:
                breaker.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return  # another driver is breaking it; the caller reads the claim again
    try:
        now = read_claim(path, seen.claim.lease_s)
        if now is None or now.raw != seen.raw:
            return
        d = seen.claim.driver
        why = ("unreadable claim file" if not seen.readable else "its process is gone" if process_is_gone(d)
               else "its lease expired")
        log.warning("%s: taking over the claim of driver %s (host %s, pid %s): %s", path.parent.name, d.token[:8],
                    d.host, d.pid, why)
        if seen.readable:
            path.unlink(missing_ok=True)
        else:
            quarantine(path)
    finally:
        breaker.unlink(missing_ok=True)


def acquire(path: Path, claim: Claim, tries: int = 5) -> Claim | None:
    """Take the claim at ``path`` for ``claim.driver``: None when it is ours now (new, already ours, or
    taken over from a stale holder), else the live holder's claim."""
    seen = None
    for _ in range(tries):
        if _create(path, claim):
            return None
        seen = read_claim(path, claim.lease_s)
        if seen is None:
            continue  # released in between
        if seen.claim.driver.token == claim.driver.token:
            renew(path, claim)
            return None
        if not claim_is_stale(seen.claim, seen.mtime):
            return seen.claim
        _break(path, seen)
    return seen.claim if seen is not None else None


def renew(path: Path, claim: Claim) -> bool:
    """Rewrite our claim with a fresh heartbeat; False (nothing written) when it is no longer ours."""
    seen = read_claim(path, claim.lease_s)
    if seen is None or seen.claim.driver.token != claim.driver.token:
        return False
    write_json(path, Claim(claim.driver, time.time(), claim.lease_s).to_json())
    return True


def release(path: Path, driver: Driver) -> None:
    """Remove ``driver``'s claim; a claim held by another driver is left alone."""
    seen = read_claim(path, DEFAULT_LEASE_S)
    if seen is not None and seen.claim.driver.token == driver.token:
        path.unlink(missing_ok=True)


class Heartbeat:
    """Renews the claims one Store holds every ``lease_s / 4`` seconds on a daemon thread, so a long run
    keeps its claim and a dead driver's claims lapse within one lease. ``lock`` guards every claim file
    operation of that Store, so a renewal never races a release."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.held: dict[Path, Claim] = {}
        self.lost: list[Path] = []
        self._thread: threading.Thread | None = None

    def add(self, path: Path, claim: Claim) -> None:
        """Caller holds ``lock``."""
        self.held[path] = claim
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="claim-heartbeat", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self.lock:
                if not self.held:
                    self._thread = None
                    return
                interval = min(c.lease_s for c in self.held.values()) / 4
            time.sleep(interval)
            with self.lock:
                for path, claim in list(self.held.items()):
                    try:
                        ours = renew(path, claim)
                    except OSError as err:  # e.g. a network filesystem hiccup: retry at the next beat
                        log.warning("%s: could not renew the claim: %s", path.parent.name, err)
                        continue
                    if not ours:
                        log.warning("%s: lost the claim (taken over by another driver)", path.parent.name)
                        self.held.pop(path, None)
                        self.lost.append(path)
