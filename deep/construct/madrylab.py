"""Import / export of MadryLab's released constructed sets (Ilyas et al. 2019; SPEC §5).

The released folders (`robust_CIFAR`, `non_robust_CIFAR`, `drand_CIFAR`, `ddet_CIFAR`) each hold
`CIFAR_ims` and `CIFAR_lab`: torch-saved lists of tensors (images float [n, 3, 32, 32] in [0, 1],
labels int [n]) that are concatenated on load. They are read with torch.load(weights_only=True),
which admits plain lists of tensors and nothing executable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deep.io import load_torch, save_torch, write_json

from .build import DEFAULT_SHARD_SIZE
from .shards import PROVENANCE, SCHEMA, SHARDS, read_constructed, shard_name, write_shard

IMS, LAB = "CIFAR_ims", "CIFAR_lab"
NUM_CLASSES = {"cifar10": 10, "cifar10-subset": 10, "mnist": 10, "fashion-mnist": 10}


def _load_tensor_list(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"MadryLab file not found: {path}")
    obj = load_torch(path)  # CorruptFileError (a ValueError) naming the file if damaged or not tensors-only
    if isinstance(obj, torch.Tensor):
        obj = [obj]
    if not isinstance(obj, (list, tuple)) or not obj or not all(isinstance(t, torch.Tensor) for t in obj):
        raise ValueError(f"{path} must hold a non-empty list of tensors, got {type(obj).__name__}")
    return torch.cat(list(obj))


def import_madrylab(src_dir: Path | str, out_dir: Path | str, source_dataset: str = "cifar10", *,
                    kind: str = "madrylab", num_classes: int | None = None,
                    shard_size: int = DEFAULT_SHARD_SIZE) -> dict[str, Any]:
    """Convert a released folder into a constructed-dataset directory; returns its provenance."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"MadryLab folder not found: {src_dir}")
    if num_classes is None:
        if source_dataset not in NUM_CLASSES:
            raise ValueError(f"num_classes is needed for source_dataset {source_dataset!r}")
        num_classes = NUM_CLASSES[source_dataset]
    x = _load_tensor_list(src_dir / IMS)
    y = _load_tensor_list(src_dir / LAB)
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"{IMS} must concatenate to float [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ValueError(f"{LAB} must concatenate to integer [N={x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
    if bool(torch.isnan(x).any()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"{IMS} images must lie in [0, 1] without NaNs")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"{LAB} labels must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    if (out_dir / PROVENANCE).exists():
        raise ValueError(f"{out_dir} already holds a constructed dataset")
    xn, yn = x.float().numpy(), y.long().numpy()
    n = len(yn)
    names = []
    for i, lo in enumerate(range(0, n, shard_size)):
        write_shard(out_dir, i, {"x": np.ascontiguousarray(xn[lo:lo + shard_size]),
                                 "y": np.ascontiguousarray(yn[lo:lo + shard_size])})
        names.append(f"{SHARDS}/{shard_name(i)}")
    prov = {"schema": SCHEMA, "kind": kind, "n": n, "num_classes": num_classes, "shape": list(x.shape[1:]),
            "source_dataset": source_dataset, "source_split": "train", "imported_from": str(src_dir.resolve()),
            "statistics": {"label_histogram": np.bincount(yn, minlength=num_classes).tolist()},
            "shards": names}
    write_json(out_dir / PROVENANCE, prov)
    return prov


def export_madrylab(constructed_dir: Path | str, out_dir: Path | str, *, chunk: int = 5000) -> Path:
    """Write `CIFAR_ims` / `CIFAR_lab` (lists of tensors, `chunk` examples each) for a constructed set."""
    x, y, _ = read_constructed(Path(constructed_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    save_torch(out_dir / IMS, [c.clone() for c in xt.split(chunk)])
    save_torch(out_dir / LAB, [c.clone() for c in yt.split(chunk)])
    return out_dir
