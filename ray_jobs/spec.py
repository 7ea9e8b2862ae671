"""Experiment spec files (TOML) and their expansion into a grid of runs.

Syntax (all keys other than those listed here are errors, so typos fail loudly)::

    [spec]                          # optional header
    name = "laptop"                 # default: the file's stem
    description = "..."             # free text, copied into the report
    kind_modules = ["pkg.module"]   # extra modules that register stage kinds (imported on workers)

    [stages.NAME]                   # stages in dependency order: `needs` may name earlier stages only
    kind = "train"                  # a key of ray_jobs.kinds.KINDS (train, eval, construct, theory, ...)
    needs = { model = "train_std" } # input name -> earlier stage (optional), or to a table
                                    # { stage = "train_std", on = ["dataset"] } naming the match axes
    resources = { num_cpus = 1, num_gpus = 0 }   # per run (optional; these are the defaults)
    max_retries = 2                 # Ray retries after a worker process dies (default 2, at most 10)
    retry_failed = 0                # re-attempts after the kind raised (default 0, at most 5)
    report = { rows = ["il-table1:D_{construct}"] } # optional: table rows this stage's runs fill
                                    # in figures/report.py; {axis} is filled from the run's axes
    [stages.NAME.config]            # the base config handed to the kind
    epochs = 1
    [stages.NAME.grid]              # axes, expanded as a cartesian product (in the order written)
    seed = [0, 1]
    setting = [{ dataset = "mnist", eps = 2.0 }, { dataset = "cifar10-subset", eps = 1.5 }]

Expansion rules:

* Each grid axis is a non-empty list. A scalar value sets ``config[axis] = value``; a table value
  (a "zipped" axis) merges all of its keys into the config at once, so settings that belong
  together (a dataset and its ε) vary together instead of being crossed.
* A run's **axes** are the keys set by grid values (a table value contributes each of its keys;
  the tables of one axis may set different keys). Two axes setting the same key is an error.
* ``needs = { input = "T" }``: a run of this stage takes as input the run of stage T whose axes agree
  with this run's axes on every axis name the two stages share. ``{ stage = "T", on = [...] }``
  restricts the comparison to the listed axes (needed when a key such as ``eps`` means different
  things in the two stages). Exactly one run of T must match; zero or several matches are a
  validation error naming both stages.
* Keys starting with ``_`` are **tags**: they are hashed and matched like any key (a tag ``_k``
  matches an axis ``k`` or ``_k`` of the needed stage) but are removed before the kind is called,
  so a train stage can carry ``_construct = "rand"`` to select its input without passing an
  unknown recipe key to ``deep.train``.
* **Seeds.** ``seed`` may be a grid axis (``[stages.train.grid] seed = [0, 1, 2]``, or a key of a
  zipped table). A stage without a seed axis whose needed runs match on every compared axis but differ
  in ``seed`` is expanded once per seed: each of its runs takes the input of that seed and *inherits*
  the axis (``run.axes["seed"]``; the config, hence the hash, is unchanged, so the seed-0 runs keep the
  hashes they had when the seed was a plain config key). A stage with its own seed axis takes the input
  of its own seed, whether or not ``on`` lists ``seed`` (``on`` may list it either way). Inputs with
  different seed sets are an error.
  Both rules apply only where the match would otherwise be ambiguous (an error), so a spec that expanded
  before expands to the same runs.
* A run's identity is ``sha256(kind, resolved config, {input: input run's hash})``, so the same
  computation reached from two specs or stages is one run in the store.

Key names: a config may use the command line's names (``n``, ``attacks``, construct's ``alpha``) or the
recorded keys (``first_n``, ``suite``, ``step``); ray_jobs/keynames.py renames them before hashing.

Shrinking a spec without editing it (ray_jobs/overrides.py has the rules)::

    [scale.smoke]                   # a named scale: `python -m ray_jobs run SPEC --scale smoke`
    "*".epochs = 1                  # STAGE.KEY = VALUE; "*" = every stage that has the key
    "*".resources = { num_cpus = 1, num_gpus = 0 }   # `resources` sets the stage's resources
    train.first_n = 300             # a key the stage lacks is added to its config (and schema-checked)
    train."dataset[cifar10]" = "cifar10-subset"      # KEY[OLD]: replace only the values equal to OLD

A scale is a table of the same ``STAGE.KEY = VALUE`` overrides that ``--set STAGE.KEY=VALUE`` gives on
the command line (``--set`` is applied after the scale). A key is replaced in the stage's config and in
every table row of its grid that sets it, so grid rows, stage graph, kinds and report tags stay the same;
a key that is a scalar grid axis cannot be overridden. The overrides are part of each run's config and
so of its hash: a miniature and the full run never share a run folder. A spec without ``--scale`` or
``--set`` ignores its ``[scale.*]`` tables (the hashes of its runs are those of the file as written).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray_jobs.keynames import KEY_ALIASES, KeyNameError, canonical_keys
from ray_jobs.matching import SEED_AXIS, SpecError, seeded_inputs
from ray_jobs.overrides import Override, OverrideError, apply_overrides, scale_overrides

SPEC_KEYS = {"name", "description", "kind_modules"}
STAGE_KEYS = {"kind", "needs", "resources", "max_retries", "retry_failed", "report", "config", "grid"}
RESOURCE_KEYS = {"num_cpus", "num_gpus"}
MAX_WORKER_RETRIES = 10
MAX_FAILED_RETRIES = 5
HASH_CHARS = 16
# Runs per spec before expansion is refused (``--max-runs`` overrides): each run is a folder in the
# store and a task in the scheduler; the largest shipped spec has well under 100.
DEFAULT_MAX_RUNS = 10_000


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    config: dict[str, Any]
    grid: dict[str, list[Any]]
    needs: dict[str, str]
    match_on: dict[str, tuple[str, ...] | None]  # input -> axes compared (None: all shared axes)
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 2
    retry_failed: int = 0
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    path: Path | None
    stages: tuple[Stage, ...]
    kind_modules: tuple[str, ...] = ()
    scales: tuple[str, ...] = ()      # the names of its [scale.NAME] tables
    scale: str | None = None          # the scale applied, if any
    overrides: tuple[str, ...] = ()   # the --set overrides applied (their text)


@dataclass(frozen=True)
class Run:
    """One expanded grid point: everything a worker needs to execute it."""

    stage: str
    kind: str
    axes: dict[str, Any]
    config: dict[str, Any]
    inputs: dict[str, str]  # input name -> hash of the producing run
    hash: str
    num_cpus: float
    num_gpus: float
    max_retries: int
    retry_failed: int
    report: dict[str, Any]

    def label(self) -> str:
        axes = ",".join(f"{k}={v}" for k, v in self.axes.items())
        return f"{self.stage}[{axes}]" if axes else self.stage

    def short_label(self, width: int = 48) -> str:
        """stage[v1,v2,...] with the axis values only, cut to ``width`` characters (progress lines)."""
        values = ",".join(str(v) for v in self.axes.values())
        text = f"{self.stage}[{values}]" if values else self.stage
        return text if len(text) <= width else text[: width - 1] + "…"

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config, "inputs": self.inputs}


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the text that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_hash(kind: str, config: dict[str, Any], inputs: dict[str, str]) -> str:
    text = canonical_json({"kind": kind, "config": config, "inputs": inputs})
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def load_spec(path: str | Path, *, scale: str | None = None, overrides: tuple[Override, ...] = ()) -> Spec:
    """Read and validate a TOML spec file; ``scale`` applies its ``[scale.NAME]`` table, then ``overrides``
    (``--set``) are applied (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: not a UTF-8 text file ({err.reason})") from err
    try:
        return parse_spec(data, name=path.stem, path=path, scale=scale, overrides=overrides)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from err


def _scaled(data: dict[str, Any], name: str, scale: str | None,
            overrides: tuple[Override, ...]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(the spec dict with the scale and overrides applied, the names of its scales)."""
    scales = data.get("scale", {})
    if not isinstance(scales, dict):
        raise SpecError(f"spec {name}: [scale] must hold tables [scale.NAME]")
    try:
        parsed = {key: scale_overrides(key, table) for key, table in scales.items()}
        if scale is not None and scale not in parsed:
            raise SpecError(f"spec {name}: no [scale.{scale}] table; scales: {sorted(parsed) or 'none'}")
        plain = {k: v for k, v in data.items() if k != "scale"}
        for key, table in parsed.items():  # every scale must apply, so a typo in one fails on the full spec too
            if key != scale:
                apply_overrides(plain, table)
        chosen = (parsed[scale] if scale is not None else []) + list(overrides)
        return apply_overrides(plain, chosen), tuple(parsed)
    except OverrideError as err:
        raise SpecError(f"spec {name}: {err}") from err


def parse_spec(data: dict[str, Any], *, name: str = "spec", path: Path | None = None, scale: str | None = None,
               overrides: tuple[Override, ...] = ()) -> Spec:
    """Validate a spec given as a dict (the parsed TOML), after applying ``scale`` and ``overrides``."""
    unknown = set(data) - {"spec", "stages", "scale"}
    if unknown:
        raise SpecError(f"spec {name}: unknown top-level key(s) {sorted(unknown)}; expected [spec], [stages.*] "
                        f"and [scale.*]")
    data, scales = _scaled(data, name, scale, overrides)
    header = data.get("spec", {})
    if not isinstance(header, dict):
        raise SpecError(f"spec {name}: [spec] must be a table")
    bad = set(header) - SPEC_KEYS
    if bad:
        raise SpecError(f"spec {name}: unknown key(s) in [spec]: {sorted(bad)}")
    modules = header.get("kind_modules", [])
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise SpecError(f"spec {name}: [spec].kind_modules must be a list of module names")
    stages_raw = data.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise SpecError(f"spec {name}: no stages; add at least one [stages.NAME] table")
    stages: list[Stage] = []
    for stage_name, raw in stages_raw.items():
        stages.append(_parse_stage(stage_name, raw, [s.name for s in stages]))
    description = str(header.get("description", ""))
    if scale is not None or overrides:
        # not "miniature": a scale may also enlarge a spec (tsipras --scale smallcnn) or swap its attacks
        changes = ([f"scale {scale}"] if scale else []) + [f"--set {o.text()}" for o in overrides]
        description += f" [changed by {', '.join(changes)}]"
    return Spec(
        name=str(header.get("name", name)),
        description=description,
        path=path,
        stages=tuple(stages),
        kind_modules=tuple(modules),
        scales=scales,
        scale=scale,
        overrides=tuple(o.text() for o in overrides),
    )


def _parse_resources(where: str, resources: Any) -> tuple[float, float]:
    """(num_cpus, num_gpus) of a stage's ``resources`` table; defaults 1 CPU, 0 GPUs."""
    if not isinstance(resources, dict) or set(resources) - RESOURCE_KEYS:
        raise SpecError(f"{where}: 'resources' must be a table with keys {sorted(RESOURCE_KEYS)}")
    amounts = {key: resources.get(key, default) for key, default in (("num_cpus", 1), ("num_gpus", 0))}
    for key, value in amounts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise SpecError(f"{where}: resources.{key} must be a number >= 0, got {value!r}")
    return float(amounts["num_cpus"]), float(amounts["num_gpus"])


def _parse_stage(name: str, raw: Any, earlier: list[str]) -> Stage:
    where = f"stage {name!r}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table")
    bad = set(raw) - STAGE_KEYS
    if bad:
        raise SpecError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(STAGE_KEYS)}")
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        raise SpecError(f"{where}: missing 'kind'")
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise SpecError(f"{where}: 'config' must be a table")
    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise SpecError(f"{where}: 'grid' must be a table of lists")
    try:
        config, grid = canonical_keys(kind, config, grid, where)
    except KeyNameError as err:
        raise SpecError(str(err)) from None
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: grid axis {axis!r} must be a non-empty list")
        kinds = {isinstance(v, dict) for v in values}
        if len(kinds) > 1:
            raise SpecError(f"{where}: grid axis {axis!r} mixes tables and scalars")
    needs = raw.get("needs", {})
    if not isinstance(needs, dict):
        raise SpecError(f"{where}: 'needs' must be a table {{input = \"stage\"}}")
    match_on: dict[str, tuple[str, ...] | None] = {}
    for inp, target in list(needs.items()):
        on = None
        if isinstance(target, dict):
            if set(target) - {"stage", "on"} or not isinstance(target.get("on", []), list):
                raise SpecError(f"{where}: needs.{inp} must be \"STAGE\" or {{ stage = \"STAGE\", on = [axes] }}")
            on = tuple(KEY_ALIASES.get(kind, {}).get(str(a), str(a)) for a in target.get("on", []))
            target = target.get("stage")
        if not isinstance(target, str) or target not in earlier:
            raise SpecError(
                f"{where}: needs.{inp} = {target!r} is not an earlier stage (earlier: {earlier})"
            )
        needs[inp] = target
        match_on[inp] = on
    num_cpus, num_gpus = _parse_resources(where, raw.get("resources", {}))
    max_retries = raw.get("max_retries", 2)
    retry_failed = raw.get("retry_failed", 0)
    if not isinstance(max_retries, int) or not 0 <= max_retries <= MAX_WORKER_RETRIES:
        raise SpecError(f"{where}: max_retries must be an int in [0, {MAX_WORKER_RETRIES}], got {max_retries!r}")
    if not isinstance(retry_failed, int) or not 0 <= retry_failed <= MAX_FAILED_RETRIES:
        raise SpecError(f"{where}: retry_failed must be an int in [0, {MAX_FAILED_RETRIES}], got {retry_failed!r}")
    report = raw.get("report", {})
    if not isinstance(report, dict):
        raise SpecError(f"{where}: 'report' must be a table")
    return Stage(name, kind, config, grid, needs, match_on, num_cpus, num_gpus, max_retries, retry_failed, report)


