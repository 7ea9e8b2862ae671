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

The source model is either a run folder written by ``deep train`` (``source_run``) or a model named as
deep.models.external loads it (``source_model``, e.g. ``"pyautoattack:resnet18"``); exactly one is
given (:func:`load_source`). Its provenance record (also part of the resume plan)::

    "source_model": {"run": str, "checkpoint_sha256": str, "recipe": {...}}            # source_run
    "source_model": {"name": str, "kind": str, "weights": str | null,
                     "weights_sha256": str | null, "normalize": null}                 # source_model
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

HELD_OUT_N = 1000
EXAMPLE_SOURCE_MODEL = "pyautoattack:resnet18"
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


@dataclass(frozen=True)
class LoadedSource:
    """The source model of a construction, how messages name it, and its provenance record."""

    model: nn.Module
    name: str
    record: dict[str, Any]


def check_one_source(source_run: object, source_model: object, *, run_name: str = "source_run",
                     model_name: str = "source_model", where: str = "") -> None:
    """ValueError unless exactly one of the two is given; ``run_name`` / ``model_name`` are how the
    caller's user writes them (arguments, CLI flags or a spec's input and key), ``where`` prefixes the
    message (e.g. "kind 'construct': ")."""
    given = (source_run is not None) + (source_model is not None)
    if given != 1:
        raise ValueError(f"{where}give exactly one of {run_name} (a run folder written by deep train) or {model_name} "
                         f"(a model name deep.models.external loads, e.g. {EXAMPLE_SOURCE_MODEL!r}); "
                         f"got {'both' if given else 'neither'}")


def load_source(source_run: str | os.PathLike | None, source_model: str | None,
                device: torch.device | str) -> LoadedSource:
    """The source model from a run folder (or its checkpoint.pt) or from a deep.models.external name."""
    from deep.models.external import load_model, sha256_file
    from deep.train import load_run

    check_one_source(source_run, source_model)
    if source_model is not None:
        if not isinstance(source_model, str) or not source_model.strip():
            raise ValueError(f"source_model must be a model name such as {EXAMPLE_SOURCE_MODEL!r}, "
                             f"got {source_model!r}")
        loaded = load_model(source_model, device=device)
        record = loaded.provenance()
        record["name"] = record.pop("source")
        return LoadedSource(loaded.model, source_model, record)
    run = Path(source_run)
    if not run.exists():
        raise FileNotFoundError(f"source run not found: {run}")
    ckpt = run / "checkpoint.pt" if run.is_dir() else run
    if not ckpt.is_file():
        raise FileNotFoundError(f"no checkpoint.pt in source run {run}")
    model, recipe = load_run(run, device=device)
    return LoadedSource(model, str(run), {"run": str(run.resolve()), "checkpoint_sha256": sha256_file(ckpt),
                                          "recipe": recipe})


def check_num_outputs(model: nn.Module, x: torch.Tensor, num_classes: int, name: str) -> None:
    """ValueError unless ``model`` gives ``num_classes`` logits for one image of the source split (a
    named model carries no dataset, so a mismatch would otherwise show up as nonsense targets)."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    try:
        with torch.no_grad():
            logits = model(x[:1].to(device))
    except RuntimeError as exc:
        raise ValueError(f"source model {name} does not take the source images (shape {tuple(x.shape[1:])}): "
                         f"{exc}") from exc
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"source model {name} gives logits of shape {tuple(logits.shape)} for one image; the "
                         f"source dataset has {num_classes} classes")
