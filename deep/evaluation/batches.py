"""The data forms evaluation accepts, streamed as (x, y) batches; nothing assumes a split in memory.

Accepted: a pair of tensors ``(x, y)`` (or a list of two), an object with tensors ``.x`` and ``.y``
(deep.data.TensorSplit), a ``torch.utils.data.DataLoader`` yielding ``(x, y)`` batches (its own batch
size is used), or any map-style Dataset whose items are ``(image [C, H, W], label)`` (e.g. the lazy
restricted-ImageNet FolderSplit: images are decoded batch by batch, in order).

Each batch is checked: images float [B, C, H, W] in [0, 1] without NaNs, labels integer [B] (any
integer dtype, returned as int64). Slicing an in-memory split gives exactly the batches the earlier
in-memory evaluation used, so results are unchanged.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from deep.data.splits import check_images

Batch = tuple[Tensor, Tensor]


def check_labels_batch(y: object, n: int, *, name: str = "y") -> Tensor:
    """Integer labels [n] as int64 on the CPU (any integer dtype is accepted)."""
    if not isinstance(y, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class labels (any integer dtype), got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape [N] = [{n}], got {tuple(y.shape)}")
    return y.detach().to(device="cpu", dtype=torch.int64)


def _checked(x: object, y: object, where: str) -> Batch:
    x = check_images(x, name=f"{where} images")  # type: ignore[arg-type]
    return x, check_labels_batch(y, x.shape[0], name=f"{where} labels")


def _pair(data: Any) -> tuple[Tensor, Tensor] | None:
    """(x, y) when data is a pair of tensors or has tensor attributes .x and .y; else None."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return data[0], data[1]
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        return x, y
    return None


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def iter_batches(data: Any, batch_size: int) -> Iterator[Batch]:
    """Checked (x, y) batches of ``data`` in order; ValueError for an unsupported form or an empty one."""
    batch_size = _check_batch_size(batch_size)
    pair = _pair(data)
    if pair is not None:
        x, y = _checked(*pair, where="data")
        if x.shape[0] == 0:
            raise ValueError("data is empty (0 examples)")
        for i in range(0, x.shape[0], batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    if isinstance(data, DataLoader):
        loader = data
    elif isinstance(data, Dataset) and hasattr(data, "__len__"):
        if len(data) == 0:
            raise ValueError("data is empty (0 examples)")
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    else:
        raise ValueError("data must be tensors (x, y), a split with tensors .x and .y, a DataLoader or a "
                         f"Dataset of (image, label) items, got {type(data).__name__}")
    seen = 0
    for i, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(f"batch {i} of the data is a {type(batch).__name__}; batches must be (x, y)")
        x, y = _checked(batch[0], batch[1], where=f"batch {i}")
        seen += x.shape[0]
        yield x, y
    if seen == 0:
        raise ValueError("data is empty (0 examples)")


def data_shape(data: Any) -> tuple[int, ...] | None:
    """(C, H, W) of the images when known without loading (tensors, or a split with ``info.shape``)."""
    pair = _pair(data)
    if pair is not None and pair[0].dim() == 4:
        return tuple(pair[0].shape[1:])
    info = getattr(data, "info", None) or getattr(getattr(data, "dataset", None), "info", None)
    shape = getattr(info, "shape", None)
    return tuple(shape) if shape is not None else None
