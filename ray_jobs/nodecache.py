"""The worker's side of an object store: node-local scratch, an input cache, and the upload of a
finished run (the store's format is in :mod:`ray_jobs.objstore`).

Each node keeps one folder per store, ``$ADVFEAT_SCRATCH/<store key>/`` (default
``~/.cache/advfeat/scratch/<store key>/``; the key is the URI made filename-safe plus 8 hex digits of
its sha1). It is shaped like a local store (``runs/<hash>/``) and holds two kinds of folders:

* **the run being computed**: the kind writes there (so ``checkpoint.pt`` resume works when Ray
  retries the run on the same node), progress goes to its local ``status.json``;
* **fetched inputs** (and runs this node finished and uploaded): complete copies of the store's
  folders. A folder is a complete copy only when its marker file ``.advfeat-complete`` exists; a
  fetch downloads into ``runs/.fetch-<hash>-<random>/``, writes the marker, then renames the folder
  into place, so a crash mid-download leaves no folder that looks complete.

A run's inputs are fetched before its kind starts, and the kind gets their local paths. A train
run's ``recipe.json`` that names a constructed dataset in the store (``.../runs/<hash>/dataset``) gets
that run fetched too, so an eval on another node finds the dataset its model was trained on.

**Upload** (:func:`upload_run`): every file of the finished folder except the run state that only the
driver writes (``status.json``, ``config.json``, ``log.txt``, ``claim.json``), dot files and files
moved aside; the worker's ``log.txt`` goes up as ``worker-log.txt``; then ``manifest.json``; then
``metrics.json`` last. A run whose result already exists in the store is not uploaded again.

The scratch folder may be deleted whenever no run is active on the node; it is only a cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from deep.io import json_text
from ray_jobs.objstore import MANIFEST, RESULT, ObjectStore
from ray_jobs.results import check_result
from ray_jobs.store import Store

SCRATCH_ENV = "ADVFEAT_SCRATCH"
DEFAULT_SCRATCH = "~/.cache/advfeat/scratch"
COMPLETE = ".advfeat-complete"
DRIVER_FILES = frozenset({"status.json", "config.json", "log.txt", "claim.json", MANIFEST, RESULT})
MAX_INPUT_DEPTH = 8


def scratch_root(store_uri: str) -> Path:
    """This node's folder for the store at ``store_uri``."""
    base = Path(os.environ.get(SCRATCH_ENV) or DEFAULT_SCRATCH).expanduser()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", store_uri).strip("-")[:80]
    return base / f"{safe}-{hashlib.sha1(store_uri.encode()).hexdigest()[:8]}"


def _skipped(rel: str) -> bool:
    """Files a fetch does not download: the driver's run state and anything moved aside."""
    name = rel.rsplit("/", 1)[-1]
    return (rel in ("claim.json", "status.json", "log.txt") or name.startswith(".")
            or ".corrupt-" in name)


class NodeCache:
    """This node's scratch and input cache for one object store (see the module docstring)."""

    def __init__(self, remote: ObjectStore) -> None:
        self.remote = remote
        self.root = scratch_root(str(remote.root))
        self.local = Store.create(self.root)

    def folder(self, run_hash: str) -> Path:
        return self.local.run_dir(run_hash)

    def is_complete(self, run_hash: str) -> bool:
        return (self.folder(run_hash) / COMPLETE).is_file()

    def fetch(self, run_hash: str, depth: int = 0) -> Path:
        """The local path of a complete copy of ``run_hash``'s folder (downloaded unless cached)."""
        folder = self.folder(run_hash)
        if not self.is_complete(run_hash):
            if self.remote.uploaded_result(run_hash) is None:
                raise FileNotFoundError(f"input run {run_hash} has no result in the store {self.remote.root}")
            self._download(run_hash, folder)
        if depth < MAX_INPUT_DEPTH:
            for dep in self._dataset_runs(folder):
                self.fetch(dep, depth + 1)
        return folder

    def _download(self, run_hash: str, folder: Path) -> None:
        tmp = folder.parent / f".fetch-{run_hash}-{uuid.uuid4().hex[:8]}"
        prefix = self.remote.run_key(run_hash) + "/"
        try:
            for key in self.remote.fs.find(prefix):
                rel = key[len(prefix):] if key.startswith(prefix) else key.rsplit(f"/runs/{run_hash}/", 1)[-1]
                if _skipped(rel):
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.remote.fs.get_file(key, str(target))
            (tmp / COMPLETE).write_text(json_text({"store": str(self.remote.root), "fetched": time.time()}))
            if folder.exists() and not self.is_complete(run_hash):
                # An unfinished attempt of this node (another node finished the run): set it aside.
                shutil.rmtree(folder.rename(folder.parent / f".stale-{run_hash}-{uuid.uuid4().hex[:8]}"))
            try:
                tmp.rename(folder)
            except OSError:
                if not self.is_complete(run_hash):  # lost a race against another fetch: theirs is complete
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _dataset_runs(folder: Path) -> list[str]:
        """Runs named by a train recipe's constructed dataset path (``.../runs/<hash>/dataset``)."""
        from deep.runfolder import store_relative

        try:
            recipe = json.loads((folder / "recipe.json").read_text())
        except (FileNotFoundError, ValueError):
            return []
        dataset = recipe.get("dataset") if isinstance(recipe, dict) else None
        if not isinstance(dataset, str) or "/" not in dataset:
            return []
        rel = store_relative(dataset, folder.parent.parent)
        return [rel.split("/")[1]] if rel is not None else []

    def upload_run(self, run_hash: str) -> bool:
        """Upload the finished folder (artifacts, manifest, result last); False when the store
        already holds a result for it (then nothing is written)."""
        if self.remote.uploaded_result(run_hash) is not None:
            return False
        folder = self.folder(run_hash)
        files: dict[str, int] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            if rel in DRIVER_FILES or any(part.startswith(".") for part in rel.split("/")) or ".corrupt-" in rel:
                if rel != "log.txt":
                    continue
            name = "worker-log.txt" if rel == "log.txt" else rel
            self.remote.fs.put_file(str(path), self.remote.run_key(run_hash, name))
            files[name] = path.stat().st_size
        self.remote.put_bytes(run_hash, MANIFEST, json_text({"files": files}).encode())
        self.remote.put_bytes(run_hash, RESULT, (folder / RESULT).read_bytes())
        (folder / COMPLETE).write_text(json_text({"store": str(self.remote.root), "uploaded": time.time()}))
        return True


