"""Run claims on object storage: the part of :class:`ray_jobs.objstore.ObjectStore` that keeps two
drivers from running one run (the protocol is in :mod:`ray_jobs.objstore`'s docstring).

``claim.json`` holds :class:`ray_jobs.claims.Claim`'s record. On ``s3://`` every write of it is
conditional: created with ``If-None-Match: *``; renewed, released (overwritten with
``{"driver": "", "released": true}``) and taken over with ``If-Match: <the ETag read>``. A write that
loses a race gets HTTP 412 and the loser re-reads. The ETag is read before the body, so the body read
is never older than the ETag a write is conditioned on.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any

from deep.io import json_text
from ray_jobs.claims import Claim, Driver, claim_is_stale

log = logging.getLogger(__name__)

CLAIM = "claim.json"


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def _precondition_failed(err: BaseException) -> bool:
    """Whether a failed write was refused because its If-Match / If-None-Match did not hold (HTTP 412).
    s3fs raises a plain OSError for it; the botocore error it came from carries the code."""
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            break
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
        seen = seen.__cause__ or seen.__context__
    text = str(err).lower()
    return "pre-condition" in text or "precondition" in text


class ObjectClaims:
    """Claims for a store with ``fs``, ``run_key(hash, name)``, ``lease_s`` and ``conditional``."""

    fs: Any
    lease_s: float
    conditional: bool
    _lock: threading.Lock
    _held: dict[str, tuple[Claim, str]]  # run hash -> (our claim, its ETag)
    _beat: threading.Thread | None

    def run_key(self, run_hash: str, name: str = "") -> str:
        raise NotImplementedError

    def _read_claim(self, run_hash: str) -> tuple[Claim | None, str | None, bool]:
        """(claim or None when free/released/unreadable-and-stale, its ETag or None when absent, readable)."""
        key = self.run_key(run_hash, CLAIM)
        try:
            etag = str(self.fs.info(key).get("ETag", "")).strip('"')  # the ETag first: content can only be newer
            raw = self.fs.cat_file(key)
        except FileNotFoundError:
            return None, None, True
        try:
            obj = json.loads(raw.decode("utf-8"))
            if isinstance(obj, dict) and obj.get("released"):
                return None, etag, True
            return Claim.from_json(obj, self.lease_s), etag, True
        except (UnicodeDecodeError, ValueError):
            return None, etag, False

    def _put_claim(self, run_hash: str, record: dict[str, Any], etag: str | None) -> str | None:
        """Write ``record`` if the claim object is still the one with ``etag`` (None: absent); the new
        ETag, or None when another driver changed it first."""
        key, data = self.run_key(run_hash, CLAIM), json_text(record).encode()
        try:
            if not self.conditional:
                out = self.fs.pipe_file(key, data)
            elif etag is None:
                out = self.fs.pipe_file(key, data, mode="create")
            else:
                out = self.fs.pipe_file(key, data, IfMatch=f'"{etag}"')
        except (FileExistsError, FileNotFoundError):
            return None
        except OSError as err:
            if _precondition_failed(err):
                return None
            raise
        if isinstance(out, dict) and out.get("ETag"):
            return str(out["ETag"]).strip('"')
        return hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag of a single-part upload

    def claim(self, run_hash: str, driver: Driver) -> Claim | None:
        """None when the claim is ours now (new, ours already, released, or taken over from a stale
        holder), else the live holder's claim. Renewed by a heartbeat thread until :meth:`release`."""
        with self._lock:
            for _ in range(5):
                holder, etag, readable = self._read_claim(run_hash)
                if holder is not None and holder.driver.token != driver.token and not claim_is_stale(holder):
                    return holder
                if not readable:
                    log.warning("%s: unreadable claim.json; taking it over", run_hash)
                ours = Claim(driver, time.time(), self.lease_s)
                new = self._put_claim(run_hash, ours.to_json(), etag)
                if new is not None:
                    if holder is not None and holder.driver.token != driver.token:
                        log.warning("%s: took over the claim of driver %s (host %s, pid %s): its lease expired",
                                    run_hash, holder.driver.token[:8], holder.driver.host, holder.driver.pid)
                    self._held[run_hash] = (ours, new)
                    self._start_heartbeat()
                    return None
            # Every write lost a race: report a holder (never None, which would mean "ours"), so the
            # scheduler waits and tries again at its next poll.
            holder, _, _ = self._read_claim(run_hash)
            now = time.time()
            return holder or Claim(Driver(token="", host="?", pid=-1, since=now), now, self.lease_s)

    def release(self, run_hash: str, driver: Driver) -> None:
        with self._lock:
            held = self._held.get(run_hash)
            if held is None or held[0].driver.token != driver.token:
                return
            del self._held[run_hash]
            self._put_claim(run_hash, {"driver": "", "released": True}, held[1])

    def claim_holder(self, run_hash: str) -> Claim | None:
        return self._read_claim(run_hash)[0]

    def live_claim(self, run_hash: str) -> Claim | None:
        holder = self._read_claim(run_hash)[0]
        return holder if holder is not None and not claim_is_stale(holder) else None

    def _start_heartbeat(self) -> None:
        if self._beat is None or not self._beat.is_alive():
            self._beat = threading.Thread(target=self._heartbeat, name="objstore-heartbeat", daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while True:
            time.sleep(self.lease_s / 4)
            with self._lock:
                if not self._held:
                    self._beat = None
                    return
            self._heartbeat_once()

    def _heartbeat_once(self) -> None:
        """Renew every claim we hold (If-Match: the ETag of our last write); a refused renewal means
        another driver took the claim over, and we let it go."""
        with self._lock:
            for run_hash, (claim, etag) in list(self._held.items()):
                fresh = Claim(claim.driver, time.time(), claim.lease_s)
                try:
                    new = self._put_claim(run_hash, fresh.to_json(), etag)
                except Exception as err:  # noqa: BLE001 - a network hiccup: retry at the next beat
                    log.warning("%s: could not renew the claim: %s", run_hash, _one_line(err))
                    continue
                if new is None:
                    log.warning("%s: lost the claim (taken over by another driver)", run_hash)
                    del self._held[run_hash]
                else:
                    self._held[run_hash] = (fresh, new)
