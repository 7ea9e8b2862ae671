"""Training checkpoints: the ``checkpoint.pt`` of a run folder (layout: deep.runfolder).

A checkpoint is a dict of state_dicts and tensors only: ``model``, ``optimizer``, ``scheduler``,
``epoch`` (tensor: epochs finished), ``rng`` (torch / attack generator / CUDA states) and ``seconds``
(float64 tensor: training time so far). It is written atomically (deep.io.save_torch: an interrupted
save leaves the previous checkpoint) and read with ``torch.load(weights_only=True)`` (deep.io.load_torch),
so a file holding arbitrary Python objects is refused without running any of its code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from deep import io as dio

REQUIRED_KEYS = ("model", "optimizer", "scheduler", "epoch")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    dio.save_torch(path, state)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict; FileNotFoundError if missing, CorruptFileError (a ValueError) if it is
    truncated, damaged, lacks the checkpoint keys, or holds objects other than tensors (refused)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = dio.load_torch(path, map_location=map_location)
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise dio.CorruptFileError(f"checkpoint {path} lacks the keys {REQUIRED_KEYS} of a deep.train checkpoint")
    return state
