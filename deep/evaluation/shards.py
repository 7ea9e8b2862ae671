"""One evaluation run as disjoint shards: concatenate their :class:`EvalResult` s into the result of the whole.

A long evaluation (``aa-standard`` on all 10,000 MNIST test images, ~6 h on 2 cores) runs as shards of
consecutive images (``deep eval --offset K --n N``, or an eval stage with an ``offset`` axis), so a
stopped run loses at most one shard. Every accuracy of the whole is recomputed from the per-example
correctness the shards carry, never averaged from their accuracies, so it is exact for unequal shards.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .result import EvalResult

#: Fields every shard must share: a concatenation of different evaluations would be meaningless.
SAME = ("eps", "norm", "seed")


def _check_alike(results: Sequence[EvalResult]) -> None:
    first = results[0]
    for i, r in enumerate(results[1:], start=1):
        for name in SAME:
            if getattr(r, name) != getattr(first, name):
                raise ValueError(f"shard {i} has {name} {getattr(r, name)!r}, shard 0 has {getattr(first, name)!r}")
        if set(r.attacks) != set(first.attacks) or r.params != first.params:
            raise ValueError(f"shard {i} ran attacks {sorted(r.attacks)} with other settings than shard 0 "
                             f"({sorted(first.attacks)}); only shards of one suite concatenate")
    for i, r in enumerate(results):
        lacking = sorted({"clean", "worst_case", *r.attacks} - set(r.correct))
        if lacking:
            raise ValueError(f"shard {i} has no per-example correctness for {lacking} (written before the "
                             "schema kept it?); its accuracies cannot be combined exactly")


def _confidence(results: Sequence[EvalResult], name: str) -> float | None:
    """Mean max-softmax over the misclassified examples of all shards: each shard's mean weighted by its
    number of errors, which is the mean over the union."""
    total = weight = 0.0
    for r in results:
        conf = r.mean_confidence_on_errors.get(name)
        errors = int((~r.correct[name]).sum())
        if conf is not None and errors:
            total += conf * errors
            weight += errors
    return total / weight if weight else None


def concatenate(results: Sequence[EvalResult]) -> EvalResult:
    """The result of the shards' examples in the order given (callers sort by offset). ``seconds`` are
    summed; flags are kept once each, prefixed by the shard's index; ``extra`` keeps the keys on which
    every shard agrees (so a shard's ``offset`` is dropped) and records ``shards``."""
    if not results:
        raise ValueError("concatenate needs at least one shard")
    _check_alike(results)
    correct = {name: np.concatenate([r.correct[name] for r in results]) for name in results[0].correct
               if all(name in r.correct for r in results)}
    first = results[0]
    seconds: dict[str, float] = {}
    for r in results:
        for name, s in r.seconds.items():
            seconds[name] = seconds.get(name, 0.0) + s
    flags = list(dict.fromkeys(f"shard {i}: {flag}" for i, r in enumerate(results) for flag in r.flags))
    extra = {k: v for k, v in first.extra.items() if all(r.extra.get(k) == v for r in results)}
    extra["shards"] = len(results)
    return EvalResult(
        clean=float(correct["clean"].mean()), worst_case=float(correct["worst_case"].mean()),
        attacks={name: float(correct[name].mean()) for name in first.attacks},
        n=sum(r.n for r in results), eps=first.eps, norm=first.norm, seed=first.seed,
        mean_confidence_on_errors={name: _confidence(results, name) for name in first.mean_confidence_on_errors},
        params=dict(first.params), seconds=seconds, versions=dict(first.versions), flags=flags,
        correct=correct, extra=extra)
