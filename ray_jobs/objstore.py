"""A result store on object storage (``s3://bucket/prefix``, ``gs://bucket/prefix``), through fsspec.

This docstring is the format reference of the object store; the folder layout and the meaning of
every file are those of :mod:`ray_jobs.store` (``PREFIX/runs/<hash>/...``), with these differences:

* ``PREFIX/store.json`` – ``{"format": "advfeat.store/1"}``, written by ``Store``-creating commands
  (``run``); read-only commands refuse a prefix without it ("not a result store").
* ``runs/<hash>/manifest.json`` – ``{"files": {relative name: size in bytes}}``: every artifact the
  worker uploaded. It is uploaded after the artifacts and before ``metrics.json``.
* ``runs/<hash>/metrics.json`` – the validated result, uploaded **last**. A run is **done** when
  ``status.json`` says done, ``metrics.json`` passes :mod:`ray_jobs.results`, and every file of the
  manifest is present with its size. Otherwise the run reads as pending; a damaged ``metrics.json``
  (or the result of a run whose manifest or artifacts are missing) is moved aside to
  ``metrics.json.corrupt-<UTC time>`` (never deleted), and the next ``run`` redoes that run only.
* ``runs/<hash>/worker-log.txt`` – the worker's own log of its last attempt (``log.txt`` is the
  driver's: object storage has no append, so each file has one writer).
* ``runs/<hash>/claim.json`` – the claim record of :mod:`ray_jobs.claims`; a released claim is
  overwritten with ``{"driver": "", "released": true}`` instead of being deleted.

**Who writes what (exactly once).** Workers never write ``status.json``, ``config.json``,
``log.txt`` or ``claim.json``: the **driver is the only writer of run state**. A worker runs in a
node-local scratch folder and uploads only a finished run folder (:mod:`ray_jobs.nodecache`); the
driver then checks the uploaded result and writes ``done``. Between drivers, claims use S3
**conditional writes**: a claim is created with ``If-None-Match: *`` and renewed, released or taken
over (when stale: lease expired) with ``If-Match: <ETag read>``, so of two drivers racing for a
run exactly one wins. Backends without conditional puts (anything but ``s3://``) write claims
unconditionally: there, one driver per store is safe, two drivers may both run a run (the first
result uploaded is still never replaced by a later one: the worker checks for a result first, and
the driver re-checks before it marks done), and a warning says so. A driver that stalls past its
lease can lose a claim while its run still computes; the second result is then uploaded over the
first, which is the same computation (same hash, same seed).

Credentials and endpoints come from the backend's usual sources (for S3: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles; ``AWS_ENDPOINT_URL`` for an S3-compatible
server). :func:`open_store` checks the store is reachable before anything runs and raises
:class:`StoreUnavailableError` (one line) when it is not.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from deep.io import json_text
from ray_jobs.claims import default_lease_s
from ray_jobs.objclaims import ObjectClaims, _one_line
from ray_jobs.records import RunRecords
from ray_jobs.results import InvalidResultError, check_result

log = logging.getLogger(__name__)

STORE_MARK = "store.json"
STORE_FORMAT = "advfeat.store/1"
MANIFEST = "manifest.json"
RESULT = "metrics.json"
_CONDITIONAL = ("s3", "s3a")


class StoreUnavailableError(ConnectionError):
    """The store's backend cannot be reached, refuses the credentials, or lacks its library."""


class ObjectPath(str):
    """A location in an object store (``s3://bucket/prefix/runs/<hash>``); ``/`` joins like a Path."""

    def __truediv__(self, other: str) -> ObjectPath:
        return ObjectPath(f"{self.rstrip('/')}/{other}")

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]


def is_uri(value: object) -> bool:
    """True for an object-store URI (``s3://...``); local paths and ``file://`` URIs are local stores."""
    return isinstance(value, str) and "://" in value and not value.startswith("file://")


def open_store(value: str | Any, mode: str = "create", *, lease_s: float | None = None) -> Any:
    """The store named by ``--store``: a local path or ``file://`` URI gives a :class:`ray_jobs.store.Store`,
    any other URI an :class:`ObjectStore`. ``mode``: ``create`` (``run``), ``existing`` (read-only
    commands; FileNotFoundError when absent) or ``plain`` (``--dry-run``: a URI is only checked for
    reachability). StoreUnavailableError when an object store cannot be reached."""
    from ray_jobs.store import Store

    if mode not in ("create", "existing", "plain"):
        raise ValueError(f"open_store: mode must be 'create', 'existing' or 'plain', got {mode!r}")
    text = str(value)
    if text.startswith("file://"):
        text = text[len("file://"):] or "/"
    if not is_uri(text):
        opener = {"create": Store.create, "existing": Store.open_existing, "plain": Store}[mode]
        return opener(text, lease_s=lease_s)
    if mode == "create":
        return ObjectStore.create(text, lease_s=lease_s)
    if mode == "existing":
        return ObjectStore.open_existing(text, lease_s=lease_s)
    store = ObjectStore(text, lease_s=lease_s)
    store.check_reachable()
    return store


