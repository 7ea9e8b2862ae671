"""How a stage's run finds the runs it needs (``needs``), seeds included: the rules are in ray_jobs/spec.py's
module docstring ("Expansion rules", "Seeds"); expand() there calls :func:`seeded_inputs` once per grid point."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray_jobs.spec import Run, Stage

SEED_AXIS = "seed"  # the axis a run inherits from its inputs (see "Seeds" in spec.py's docstring)


class SpecError(ValueError):
    """A spec file that cannot be expanded; the message names the stage and key."""


def _untag(key: str) -> str:
    return key[1:] if key.startswith("_") else key


_NO_SEED = object()  # the seed of a run without a seed axis


def _seed_of(axes: dict[str, Any]) -> Any:
    return next((v for k, v in axes.items() if _untag(k) == SEED_AXIS), _NO_SEED)


def seeded_inputs(stage: Stage, point: dict[str, Any],
                   by_stage: dict[str, list[Run]]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(axes, {input: hash}) of each run of ``point``: one run, or one per seed when the point has no seed
    axis and a needed stage's matching runs differ in their seed (the run then inherits that axis)."""
    found = {inp: _candidates(stage, point, by_stage[target], target, stage.match_on[inp])
             for inp, target in stage.needs.items()}
    seeded = {inp: runs for inp, runs in found.items() if len(runs) > 1 and _seed_of(point) is _NO_SEED
              and all(_seed_of(r.axes) is not _NO_SEED for r in runs)}
    seed_sets = {inp: sorted({_seed_of(r.axes) for r in runs}) for inp, runs in seeded.items()}
    if len({tuple(v) for v in seed_sets.values()}) > 1:
        raise SpecError(f"stage {stage.name!r} at {point}: its inputs have different seed axes "
                        f"({', '.join(f'{stage.needs[i]!r}: {v}' for i, v in seed_sets.items())}); give them the same seeds")
    out = []
    for seed in next(iter(seed_sets.values()), [_NO_SEED]):
        axes = point if seed is _NO_SEED else {**point, SEED_AXIS: seed}
        inputs = {inp: _one(stage, axes, found[inp], stage.needs[inp]).hash for inp in stage.needs}
        out.append((axes, inputs))
    return out


def _candidates(stage: Stage, point: dict[str, Any], candidates: list[Run], target: str,
                on: tuple[str, ...] | None) -> list[Run]:
    """The runs of ``target`` whose axes agree with ``point`` on the compared axes."""
    mine = {_untag(k): v for k, v in point.items()}
    for axis in on or ():
        if _untag(axis) not in mine and _untag(axis) != SEED_AXIS:  # a seed may be inherited instead
            raise SpecError(f"stage {stage.name!r}: needs {target!r} on axis {axis!r}, which is not one of its grid axes")
    compared = None if on is None else {_untag(a) for a in on}
    return [
        r for r in candidates
        if all(mine[_untag(k)] == v for k, v in r.axes.items()
               if _untag(k) in mine and (compared is None or _untag(k) in compared))
    ]


def _one(stage: Stage, axes: dict[str, Any], found: list[Run], target: str) -> Run:
    """The one run of ``found``; several that differ in their seed are narrowed to the seed of ``axes``
    (so a seed axis need not be listed in ``on``)."""
    seed = _seed_of(axes)
    if len(found) > 1 and seed is not _NO_SEED:
        found = [r for r in found if _seed_of(r.axes) == seed]
    if len(found) != 1:
        raise SpecError(
            f"stage {stage.name!r} at {axes}: needs {target!r} matched {len(found)} runs, expected exactly 1 "
            f"(runs match on the grid axes both stages share; give {stage.name!r} the axes of {target!r})"
        )
    return found[0]
