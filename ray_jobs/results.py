"""Checks a run's result (``metrics.json``) must pass before the run counts as done.

Every result, whatever its kind, must be:

* a non-empty JSON object (``{}`` is no result: a kind that has nothing to report returns a marker
  such as ``{"status": "done"}``);
* free of NaN and ±inf anywhere inside it (nested objects and lists included);
* **accuracy-like numbers in [0, 1].** A number is accuracy-like when any key on its path (the key
  itself, or a key of an enclosing object) is accuracy-like. A key is accuracy-like when
  - one of its words, split at anything that is not a letter or digit, is ``acc``, ``accuracy``,
    ``error``, ``errors`` or ``success`` (``eval_clean_acc``, ``clean_error``, ``error_rates``,
    ``transfer_success``);
  - or it is a fraction field of ``deep.evaluate``'s results: ``clean``, ``worst_case``,
    ``attacks``, ``source_clean``, ``target_clean``, ``source_adv``, ``target_adv``.

  Booleans, strings and ``null`` are never range-checked.

A kind with a stricter format registers its own check with :func:`register_result_validator`: a
function that takes the result dict and raises ``ValueError`` naming the bad field. It runs after
the generic checks, in every process that imports the module registering it (workers import the
spec's kind modules; a reader that has not imported them applies the generic checks only).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

ResultValidator = Callable[[dict[str, Any]], None]

FRACTION_WORDS = frozenset({"acc", "accuracy", "error", "errors", "success"})
FRACTION_KEYS = frozenset({"clean", "worst_case", "attacks", "source_clean", "target_clean", "source_adv",
                           "target_adv"})
_NOT_WORD = re.compile(r"[^a-z0-9]+")

_VALIDATORS: dict[str, list[ResultValidator]] = {}


class InvalidResultError(ValueError):
    """A result that fails the checks above; the message names where it came from and the bad field."""


def register_result_validator(kind: str, fn: ResultValidator) -> ResultValidator:
    """Add ``fn`` to the checks of results of ``kind`` (registering the same function twice adds it once,
    so a re-imported kind module is harmless). Returns ``fn``, so it also works as a decorator's body."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"register_result_validator: kind must be a non-empty string, got {kind!r}")
    if not callable(fn):
        raise ValueError(f"register_result_validator: fn must be callable, got {fn!r}")
    fns = _VALIDATORS.setdefault(kind, [])
    if fn not in fns:
        fns.append(fn)
    return fn


def is_fraction_key(key: str) -> bool:
    """Whether values under ``key`` must lie in [0, 1] (the rule in the module docstring)."""
    return key in FRACTION_KEYS or not FRACTION_WORDS.isdisjoint(_NOT_WORD.split(key.lower()))


def _problem(value: Any, path: str, fraction: bool) -> str | None:
    """The first problem inside ``value`` (found at ``path``), or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _problem(item, f"{path}.{key}" if path else str(key), fraction or is_fraction_key(str(key)))
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _problem(item, f"{path}[{i}]", fraction)
            if found:
                return found
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"{path} = {value!r} is not a finite number"
    if fraction and not 0.0 <= value <= 1.0:
        return f"{path} = {value!r} is an accuracy-like value outside [0, 1]"
    return None


def check_result(result: Any, kind: str | None, where: str) -> None:
    """Raise :class:`InvalidResultError` (its message starts with ``where``) unless ``result`` passes the
    generic checks and those registered for ``kind``."""
    if not isinstance(result, dict):
        raise InvalidResultError(f"{where}: expected a JSON object, got {type(result).__name__}")
    if not result:
        raise InvalidResultError(f"{where}: empty result {{}}")
    problem = _problem(result, "", False)
    if problem:
        raise InvalidResultError(f"{where}: {problem}")
    for fn in _VALIDATORS.get(kind or "", []):
        try:
            fn(result)
        except ValueError as err:
            raise InvalidResultError(f"{where}: kind {kind!r}: {err}") from err