def execute_object_run(run: dict[str, Any], store_uri: str, data_root: str | None,
                       kind_modules: list[str]) -> dict[str, Any]:
    """``runner.execute_run`` for an object store: compute in scratch, upload, report to the driver
    (which alone writes the run's state). Application errors are returned, not raised."""
    from ray_jobs.kinds import RunContext, get_kind
    from ray_jobs.spec import strip_tags

    remote, run_hash = ObjectStore(store_uri, repairs=False), run["hash"]
    info: dict[str, Any] = {"hash": run_hash, "host": socket.gethostname(), "pid": os.getpid()}
    if remote.uploaded_result(run_hash, run["kind"]) is not None:
        return {"state": "done", **info}
    node = NodeCache(remote)
    local, folder = node.local, node.folder(run_hash)
    if node.is_complete(run_hash):  # we uploaded it once, but the store's copy is damaged: redo
        shutil.rmtree(folder)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if not local.is_done(run_hash):  # done here but not in the store: an upload was cut, upload again
        attempt = int(local.status(run_hash).get("attempts", 0)) + 1
        local.update_status(run_hash, state="running", attempts=attempt, started=time.time(), **info)
        local.log(run_hash, f"attempt {attempt} started on {info['host']} pid {info['pid']}")
        try:
            inputs = {name: node.fetch(h) for name, h in run["inputs"].items()}
            ctx = RunContext(store=local, run_hash=run_hash, data_root=data_root, attempt=attempt)
            metrics = get_kind(run["kind"], kind_modules)(strip_tags(run["config"]), inputs, folder, ctx)
            if not isinstance(metrics, dict):
                raise TypeError(f"kind {run['kind']!r} returned {type(metrics).__name__}, expected a dict")
            check_result(json.loads(json_text(metrics, allow_nan=True)), run["kind"], f"result of run {run_hash}")
            local.finish(run_hash, metrics)
        except Exception as err:  # noqa: BLE001 - every application error goes back to the driver
            local.update_status(run_hash, state="failed", error=f"{type(err).__name__}: {err}")
            local.log(run_hash, f"attempt {attempt} failed: {type(err).__name__}: {err}")
            return {"state": "failed", "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(),
                    **info}
        local.log(run_hash, f"attempt {attempt} done; uploading")
    node.upload_run(run_hash)
    from ray_jobs.runner import machine

    return {"state": "done", "cpu_seconds": time.process_time() - cpu0,
            "wall_seconds": time.perf_counter() - wall0, "machine": machine(), **info}


def download_results(store_uri: str, dest: Path) -> Path:
    """Copy an object store's results into ``dest`` as a local store (for the report): every run's
    files except checkpoints (``*.pt``), constructed datasets (``dataset/``), claims and files moved
    aside. FileNotFoundError when ``store_uri`` is not a result store; StoreUnavailableError when it
    cannot be reached. Returns ``dest``."""
    remote = ObjectStore.open_existing(store_uri)
    runs = Store.create(dest)
    for run_hash in remote.all_hashes():
        prefix = remote.run_key(run_hash) + "/"
        for key in remote.fs.find(prefix):
            rel = key[len(prefix):] if key.startswith(prefix) else key.rsplit(f"/runs/{run_hash}/", 1)[-1]
            name = rel.rsplit("/", 1)[-1]
            if (rel == "claim.json" or rel.startswith("dataset/") or name.endswith(".pt") or name.startswith(".")
                    or ".corrupt-" in name):
                continue
            target = runs.run_dir(run_hash) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            remote.fs.get_file(key, str(target))
    return dest