def _grid_points(stage: Stage) -> list[dict[str, Any]]:
    """The cartesian product of the axes, each point flattened to {key: value}."""
    axes = list(stage.grid.items())
    points = []
    for combo in itertools.product(*(values for _, values in axes)):
        point: dict[str, Any] = {}
        for (axis, _), value in zip(axes, combo):
            items = value.items() if isinstance(value, dict) else [(axis, value)]
            for key, v in items:
                if key in point:
                    raise SpecError(f"stage {stage.name!r}: grid key {key!r} is set by two axes")
                point[key] = v
        points.append(point)
    return points


def grid_size(stage: Stage) -> int:
    """The number of grid points of a stage: the product of its axis lengths (nothing expanded)."""
    return math.prod(len(values) for values in stage.grid.values())


def check_grid_size(spec: Spec, max_runs: int = DEFAULT_MAX_RUNS) -> int:
    """The spec's total number of runs; SpecError above ``max_runs``, before anything is expanded."""
    sizes = {stage.name: grid_size(stage) for stage in spec.stages}
    total = sum(sizes.values())
    if total > max_runs:
        largest = max(sizes, key=sizes.__getitem__)
        raise SpecError(f"spec {spec.name}: the grid has {total:,} runs (stage {largest!r}: {sizes[largest]:,}), "
                        f"above the limit of {max_runs:,}; shrink the grid or raise the limit with --max-runs")
    return total


