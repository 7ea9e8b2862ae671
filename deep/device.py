"""Device choice in one place: CUDA when present, else the CPU. Nothing else calls ``.cuda()``."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: :func:`default_device`; otherwise that device (ValueError if CUDA is absent)."""
    if device is None or str(device) == "auto":
        return default_device()
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return d


def prefers_channels_last(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether a model runs faster in channels-last memory format: conv nets on the CPU.

    Measured here (1 thread, batch 128): SmallCNN PGD steps 1.4x and training steps 1.33x faster,
    the CIFAR conv net's training steps 1.4x. On CUDA the gain needs mixed precision, so the layout is
    left to the user there."""
    return device.type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


@contextlib.contextmanager
def channels_last(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Run ``model`` in channels-last format inside the block and give it back in its own layout.

    Only the storage order of 4-D parameters and buffers changes (``Module.to(memory_format=...)``
    swaps ``.data`` in place, so the Parameter objects and any optimiser state keyed on them stay
    valid); values are identical, results differ only by float summation order."""
    four_d = [t for t in (*model.parameters(), *model.buffers()) if t.dim() == 4]
    already = all(t.is_contiguous(memory_format=torch.channels_last) for t in four_d)
    if not enabled or not four_d or already:
        yield
        return
    was_contiguous = all(t.is_contiguous() for t in four_d)
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if was_contiguous:
            model.to(memory_format=torch.contiguous_format)
