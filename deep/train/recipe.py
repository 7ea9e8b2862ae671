"""The training recipe: data, model, optimiser, threat model, held-out check and method, composed.

``Recipe`` holds one frozen config per concern, plus the seed and bf16:

- ``data``: :class:`DataConfig` (dataset, subset, first_n, augment)
- ``model``: :class:`ModelConfig` (name, init_from, options of the model family)
- ``optim``: :class:`OptimConfig` (SGD and its lr schedule)
- ``threat``: :class:`ThreatConfig` (ε, norm, step, steps, ε warm-up and random start of the training attack)
- ``heldout``: :class:`HeldOutConfig` (the per-epoch check on the first n test images)
- ``method``: the config of a registered training method (``deep.train.methods``), e.g.
  ``PGDConfig(perturb="all")`` or ``MARTConfig(lam=6.0, ablation="none")``

Units: ε and step sizes in pixel units (images live in [0, 1], normalisation is inside the model),
epochs for milestones, examples for sizes.

Flat form (recipe.json, ray_jobs spec configs, ``--flags``): one key per field, named by the field's
``flat`` metadata (e.g. ``model`` for ``model.name``, ``eval_n`` for ``heldout.n``, ``fgsm_alpha`` for
``FGSMConfig.alpha``), plus ``method`` (the method's registered name). :meth:`Recipe.to_dict` writes
every core key, ``method``, the active method's knobs, and the other built-in methods' knobs at their
defaults, so the file has the same keys as before the composition. :meth:`Recipe.from_dict`
reads that form; missing keys take their defaults (which keep the behaviour of runs written before
the key existed), knobs of inactive methods are validated and then dropped. Reading flat names as
attributes (``recipe.eps``, ``recipe.dataset``) works too, read-only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .methods.base import (MethodConfig, flat_name, is_number, knob, knob_fields, method_class, method_names,
                           method_of, require)
from .methods import BUILTIN_METHODS
from .methods.standard import StandardConfig

SCHEDULES: tuple[str, ...] = ("step", "cyclic", "constant", "onecycle")
NORMS: tuple[str, ...] = ("linf", "l2")


def parse_bf16(value: Any) -> bool | str:
    """true/false (any case, also 1/0/yes/no) or 'auto'; ValueError naming the value otherwise."""
    if isinstance(value, bool) or value == "auto":
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    if text == "auto":
        return "auto"
    raise ValueError(f"bf16 must be true, false or 'auto', got {value!r}")


def _bf16_arg(text: str) -> bool | str:
    try:
        return parse_bf16(text)
    except ValueError as err:  # argparse would print "invalid parse_bf16 value" instead of the reason
        raise argparse.ArgumentTypeError(str(err)) from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need_count(obj: Any, *names: str, minimum: int = 1) -> None:
    for f in dataclasses.fields(obj):
        if f.name in names:
            v = getattr(obj, f.name)
            require(_is_int(v) and v >= minimum, flat_name(f), v, f"must be an integer >= {minimum}")


def _need_optional_count(obj: Any, *names: str) -> None:
    for f in dataclasses.fields(obj):
        if f.name in names:
            v = getattr(obj, f.name)
            require(v is None or (_is_int(v) and v >= 1), flat_name(f), v, "must be None or an integer >= 1")


def _need_nonneg(obj: Any, *names: str) -> None:
    for f in dataclasses.fields(obj):
        if f.name in names:
            v = getattr(obj, f.name)
            require(is_number(v) and v >= 0, flat_name(f), v, "must be a finite number >= 0")


def _need_bool(obj: Any, *names: str) -> None:
    for f in dataclasses.fields(obj):
        if f.name in names:
            require(isinstance(getattr(obj, f.name), bool), flat_name(f), getattr(obj, f.name), "must be a bool")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = knob("mnist", "dataset name (mnist, fashion-mnist, cifar10, cifar10-subset, restricted-imagenet), "
                        "npz:<path>, or a constructed-dataset directory", kind=str)
    subset: int | None = knob(None, "train on a random (seeded) subset of this many training examples", kind=int)
    first_n: int | None = knob(None, "train on the first this-many training examples", kind=int)
    augment: bool = knob(False, "random crop (4-pixel zero padding) of each training batch, plus a horizontal "
                         "flip for colour images only (a mirrored digit is another image)", kind=bool)

    def __post_init__(self) -> None:
        from deep.data import KNOWN_NAMES, NAME_PREFIXES

        d = self.dataset
        require(isinstance(d, str) and (d in KNOWN_NAMES or d.startswith(NAME_PREFIXES) or Path(d).is_dir()),
                "dataset", d, f"must be one of {KNOWN_NAMES}, start with one of {NAME_PREFIXES}, "
                              "or be an existing constructed-dataset directory")
        _need_optional_count(self, "subset", "first_n")
        require(self.subset is None or self.first_n is None, "subset", self.subset, "cannot be combined with first_n")
        _need_bool(self, "augment")


@dataclass(frozen=True)
class ModelConfig:
    name: str = knob("smallcnn", "model name from deep.models.MODEL_NAMES", kind=str, flat="model")
    init_from: str | None = knob(None, "run folder (or its checkpoint.pt) whose model weights initialise this run, "
                                 "e.g. a standard model for adversarial fine-tuning; None = fresh seeded init",
                                 kind=str)
    # None (not {}) by default: a frozen config holds no mutable default, and model.json of a run without
    # options stays as it was written before the key existed.
    options: dict[str, Any] | None = knob(None, "options of the model family passed to deep.models.build_model, as "
                                          "JSON (e.g. maxout: {\"hidden\": [1600, 1600], \"dropout\": 0.5}); "
                                          "stored in model.json", kind=dict, flat="model_options")

    def __post_init__(self) -> None:
        from deep.models import MODEL_NAMES, model_option_names  # the recipe must not build models, only name them

        require(isinstance(self.name, str) and self.name in MODEL_NAMES, "model", self.name,
                f"must be one of {tuple(MODEL_NAMES)}")
        opts = self.options
        require(opts is None or (isinstance(opts, dict) and all(isinstance(k, str) for k in opts)), "model_options",
                opts, "must be None or a table of option names to values")
        allowed = model_option_names(self.name)
        require(opts is None or set(opts) <= set(allowed), "model_options", opts,
                f"must name options of model {self.name!r}: {allowed}")
        require(self.init_from is None or (isinstance(self.init_from, str) and Path(self.init_from).exists()),
                "init_from", self.init_from, "must be None or an existing run folder / checkpoint file")


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = knob(10, "number of passes over the training set (epochs)", kind=int)
    batch_size: int = knob(128, "examples per SGD step", kind=int)
    lr: float = knob(0.01, "peak learning rate of SGD", kind=float)
    momentum: float = knob(0.9, "SGD momentum (0 = none)", kind=float)
    weight_decay: float = knob(0.0, "L2 weight decay coefficient of SGD", kind=float)
    nesterov: bool = knob(False, "use Nesterov momentum", kind=bool)
    schedule: str = knob("step", "lr schedule: step (×gamma at each milestone epoch) | cyclic (linear 0→lr at 40%% "
                         "of training →0, Wong et al.) | constant | onecycle (cosine warm-up 30%% then cosine decay)",
                         kind=str, choices=SCHEDULES)
    milestones: tuple[float, ...] = knob((), "epochs at which the step schedule multiplies lr by gamma (fractions "
                                         "allowed)", kind=float)
    gamma: float = knob(0.1, "lr factor at each milestone of the step schedule", kind=float)

    def __post_init__(self) -> None:
        ms = self.milestones
        require(ms is None or isinstance(ms, (list, tuple)), "milestones", ms, "must be a list of epochs")
        object.__setattr__(self, "milestones", tuple(ms or ()))  # JSON gives a list; frozen configs hold tuples
        _need_count(self, "epochs", "batch_size")
        _need_nonneg(self, "lr", "weight_decay", "momentum", "gamma")
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.momentum < 1, "momentum", self.momentum, "must be < 1")
        require(all(is_number(m) and m > 0 for m in self.milestones), "milestones", list(self.milestones),
                "must be positive epochs")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        require(self.schedule in SCHEDULES, "schedule", self.schedule, f"must be one of {SCHEDULES}")
        _need_bool(self, "nesterov")
        require(not (self.nesterov and self.momentum == 0), "nesterov", self.nesterov, "needs momentum > 0")


@dataclass(frozen=True)
class ThreatConfig:
    """The training attack's threat model (unused by standard training)."""

    eps: float = knob(0.3, "attack radius ε in pixel units ([0, 1] scale; ℓ∞ or ℓ2 per --norm)", kind=float)
    alpha: float | None = knob(None, "attack step size in pixel units; default 2.5·ε/steps for PGD-based methods "
                               "(Madry's rule) and 1.25·ε for fast", kind=float)
    steps: int = knob(10, "PGD steps of the inner maximisation (pgd, trades, mart)", kind=int)
    norm: str = knob("linf", "threat model norm: linf | l2", kind=str, choices=NORMS)
    eps_warmup: float = knob(0.0, "epochs over which the training attack's ε (and step) ramps linearly from 0 to "
                             "eps (0 = no warm-up); used for ℓ∞ 0.3 MNIST fine-tuning at CPU scale", kind=float)
    random_start: bool = knob(True, "start the training attack at a random point of the ε-ball (the method's own: "
                              "uniform for pgd, a small normal for trades/mart); false: at the image, as [IL]'s "
                              "robustness library trains", kind=bool)

    def __post_init__(self) -> None:
        _need_nonneg(self, "eps", "eps_warmup")
        _need_bool(self, "random_start")
        require(self.alpha is None or (is_number(self.alpha) and self.alpha > 0), "alpha", self.alpha,
                "must be None or a number > 0")
        _need_count(self, "steps")
        require(self.norm in NORMS, "norm", self.norm, f"must be one of {NORMS}")


