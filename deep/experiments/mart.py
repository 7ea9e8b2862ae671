"""[MART] Wang et al. 2020 (SPEC §6): the parts of the MART experiments that are not plain training runs.

The loss ablations, the λ/β grids and the S⁻/S⁺ experiment are ``deep.train`` recipes
(``mart_ablation``, ``lam``/``beta``, ``perturb``); this module holds the unlabeled-data setting:

- :func:`pseudo_label_split` — hold out part of a training set as *unlabeled* (its labels are only used
  to score the pseudo-labels, never for training), label it with a standard model's predictions, and
  return the labeled part (true labels) followed by the pseudo-labeled part. [MART] follows Carmon et
  al. (2019): a standard model trained on the labeled data pseudo-labels the extra images.
- :func:`write_pseudo_labeled` — the same written as a constructed-dataset directory
  (``provenance.json`` + ``shards/shard-00000.npz``) that ``deep.data.load_split`` reads, so the MART
  run trains on it like on any dataset and is scored on the source dataset's real test split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deep.evaluate import predict
from deep.io import read_json, save_npz, write_json

PSEUDO_KIND = "pseudo-label"


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def pseudo_label_split(model: nn.Module, x: Tensor, y: Tensor, labeled_n: int, unlabeled_n: int, *,
                       batch_size: int = 256) -> dict[str, Any]:
    """Labeled part = the first ``labeled_n`` examples with their labels; unlabeled part = the next
    ``unlabeled_n`` with the model's predicted labels. Returns ``{"x", "y"}`` (labeled then
    pseudo-labeled, CPU tensors), ``"pseudo_label_accuracy"`` (agreement of the pseudo-labels with the
    held-out true labels), ``"labeled_n"``, ``"unlabeled_n"`` and ``"class_counts"`` of the pseudo-labels."""
    labeled_n = _count("labeled_n", labeled_n, 1)
    unlabeled_n = _count("unlabeled_n", unlabeled_n, 1)
    if not isinstance(x, Tensor) or x.dim() != 4 or not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [N, C, H, W] and y [N], got {tuple(getattr(x, 'shape', ()))} and "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if labeled_n + unlabeled_n > x.shape[0]:
        raise ValueError(f"labeled_n + unlabeled_n = {labeled_n + unlabeled_n} exceeds the {x.shape[0]} examples given")
    x_u, y_u_true = x[labeled_n:labeled_n + unlabeled_n], y[labeled_n:labeled_n + unlabeled_n]
    pseudo, _ = predict(model, x_u, batch_size=batch_size)
    pseudo = pseudo.to(torch.int64).cpu()
    x_out = torch.cat([x[:labeled_n].cpu(), x_u.cpu()])
    y_out = torch.cat([y[:labeled_n].cpu(), pseudo])
    return {"x": x_out, "y": y_out, "labeled_n": labeled_n, "unlabeled_n": unlabeled_n,
            "pseudo_label_accuracy": float((pseudo == y_u_true.cpu()).float().mean()),
            "class_counts": torch.bincount(pseudo, minlength=int(y.max()) + 1).tolist()}


def write_pseudo_labeled(model: nn.Module, dataset: str, labeled_n: int, unlabeled_n: int, out_dir: str | os.PathLike[str],
                         *, data_root: Any = None, source_run: str | None = None) -> dict[str, Any]:
    """Build the labeled + pseudo-labeled training set of ``dataset`` (its first labeled_n + unlabeled_n
    training images) into ``out_dir`` as a constructed-dataset directory; return its provenance record.
    A directory that already holds a finished build is returned as is (the build is deterministic)."""
    from deep.data import load_split

    out = Path(out_dir)
    prov_file = out / "provenance.json"
    if prov_file.is_file():
        return read_json(prov_file)
    labeled_n = _count("labeled_n", labeled_n, 1)
    unlabeled_n = _count("unlabeled_n", unlabeled_n, 1)
    split = load_split(dataset, "train", data_root=data_root)
    if len(split) < labeled_n + unlabeled_n:
        raise ValueError(f"dataset {dataset!r} has {len(split)} training images, fewer than "
                         f"labeled_n + unlabeled_n = {labeled_n + unlabeled_n}")
    result = pseudo_label_split(model, split.x, split.y, labeled_n, unlabeled_n)
    save_npz(out / "shards" / "shard-00000.npz", x=result["x"].numpy().astype(np.float32),
             y=result["y"].numpy().astype(np.int64))
    prov = {"source_dataset": dataset, "num_classes": int(split.info.num_classes), "kind": PSEUDO_KIND,
            "classes": list(split.info.classes) if split.info.classes else None,
            "n": int(result["y"].shape[0]), "labeled_n": labeled_n, "unlabeled_n": unlabeled_n,
            "labeled_indices": [0, labeled_n], "unlabeled_indices": [labeled_n, labeled_n + unlabeled_n],
            "pseudo_label_accuracy": result["pseudo_label_accuracy"],
            "pseudo_label_class_counts": result["class_counts"], "source_run": source_run}
    # provenance last: its presence marks a finished build
    write_json(prov_file, prov)
    return prov
