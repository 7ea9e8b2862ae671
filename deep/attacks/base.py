"""Attack base class (torchattacks style): device, eval mode, [0, 1] box, targeted mode, validation.

Every attack is called as ``atk(x, y) -> x_adv``: x float NCHW in [0, 1], y int64 [N] (the targets
when ``targeted=True``). The model stays in eval mode while the attack runs (SPEC §0: BatchNorm
statistics frozen) and each submodule's training flag is restored afterwards, so training loops can
call attacks mid-epoch. Gradients are taken with ``torch.autograd.grad`` w.r.t. the input only, so
nothing accumulates in ``param.grad``.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from numbers import Integral, Real

import torch
from torch import Tensor, nn

from deep.device import channels_last, prefers_channels_last

BOX_TOL = 1e-6  # inputs may overshoot [0, 1] by float rounding; they are clamped back


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a stateless model)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own flag afterwards (even on error)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def check_nonneg(name: str, value: object) -> float:
    """A finite real ≥ 0 (eps, alpha, step sizes)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_count(name: str, value: object, minimum: int = 0) -> int:
    """An integer ≥ minimum (steps, restarts)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_images(name: str, x: object) -> Tensor:
    """Float NCHW tensor in [0, 1] (within BOX_TOL) without NaNs; returned detached and clamped."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be 4-D NCHW, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() and bool(torch.isnan(x).any()):
        raise ValueError(f"{name} contains NaN")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -BOX_TOL or hi > 1 + BOX_TOL:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x.detach().clamp(0.0, 1.0)


class Attack:
    """Base class. Subclasses implement ``_perturb(x, y) -> x_adv`` on validated tensors.

    Args:
        model: maps [N, C, H, W] in [0, 1] to logits [N, K] (normalisation inside the model).
        targeted: minimise the loss toward y (= targets) instead of maximising it away from y.
        bf16: run forward/backward under ``torch.autocast(dtype=torch.bfloat16)`` (speed; off by default).
        generator: torch.Generator (CPU) for random starts; None uses the global RNG.
    """

    # Memory layout while attacking: None = channels-last for conv nets on the CPU (1.4x faster PGD
    # here, same accuracies; benchmarks/README.md), True/False to force it. The model is handed back
    # in its own layout either way. Set on an instance: ``atk.channels_last = False``.
    channels_last: bool | None = None

    def __init__(self, model: nn.Module, *, targeted: bool = False, bf16: bool = False,
                 generator: torch.Generator | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(targeted, bool):
            raise ValueError(f"targeted must be a bool, got {targeted!r}")
        if not isinstance(bf16, bool):
            raise ValueError(f"bf16 must be a bool, got {bf16!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.model = model
        self.targeted = targeted
        self.bf16 = bf16
        self.generator = generator

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = self._validate(x, y)
        if x.shape[0] == 0:
            return x.clone()
        fast = self.channels_last if self.channels_last is not None else prefers_channels_last(self.model, x.device)
        with eval_mode(self.model), channels_last(self.model, fast), torch.enable_grad():
            x_adv = self._perturb(x, y)
        return x_adv.detach()

    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------
    def _validate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = check_images("x", x).to(self.device)
        if not isinstance(y, Tensor):
            raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
        if y.dtype != torch.int64:
            raise ValueError(f"y must be int64 labels, got dtype {y.dtype}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape [N] = [{x.shape[0]}], got {tuple(y.shape)}")
        y = y.detach().to(self.device)
        if x.shape[0]:
            with torch.no_grad(), eval_mode(self.model):
                num_classes = self._logits(x[:1]).shape[1]
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"y values must lie in [0, {num_classes - 1}] (the model's classes), "
                                 f"got values in [{lo}, {hi}]")
        return x, y

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _logits(self, x: Tensor) -> Tensor:
        with self._autocast(x.device):
            return self.model(x)

    def _rand(self, shape: torch.Size, like: Tensor, kind: str) -> Tensor:
        """U[0,1) ('uniform') or N(0,1) ('normal') noise drawn from self.generator on the CPU, then moved."""
        draw = torch.rand if kind == "uniform" else torch.randn
        return draw(shape, generator=self.generator, dtype=torch.float32).to(device=like.device, dtype=like.dtype)
