"""The source-model check of every construction: a dataset is never built from a model that did not learn.

``python -m deep construct`` (``--min-source-acc``) and the ray_jobs ``construct`` kind
(``min_source_acc``) both reach it through ``construct_dataset(min_source_acc=...)``.

The accuracy is *measured* here, on a fixed held-out set: the first ``HELD_OUT_N`` (1,000) images of the
source dataset's test split (all of them when the split is smaller), clean, in fp32. The accuracy that
deep.train records in metrics.json is not used, because it is not bound to the checkpoint being read (a
bare checkpoint.pt, a replaced or further-trained checkpoint, or a run trained on another dataset would
all pass on a stale number) and it may come from a handful of images (``eval_n``). One forward pass over
1,000 images costs seconds, nothing beside the construction itself.

The default threshold is ``1.5 / num_classes``: half again above chance, so an untrained or collapsed
model (which predicts about one class in K) is refused, while any model that learned something passes.
``min_source_acc = 0`` disables the check.

Provenance (``provenance.json``, outside the resume plan so older partial builds still resume)::

    "source_heldout": {"clean_acc": float | null (check disabled), "n": int, "split": "test",
                       "min_source_acc": float}
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

HELD_OUT_N = 1000
CHANCE_MARGIN = 1.5  # the default threshold is this many times chance (1 / num_classes)


@dataclass(frozen=True)
class SourceAccuracy:
    """The source model's clean accuracy on the first ``n`` test images of its dataset."""

    clean_acc: float | None  # None: the check was disabled, nothing measured
    n: int
    minimum: float

    def to_dict(self) -> dict[str, Any]:
        return {"clean_acc": self.clean_acc, "n": self.n, "split": "test", "min_source_acc": self.minimum}


def default_min_source_acc(num_classes: int) -> float:
    """``CHANCE_MARGIN / num_classes`` (0.15 for 10 classes, 0.5 for 3)."""
    return CHANCE_MARGIN / num_classes


def check_min_source_acc(value: object) -> float | None:
    """None (the default threshold) or a finite number >= 0; ValueError naming the value otherwise. (The
    CLI and the spec schema take [0, 1]; above 1 refuses every model, which tests use.)"""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"min_source_acc must be an accuracy in [0, 1] (0 disables the check), got {value!r}")
    return float(value)


def _first(split: Any, n: int) -> Any:
    """The first n examples of a loaded split, in a form deep.evaluation.evaluate takes."""
    if len(split) <= n:
        return split
    if hasattr(split, "x"):
        return split.x[:n], split.y[:n]
    from deep.data import imagenet  # the lazy restricted-ImageNet split: keep it lazy

    base = split.indices[:n] if split.indices is not None else torch.arange(n)
    return imagenet.FolderSplit(split.folder, base, split.info)


def held_out_accuracy(model: nn.Module, dataset: str, *, data_root: Any = None, n: int = HELD_OUT_N,
                      batch_size: int = 256) -> tuple[float, int]:
    """(clean accuracy, number of images) of ``model`` on the first ``n`` test images of ``dataset``."""
    from deep.data import load_split
    from deep.evaluate import evaluate

    data = _first(load_split(dataset, "test", data_root=data_root), n)
    result = evaluate(model, data, [], eps=0.0, batch_size=batch_size, progress=False)
    return result.clean, result.n


def check_source_accuracy(model: nn.Module, dataset: str, *, num_classes: int, minimum: float | None,
                          name: str, override: str = "pass --min-source-acc 0", data_root: Any = None,
                          batch_size: int = 256) -> SourceAccuracy:
    """Measure the source's held-out accuracy and refuse (ValueError, one line) a model below ``minimum``
    (None: :func:`default_min_source_acc`). ``name`` names the model in the message; ``override`` is
    how the caller's user turns the check off (the CLI flag, or the spec key)."""
    minimum = check_min_source_acc(minimum)
    if minimum is None:
        minimum = default_min_source_acc(num_classes)
    if minimum == 0.0:  # disabled: nothing is measured
        return SourceAccuracy(None, 0, 0.0)
    acc, n = held_out_accuracy(model, dataset, data_root=data_root, batch_size=batch_size)
    if acc < minimum:
        raise ValueError(f"source model {name} did not learn: held-out clean accuracy {acc:.3f} on the first {n} "
                         f"test images of {dataset} is below the minimum {minimum:.3f} (chance is "
                         f"{1 / num_classes:.3f}); train it further, or {override} to build anyway")
    return SourceAccuracy(acc, n, minimum)