def filesystem(protocol: str, uri: str | None = None) -> Any:
    """A fresh fsspec filesystem for ``protocol``, without listing caches (other writers change the
    store under us). StoreUnavailableError when fsspec has no backend for it or its package is absent."""
    import fsspec

    options: dict[str, Any] = {"skip_instance_cache": True, "use_listings_cache": False}
    if protocol in _CONDITIONAL:
        # Fail in seconds, not minutes, when the endpoint is down.
        options["config_kwargs"] = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}}
    try:
        return fsspec.filesystem(protocol, **options)
    except (ImportError, ValueError) as err:
        extra = " (pip install 'advfeat[s3]')" if protocol in _CONDITIONAL else ""
        raise StoreUnavailableError(f"store {uri or protocol + '://...'}: no filesystem for {protocol!r}{extra}: "
                                    f"{str(err).splitlines()[0]}") from err


class ObjectStore(ObjectClaims, RunRecords):
    """The store at ``uri`` (``PROTOCOL://bucket[/prefix]``); same reading/writing API as ``Store``."""

    def __init__(self, uri: str, *, lease_s: float | None = None, repairs: bool = True) -> None:
        protocol, _, rest = uri.partition("://")
        rest = rest.strip("/")
        if not protocol or not rest:
            raise ValueError(f"store {uri!r}: expected PROTOCOL://bucket[/prefix], e.g. s3://my-bucket/advfeat")
        self.protocol, self.base = protocol, rest
        self.root = ObjectPath(f"{protocol}://{rest}")
        self.lease_s = float(lease_s) if lease_s is not None else default_lease_s()
        self.fs = filesystem(protocol, uri)
        self.conditional = protocol in _CONDITIONAL
        # A worker's view (repairs=False) only reads: a damaged file is left for the driver to move aside.
        self.repairs = repairs
        self._lock = threading.Lock()
        self._held = {}
        self._beat = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": str(self.root), "lease_s": self.lease_s, "repairs": self.repairs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], lease_s=state["lease_s"], repairs=state["repairs"])  # type: ignore[misc]

    # ----------------------------------------------------------------------------------- opening
    def check_reachable(self) -> None:
        """List the bucket: StoreUnavailableError (one line) when it is missing, unreachable or the
        credentials are refused."""
        bucket = self.base.split("/", 1)[0]
        try:
            self.fs.ls(bucket, detail=False)
        except FileNotFoundError as err:
            raise StoreUnavailableError(f"store {self.root}: bucket {bucket!r} does not exist "
                                        f"({_one_line(err)})") from err
        except Exception as err:  # noqa: BLE001 - botocore/network errors come in many types
            raise StoreUnavailableError(f"store {self.root}: cannot reach the bucket ({_one_line(err)}); check "
                                        f"the credentials and endpoint (AWS_ENDPOINT_URL for S3-compatible "
                                        f"servers)") from err

    @classmethod
    def create(cls, uri: str, *, lease_s: float | None = None) -> ObjectStore:
        """Open for writing: reachable, and ``store.json`` written (which also proves write access)."""
        store = cls(uri, lease_s=lease_s)
        store.check_reachable()
        if not store.fs.exists(store._key(STORE_MARK)):
            try:
                store.fs.pipe_file(store._key(STORE_MARK), json_text({"format": STORE_FORMAT}).encode())
            except Exception as err:  # noqa: BLE001
                raise StoreUnavailableError(f"store {store.root}: cannot write ({_one_line(err)})") from err
        return store

    @classmethod
    def open_existing(cls, uri: str, *, lease_s: float | None = None) -> ObjectStore:
        """Open for reading: reachable, and ``store.json`` present (FileNotFoundError otherwise)."""
        store = cls(uri, lease_s=lease_s)
        store.check_reachable()
        if not store.fs.exists(store._key(STORE_MARK)):
            raise FileNotFoundError(f"{store.root} is not a result store: it has no {STORE_MARK}; give the "
                                    f"--store that `run` wrote to")
        return store

    # ------------------------------------------------------------------------------------ layout
    def _key(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def run_key(self, run_hash: str, name: str = "") -> str:
        self.run_dir(run_hash)  # validates the hash
        return self._key("runs", run_hash, name) if name else self._key("runs", run_hash)

    # ----------------------------------------------------------------------------------- reading
    def get_bytes(self, run_hash: str, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self.run_key(run_hash, name))
        except FileNotFoundError:
            return None

    def put_bytes(self, run_hash: str, name: str, data: bytes) -> None:
        self.fs.pipe_file(self.run_key(run_hash, name), data)

    def _read(self, run_hash: str, name: str) -> Any | None:
        """The JSON in a run's file; None when missing, or undecodable (then moved aside)."""
        raw = self.get_bytes(run_hash, name)
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            self._set_aside(run_hash, name, f"{self.run_dir(run_hash) / name}: not valid JSON ({err})")
            return None

    def _set_aside(self, run_hash: str, name: str, why: str) -> None:
        """Move a damaged file to ``<name>.corrupt-<UTC time>`` (a copy, then the delete)."""
        if not self.repairs:
            log.warning("%s (left for the driver to move aside)", why)
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            self.fs.mv(self.run_key(run_hash, name), self.run_key(run_hash, f"{name}.corrupt-{stamp}"))
        except FileNotFoundError:
            return
        except Exception as err:  # noqa: BLE001 - e.g. a read-only credential
            log.warning("%s (could not move it aside: %s)", why, _one_line(err))
            return
        log.warning("%s: moved aside", why)
        self.log(run_hash, f"moved the damaged {name} aside to {name}.corrupt-{stamp}: {why}")

    def _manifest_problem(self, run_hash: str) -> str | None:
        """Why the uploaded artifacts do not match manifest.json, or None when they all do."""
        manifest = self._read(run_hash, MANIFEST)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            return f"{MANIFEST} is missing or malformed"
        listed = {info["name"].rsplit(f"/runs/{run_hash}/", 1)[-1]: info.get("size")
                  for info in self.fs.find(self.run_key(run_hash), detail=True).values()}
        for name, size in manifest["files"].items():
            if listed.get(name) != size:
                return f"artifact {name} is {'missing' if name not in listed else f'{listed[name]} bytes'}, " \
                       f"the manifest says {size}"
        return None

    def uploaded_result(self, run_hash: str, kind: str | None = None) -> dict[str, Any] | None:
        """The uploaded result when it and the manifest's artifacts are all in place; a damaged result
        (or one whose artifacts are gone) is moved aside so the run is redone."""
        result = self._read(run_hash, RESULT)
        if result is None:
            return None
        where = str(self.run_dir(run_hash) / RESULT)
        try:
            check_result(result, kind or (self.config(run_hash) or {}).get("kind"), where)
        except InvalidResultError as err:
            self._set_aside(run_hash, RESULT, str(err))
            return None
        problem = self._manifest_problem(run_hash)
        if problem is not None:
            self._set_aside(run_hash, RESULT, f"{where}: {problem}")
            return None
        return result

    def _result(self, run_hash: str) -> dict[str, Any] | None:
        return self.uploaded_result(run_hash)

    def all_hashes(self) -> list[str]:
        try:
            names = self.fs.ls(self._key("runs"), detail=False)
        except FileNotFoundError:
            return []
        return sorted(n.rstrip("/").rsplit("/", 1)[-1] for n in names if not n.rsplit("/", 1)[-1].startswith("."))

    # ----------------------------------------------------------------------------------- writing
    def update_status(self, run_hash: str, **fields: Any) -> dict[str, Any]:
        status = self._merged_status(run_hash, fields)
        self.put_bytes(run_hash, "status.json", json_text(status, allow_nan=True).encode())
        return status

    def write_config(self, run_hash: str, identity: dict[str, Any], label: dict[str, Any]) -> None:
        cfg = self.config(run_hash)
        labels = (cfg or {}).get("labels", [])
        if cfg is not None and label in labels:
            return  # unchanged: no write (a grid of many runs reopens its store often)
        labels.append(label)
        self.put_bytes(run_hash, "config.json",
                       json_text({**identity, "hash": run_hash, "labels": labels}).encode())

    def record_done(self, run_hash: str, **fields: Any) -> bool:
        """The driver's done mark, written only when the worker's upload checks out; False otherwise."""
        if self.uploaded_result(run_hash) is None:
            return False
        self.update_status(run_hash, state="done", error=None, traceback=None, finished=time.time(), **fields)
        return True

    def record_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """The driver writes what a worker reported (``nodecache.execute_object_run``'s dict) into the
        run's status; a 'done' whose upload does not check out becomes 'failed'. Returns the outcome."""
        run_hash = result.get("hash")
        if not isinstance(run_hash, str):
            return result
        status = self.status(run_hash)
        attempts = int(status.get("attempts", 0)) + 1
        who = {k: result[k] for k in ("host", "pid", "cpu_seconds", "wall_seconds", "machine") if k in result}
        where = f"on {result.get('host', '?')} pid {result.get('pid', '?')}"
        if result.get("state") == "done":
            if status.get("state") == "done" and self.uploaded_result(run_hash) is not None:
                return result
            if self.record_done(run_hash, attempts=attempts, **who):
                self.log(run_hash, f"attempt {attempts} done {where}")
                return result
            result = {**result, "state": "failed",
                      "error": "the worker reported done, but the store holds no valid uploaded result"}
        self.update_status(run_hash, state="failed", attempts=attempts, error=result.get("error"),
                           traceback=result.get("traceback"), **who)
        self.log(run_hash, f"attempt {attempts} failed {where}: {result.get('error')}")
        return result

    def log(self, run_hash: str, line: str) -> None:
        """Append to log.txt (read, append, write: the driver is its only writer)."""
        old = self.get_bytes(run_hash, "log.txt") or b""
        self.put_bytes(run_hash, "log.txt", old + f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n".encode())
