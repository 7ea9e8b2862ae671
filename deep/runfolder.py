"""A training run folder: its layout, its typed result and its place in a store (DESIGN §deep.runfolder).

:class:`RunFolder` is the one owner of the files `deep.train.train` writes into its ``out_dir``; other
packages (ray_jobs, figures) read and rebase them through it, never by hand:

* ``recipe.json``   ``Recipe.to_dict()``
* ``model.json``    what ``deep.models.build_model`` needs: name, num_classes, in_shape, mean, std, and
                    ``options`` (the family's keyword options; absent when the recipe gives none)
* ``checkpoint.pt`` a dict of tensors and state_dicts (model, optimizer, scheduler, epoch, rng, seconds),
                    loadable with ``torch.load(weights_only=True)`` (deep.train.checkpoint)
* ``metrics.json``  :meth:`TrainResult.to_dict`, with ``schema = "advfeat.train/1"``; files written before
                    the schema field existed read the same
* ``log.jsonl``     one JSON object per finished epoch (``epoch`` 1-based, losses, accuracies, timings)

Every file is written through :mod:`deep.io` (atomic). A damaged ``metrics.json`` or log tail is moved
aside or dropped and rebuilt from the checkpoint by rerunning the same ``train`` call (issue 13).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deep import io as dio

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RECIPE = "recipe.json"
MODEL = "model.json"
METRICS = "metrics.json"
LOG = "log.jsonl"
TRAIN_SCHEMA = "advfeat.train/1"
STATUSES = ("running", "done")


# -------------------------------------------------------------------------------------- TrainResult
def _finite(name: str, value: Any, *, lo: float | None = None, hi: float | None = None,
            optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")


def _int(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _typed(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a {getattr(kind, '__name__', kind)}, got {value!r}")


def check_epoch_entry(entry: Any, where: str = "last") -> None:
    """One log.jsonl entry: an int ``epoch`` >= 1, accuracies (``*_acc``) None or in [0, 1], every other
    number finite (a NaN loss or an accuracy of 1e9 is damage, not a result)."""
    _typed(where, entry, dict)
    if entry:  # an empty entry is what a run that finished without a log records
        _int(f"{where}.epoch", entry.get("epoch"), 1)
    for key, value in entry.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hi = 1.0 if key.endswith("_acc") else None
            _finite(f"{where}.{key}", value, lo=0.0 if hi else None, hi=hi)


def _check_identity(name: str, ident: Any) -> None:
    _typed(name, ident, dict)
    _typed(f"{name}.dataset", ident.get("dataset"), str)
    _int(f"{name}.n", ident.get("n"))
    shape = ident.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise ValueError(f"{name}.shape must be a list of integers, got {shape!r}")
    _typed(f"{name}.sha256", ident.get("sha256"), (str, type(None)))


@dataclass(frozen=True)
class TrainResult:
    """What ``deep.train.train`` returns and writes to ``metrics.json`` (schema ``advfeat.train/1``).

    ``data``/``eval_data`` identify the training and held-out splits (dataset, n, shape, sha256);
    ``last`` is the last epoch's log entry; ``seconds_total`` the training time over all attempts.
    ``last`` and ``seconds_total`` are None in the record written before the first epoch ends."""

    status: str
    epochs_done: int
    epochs: int
    data: dict[str, Any]
    eval_data: dict[str, Any]
    torch: str
    python: str
    device: str
    threads: int
    steps_per_epoch: int
    last: dict[str, Any] | None = None
    seconds_total: float | None = None
    schema: str = TRAIN_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    def __post_init__(self) -> None:
        if self.schema != TRAIN_SCHEMA:
            raise ValueError(f"schema must be {TRAIN_SCHEMA!r}, got {self.schema!r}")
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        _int("epochs", self.epochs, 1)
        _int("epochs_done", self.epochs_done)
        if self.epochs_done > self.epochs or (self.status == "done" and self.epochs_done != self.epochs):
            raise ValueError(f"epochs_done {self.epochs_done} does not fit status {self.status!r} of "
                             f"{self.epochs} epochs")
        _check_identity("data", self.data)
        _check_identity("eval_data", self.eval_data)
        for name in ("torch", "python", "device"):
            _typed(name, getattr(self, name), str)
        _int("threads", self.threads, 1)
        _int("steps_per_epoch", self.steps_per_epoch, 1)
        if self.last is not None:
            check_epoch_entry(self.last)
        _finite("seconds_total", self.seconds_total, lo=0.0, optional=True)
        if self.status == "done" and (self.last is None or self.seconds_total is None):
            raise ValueError("a done result needs 'last' and 'seconds_total'")

    @property
    def done(self) -> bool:
        return self.status == "done"

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json object: the fields by name (None-valued optional ones left out, as before
        the schema existed) plus the extra keys."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: v for k, v in out.items() if not (k in ("last", "seconds_total") and v is None)}
        return {**self.extra, **out}

    @classmethod
    def from_dict(cls, obj: Any) -> TrainResult:
        """Validate a metrics.json object (ValueError naming the field); a missing ``schema`` is the
        unversioned format of earlier releases, which has the same fields."""
        _typed("metrics", obj, dict)
        known = {f.name for f in fields(cls)} - {"extra"}
        missing = sorted(k for k in known - set(obj) if k not in ("last", "seconds_total", "schema"))
        if missing:
            raise ValueError(f"metrics lack the field(s) {missing}")
        kwargs = {k: obj[k] for k in known if k in obj}
        return cls(**kwargs, extra={k: v for k, v in obj.items() if k not in known})


# ---------------------------------------------------------------------------------- store paths
def store_relative(value: str, store_root: Path) -> str | None:
    """The part of a path below a store's root (``runs/<hash>/...``), or None for paths elsewhere.

    Train runs on constructed datasets record the dataset folder's absolute path in recipe.json; this
    finds its place in the store whatever root it was written under (a moved or remounted store)."""
    parts = Path(value).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "runs" and i + 1 < len(parts) and len(parts[i + 1]) > 0:
            return str(Path(*parts[i:]))
    return None


def resolve_dataset(value: Any, store_root: Path) -> Any:
    """A recipe's ``dataset`` as usable here: names pass through; a constructed-dataset path that no
    longer exists (the store was moved) is re-rooted at ``store_root`` when it lies in a store."""
    if not isinstance(value, str) or "/" not in value or Path(value).is_dir():
        return value
    rel = store_relative(value, store_root)
    if rel is not None and (Path(store_root) / rel).is_dir():
        return str(Path(store_root) / rel)
    return value


# ------------------------------------------------------------------------------------ RunFolder
@dataclass(frozen=True)
class RunFolder:
    """The files of one training run (module docstring); all reads and writes go through deep.io."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def recipe_path(self) -> Path:
        return self.path / RECIPE

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def log_path(self) -> Path:
        return self.path / LOG

    # -- recipe / model spec ------------------------------------------------------------------------
    def read_recipe(self) -> dict[str, Any]:
        recipe = dio.read_json(self.recipe_path)
        if not isinstance(recipe, dict):
            raise dio.CorruptFileError(f"{self.recipe_path} must hold a JSON object, got {type(recipe).__name__}")
        return recipe

    def write_recipe(self, recipe: dict[str, Any]) -> None:
        dio.write_json(self.recipe_path, recipe)

    def read_model_spec(self) -> dict[str, Any]:
        spec = dio.read_json(self.model_path)
        if not isinstance(spec, dict):
            raise dio.CorruptFileError(f"{self.model_path} must hold a JSON object, got {type(spec).__name__}")
        return spec

    def write_model_spec(self, spec: dict[str, Any]) -> None:
        dio.write_json(self.model_path, spec)

    # -- metrics ------------------------------------------------------------------------------------
    def read_metrics(self) -> TrainResult:
        """The validated result; FileNotFoundError if missing, CorruptFileError if undecodable or invalid."""
        obj = dio.read_json(self.metrics_path)
        try:
            return TrainResult.from_dict(obj)
        except ValueError as e:
            raise dio.CorruptFileError(f"invalid {self.metrics_path}: {e}") from e

    def write_metrics(self, result: TrainResult) -> None:
        dio.write_json(self.metrics_path, result.to_dict())

    def finished_result(self, epochs: int) -> TrainResult | None:
        """The result if this folder holds the run finished over `epochs` epochs, else None. A damaged
        metrics.json (empty, truncated, wrong types or schema) is moved aside: the run counts as not done
        and the caller redoes it, from the checkpoint when that is complete."""
        try:
            result = self.read_metrics()
        except FileNotFoundError:
            return None
        except dio.CorruptFileError as e:
            log.warning("%s; redoing the run", e)
            dio.quarantine(self.metrics_path)
            return None
        return result if result.done and result.epochs_done >= epochs else None

    # -- log ----------------------------------------------------------------------------------------
    def read_log(self) -> list[dict[str, Any]]:
        """The epoch entries; [] without a log. A torn last line is dropped (deep.io.read_jsonl)."""
        return dio.read_jsonl(self.log_path) if self.log_path.exists() else []

    def append_log(self, entry: dict[str, Any]) -> None:
        dio.append_jsonl(self.log_path, entry)

    def trim_log(self, epochs_done: int) -> list[dict[str, Any]]:
        """Keep the entries of the epochs the checkpoint holds (and drop a torn tail); returns them. A log
        damaged before its last line is moved aside and restarted empty."""
        try:
            entries = self.read_log()
        except dio.CorruptFileError as e:
            log.warning("%s; starting a new log", e)
            dio.quarantine(self.log_path)
            return []
        keep = [e for e in entries if isinstance(e.get("epoch"), int) and e["epoch"] <= epochs_done]
        if self.log_path.exists():
            dio.write_bytes(self.log_path, "".join(dio.json_line(e) for e in keep).encode("utf-8"))
        return keep

    # -- checkpoint ---------------------------------------------------------------------------------
    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        from deep.train.checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint_path, map_location=map_location)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        from deep.train.checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint_path, state)

    def has_complete_checkpoint(self, epochs: int | None = None) -> bool:
        """True when checkpoint.pt loads and holds all `epochs` epochs (default: recipe.json's)."""
        if not self.checkpoint_path.is_file():
            return False
        try:
            if epochs is None:
                epochs = int(self.read_recipe()["epochs"])
            return int(self.load_checkpoint()["epoch"]) >= epochs
        except (ValueError, KeyError, TypeError, FileNotFoundError):
            return False

    # -- store --------------------------------------------------------------------------------------
    def rebase(self, store_root: Path) -> bool:
        """Point recipe.json's constructed-dataset path at `store_root`'s copy (a store moved since the
        run started then resumes instead of failing train's same-recipe check); True if it changed.
        A missing or damaged recipe.json is left alone: train handles it."""
        try:
            recipe = self.read_recipe()
        except (FileNotFoundError, dio.CorruptFileError):
            return False
        new = resolve_dataset(recipe.get("dataset"), Path(store_root))
        if new == recipe.get("dataset"):
            return False
        self.write_recipe({**recipe, "dataset": new})
        return True

    def load(self, *, device: torch.device | str | None = None,
             checkpoint: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
        """(model in eval mode with the checkpoint's weights, recipe dict)."""
        ckpt = self.checkpoint_path if checkpoint is None else Path(checkpoint)
        from deep.train.checkpoint import load_checkpoint

        state = load_checkpoint(ckpt)
        recipe = self.read_recipe()
        model = build_from_spec(self.read_model_spec())
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(f"checkpoint {ckpt} does not match the model in {self.model_path}: {e}") from e
        if device is not None:
            model.to(device)
        model.eval()
        return model, recipe


def run_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run folder, checkpoint file) from either of them."""
    p = Path(path)
    if p.is_dir():
        return p, p / CHECKPOINT
    if p.suffix == ".pt" or p.is_file():
        return p.parent, p
    raise FileNotFoundError(f"no run folder or checkpoint file at {p}")


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """The (untrained) model a model.json describes."""
    from deep.models import build_model

    try:
        return build_model(spec["name"], num_classes=int(spec["num_classes"]), in_shape=tuple(spec["in_shape"]),
                           mean=spec.get("mean"), std=spec.get("std"), **spec.get("options", {}))
    except KeyError as e:
        raise ValueError(f"model.json lacks field {e}") from e


def load_run(path: str | os.PathLike[str], *, device: torch.device | str | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode with the checkpoint's weights, recipe dict) from a run folder or checkpoint file."""
    folder, ckpt = run_paths(path)
    return RunFolder(folder).load(device=device, checkpoint=ckpt)
