"""AutoAttack (Croce & Hein, ICML 2020) from its authors' package ``pyautoattack``, as suite entries.

The attacks are the authors' code, used as a library; this file only configures and calls them.

Suite names (``SUITES``) and what each runs:

- ``aa-standard``: AutoAttack's ``version='standard'``: APGD-CE (1 restart), APGD-T (9 target classes),
  FAB-T (9 target classes), Square (5000 queries), each on the examples the earlier ones left robust.
- ``aa-plus``: ``version='plus'``: APGD-CE and APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T.
- ``aa-rand``: ``version='rand'`` for randomised models: APGD-CE and APGD-DLR with 20 EOT iterations.
- ``apgd-ce``, ``apgd-t``, ``apgd-dlr``, ``fab-t``, ``square``: that one attack alone with the
  standard version's settings (``apgd-dlr``: APGD on the DLR loss, 1 restart, 100 iterations).

Each name is also a class (``ADAPTERS``: ``AAStandard``, ``AAPlus``, ``AARand``, ``APGDCE``, ``APGDT``,
``APGDDLR``, ``FABT``, ``Square``), constructed as ``(model, eps, norm, seed, batch_size, state_path)``;
``autoattack(name, ...)`` picks the class by name and the registry builds the same.

Models with fewer than 10 classes get ``K - 1`` target classes in APGD-T / FAB-T (the standard 9 do not
exist); the DLR losses need at least 3 classes (targeted DLR: 4), and fewer is refused with a ValueError.

Calls are ``atk(x, y) -> x_adv`` like every attack here (``deep.attacks.base.Attack``): the model runs in
eval mode and, for conv nets on the CPU, in channels-last layout, and is handed back unchanged. Inputs
are processed in chunks of ``batch_size`` (default: the whole call); each chunk is one AutoAttack run
with the given seed (AutoAttack reseeds the global RNG per attack; the caller's RNG state is restored).

Resuming (``state_path``): pyautoattack 0.2.0's own state file cannot be read back (it writes the attack
set with ``str()`` and then compares it to a set, and its restore path leaves the returned labels
unbound), so the resumable unit here is the chunk. ``state_path`` is a folder holding one file per
finished chunk::

    <state_path>/<key>.pt    torch.save({"x_adv": float32 [n, C, H, W] CPU tensor, "key": str})

``key`` is the SHA-256 (first 24 hex digits) of the suite name, ε, norm, seed, pyautoattack version, the
model's weights and buffers, and the chunk's images and labels, so a changed setting, model or input
never reuses a stale file. Files are written atomically (temporary file + rename) and read with
``weights_only=True``. Because each chunk's
run is deterministic, an interrupted evaluation resumed from the folder returns the same x_adv, hence
the same numbers, as an uninterrupted one.

AutoAttack's own checks (randomness, softmax output, dynamic defence, class count, zero gradients,
Square stronger than the white-box attacks) are logged by it; every message is kept in ``atk.flags``
(in order, without repeats) for ``deep.evaluation.masking``.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .base import Attack, check_count, check_nonneg
from .registry import AttackSpec, register_attack

PACKAGE = "pyautoattack"
_NORMS = {"linf": "Linf", "l2": "L2"}
_LOGGER = "auto-attack"  # the logger name pyautoattack writes its checks to


@dataclass(frozen=True)
class SuiteEntry:
    """How a suite name maps onto AutoAttack: the version whose settings apply, and the one attack
    (AutoAttack's name) to run alone, or None for the whole version."""

    version: str
    attack: str | None
    description: str


SUITES: dict[str, SuiteEntry] = {
    "aa-standard": SuiteEntry("standard", None, "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square"),
    "aa-plus": SuiteEntry("plus", None, "AutoAttack+: APGD-CE/DLR (5 restarts), FAB, Square, APGD-T, FAB-T"),
    "aa-rand": SuiteEntry("rand", None, "AutoAttack rand: APGD-CE, APGD-DLR with 20 EOT iterations"),
    "apgd-ce": SuiteEntry("standard", "apgd-ce", "APGD on cross-entropy (AutoAttack standard settings)"),
    "apgd-t": SuiteEntry("standard", "apgd-t", "targeted APGD on the DLR loss, 9 targets"),
    "apgd-dlr": SuiteEntry("standard", "apgd-dlr", "APGD on the DLR loss, 1 restart"),
    "fab-t": SuiteEntry("standard", "fab-t", "targeted FAB, 9 targets"),
    "square": SuiteEntry("standard", "square", "Square Attack (black-box, 5000 queries)"),
}


def package_version() -> str:
    """The installed pyautoattack version; deep.packages.MissingPackageError (an ImportError and a
    ValueError: one line on the command line) naming the package when it is absent."""
    from deep.packages import PYAUTOATTACK_INSTALL, require_package

    return require_package(PACKAGE, needed_for=f"an AutoAttack suite name ({', '.join(SUITES)})",
                           install=PYAUTOATTACK_INSTALL)


class _Capture(logging.Handler):
    """Collects the messages of pyautoattack's checks (logged at WARNING)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_checks() -> Iterator[_Capture]:
    logger = logging.getLogger(_LOGGER)
    handler = _Capture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _reset_dynamic_check() -> None:
    """pyautoattack's dynamic-defence check counts autograd calls in a module-level dict that it never
    resets, so one dynamic model would flag every later model in the process; start each run at zero."""
    from pyautoattack import checks

    for key in checks.funcs:
        checks.funcs[key] = 0


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


class AutoAttackSuite(Attack):
    """One AutoAttack suite name as an attack: ``AutoAttackSuite("aa-standard", model, eps=8/255)(x, y)``.

    Args:
        name: a key of ``SUITES``.
        model: maps [N, C, H, W] in [0, 1] to logits [N, K] (not probabilities).
        eps: radius in pixel units; norm: "linf" or "l2".
        seed: AutoAttack's seed (the same for every chunk, as AutoAttack does for every batch).
        batch_size: images per AutoAttack run (the chunk; also AutoAttack's batch size); None: each
            call's whole input is one run (what ``deep.evaluation.evaluate`` uses: one run per batch).
        state_path: folder of finished chunks for resuming (see the module docstring), or None.
    """

    def __init__(self, name: str, model: nn.Module, *, eps: float, norm: str = "linf", seed: int = 0,
                 batch_size: int | None = None, state_path: str | os.PathLike | None = None) -> None:
        if name not in SUITES:
            raise ValueError(f"unknown AutoAttack suite name {name!r}; known: {', '.join(SUITES)}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {tuple(_NORMS)}, got {norm!r}")
        super().__init__(model)
        self.name = name
        self.entry = SUITES[name]
        self.eps = check_nonneg("eps", eps)
        self.norm = norm
        self.seed = check_count("seed", seed)
        self.batch_size = None if batch_size is None else check_count("batch_size", batch_size, minimum=1)
        self.state_path = None if state_path is None else Path(state_path)
        self.version = f"{PACKAGE}=={package_version()}"
        self.flags: list[str] = []

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, eps={self.eps:g}, norm={self.norm!r}, seed={self.seed}, "
                f"batch_size={self.batch_size}, state_path={self.state_path!r}, version={self.version!r})")

    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            num_classes = int(self.model(x[:1]).shape[1])
        model_key = self._model_key() if self.state_path is not None else ""
        size = self.batch_size or x.shape[0]
        chunks = []
        for start in range(0, x.shape[0], size):
            xs, ys = x[start:start + size], y[start:start + size]
            chunks.append(self._chunk(xs, ys, num_classes, model_key))
        return torch.cat(chunks)

    # -- one chunk ------------------------------------------------------------------------------
    def _chunk(self, x: Tensor, y: Tensor, num_classes: int, model_key: str) -> Tensor:
        path = self._chunk_file(x, y, model_key)
        if path is not None and path.exists():
            return self._load(path, x)
        with torch.random.fork_rng(devices=_rng_devices(x.device)), _captured_checks() as capture:
            adversary = self._adversary(num_classes, x.device)
            _reset_dynamic_check()
            x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=x.shape[0])
        self.flags.extend(m for m in capture.messages if m not in self.flags)
        x_adv = x_adv.detach().to(device=x.device, dtype=torch.float32)
        if path is not None:
            self._save(path, x_adv)
        return x_adv

    def _adversary(self, num_classes: int, device: torch.device) -> Any:
        from pyautoattack import AutoAttack  # lazy: the package is only needed when these names are used

        adversary = AutoAttack(self.model, device=device, eps=self.eps, norm=_NORMS[self.norm], seed=self.seed,
                               version=self.entry.version)
        if self.entry.attack is not None:  # one attack with this version's settings
            adversary.attacks_to_run = [self.entry.attack]
        # the DLR loss reads the 3rd largest logit (targeted: the 4th); AutoAttack only warns, then crashes
        minimum = 4 if "apgd-t" in adversary.attacks_to_run else 3 if "apgd-dlr" in adversary.attacks_to_run else 2
        if num_classes < minimum:
            raise ValueError(f"attack {self.name!r} needs a model with at least {minimum} classes "
                             f"(AutoAttack's DLR loss), got {num_classes}")
        targets = min(9, num_classes - 1)  # the standard 9 target classes where the model has them
        adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes, targets)
        adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, targets)
        return adversary

    # -- resume files ---------------------------------------------------------------------------
    def _model_key(self) -> str:
        """SHA-256 of the model's weights and buffers in NCHW order (the layout while attacking differs)."""
        h = hashlib.sha256()
        for name, t in self.model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes() if t.dtype != torch.bfloat16
                     else t.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _chunk_file(self, x: Tensor, y: Tensor, model_key: str) -> Path | None:
        if self.state_path is None:
            return None
        h = hashlib.sha256()
        h.update(repr((self.name, float(self.eps), self.norm, self.seed, self.version, model_key)).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
        h.update(y.detach().cpu().numpy().tobytes())
        return self.state_path / f"{h.hexdigest()[:24]}.pt"

    @staticmethod
    def _load(path: Path, x: Tensor) -> Tensor:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        x_adv = saved.get("x_adv") if isinstance(saved, dict) else None
        if not isinstance(x_adv, Tensor) or x_adv.shape != x.shape:
            raise ValueError(f"state file {path} does not hold x_adv of shape {tuple(x.shape)}; delete it to "
                             "recompute that chunk")
        return x_adv.to(device=x.device, dtype=torch.float32)

    @staticmethod
    def _save(path: Path, x_adv: Tensor) -> None:
        from deep.io import save_torch

        save_torch(path, {"x_adv": x_adv.cpu(), "key": path.stem})  # atomic: no half-written chunk


class _Named(AutoAttackSuite):
    """One suite name as its own class: ``APGDCE(model, eps=0.3)(x, y)``."""

    suite: str

    def __init__(self, model: nn.Module, eps: float, norm: str = "linf", seed: int = 0, batch_size: int | None = None,
                 state_path: str | os.PathLike | None = None) -> None:
        super().__init__(self.suite, model, eps=eps, norm=norm, seed=seed, batch_size=batch_size,
                         state_path=state_path)


class AAStandard(_Named):
    suite = "aa-standard"


class AAPlus(_Named):
    suite = "aa-plus"


class AARand(_Named):
    suite = "aa-rand"


class APGDCE(_Named):
    suite = "apgd-ce"


class APGDT(_Named):
    suite = "apgd-t"


class APGDDLR(_Named):
    suite = "apgd-dlr"


class FABT(_Named):
    suite = "fab-t"


class Square(_Named):
    suite = "square"


ADAPTERS: dict[str, type[_Named]] = {cls.suite: cls for cls in (AAStandard, AAPlus, AARand, APGDCE, APGDT, APGDDLR,
                                                                FABT, Square)}


def autoattack(name: str, model: nn.Module, eps: float, norm: str = "linf", seed: int = 0,
               batch_size: int | None = None, state_path: str | os.PathLike | None = None) -> AutoAttackSuite:
    """The adapter for a suite name, constructed as (model, eps, norm, seed, batch_size, state_path)."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown AutoAttack suite name {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name](model, eps, norm, seed, batch_size, state_path)


def _parse(name: str) -> AttackSpec | None:
    return AttackSpec(name, "autoattack") if name in SUITES else None


@register_attack("autoattack", parser=_parse, forms=tuple(SUITES), resumable=True,
                 description="AutoAttack by Croce & Hein (pyautoattack): " + ", ".join(SUITES))
def _build(spec: AttackSpec, model: nn.Module, *, eps: float, norm: str, seed: int, bf16: bool = False,
           batch_size: int | None = None, state_path: str | os.PathLike | None = None) -> AutoAttackSuite:
    # bf16 is a speed option for the package's own attacks in the same suite; AutoAttack is the
    # reference evaluation and always runs in float32, as its authors run it.
    return autoattack(spec.name, model, eps, norm, seed, batch_size, state_path)  # evaluate(): one run per batch
