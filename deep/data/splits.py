"""In-memory dataset splits, their description, and the checks every loader applies.

Convention (docs/DESIGN.md): images are float32 NCHW in [0, 1], labels int64 [N].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: its name, classes and image shape (C, H, W)."""

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    classes: tuple[str, ...] | None = None


class TensorSplit(torch.utils.data.Dataset):
    """A whole split held in memory as two tensors (fast slicing; no per-item Python work)."""

    def __init__(self, x: Tensor, y: Tensor, info: DatasetInfo) -> None:
        if x.dim() != 4 or x.dtype != torch.float32:
            raise ValueError(f"TensorSplit x must be float32 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if y.dim() != 1 or y.dtype != torch.int64 or y.shape[0] != x.shape[0]:
            raise ValueError(f"TensorSplit y must be int64 [N={x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
        if tuple(x.shape[1:]) != info.shape:
            raise ValueError(f"TensorSplit images have shape {tuple(x.shape[1:])}, info says {info.shape}")
        self.x = x
        self.y = y
        self.info = info

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return f"TensorSplit({self.info.name!r}, n={len(self)}, shape={self.info.shape})"


def check_images(x: Tensor, *, name: str = "x", tol: float = 0.0) -> Tensor:
    """Validate a batch of images (datasets, attacks, evaluation): 4-D float in [0, 1], no NaNs.

    ``tol`` lets values overshoot the box by float rounding (attacks pass 1e-6 and clamp back).
    Returns ``x`` unchanged so it can be used inline; raises ValueError naming the problem.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be 4-D [N, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        return x
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -tol or hi > 1.0 + tol:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_labels(y: Tensor, num_classes: int, *, name: str = "y") -> Tensor:
    """Labels must be int64 [N] in {0, ..., num_classes - 1}."""
    if y.dim() != 1 or y.dtype != torch.int64:
        raise ValueError(f"{name} must be int64 [N], got {y.dtype} {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    return y


def images_from_array(arr: np.ndarray, *, source: str) -> Tensor:
    """Convert image arrays to float32 NCHW in [0, 1] (a fresh tensor, never a view of a cache).

    uint8 arrays are divided by 255; float arrays must already lie in [0, 1]. The channel axis is
    detected by its size (1 or 3): NHWC when the last axis has it, NCHW when axis 1 has it; 3-D
    arrays [N, H, W] are single-channel.
    """
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
            arr = arr.transpose(0, 3, 1, 2)
        elif arr.shape[1] not in (1, 3):
            raise ValueError(f"{source}: cannot find a channel axis of size 1 or 3 in shape {arr.shape}")
    else:
        raise ValueError(f"{source}: images must be 3-D or 4-D, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32).div_(255.0)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{source}: images must be uint8 or float, got dtype {arr.dtype}")
    x = torch.tensor(np.ascontiguousarray(arr), dtype=torch.float32)  # a copy: callers may edit it
    if torch.isnan(x).any():
        raise ValueError(f"{source}: images contain NaN values")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(f"{source}: float images must lie in [0, 1], got [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    return x


def labels_from_array(arr: np.ndarray, *, source: str) -> Tensor:
    """Integer label arrays [N] to int64 tensors."""
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{source}: labels must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{source}: labels must be non-negative, got min {arr.min()}")
    return torch.tensor(arr, dtype=torch.int64)


def select_indices(n: int, *, subset: int | None, first_n: int | None, seed: int, offset: int = 0) -> Tensor | None:
    """Indices for ``subset=k`` (k drawn at random with ``seed``) or ``first_n=k``; None keeps all.

    ``offset=j`` skips the first j examples: with ``first_n=k`` the examples j .. j+k-1, alone j .. n-1.
    It lets one long evaluation run as disjoint shards (ray_jobs/specs/mnist-pgd-at.toml)."""
    if subset is not None and first_n is not None:
        raise ValueError("give at most one of subset and first_n")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < n:
        raise ValueError(f"offset must be an integer in [0, {n - 1}] (the split has {n} examples), got {offset!r}")
    if offset and subset is not None:
        raise ValueError("offset works with first_n (a range of examples), not with subset (a random draw)")
    for label, k in (("subset", subset), ("first_n", first_n)):
        if k is None:
            continue
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > n - offset:
            raise ValueError(f"{label} must be an integer in [1, {n - offset}] (the split's size {n}"
                             f"{f' less offset {offset}' if offset else ''}), got {k!r}")
    if first_n is not None:
        return torch.arange(offset, offset + first_n)
    if subset is not None:
        g = torch.Generator().manual_seed(int(seed))
        # sorted so the subset keeps the dataset's order (reproducible and easy to inspect)
        return torch.randperm(n, generator=g)[:subset].sort().values
    return torch.arange(offset, n) if offset else None
