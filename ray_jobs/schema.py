"""Config schemas of the stage kinds, checked before anything runs (``--dry-run`` and ``run``).

A kind declares its config as a :class:`Schema`: one :class:`Key` per allowed name, each with a
check that returns None when the value is acceptable and otherwise a phrase saying what is expected
("an integer in [1, 100000]", "one of ('linf', 'l2')", "a known dataset: mnist, ..."). Datasets are
checked against ``deep.data``'s registry, models against ``deep.models.MODEL_NAMES``, attack names
through ``deep.attacks.registry.parse_attack`` and ε through ``deep.units.parse_eps`` (so a spec may
write ``eps = "8/255"``; the run hash is of the config as written, so shipped specs keep theirs).
A schema may add a whole-config check (``extra``) for rules across keys; the ``train`` kind uses
``deep.train.Recipe`` itself, so its rules live in one place.

:func:`validate_spec` checks every distinct run config of a spec (tags, the ``_``-keys, are not
passed to kinds and are not checked) and raises :class:`~ray_jobs.spec.SpecError` naming the spec
file, the stage, the key and what was expected. Kinds without a schema (tests' toy kinds) are not
checked.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable

from ray_jobs.spec import Spec, SpecError, canonical_json, expand, strip_tags

Check = Callable[[Any], "str | None"]  # value -> what was expected, or None when fine


@dataclass(frozen=True)
class Key:
    check: Check
    required: bool = False


@dataclass(frozen=True)
class Schema:
    keys: dict[str, Key]
    extra: Callable[[dict[str, Any]], None] | None = None  # raises ValueError naming the key

    def problems(self, config: dict[str, Any]) -> list[str]:
        out = []
        for key, value in config.items():
            if key not in self.keys:
                near = difflib.get_close_matches(key, list(self.keys), n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                out.append(f"unknown key {key!r}; {hint}allowed: {sorted(self.keys)}")
                continue
            expected = self.keys[key].check(value)
            if expected is not None:
                out.append(f"key {key!r} = {value!r}: expected {expected}")
        missing = [k for k, spec in self.keys.items() if spec.required and k not in config]
        out.extend(f"missing required key {k!r}" for k in missing)
        if not out and self.extra is not None:
            try:
                self.extra(config)
            except (ValueError, TypeError, FileNotFoundError) as err:
                out.append(str(err))
        return out


# -- checks ----------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        ok = _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
        return None if ok else f"an integer in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    return check


def number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Check:
    def check(v: Any) -> str | None:
        ok = _is_num(v) and (lo is None or (v > lo if open_lo else v >= lo)) and (hi is None or v <= hi)
        low = f"({lo}" if open_lo else f"[{lo if lo is not None else '-inf'}"
        return None if ok else f"a finite number in {low}, {hi if hi is not None else 'inf'}]"
    return check


def boolean() -> Check:
    return lambda v: None if isinstance(v, bool) else "true or false"


def one_of(*choices: Any) -> Check:
    return lambda v: None if v in choices else f"one of {choices}"


def text() -> Check:
    return lambda v: None if isinstance(v, str) and v else "a non-empty string"


def anything() -> Check:
    return lambda v: None


def list_of(item: Check, *, empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or (not empty and not v):
            return "a list" if empty else "a non-empty list"
        bad = [x for x in v if item(x) is not None]
        return None if not bad else f"a list whose items are each {item(bad[0])}"
    return check


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def eps() -> Check:
    """A radius: a number >= 0 or a string like "8/255" (deep.units.parse_eps)."""
    def check(v: Any) -> str | None:
        from deep.units import parse_eps

        try:
            parse_eps(v)
        except ValueError:
            return "a finite number >= 0 or a fraction string like \"8/255\""
        return None
    return check


def norm() -> Check:
    return one_of("linf", "l2")


def dataset() -> Check:
    """A dataset name deep.data knows (no file system access: paths are produced by runs)."""
    def check(v: Any) -> str | None:
        from deep.data import KNOWN_NAMES, NAME_PREFIXES

        if isinstance(v, str) and (v in KNOWN_NAMES or v.startswith(NAME_PREFIXES)):
            return None
        return f"a known dataset: {', '.join(KNOWN_NAMES)}, 'restricted-imagenet:<size>', 'npz:<path>' or 'dir:<path>'"
    return check


def model() -> Check:
    def check(v: Any) -> str | None:
        from deep.models import MODEL_NAMES

        return None if v in MODEL_NAMES else f"a model of deep.models: {', '.join(MODEL_NAMES)}"
    return check


def attack() -> Check:
    def check(v: Any) -> str | None:
        from deep.attacks.registry import known_attacks, parse_attack

        try:
            parse_attack(v)
        except (ValueError, TypeError) as err:
            return f"an attack name ({err}); known: {known_attacks()}"
        return None
    return check


def split() -> Check:
    return one_of("train", "test")


# -- validation of a spec ---------------------------------------------------------------------------
def kind_schema(kind: str) -> Schema | None:
    """The declared schema of a registered kind (None when it declares none)."""
    from ray_jobs.kinds import KIND_SCHEMAS

    factory = KIND_SCHEMAS.get(kind)
    return None if factory is None else factory()


def validate_spec(spec: Spec, *, max_runs: int | None = None) -> None:
    """Check every distinct run config against its kind's schema; SpecError on the first bad stage."""
    from ray_jobs.kinds import import_kind_modules

    where = str(spec.path) if spec.path is not None else f"spec {spec.name}"
    try:
        import_kind_modules(spec.kind_modules)
    except ImportError as err:
        raise SpecError(f"{where}: [spec].kind_modules: cannot import {err.name!r}: {err}") from err
    from ray_jobs.kinds import KINDS

    for stage in spec.stages:
        if stage.kind not in KINDS:
            raise SpecError(f"{where}: stage {stage.name!r}: unknown kind {stage.kind!r}; registered: {sorted(KINDS)}"
                            f" (add the module that registers it to [spec].kind_modules)")
    schemas = {kind: kind_schema(kind) for kind in {stage.kind for stage in spec.stages}}
    seen: set[tuple[str, str]] = set()
    try:
        runs = expand(spec) if max_runs is None else expand(spec, max_runs=max_runs)
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from err
    for run in runs:
        schema = schemas[run.kind]
        if schema is None:
            continue
        config = strip_tags(run.config)
        key = (run.stage, canonical_json(config))
        if key in seen:
            continue
        seen.add(key)
        problems = schema.problems(config)
        if problems:
            raise SpecError(f"{where}: stage {run.stage!r} (kind {run.kind!r}"
                            + (f", run {run.label()}" if run.axes else "") + "): " + "; ".join(problems))
