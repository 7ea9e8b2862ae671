"""Training checkpoints: the ``checkpoint.pt`` of a run folder (layout: deep.runfolder).

A checkpoint is a dict of state_dicts and tensors only: ``model``, ``optimizer``, ``scheduler``,
``epoch`` (tensor: epochs finished), ``rng`` (torch / attack generator / CUDA states) and ``seconds``
(training time so far). It is written atomically (deep.io.save_torch: an interrupted save leaves the
previous checkpoint) and read with ``torch.load(weights_only=True)``, so a file holding arbitrary Python
objects is refused without running any of its code.
"""
from __future__ import annotations

import pickle
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
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            # torch's own text suggests weights_only=False, i.e. running the file's code: not relayed
            raise dio.CorruptFileError(
                f"refused checkpoint {path}: it holds Python objects other than tensors, which deep.train "
                f"never writes; it was not loaded (possibly malicious, or not a deep.train checkpoint)") from None
        raise dio.CorruptFileError(f"corrupt or truncated checkpoint {path}: {e}") from e
    except Exception as e:  # torch raises RuntimeError/EOFError/KeyError for broken files
        first = str(e).splitlines()[0] if str(e) else ""
        raise dio.CorruptFileError(f"corrupt or truncated checkpoint {path}: {type(e).__name__}: {first}") from e
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise dio.CorruptFileError(f"checkpoint {path} lacks the keys {REQUIRED_KEYS} of a deep.train checkpoint")
    return state
