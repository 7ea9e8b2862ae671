"""Attack base class (torchattacks style): device, eval mode, [0, 1] box, targeted mode, validation.

Every attack is called as ``atk(x, y) -> x_adv``: x float NCHW in [0, 1] of the model's dtype (no
silent conversion), y integer labels [N] of any integer dtype, used as int64 (the targets when
``targeted=True``). The model must return a logits tensor [N, K]; a tuple, a wrong shape, or NaN/inf
logits anywhere during the attack is a ValueError (no adversarial examples are returned from a model
whose outputs are not numbers). ``repr(atk)`` names every hyper-parameter. The model stays in eval
mode while the attack runs (SPEC §0: BatchNorm statistics frozen) and each submodule's training flag
is restored afterwards, so training loops can call attacks mid-epoch. Gradients are taken w.r.t. the
input only: while the attack runs, the model's parameters stop requiring gradients (each one's flag is
restored afterwards, ``frozen_parameters``), so no weight gradient is computed and nothing accumulates in
``param.grad``, not even from third-party attacks that call ``.backward()`` (AutoAttack's FAB).

Precision (``bf16=True``): the gradient steps run under bf16 autocast (speed), but every decision an
attack makes from logits (which iterate it returns, whether it succeeded) is taken from an fp32
forward of the candidate (``_decision_logits``), so bf16 changes the path, never the verdict. On the
first gradient of each call the bf16 input gradient is checked (``_bf16_gradient_unusable``); where it
is unusable the call continues in fp32, logs one warning on the ``deep.attacks`` logger and sets
``atk.fell_back_to_fp32`` (this call) and ``atk.fp32_fallbacks`` (calls since construction).
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from numbers import Integral, Real

import torch
from torch import Tensor, nn

from deep.data.splits import check_images
from deep.device import channels_last, prefers_channels_last

BOX_TOL = 1e-6  # inputs may overshoot [0, 1] by float rounding; they are clamped back
# A call falls back to fp32 when more than this share of the batch has a dead bf16 input gradient
# (all zero or non-finite) whose fp32 gradient is alive. A dead gradient leaves that example where it
# is for the whole attack, so the share bounds how much the robust accuracy can be overstated.
FALLBACK_SHARE = 0.02

log = logging.getLogger("deep.attacks")
Objective = Callable[[Tensor], Tensor]  # logits [N, K] -> per-example objective [N] (float32)


def dead_gradients(grad: Tensor) -> Tensor:
    """Bool [N]: the example's input gradient is all zero or has a NaN/inf entry (gives no usable step)."""
    flat = grad.flatten(1)
    return (flat == 0).all(dim=1) | ~torch.isfinite(flat).all(dim=1)


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


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients inside the block; each one's own flag is restored afterwards.

    Why: an attack needs the input gradient only, but some backward kernels still compute the weight
    gradients whenever the weights require them. BatchNorm's does; the conv backward already skips them.
    Measured by benchmarks/freeze.py (fp32 PGD-10 of the CIFAR conv net, 1 thread, batch 128), the freeze
    saves 3.5-5% with AVX2 kernels and 8% with AVX512; SmallCNN saves under 1%. AutoAttack's FAB
    calls ``.backward()``, which otherwise computes every weight gradient and accumulates it in
    ``param.grad``. The input gradient is the same computation either way
    (tests/deep/test_attacks_frozen.py: bit for bit).
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def check_nonneg(name: str, value: object) -> float:
    """A finite real ≥ 0 (eps, alpha, step sizes)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_count(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum] (steps, restarts); the error names the range."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} = {value} is out of range; must lie in [{minimum}, {maximum}]")
    return int(value)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """Floating dtype of the model's first floating parameter or buffer (None when it has none)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def check_logits(out: object, n: int) -> Tensor:
    """The model's output must be a logits tensor [n, K]; anything else is a clear ValueError."""
    if not isinstance(out, Tensor):
        raise ValueError(f"the model must return a logits tensor [N, K], got a {type(out).__name__}; wrap a "
                         "model that returns (logits, ...) so that forward returns the logits alone")
    if out.dim() != 2 or out.shape[0] != n:
        raise ValueError(f"the model must return logits of shape [N, K] = [{n}, K], got {tuple(out.shape)}")
    return out


