"""Constructed-dataset directories written by ``deep.construct`` (Ilyas et al. D_R, D_NR, D_rand, D_det).

Layout::

    DIR/provenance.json            {"source_dataset": <name load_split accepts>, "num_classes": C, "kind": ..., ...}
    DIR/shards/shard-00000.npz     x float32 [n, C, H, W] in [0, 1], y int64 [n]
    DIR/shards/shard-00001.npz     ...

The train split is the shards concatenated in order; the test split is the source dataset's test
split (resolved by the caller with the same data root).
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deep.data.splits import check_labels
from deep.io import CorruptFileError, read_json

PROVENANCE = "provenance.json"
SHARD_GLOB = "shard-*.npz"


def is_constructed_dir(path: Path) -> bool:
    return path.is_dir() and (path / PROVENANCE).is_file()


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance record, validated for the fields the loader needs."""
    file = path / PROVENANCE
    if not file.is_file():
        raise FileNotFoundError(
            f"constructed dataset: looked for {file} and did not find it; a directory written by "
            f"deep.construct holds provenance.json and shards/shard-00000.npz, ..."
        )
    prov = read_json(file)
    if not isinstance(prov, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(prov).__name__}")
    source, c = prov.get("source_dataset"), prov.get("num_classes")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{file}: 'source_dataset' must name the dataset the set was built from, got {source!r}")
    if isinstance(c, bool) or not isinstance(c, int) or c < 2:
        raise ValueError(f"{file}: 'num_classes' must be an integer >= 2, got {c!r}")
    return prov


def shard_paths(path: Path) -> list[Path]:
    shards = sorted((path / "shards").glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(f"constructed dataset: no {SHARD_GLOB} files in {path / 'shards'}")
    return shards


def read_shard(file: Path) -> dict[str, np.ndarray]:
    """Every array of one shard (the one shard reader: deep.construct resumes through it too).

    FileNotFoundError if missing; CorruptFileError naming the file for anything that does not decode
    (truncated zip, bad deflate stream, pickled objects, missing 'x'/'y', wrong dtypes or shapes)."""
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"shard not found: {file}")
    try:
        with np.load(file, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, KeyError, OSError, EOFError) as exc:
        raise CorruptFileError(f"{file}: corrupt or truncated shard ({type(exc).__name__}: {exc})") from exc
    x, y = arrays.get("x"), arrays.get("y")
    if x is None or y is None:
        raise CorruptFileError(f"{file}: a shard needs arrays 'x' and 'y', found {sorted(arrays)}")
    if x.dtype != np.float32 or x.ndim != 4:
        raise CorruptFileError(f"{file}: 'x' must be float32 [n, C, H, W], got {x.dtype} {x.shape}")
    if y.dtype != np.int64 or y.shape != (x.shape[0],):
        raise CorruptFileError(f"{file}: 'y' must be int64 [{x.shape[0]}], got {y.dtype} {y.shape}")
    return arrays


def load_constructed_train(path: Path, num_classes: int) -> tuple[Tensor, Tensor]:
    """The shards concatenated in order, checked (dtype, shape, range, NaNs, labels)."""
    xs, ys = [], []
    for file in shard_paths(path):
        arrays = read_shard(file)
        x, y = arrays["x"], arrays["y"]
        if x.shape[1] not in (1, 3):
            raise ValueError(f"{file}: 'x' must be float32 [n, C, H, W] with C in (1, 3), got {x.dtype} {x.shape}")
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise ValueError(f"{file}: image shape {x.shape[1:]} differs from the first shard's {xs[0].shape[1:]}")
        if np.isnan(x).any():
            raise ValueError(f"{file}: 'x' contains NaN values")
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(f"{file}: 'x' must lie in [0, 1], got [{x.min():.4g}, {x.max():.4g}]")
        xs.append(x)
        ys.append(y)
    x_t = torch.from_numpy(np.concatenate(xs))
    y_t = torch.from_numpy(np.concatenate(ys))
    check_labels(y_t, num_classes, name=f"labels of {path}")
    return x_t, y_t