@dataclass(frozen=True)
class HeldOutConfig:
    """The per-epoch check on the first ``n`` TEST images: clean accuracy always, PGD accuracy if robust."""

    every: int = knob(1, "evaluate on the held-out slice every this-many epochs (and always after the last)",
                      kind=int, flat="eval_every")
    n: int = knob(500, "size of the held-out slice: the first this-many examples of the TEST split", kind=int,
                  flat="eval_n")
    steps: int = knob(10, "PGD steps of the held-out robustness check", kind=int, flat="eval_steps")
    robust: bool | None = knob(None, "run the held-out PGD robustness check (default: on for adversarial methods, "
                               "off for standard training)", kind=bool, flat="eval_robust")
    eps: float | None = knob(None, "ε of the held-out robustness check (default: the training eps for adversarial "
                             "methods, the dataset's convention for standard training, deep.conventions)",
                             kind=float, flat="eval_eps")

    def __post_init__(self) -> None:
        _need_count(self, "every", "n", "steps")
        require(self.robust is None or isinstance(self.robust, bool), "eval_robust", self.robust,
                "must be None (auto) or a bool")
        require(self.eps is None or (is_number(self.eps) and self.eps > 0), "eval_eps", self.eps,
                "must be None or a number > 0")


PARTS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "threat": ThreatConfig,
                          "heldout": HeldOutConfig}


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training run. Validated on construction (ValueError naming the flat key)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=StandardConfig)
    threat: ThreatConfig = field(default_factory=ThreatConfig)
    heldout: HeldOutConfig = field(default_factory=HeldOutConfig)
    seed: int = knob(0, "seed of model init, batch order, augmentation and attack random starts", kind=int)
    bf16: bool | str = knob(False, "bfloat16 autocast for forward/backward (training and attacks): true, false, or "
                            "'auto' = bf16 where this machine runs it natively and measurably faster, else fp32 "
                            "(deep.precision)", kind=parse_bf16)
    checkpoint_every: int = knob(1, "save checkpoint.pt (one file, overwritten: the last) every this-many epochs and "
                                 "after the last; a resumed run redoes the epochs since the last save", kind=int)

    def __post_init__(self) -> None:
        _need_count(self, "checkpoint_every")
        for part, kind in PARTS.items():
            require(isinstance(getattr(self, part), kind), part, getattr(self, part), f"must be a {kind.__name__}")
        cls = method_of(self.method)
        require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "must be an integer >= 0")
        require(isinstance(self.bf16, bool) or self.bf16 == "auto", "bf16", self.bf16, "must be true, false or 'auto'")
        eps, norm = self.threat.eps, self.threat.norm
        require(not cls.adversarial or eps > 0, "eps", eps, f"must be > 0 for method {cls.name!r}")
        require(not cls.linf_only or norm == "linf", "norm", norm,
                f"must be 'linf' for method {cls.name!r} (an ℓ∞ method)")
        require(self.threat.eps_warmup <= self.optim.epochs, "eps_warmup", self.threat.eps_warmup,
                "must be a number of epochs in [0, recipe.epochs]")

    # -- derived -------------------------------------------------------------------------------
    @property
    def method_name(self) -> str:
        return method_of(self.method).name

    def step_size(self) -> float:
        """The inner maximisation's step size: alpha, else the method's default (2.5·ε/steps; fast: 1.25·ε)."""
        if self.threat.alpha is not None:
            return float(self.threat.alpha)
        return method_of(self.method).default_step_size(self.threat)

    def __getattr__(self, name: str) -> Any:
        """Read access by flat key: ``recipe.eps`` is ``recipe.threat.eps``, ``recipe.dataset`` is
        ``recipe.data.dataset``, ``recipe.lam`` is the active method's ``lam``."""
        if name.startswith("_") or name in PARTS or name == "method":
            raise AttributeError(name)
        return self.to_dict()[name] if name in flat_keys() else object.__getattribute__(self, name)

    # -- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The flat form (see the module docstring); JSON-ready."""
        out: dict[str, Any] = {}
        for flat, part, f in core_fields():
            v = getattr(getattr(self, part) if part else self, f.name)
            out[flat] = list(v) if isinstance(v, tuple) else v
        for flat, (f, owners) in knob_fields().items():
            if any(o.name in BUILTIN_METHODS for o in owners):
                out[flat] = f.default
        out.update({flat_name(f): getattr(self.method, f.name) for f in dataclasses.fields(self.method)})
        out["method"] = self.method_name
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """A Recipe from the flat form; ValueError on unknown keys or bad values."""
        if not isinstance(d, dict):
            raise ValueError(f"recipe must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - set(flat_keys()))
        if unknown:
            raise ValueError(f"unknown recipe fields {unknown}; known: {sorted(flat_keys())}")
        name = d.get("method", "standard")
        active = method_class(name if isinstance(name, str) else repr(name))
        parts: dict[str, dict[str, Any]] = {p: {} for p in PARTS}
        top: dict[str, Any] = {}
        for flat, part, f in core_fields():
            if flat in d:
                (parts[part] if part else top)[f.name] = d[flat]
        built = {p: PARTS[p](**kw) for p, kw in parts.items()}
        return cls(**built, method=_method_config(active, d), **top)


def _method_config(active: type, d: dict[str, Any]) -> MethodConfig:
    """The active method's config from d; the other methods' knobs in d are validated by building
    their configs, and an ``exclusive`` knob at a non-default value is refused."""
    config = None
    for flat, (f, owners) in knob_fields().items():
        if flat in d and f.metadata.get("exclusive") and active not in owners and d[flat] != f.default:
            names = [o.name for o in owners]
            raise ValueError(f"recipe.{flat} = {d[flat]!r} needs method {' or '.join(map(repr, names))}, "
                             f"got method {active.name!r}")
    every = dict.fromkeys([*(o for _, owners in knob_fields().values() for o in owners), active])
    for cls in every:  # registration order, so the first bad value reported is always the same
        kw = {f.name: d[flat_name(f)] for f in dataclasses.fields(cls.Config) if flat_name(f) in d}
        built = cls.Config(**kw)
        if cls is active:
            config = built
    return config


def core_fields() -> list[tuple[str, str | None, dataclasses.Field]]:
    """(flat key, part name or None for Recipe's own fields, field) of every non-method field."""
    out = [(flat_name(f), part, f) for part, kind in PARTS.items() for f in dataclasses.fields(kind)]
    return out + [(f.name, None, f) for f in dataclasses.fields(Recipe) if "kind" in f.metadata]


def flat_keys() -> tuple[str, ...]:
    return (*(flat for flat, _, _ in core_fields()), "method", *knob_fields())


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_flag(parser: argparse.ArgumentParser, flat: str, f: dataclasses.Field) -> None:
    meta = f.metadata
    shown = list(f.default) if isinstance(f.default, tuple) else f.default
    help_text = meta["help"] + ("" if f.default is None else f" (default: {shown!r})")
    if meta["kind"] is dict:  # a table of options, given as JSON on the command line
        parser.add_argument(_flag(flat), dest=flat, type=json.loads, default=None, help=help_text)
    elif meta["kind"] is parse_bf16:  # --bf16 [auto|true|false]; a bare --bf16 is true, --no-bf16 false
        parser.add_argument(_flag(flat), dest=flat, nargs="?", const=True, type=_bf16_arg, default=None,
                            metavar="auto|true|false", help=help_text)
        parser.add_argument(f"--no-{flat.replace('_', '-')}", dest=flat, action="store_const", const=False,
                            help=argparse.SUPPRESS)
    elif meta["kind"] is bool:
        parser.add_argument(_flag(flat), dest=flat, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif isinstance(f.default, tuple):
        parser.add_argument(_flag(flat), dest=flat, nargs="*", type=meta["kind"], default=None, help=help_text)
    elif meta.get("choices"):
        parser.add_argument(_flag(flat), dest=flat, choices=meta["choices"], default=None, help=help_text)
    else:
        parser.add_argument(_flag(flat), dest=flat, type=meta["kind"], default=None, help=help_text)


def _method_help() -> str:
    def label(name: str) -> str:
        summary = method_class(name).summary
        return f"{name} ({summary})" if summary else name

    return "training method: " + " | ".join(label(n) for n in method_names()) + " (default: 'standard')"


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per flat key (core fields, ``--method``, every registered method's knobs);
    defaults None so that only given flags override."""
    parser.add_argument("--method", dest="method", choices=method_names(), default=None, help=_method_help())
    for flat, _, f in core_fields():
        _add_flag(parser, flat, f)
    for flat, (f, _) in knob_fields().items():
        _add_flag(parser, flat, f)


def recipe_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Recipe:
    """Recipe from a base flat dict (e.g. a JSON file) overridden by every flag given on the command line."""
    d = dict(base or {})
    for flat in flat_keys():
        v = getattr(args, flat, None)
        if v is not None:
            d[flat] = v
    return Recipe.from_dict(d)
