"""On-disk layout of a constructed dataset (DESIGN §deep.construct): shards, resume, provenance.

DIR/shards/plan.json          the build parameters, written first; a resume with other parameters is refused
DIR/shards/shard-00000.npz    `x` float32 [n, C, H, W] in [0, 1], `y` int64 [n], plus per-example
                              statistics arrays (`src_index`, ...) and `seconds` (build time of the shard)
DIR/provenance.json           written LAST: a directory without it is an incomplete build

Every file is written to a temporary name in the same folder and moved into place with os.replace,
which is atomic on POSIX, so an interrupted build never leaves a half-written shard behind: a shard
file either exists complete or not at all, and a resumed build recomputes only the missing ones.
No pickles anywhere (np.load(allow_pickle=False)).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROVENANCE = "provenance.json"
SHARDS = "shards"
PLAN = "plan.json"
SCHEMA = "advfeat.construct/1"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def shard_path(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / SHARDS / shard_name(index)


def _atomic_write_bytes(path: Path, write) -> None:
    """Write via `write(fileobj)` to a temp file beside `path`, fsync, then os.replace into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    _atomic_write_bytes(Path(path), lambda f: f.write(data))


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
    _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))
    return path


def read_shard(path: Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shard not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:  # corrupt zip / truncated file
        raise ValueError(f"corrupt shard {path}: {e}") from e


def check_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """Write the plan on a fresh build; on resume refuse a plan that differs (shards would mix)."""
    path = Path(out_dir) / SHARDS / PLAN
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(plan)):
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != json.loads(json.dumps(plan)).get(k))
            raise ValueError(f"{out_dir} holds a build with different parameters ({', '.join(diff)}); "
                             f"use another --out or delete it")
    else:
        write_json(path, plan)


def read_provenance(out_dir: Path) -> dict[str, Any]:
    """The provenance record of a COMPLETE constructed dataset; refuses an incomplete build."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"constructed dataset directory not found: {out_dir}")
    path = out_dir / PROVENANCE
    if not path.is_file():
        raise ValueError(f"{out_dir} has no {PROVENANCE}: the build is incomplete (interrupted?); "
                         f"rerun the same construct command to resume it")
    try:
        prov = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt {path}: {e}") from e
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
