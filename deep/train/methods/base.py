"""The training-method contract and its registry.

A training method is a :class:`TrainingMethod` subclass registered with :func:`register_method`. It
names a frozen config dataclass (``Config``, a :class:`MethodConfig`) holding its own knobs; the
:class:`~deep.train.recipe.Recipe` holds one such config as ``recipe.method``. Each config field
carries metadata:

- ``help``: the ``--flag`` help text;
- ``flat``: its key in a flat recipe dict (recipe.json, ray_jobs specs, CLI); default the field name;
- ``kind``: int | float | str | bool (the flag's type); ``choices``: allowed strings, if any;
- ``exclusive``: a non-default value under another method is an error (e.g. ``mart_ablation``).

Adding a method takes one new module in this package (or anywhere: a test registers one) that
defines the config, the class and decorates it with ``@register_method``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks import PGD

if TYPE_CHECKING:  # the recipe imports this module; the reverse import is for types only
    from deep.train.recipe import Recipe, ThreatConfig


def knob(default: Any, help: str, *, kind: type, flat: str | None = None, choices: tuple[str, ...] | None = None,
         exclusive: bool = False) -> Any:
    """A config field with the metadata the recipe needs to flatten it and make its ``--flag``."""
    return dataclasses.field(default=default, metadata={"help": help, "kind": kind, "flat": flat,
                                                         "choices": choices, "exclusive": exclusive})


def require(cond: bool, flat: str, value: Any, what: str) -> None:
    """ValueError ``recipe.<flat> <what>, got <value>`` unless cond."""
    if not cond:
        raise ValueError(f"recipe.{flat} {what}, got {value!r}")


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def flat_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flat") or f.name


@dataclass(frozen=True)
class MethodConfig:
    """Base of the per-method configs (no knobs). Subclasses validate their knobs in ``__post_init__``."""


@dataclass
class StepOutput:
    loss: Tensor
    logits_clean: Tensor | None  # for the clean training accuracy, when the method computes it
    logits_adv: Tensor | None    # for the adversarial training accuracy, when the method computes it


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TrainingMethod:
    """One training objective: the inner maximisation (``make_attack``) and the outer loss (``step``).

    The attack classes switch the model to eval mode while they run and restore train mode after
    (SPEC §0), so the forward passes of ``step`` run in train mode."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""          # a few words for --help, e.g. "Madry et al."
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    adversarial: ClassVar[bool] = True   # needs ε > 0; the held-out robustness check is on by default
    linf_only: ClassVar[bool] = False    # an ℓ∞ method: recipe.norm must be "linf"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.config = recipe.method

    @classmethod
    def default_step_size(cls, threat: ThreatConfig) -> float:
        """The inner step when recipe.alpha is None: Madry's rule 2.5·ε/steps."""
        return 2.5 * threat.eps / threat.steps

    def make_attack(self, model: nn.Module, generator: torch.Generator) -> Any:
        """The callable ``attack(x, y) -> x_adv`` that makes this method's training inputs (None: none)."""
        return None

    def step(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> StepOutput:
        """The loss of one batch (model in train mode)."""
        raise NotImplementedError

    def threat_pgd(self, model: nn.Module, generator: torch.Generator, *, random_start: bool | str, loss: str) -> PGD:
        """PGD at the recipe's threat (ε, steps, norm) and step size: the inner maximisation of pgd/trades/mart."""
        t = self.recipe.threat
        random_start = random_start if t.random_start else False  # recipe.random_start false: start at the image
        return PGD(model, t.eps, self.recipe.step_size(), t.steps, t.norm, random_start=random_start, loss=loss,
                   bf16=self.recipe.bf16, generator=generator)

    def cross_entropy(self, model: nn.Module, x_in: Tensor, y: Tensor, *, adversarial: bool) -> StepOutput:
        """CE(p(x_in), y) under the recipe's autocast; the logits count as adversarial or clean accuracy."""
        with autocast(self.recipe.bf16, x_in.device):
            logits = model(x_in)
            loss = F.cross_entropy(logits.float(), y)
        return StepOutput(loss, None, logits) if adversarial else StepOutput(loss, logits, None)

    def two_views(self, model: nn.Module, attack: Any, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(logits on x, logits on attack(x, y)): one forward pass per view, as the official TRADES/MART code."""
        x_adv = attack(x, y)
        with autocast(self.recipe.bf16, x.device):
            return model(x), model(x_adv)


_BY_NAME: dict[str, type[TrainingMethod]] = {}
_BY_CONFIG: dict[type[MethodConfig], type[TrainingMethod]] = {}


def register_method(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    """Class decorator: make ``cls`` available as ``recipe.method`` / ``--method cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, TrainingMethod)):
        raise ValueError(f"register_method needs a TrainingMethod subclass, got {cls!r}")
    if not cls.name or not isinstance(cls.name, str):
        raise ValueError(f"{cls.__name__}.name must be a non-empty string, got {cls.name!r}")
    if not (dataclasses.is_dataclass(cls.Config) and issubclass(cls.Config, MethodConfig)):
        raise ValueError(f"{cls.__name__}.Config must be a MethodConfig dataclass, got {cls.Config!r}")
    for owner, key in ((_BY_NAME.get(cls.name), cls.name), (_BY_CONFIG.get(cls.Config), cls.Config.__name__)):
        if owner is not None and owner is not cls:
            raise ValueError(f"training method {key!r} is already registered by {owner.__name__}")
    _BY_NAME[cls.name] = cls
    _BY_CONFIG[cls.Config] = cls
    return cls


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(_BY_NAME)


def method_class(name: str) -> type[TrainingMethod]:
    if name not in _BY_NAME:
        raise ValueError(f"recipe.method must be one of {method_names()}, got {name!r} (unknown training method)")
    return _BY_NAME[name]


def method_of(config: MethodConfig) -> type[TrainingMethod]:
    """The registered method whose Config is type(config)."""
    cls = _BY_CONFIG.get(type(config))
    if cls is None:
        raise ValueError(f"recipe.method must be the config of a registered training method {method_names()}, "
                         f"got {type(config).__name__}")
    return cls


def knob_fields() -> dict[str, tuple[dataclasses.Field, list[type[TrainingMethod]]]]:
    """Flat key -> (its field, the methods that have it) over every registered method's knobs."""
    out: dict[str, tuple[dataclasses.Field, list[type[TrainingMethod]]]] = {}
    for cls in _BY_NAME.values():
        for f in dataclasses.fields(cls.Config):
            out.setdefault(flat_name(f), (f, []))[1].append(cls)
    return out
