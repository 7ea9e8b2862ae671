"""Any spec over several seeds without editing it: ``--seeds 0 1 2`` (issue 12 item 5, error bars).

``python -m ray_jobs run|status|results SPEC --seeds 0 1 2`` and ``python -m figures report --seeds 0 1 2``
apply :func:`with_seeds` to the parsed spec, after ``--scale`` and ``--set`` (ray_jobs/overrides.py). Per
stage, by where the stage's ``seed`` is written:

* **a config key** (``seed = 0`` under ``[stages.NAME.config]``: the train and construct stages): the
  stage gets a grid axis ``seed = [0, 1, 2]``, placed after its own axes. The value written in the config
  is replaced; the run whose seed equals it has exactly the config, hence the hash, that it has without
  ``--seeds``. Every shipped spec writes ``seed = 0``, so all its seed-0 runs are the runs of the plain
  spec and a store filled without ``--seeds`` is reused, not recomputed.
* **a scalar grid axis** (``seed = [0, 1, 2, 3]``): the spec already names its seeds; the axis keeps the
  values that are also in ``--seeds`` (intersection, in the axis's order), so ``--seeds 0`` selects one
  seed of a seeded spec. None in common is an error naming the stage.
* **a key inside a zipped axis's tables** (laptop's ``transfer_train_D``: ``{ model = "cifar-cnn",
  seed = 1 }``): there the seed names a distinct model (a second cifar-cnn beside the source), not a
  replicate, so the stage is left as written and its runs serve every seed.
* **nowhere**: the stage is unchanged; where its inputs now differ in seed, it runs once per seed and
  *inherits* the seed (ray_jobs/spec.py, "Seeds": config and hash unchanged, so seed 0 keeps its hash).

Stages that get a seed axis take the input of their own seed (spec.py's rule for a stage with its own
seed axis), so each seed is a whole pipeline: train seed 1 -> construct seed 1 -> train on it seed 1 ->
eval seed 1. The report (figures/aggregate.py) shows the runs that differ only in seed as mean ± sd.

Allowed ``--seeds``: 1 to :data:`MAX_SEEDS` distinct integers >= 0.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ray_jobs.spec import SEED_AXIS, Spec, SpecError, Stage

MAX_SEEDS = 20  # each seed multiplies the grid; more than this is a typo, not an experiment on a CPU


def check_seeds(values: Sequence[Any]) -> tuple[int, ...]:
    """``values`` as a tuple of seeds; ValueError (naming ``--seeds``) unless they are 1..MAX_SEEDS distinct
    integers >= 0."""
    seeds = tuple(values)
    bad = [v for v in seeds if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(f"--seeds: {bad[0]!r} is not a seed; seeds are integers >= 0")
    if not 1 <= len(seeds) <= MAX_SEEDS:
        raise ValueError(f"--seeds: got {len(seeds)} seeds; give 1 to {MAX_SEEDS}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"--seeds: {repeated} given more than once; seeds must be distinct")
    return seeds


def _is_seed(key: str) -> bool:
    return key.removeprefix("_") == SEED_AXIS  # a tag `_seed` is the same axis (spec.py's _untag)


def _seeded_stage(stage: Stage, seeds: tuple[int, ...]) -> Stage:
    """``stage`` with its seeds set by ``seeds`` (the rules of the module docstring)."""
    axes = [axis for axis, values in stage.grid.items() if _is_seed(axis) and not isinstance(values[0], dict)]
    zipped = any(isinstance(row, dict) and any(_is_seed(k) for k in row)
                 for values in stage.grid.values() for row in values)
    if axes:
        kept = [v for v in stage.grid[axes[0]] if v in seeds]
        if not kept:
            raise SpecError(f"stage {stage.name!r}: its seed axis {stage.grid[axes[0]]} has none of --seeds "
                            f"{list(seeds)}; give seeds from that axis")
        return dataclasses.replace(stage, grid={**stage.grid, axes[0]: kept})
    if zipped or SEED_AXIS not in stage.config:
        return stage
    return dataclasses.replace(stage, grid={**stage.grid, SEED_AXIS: list(seeds)})


def with_seeds(spec: Spec, seeds: Sequence[Any]) -> Spec:
    """``spec`` run over ``seeds`` (``--seeds``); no seeds: ``spec`` itself. ValueError/SpecError on bad
    seeds or a seed axis with none of them."""
    if not seeds:
        return spec
    checked = check_seeds(seeds)
    try:
        stages = tuple(_seeded_stage(stage, checked) for stage in spec.stages)
    except SpecError as err:
        raise SpecError(f"spec {spec.name}: {err}") from err
    described = f"{spec.description} [seeds: {', '.join(map(str, checked))}]"
    return dataclasses.replace(spec, stages=stages, description=described)


def seeds_flag(seeds: Sequence[int]) -> str:
    """The ``--seeds`` part of a command line that reproduces a run (empty without seeds)."""
    return f" --seeds {' '.join(map(str, seeds))}" if seeds else ""
