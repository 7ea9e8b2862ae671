"""Run folders: atomic writes, tensors-only checkpoints, and :func:`load_run`.

A run folder holds ``checkpoint.pt`` (a dict of state_dicts and tensors, loadable with
``torch.load(weights_only=True)``), ``recipe.json`` (the Recipe), ``model.json`` (what
``build_model`` needs: name, num_classes, in_shape, mean, std), ``metrics.json`` and ``log.jsonl``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"
RECIPE = "recipe.json"
MODEL = "model.json"
METRICS = "metrics.json"
LOG = "log.jsonl"
REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temporary file beside path, then os.replace: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"missing run file {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt JSON file {path}: {e}") from e


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, then os.replace (an interrupted save leaves the old checkpoint)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True; FileNotFoundError if missing, ValueError if truncated/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError/EOFError/UnpicklingError for broken files
        raise ValueError(f"corrupt or truncated checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise ValueError(f"checkpoint {path} lacks the keys {REQUIRED_KEYS} of a deep.train checkpoint")
    return state


def run_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run folder, checkpoint file) from either of them."""
    p = Path(path)
    if p.is_dir():
        return p, p / CHECKPOINT
    if p.suffix == ".pt" or p.is_file():
        return p.parent, p
    raise FileNotFoundError(f"no run folder or checkpoint file at {p}")


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    from deep.models import build_model

    try:
        return build_model(spec["name"], num_classes=int(spec["num_classes"]), in_shape=tuple(spec["in_shape"]),
                           mean=spec.get("mean"), std=spec.get("std"))
    except KeyError as e:
        raise ValueError(f"model.json lacks field {e}") from e


def load_run(path: str | os.PathLike[str], *, device: torch.device | str | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode with the checkpoint's weights, recipe dict) from a run folder or checkpoint file."""
    folder, ckpt = run_paths(path)
    state = load_checkpoint(ckpt)
    recipe = read_json(folder / RECIPE)
    model = build_from_spec(read_json(folder / MODEL))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {ckpt} does not match the model in {folder / MODEL}: {e}") from e
    if device is not None:
        model.to(device)
    model.eval()
    return model, recipe