def check_labels_for(y: object, n: int, num_classes: int) -> Tensor:
    """Integer labels [n] in [0, num_classes); any integer dtype is accepted and converted to int64."""
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"y must hold integer class labels (any integer dtype, used as int64), got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"y must have shape [N] = [{n}], got {tuple(y.shape)}")
    y = y.detach().to(torch.int64)
    if n:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"y values must lie in [0, {num_classes - 1}] (the model's classes), "
                             f"got values in [{lo}, {hi}]")
    return y


def _fp32(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off, also inside a caller's autocast region (a no-op where none is active)."""
    return torch.autocast(device_type=device.type, enabled=False)


def _fmt(value: object) -> str:
    """Floats with 4 significant digits (0.03137), everything else as repr."""
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


class Attack:
    """Base class. Subclasses implement ``_perturb(x, y) -> x_adv`` on validated tensors.

    Args:
        model: maps [N, C, H, W] in [0, 1] to logits [N, K] (normalisation inside the model).
        targeted: minimise the loss toward y (= targets) instead of maximising it away from y.
        bf16: run the gradient steps under ``torch.autocast(dtype=torch.bfloat16)`` (speed; off by default);
            decisions use fp32 logits, and a call whose bf16 gradient is unusable runs in fp32 (module docstring).
        generator: torch.Generator (CPU) for random starts; None uses the global RNG.
    """

    # Memory layout while attacking: None = channels-last for conv nets on the CPU (1.4x faster PGD
    # here, same accuracies; benchmarks/README.md), True/False to force it. The model is handed back
    # in its own layout either way. Set on an instance: ``atk.channels_last = False``.
    channels_last: bool | None = None
    # bf16 fallback record (see the module docstring): this call, and the number of calls so far.
    fell_back_to_fp32: bool = False
    fp32_fallbacks: int = 0

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
        self.fell_back_to_fp32 = False
        self.fp32_fallbacks = 0

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        self.fell_back_to_fp32 = False
        self._gradient_checked = False
        x, y = self._validate(x, y)
        if x.shape[0] == 0:
            return x.clone()
        fast = self.channels_last if self.channels_last is not None else prefers_channels_last(self.model, x.device)
        # Non-finite logits are tallied on the device and checked once at the end (no sync per step).
        self._finite: Tensor | None = torch.ones((), dtype=torch.bool, device=x.device)
        try:
            with eval_mode(self.model), frozen_parameters(self.model), channels_last(self.model, fast), \
                    torch.enable_grad():
                x_adv = self._perturb(x, y)
            finite = bool(self._finite)
        finally:
            self._finite = None
        if not finite:
            raise ValueError(f"the model returned non-finite logits (NaN or inf) during {type(self).__name__}; "
                             "its adversarial examples would be meaningless, so none are returned")
        return x_adv.detach()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_fmt(v)}" for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({fields})"

    def _hyperparameters(self) -> dict[str, object]:
        """Every setting that changes the result, in the order ``__repr__`` shows them."""
        out: dict[str, object] = {"targeted": self.targeted}
        if self.bf16:
            out["bf16"] = True
        return out

    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------
    def _check_x(self, name: str, x: object) -> Tensor:
        """Images on the model's device, clamped into the box; float dtype must match the model's."""
        x = check_images(x, name=name, tol=BOX_TOL)
        want = model_dtype(self.model)
        if want is not None and x.dtype != want:
            raise ValueError(f"{name} has dtype {x.dtype} but the model's parameters are {want}; convert the "
                             f"images with {name}.to({want}) (attacks do not change dtypes silently)")
        return x.detach().clamp(0.0, 1.0).to(self.device)

    def _validate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = self._check_x("x", x)
        if not isinstance(y, Tensor):
            raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
        num_classes = 0
        if x.shape[0]:
            with torch.no_grad(), eval_mode(self.model), self._autocast(x.device):
                num_classes = check_logits(self.model(x[:1]), 1).shape[1]
        y = check_labels_for(y, x.shape[0], num_classes)
        return x, y.to(self.device)

    @property
    def _bf16_active(self) -> bool:
        """bf16 requested and not abandoned for this call."""
        return self.bf16 and not self.fell_back_to_fp32

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self._bf16_active:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, x: Tensor) -> Tensor:
        """The output the attack differentiates and decides on: logits [N, K] (a subclass may use another
        [N, D] output, e.g. RepresentationMatch's features), under whatever autocast the caller set."""
        return check_logits(self.model(x), x.shape[0])

    def _logits(self, x: Tensor) -> Tensor:
        with self._autocast(x.device):
            out = self._forward(x)
        if getattr(self, "_finite", None) is not None:
            self._finite = self._finite & torch.isfinite(out.detach()).all()
        return out

    def _decision_logits(self, x: Tensor) -> Tensor:
        """fp32 logits of x without autocast or graph: what success and the returned iterate are judged on."""
        with torch.no_grad(), _fp32(x.device):
            out = self._forward(x)
        if getattr(self, "_finite", None) is not None:
            self._finite = self._finite & torch.isfinite(out).all()
        return out

    def _gradient(self, x: Tensor, objective: Objective) -> tuple[Tensor, Tensor, Tensor]:
        """(∇ₓ Σ objective, logits, objective) at x, all detached; bf16 when active.

        The first gradient of a bf16 call is checked once (one device sync per call); if it is
        unusable the call switches to fp32 for good and this gradient is taken again in fp32.
        """
        x = x.detach().requires_grad_(True)
        logits = self._logits(x)
        value = objective(logits)
        (grad,) = torch.autograd.grad(value.sum(), x)
        if self._bf16_active and not getattr(self, "_gradient_checked", True):
            self._gradient_checked = True
            if self._bf16_gradient_unusable(x.detach(), grad, objective):
                return self._gradient(x.detach(), objective)
        return grad, logits.detach(), value.detach()

    def _bf16_gradient_unusable(self, x: Tensor, grad: Tensor, objective: Objective) -> bool:
        """Whether bf16 loses the gradient of > FALLBACK_SHARE of the batch; if so, switch this call to fp32.

        bf16 keeps fp32's exponent range, so tiny gradients do not underflow any sooner; what it loses
        is mantissa (8 bits): a large offset can swallow a small signal (1000 + 0.5 rounds to 1000), a
        ReLU gate then reads exactly 0 and the gradient behind it vanishes. That shows up as an all-zero
        (or, from overflowing intermediates, non-finite) input gradient. Only when some example has
        one is the fp32 gradient taken (once) to tell bf16's fault from the model's own dead gradients.
        """
        dead16 = dead_gradients(grad)
        if not bool(dead16.any()):
            return False
        x32 = x.clone().requires_grad_(True)
        with _fp32(x.device):
            value = objective(self._forward(x32))
        (grad32,) = torch.autograd.grad(value.sum(), x32)
        lost = int((dead16 & ~dead_gradients(grad32)).sum())
        if lost <= FALLBACK_SHARE * x.shape[0]:
            return False
        self.fell_back_to_fp32 = True
        self.fp32_fallbacks += 1
        self._finite = torch.ones((), dtype=torch.bool, device=x.device)  # bf16's logits are discarded
        # One line per call; WARNING the first time, INFO after, so a training loop is not flooded.
        log.log(logging.WARNING if self.fp32_fallbacks == 1 else logging.INFO,
                "%s: the bf16 input gradient is unusable (all zero or non-finite) for %d of %d examples whose fp32 "
                "gradient is fine; this call runs in fp32 (fallback %d of this attack)", type(self).__name__, lost,
                x.shape[0], self.fp32_fallbacks)
        return True

    def _rand(self, shape: torch.Size, like: Tensor, kind: str) -> Tensor:
        """U[0,1) ('uniform') or N(0,1) ('normal') noise drawn from self.generator on the CPU, then moved."""
        draw = torch.rand if kind == "uniform" else torch.randn
        return draw(shape, generator=self.generator, dtype=torch.float32).to(device=like.device, dtype=like.dtype)
