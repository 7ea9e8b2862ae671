"""On-disk layout of a constructed dataset (DESIGN §deep.construct): shards, resume, provenance.

DIR/shards/plan.json          the build parameters, written just before the first shard; a resume with
                              other parameters is refused while shards exist
DIR/shards/shard-00000.npz    `x` float32 [n, C, H, W] in [0, 1], `y` int64 [n], plus per-example
                              statistics arrays (`src_index`, ...) and `seconds` (build time of the shard)
DIR/provenance.json           written LAST: a directory without it is an incomplete build; besides the
                              plan's fields, statistics and timing it holds `source_heldout`, the source
                              model's held-out check (deep.construct.source; absent in older builds)

Every file is written with deep.io (temporary file, fsync, os.replace), so an interrupted build never
leaves a half-written shard behind, and a resumed build recomputes only the missing ones. A shard that
was damaged afterwards (truncated, bit rot) fails to decode on resume: it is moved aside
(``*.corrupt-<time>``) and rebuilt. A plan.json without any shard is left by a build that failed before
its first shard, so a resume with other parameters replaces it. No pickles anywhere
(np.load(allow_pickle=False)); shards are decoded by deep.data.constructed.read_shard, the one reader.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deep import io as dio
from deep.data.constructed import read_shard

log = logging.getLogger(__name__)

PROVENANCE = "provenance.json"
SHARDS = "shards"
PLAN = "plan.json"
SCHEMA = "advfeat.construct/1"

__all__ = ["PROVENANCE", "SHARDS", "PLAN", "SCHEMA", "shard_name", "shard_path", "write_shard",
           "read_done_shard", "check_plan", "write_plan", "read_provenance", "read_constructed"]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def shard_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / SHARDS / shard_name(index)


def write_shard(out_dir: Path, index: int, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write one shard; `arrays` must hold `x` (float32 NCHW in [0, 1]) and `y` (int64)."""
    x, y = arrays.get("x"), arrays.get("y")
    if x is None or y is None:
        raise ValueError("a shard needs arrays 'x' and 'y'")
    if x.dtype != np.float32 or x.ndim != 4:
        raise ValueError(f"shard x must be float32 [n, C, H, W], got {x.dtype} {x.shape}")
    if y.dtype != np.int64 or y.shape != (x.shape[0],):
        raise ValueError(f"shard y must be int64 [{x.shape[0]}], got {y.dtype} {y.shape}")
    path = shard_path(out_dir, index)
    dio.save_npz(path, **arrays)
    return path


def read_done_shard(out_dir: Path, index: int, n: int, shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of finished shard `index` (`n` images of `shape`), or None when it still has to be built:
    missing, or damaged (it is then moved aside with a warning naming it, never deleted)."""
    path = shard_path(out_dir, index)
    if not path.is_file():
        return None
    try:
        arrays = read_shard(path)
        if arrays["x"].shape != (n, *shape):
            raise dio.CorruptFileError(f"{path}: 'x' has shape {arrays['x'].shape}, the plan says {(n, *shape)}")
    except dio.CorruptFileError as e:
        log.warning("%s; rebuilding it", e)
        dio.quarantine(path)
        return None
    return arrays


def _plain(obj: Any) -> Any:
    """obj as it reads back from JSON (tuples become lists), for comparing a plan with plan.json."""
    return json.loads(dio.json_text(obj))


def check_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """Refuse to resume a build whose shards were made with other parameters (they would mix).

    A plan.json whose build never finished a shard (the command failed or was corrected before) does not
    bind the folder: the new plan replaces it when the first shard is written (:func:`write_plan`)."""
    path = Path(out_dir) / SHARDS / PLAN
    if not path.is_file():
        return
    old, new = dio.read_json(path), _plain(plan)
    if old == new:
        return
    if not any((Path(out_dir) / SHARDS).glob("shard-*.npz")):
        log.warning("%s: replacing the plan of a build that wrote no shard", path)
        return
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) if isinstance(old, dict) else ["all"]
    raise ValueError(f"{out_dir} holds a build with different parameters ({', '.join(diff)}); "
                     f"use another --out or delete it")


def write_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """Record the build parameters; called just before a shard is written, so shards never exist
    without the plan they were built under."""
    path = Path(out_dir) / SHARDS / PLAN
    if not path.is_file() or dio.read_json(path) != _plain(plan):
        dio.write_json(path, plan)


def read_provenance(out_dir: Path) -> dict[str, Any]:
    """The provenance record of a COMPLETE constructed dataset; refuses an incomplete build."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"constructed dataset directory not found: {out_dir}")
    path = out_dir / PROVENANCE
    if not path.is_file():
        raise ValueError(f"{out_dir} has no {PROVENANCE}: the build is incomplete (interrupted?); "
                         f"rerun the same construct command to resume it")
    prov = dio.read_json(path)
    if not isinstance(prov, dict):
        raise dio.CorruptFileError(f"{path} must hold a JSON object, got {type(prov).__name__}")
    for key in ("source_dataset", "num_classes", "kind", "shards", "n"):
        if key not in prov:
            raise ValueError(f"{path} lacks the field {key!r}")
    return prov


def read_constructed(out_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(x float32 [N, C, H, W], y int64 [N], provenance) of a complete constructed dataset."""
    prov = read_provenance(out_dir)
    xs, ys = [], []
    for name in prov["shards"]:
        arrays = read_shard(Path(out_dir) / name)
        xs.append(arrays["x"])
        ys.append(arrays["y"])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) != prov["n"]:
        raise ValueError(f"{out_dir}: shards hold {len(y)} examples, provenance says {prov['n']}")
    return x, y, prov
