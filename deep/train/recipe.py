"""The training recipe: every hyper-parameter of a run in one place (SPEC §4, §6).

Units are pixel units for ε and step sizes (images live in [0, 1], normalisation is inside the
model), epochs for milestones, and examples for sizes. ``Recipe.from_dict``/``to_dict`` round-trip
through JSON; :func:`add_recipe_arguments` turns each field into a ``--flag`` whose help text is the
field's ``help`` metadata.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS: tuple[str, ...] = ("standard", "pgd", "fgsm", "fast", "trades", "mart",
                           "noise-sign", "noise-uniform")  # noise-*: GF §6's control for fgsm
SCHEDULES: tuple[str, ...] = ("step", "cyclic", "constant", "onecycle")
NORMS: tuple[str, ...] = ("linf", "l2")
MART_ABLATIONS: tuple[str, ...] = ("none", "no-weight", "no-kl", "ce")  # [MART] §4 ablations
PERTURB_SETS: tuple[str, ...] = ("all", "correct", "misclassified")  # [MART] §3 S⁺/S⁻ experiment
# Named datasets of deep.data; ``npz:<path>`` and constructed-dataset directories are accepted too.
DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "cifar10-subset", "restricted-imagenet")
DATASET_PREFIXES: tuple[str, ...] = ("npz:", "dir:", "restricted-imagenet:")


def _f(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Recipe:
    """Hyper-parameters of one training run. Validated on construction (ValueError naming the field)."""

    dataset: str = _f("mnist", "dataset name (mnist, fashion-mnist, cifar10, cifar10-subset, restricted-imagenet), "
                      "npz:<path>, or a constructed-dataset directory")
    model: str = _f("smallcnn", "model name from deep.models.MODEL_NAMES")
    method: str = _f("standard", choices=METHODS, help="training method: standard | pgd (Madry) | fgsm (Goodfellow, α-mixed) | "
                     "fast (random-start FGSM, Wong et al.) | trades (β) | mart (λ) | noise-sign / noise-uniform (GF's "
                     "control: α-mixed like fgsm, on x + ε·random signs / x + U(−ε, ε))")
    epochs: int = _f(10, "number of passes over the training set (epochs)")
    batch_size: int = _f(128, "examples per SGD step")
    lr: float = _f(0.01, "peak learning rate of SGD")
    momentum: float = _f(0.9, "SGD momentum (0 = none)")
    weight_decay: float = _f(0.0, "L2 weight decay coefficient of SGD")
    nesterov: bool = _f(False, "use Nesterov momentum")
    schedule: str = _f("step", choices=SCHEDULES, help="lr schedule: step (×gamma at each milestone epoch) | cyclic (linear 0→lr at 40%% "
                       "of training →0, Wong et al.) | constant | onecycle (cosine warm-up 30%% then cosine decay)")
    milestones: list[float] = _f(None, "epochs at which the step schedule multiplies lr by gamma (fractions allowed)",
                                 nargs="*", elem=float)
    gamma: float = _f(0.1, "lr factor at each milestone of the step schedule")
    augment: bool = _f(False, "random crop (4-pixel zero padding) of each training batch, plus a horizontal "
                       "flip for colour images only (a mirrored digit is another image)")
    eps: float = _f(0.3, "attack radius ε in pixel units ([0, 1] scale; ℓ∞ or ℓ2 per --norm)")
    alpha: float = _f(None, "attack step size in pixel units; default 2.5·ε/steps for PGD-based methods "
                      "(Madry's rule) and 1.25·ε for fast", elem=float)
    steps: int = _f(10, "PGD steps of the inner maximisation (pgd, trades, mart)")
    norm: str = _f("linf", "threat model norm: linf | l2", choices=NORMS)
    beta: float = _f(6.0, "TRADES weight β of KL(p(x) ‖ p(x′))")
    lam: float = _f(6.0, "MART weight λ of the misclassification-aware KL term")
    mart_ablation: str = _f("none", choices=MART_ABLATIONS, help="MART ablation ([MART] §4): none | no-weight (drop "
                            "the (1 − p_y(x)) factor) | no-kl (drop the KL term) | ce (CE instead of BCE)")
    perturb: str = _f("all", choices=PERTURB_SETS, help="pgd only ([MART] §3 S⁻/S⁺ experiment): which training "
                      "examples get adversarial versions: all | correct (S⁺ only; the misclassified S⁻ stay "
                      "natural) | misclassified (S⁻ only); S⁻/S⁺ by the current model on the natural batch")
    eps_warmup: float = _f(0.0, "epochs over which the training attack's ε (and step) ramps linearly from 0 "
                           "to eps (0 = no warm-up); used for ℓ∞ 0.3 MNIST fine-tuning at CPU scale")
    init_from: str = _f(None, "run folder (or its checkpoint.pt) whose model weights initialise this run, e.g. a "
                        "standard model for adversarial fine-tuning; None = fresh seeded init", elem=str)
    fgsm_alpha: float = _f(0.5, "Goodfellow's mixing weight α of the clean loss: α·J(x) + (1−α)·J(x_fgsm)")
    subset: int = _f(None, "train on a random (seeded) subset of this many training examples", elem=int)
    first_n: int = _f(None, "train on the first this-many training examples", elem=int)
    seed: int = _f(0, "seed of model init, batch order, augmentation and attack random starts")
    bf16: bool = _f(False, "bfloat16 autocast for forward/backward (training and attacks)")
    eval_every: int = _f(1, "evaluate on the held-out slice every this-many epochs (and always after the last)")
    eval_n: int = _f(500, "size of the held-out slice: the first this-many examples of the TEST split")
    eval_steps: int = _f(10, "PGD steps of the per-epoch robustness check on the held-out slice")

    def __post_init__(self) -> None:
        if self.milestones is None:
            self.milestones = []
        self.milestones = [float(m) for m in self.milestones]
        self.validate()

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        def need(cond: bool, name: str, what: str) -> None:
            if not cond:
                raise ValueError(f"recipe.{name} {what}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        need(isinstance(self.dataset, str) and (self.dataset in DATASET_NAMES or self.dataset.startswith(DATASET_PREFIXES)
                                               or Path(self.dataset).is_dir()),
             "dataset", f"must be one of {DATASET_NAMES}, start with one of {DATASET_PREFIXES}, "
                        "or be an existing constructed-dataset directory")
        need(isinstance(self.model, str) and self.model in _model_names(), "model",
             f"must be one of {_model_names()}")
        need(self.method in METHODS, "method", f"must be one of {METHODS}")
        need(self.schedule in SCHEDULES, "schedule", f"must be one of {SCHEDULES}")
        need(self.norm in NORMS, "norm", f"must be one of {NORMS}")
        for name in ("epochs", "batch_size", "steps", "eval_every", "eval_n", "eval_steps"):
            need(is_int(getattr(self, name)) and getattr(self, name) >= 1, name, "must be an integer >= 1")
        need(is_int(self.seed) and self.seed >= 0, "seed", "must be an integer >= 0")
        for name in ("subset", "first_n"):
            v = getattr(self, name)
            need(v is None or (is_int(v) and v >= 1), name, "must be None or an integer >= 1")
        need(not (self.subset is not None and self.first_n is not None), "subset", "cannot be combined with first_n")
        for name in ("lr", "eps", "beta", "lam", "weight_decay", "momentum", "gamma"):
            need(is_num(getattr(self, name)) and getattr(self, name) >= 0, name, "must be a finite number >= 0")
        need(self.lr > 0, "lr", "must be > 0")
        need(self.momentum < 1, "momentum", "must be < 1")
        need(self.alpha is None or (is_num(self.alpha) and self.alpha > 0), "alpha", "must be None or a number > 0")
        need(is_num(self.fgsm_alpha) and 0 <= self.fgsm_alpha <= 1, "fgsm_alpha", "must lie in [0, 1]")
        need(all(is_num(m) and 0 < m for m in self.milestones), "milestones", "must be positive epochs")
        for name in ("augment", "bf16", "nesterov"):
            need(isinstance(getattr(self, name), bool), name, "must be a bool")
        need(not (self.nesterov and self.momentum == 0), "nesterov", "needs momentum > 0")
        need(self.method == "standard" or self.eps > 0, "eps", f"must be > 0 for method {self.method!r}")
        need(self.mart_ablation in MART_ABLATIONS, "mart_ablation", f"must be one of {MART_ABLATIONS}")
        need(self.mart_ablation == "none" or self.method == "mart", "mart_ablation", "needs method 'mart'")
        need(self.perturb in PERTURB_SETS, "perturb", f"must be one of {PERTURB_SETS}")
        need(self.perturb == "all" or self.method == "pgd", "perturb", "other than 'all' needs method 'pgd'")
        need(self.init_from is None or (isinstance(self.init_from, str) and Path(self.init_from).exists()),
             "init_from", "must be None or an existing run folder / checkpoint file")
        need(is_num(self.eps_warmup) and 0 <= self.eps_warmup <= self.epochs, "eps_warmup",
             "must be a number of epochs in [0, recipe.epochs]")

    # -- derived -------------------------------------------------------------------------------
    def step_size(self) -> float:
        """The inner maximisation's step size: alpha, else 1.25·ε (fast) or 2.5·ε/steps (PGD-based)."""
        if self.alpha is not None:
            return float(self.alpha)
        return 1.25 * self.eps if self.method == "fast" else 2.5 * self.eps / self.steps

    # -- (de)serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        if not isinstance(d, dict):
            raise ValueError(f"recipe must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown recipe fields {unknown}; known: {sorted(known)}")
        return cls(**d)


def _model_names() -> tuple[str, ...]:
    from deep.models import MODEL_NAMES  # imported lazily: the recipe module must not pull torch models in eagerly

    return tuple(MODEL_NAMES)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per Recipe field; defaults None so that only given flags override."""
    for f in dataclasses.fields(Recipe):
        meta = dict(f.metadata)
        help_text = meta["help"] + f" (default: {f.default!r})"
        if f.type in ("bool", bool):
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        elif "nargs" in meta:
            parser.add_argument(_flag(f.name), dest=f.name, nargs=meta["nargs"], type=meta["elem"],
                                default=None, help=help_text)
        elif "choices" in meta:
            parser.add_argument(_flag(f.name), dest=f.name, choices=meta["choices"], default=None, help=help_text)
        else:
            kind = meta.get("elem") or {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, help=help_text)


def recipe_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Recipe:
    """Recipe from a base dict (e.g. a JSON file) overridden by every flag given on the command line."""
    d = dict(base or {})
    for f in dataclasses.fields(Recipe):
        v = getattr(args, f.name, None)
        if v is not None:
            d[f.name] = v
    return Recipe.from_dict(d)
