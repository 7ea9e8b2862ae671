"""Mini-batches from a split, and the standard crop-and-flip augmentation, vectorised per batch."""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from deep.data.imagenet import FolderSplit
from deep.data.splits import TensorSplit

AUGMENT_MODES = ("crop", "crop+flip")


def augment_batch(x: Tensor, generator: torch.Generator | None = None, pad: int = 4, *, flip: bool = True) -> Tensor:
    """Random crop of the zero-padded image (pad pixels each side) and, with ``flip``, a random
    horizontal flip with probability 1/2: the standard CIFAR augmentation (He et al. 2016).

    Each image gets its own offsets; random numbers come from ``generator`` (a CPU generator) so a
    seed reproduces the batch.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"augment_batch: pad must be an integer >= 0, got {pad!r}")
    n, _, h, w = x.shape
    out = x
    if pad > 0:
        # one gather over the flattened padded image: each output pixel reads (dy + i, dx + j)
        padded = F.pad(x, (pad, pad, pad, pad)).flatten(2)  # [N, C, (H+2p)(W+2p)]
        dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator).to(x.device)
        rows = dy + torch.arange(h, device=x.device)[None, :, None]
        cols = dx + torch.arange(w, device=x.device)[None, None, :]
        flat = (rows * (w + 2 * pad) + cols).view(n, 1, h * w)
        out = torch.gather(padded, 2, flat.expand(n, x.shape[1], h * w)).view_as(x)
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        out = torch.where(mask, out.flip(3), out)
    return out


def _augment_flags(augment: bool | str) -> tuple[bool, bool]:
    """(crop, flip) for augment=False/True/"crop"/"crop+flip" (True means crop+flip)."""
    if augment is False or augment is None:
        return False, False
    if augment is True or augment == "crop+flip":
        return True, True
    if augment == "crop":
        return True, False
    raise ValueError(f"augment must be a bool or one of {AUGMENT_MODES}, got {augment!r}")


def _generator(seed: int | None) -> torch.Generator:
    # seed=None draws the seed from torch's global RNG, so torch.manual_seed still reproduces it
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(int(seed))


def iterate_batches(
    split: TensorSplit | FolderSplit,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
    augment: bool | str = False,
    device: torch.device | str | None = None,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(x, y) batches covering the split once; the last, partial batch is kept.

    In-memory splits are sliced directly (no DataLoader); lazy splits (restricted-imagenet) go
    through a DataLoader with ``num_workers``. Shuffling and augmentation draw from one generator
    seeded with ``seed``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    crop, flip = _augment_flags(augment)
    g = _generator(seed)
    n = len(split)
    order = torch.randperm(n, generator=g) if shuffle else None
    if isinstance(split, TensorSplit):
        batches = _tensor_batches(split, order, batch_size)
    elif isinstance(split, FolderSplit):
        batches = _loader_batches(split, order, batch_size, num_workers)
    else:
        raise ValueError(f"iterate_batches needs a TensorSplit or FolderSplit, got {type(split).__name__}")
    for x, y in batches:
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if crop:
            x = augment_batch(x, g, flip=flip)
        yield x, y


def _tensor_batches(split: TensorSplit, order: Tensor | None, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(split), batch_size):
        if order is None:
            yield split.x[start:start + batch_size], split.y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield split.x[idx], split.y[idx]


def _loader_batches(split: FolderSplit, order: Tensor | None, batch_size: int, num_workers: int):
    sampler = order.tolist() if order is not None else range(len(split))
    loader = torch.utils.data.DataLoader(split, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    for x, y in loader:
        yield x, y.to(torch.int64)