def expand(spec: Spec, *, max_runs: int = DEFAULT_MAX_RUNS) -> list[Run]:
    """All runs of the spec in dependency order (a run's inputs come before it); SpecError when the
    grid has more than ``max_runs`` runs (checked first, so a huge grid never fills memory)."""
    check_grid_size(spec, max_runs)
    by_stage: dict[str, list[Run]] = {}
    ordered: list[Run] = []
    for stage in spec.stages:
        runs = []
        for point in _grid_points(stage):
            config = {**stage.config, **point}
            for axes, inputs in seeded_inputs(stage, point, by_stage):
                try:
                    h = run_hash(stage.kind, config, inputs)
                except (TypeError, ValueError) as err:
                    raise SpecError(f"stage {stage.name!r}: config is not JSON-serialisable: {err}") from err
                runs.append(
                    Run(stage.name, stage.kind, axes, config, inputs, h, stage.num_cpus, stage.num_gpus,
                        stage.max_retries, stage.retry_failed, stage.report)
                )
        by_stage[stage.name] = runs
        ordered.extend(runs)
    return ordered


def strip_tags(config: dict[str, Any]) -> dict[str, Any]:
    """The config a kind receives: tags (keys starting with '_') removed."""
    return {k: v for k, v in config.items() if not k.startswith("_")}
