"""The one place attack names are parsed: ``parse_attack("pgd-20x5") -> AttackSpec``, then ``build_attack``.

Every command, spec ``suite`` and ``deep.evaluate`` goes through this registry, so a new attack is
one new file that calls :func:`register_attack` (modules of the ``deep.attacks`` package are imported
on the first lookup, so no other file needs an import line) plus its test.

Names registered by the package (see :func:`known_attacks` for the live list):

- ``fgsm``: ℓ∞ FGSM (Goodfellow et al.); for ℓ2 one normalised gradient step of length ε (FGM).
- ``pgd-K`` / ``pgd-KxR``: K-step PGD on CE from a uniform random start, R restarts (per-example best);
  ``pgd-0`` evaluates the random start only.
- ``cw-K`` / ``cw-KxR``: the same on the Carlini–Wagner margin (CW∞ in [MART] Table 2).

Step size: the caller's ``alpha`` if given, else the family's rule (PGD: 2.5·ε/K, Madry et al.).
Limits: K ≤ MAX_STEPS, R in [1, MAX_RESTARTS]; a name outside them is refused, naming the range.

A builder may return any callable ``atk(x, y) -> x_adv`` (x float [N, C, H, W] in [0, 1], y int64
[N]); it need not subclass :class:`deep.attacks.base.Attack`.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn

from deep.units import check_eps, parse_eps, parse_norm

__all__ = ["AttackSpec", "MAX_RESTARTS", "MAX_STEPS", "build_attack", "known_attacks", "parse_attack",
           "is_resumable", "parse_eps", "register_attack", "resolve_spec", "unregister_attack"]

MAX_STEPS = 100_000
MAX_RESTARTS = 1_000


class AttackFn(Protocol):
    def __call__(self, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class AttackSpec:
    """A parsed suite name. ``kind`` is the registry family that builds it; ``alpha`` (pixel units)
    is None until :func:`resolve_spec` fills it from the caller's value or the family's rule."""

    name: str
    kind: str
    steps: int = 1
    restarts: int = 1
    alpha: float | None = None
    loss: str = "ce"

    def to_dict(self) -> dict[str, Any]:
        """The ``params`` record written into metrics.json (keys unchanged since the first schema)."""
        return {"kind": self.kind, "steps": self.steps, "restarts": self.restarts, "alpha": self.alpha,
                "loss": self.loss}


Parser = Callable[[str], "AttackSpec | None"]
Builder = Callable[..., AttackFn]
AlphaRule = Callable[[AttackSpec, float, "float | None"], "float | None"]


@dataclass(frozen=True)
class _Entry:
    kind: str
    parser: Parser
    builder: Builder
    description: str
    forms: tuple[str, ...]
    alpha_rule: AlphaRule | None
    resumable: bool = False  # the builder takes state_path= and resumes an interrupted run from it


_REGISTRY: dict[str, _Entry] = {}
_discovered = False


def check_steps(steps: int, restarts: int, name: str) -> None:
    """Refuse step counts and restarts outside [0, MAX_STEPS] / [1, MAX_RESTARTS], naming the name."""
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"attack {name!r}: steps = {steps} is out of range; must lie in [0, {MAX_STEPS}]")
    if not 1 <= restarts <= MAX_RESTARTS:
        raise ValueError(f"attack {name!r}: restarts = {restarts} is out of range; must lie in [1, {MAX_RESTARTS}]")


def _pattern_parser(kind: str, pattern: str) -> Parser:
    """Parser for a regex with optional named groups ``steps`` and ``restarts`` (default 1 each)."""
    compiled = re.compile(pattern)

    def parse(name: str) -> AttackSpec | None:
        m = compiled.fullmatch(name)
        if m is None:
            return None
        groups = m.groupdict()
        steps, restarts = int(groups.get("steps") or 1), int(groups.get("restarts") or 1)
        check_steps(steps, restarts, name)
        return AttackSpec(name, kind, steps, restarts)
    return parse


def register_attack(kind: str, *, builder: Builder | None = None, pattern: str | None = None,
                    parser: Parser | None = None, description: str, forms: tuple[str, ...] | None = None,
                    alpha_rule: AlphaRule | None = None, replace: bool = False, resumable: bool = False) -> Any:
    """Register an attack family; usable as a decorator on the builder.

    kind: the family key stored in ``AttackSpec.kind``. Names are matched by ``parser(name) ->
    AttackSpec | None``, else by the regex ``pattern`` (full match), else by ``name == kind``.
    builder(spec, model, *, eps, norm, seed, bf16) -> callable(x, y) -> x_adv (spec.alpha resolved).
    forms: how the names are shown in help texts and errors (default: ``(kind,)``).
    alpha_rule(spec, eps, alpha) -> the step size to record (default: the caller's alpha).
    resumable: the builder accepts ``state_path=`` (a folder) and resumes an interrupted run from it.
    """
    if pattern is not None and parser is not None:
        raise ValueError(f"register_attack({kind!r}): give pattern or parser, not both")
    if kind in _REGISTRY and not replace:
        raise ValueError(f"attack kind {kind!r} is already registered; pass replace=True to override")
    if parser is None:
        parser = _pattern_parser(kind, pattern if pattern is not None else re.escape(kind))

    def add(fn: Builder) -> Builder:
        _REGISTRY[kind] = _Entry(kind, parser, fn, description, forms or (kind,), alpha_rule, resumable)
        return fn
    return add(builder) if builder is not None else add


def unregister_attack(kind: str) -> None:
    """Remove a family (tests that register toy attacks clean up with this)."""
    _REGISTRY.pop(kind, None)


def _discover() -> None:
    """Import every module of deep.attacks once so each file's register_attack calls have run.
    A module that fails to import raises: a broken attack file must not vanish silently."""
    global _discovered
    if _discovered:
        return
    import deep.attacks as package
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    _discovered = True


def known_attacks() -> list[str]:
    """Every accepted name form (``fgsm``, ``pgd-K``, ``pgd-KxR``, ...), for help texts and errors."""
    _discover()
    return [form for kind in sorted(_REGISTRY) for form in _REGISTRY[kind].forms]


def describe_attacks() -> dict[str, str]:
    """{family kind: one-line description}."""
    _discover()
    return {kind: entry.description for kind, entry in _REGISTRY.items()}


def parse_attack(name: str, *, eps: float | str | None = None, alpha: float | None = None) -> AttackSpec:
    """The spec of a suite name; ValueError listing the known names when nothing matches.

    With ``eps`` the step size is resolved too (as :func:`resolve_spec`).
    """
    _discover()
    if not isinstance(name, str):
        raise ValueError(f"attack name must be a string, got {type(name).__name__} {name!r}")
    for kind in sorted(_REGISTRY):
        spec = _REGISTRY[kind].parser(name)
        if spec is not None:
            return spec if eps is None else resolve_spec(spec, eps=eps, alpha=alpha)
    raise ValueError(f"unknown attack name {name!r}; known: {', '.join(known_attacks())}")


def _entry(spec: AttackSpec) -> _Entry:
    _discover()
    if not isinstance(spec, AttackSpec):
        raise ValueError(f"spec must be an AttackSpec (from parse_attack), got {type(spec).__name__}")
    if spec.kind not in _REGISTRY:
        raise ValueError(f"attack kind {spec.kind!r} is not registered; known: {', '.join(known_attacks())}")
    return _REGISTRY[spec.kind]


def is_resumable(spec: AttackSpec) -> bool:
    """Whether the spec's family resumes from a ``state_path`` (AutoAttack's suites do)."""
    return _entry(spec).resumable


def resolve_spec(spec: AttackSpec, *, eps: float | str, alpha: float | None = None) -> AttackSpec:
    """spec with ``alpha`` filled: the family's rule when it has one, else the caller's alpha."""
    eps = parse_eps(eps)
    if alpha is not None:
        alpha = parse_eps(alpha, name="alpha")
    rule = _entry(spec).alpha_rule
    step = rule(spec, eps, alpha) if rule is not None else alpha
    return dataclasses.replace(spec, alpha=None if step is None else float(step))


def build_attack(spec: AttackSpec, model: nn.Module, *, eps: float | str, norm: str, seed: int,
                 alpha: float | None = None, bf16: bool = False, **options: Any) -> AttackFn:
    """The attack object for a spec: ``atk(x, y) -> x_adv`` at radius eps (checked against the norm's
    limit), random starts seeded by ``seed``. ``options`` go to the family's builder as keywords
    (e.g. AutoAttack's ``state_path``); the package's own builders take none."""
    norm = parse_norm(norm)
    eps = check_eps(eps, norm)
    if spec.alpha is None or alpha is not None:
        spec = resolve_spec(spec, eps=eps, alpha=alpha)
    return _entry(spec).builder(spec, model, eps=eps, norm=norm, seed=seed, bf16=bf16, **options)
