"""Overrides of a spec's stages without editing the file: ``--set STAGE.KEY=VALUE`` and ``--scale NAME``.

The format (ray_jobs/spec.py's module docstring shows it in a spec): an override names a stage (or ``*``
for every stage that has the key), a key and a value. ``VALUE`` on the command line is read as a TOML
value (``1``, ``0.5``, ``[1, 2]``, ``"text"``, ``{ a = 1 }``); text that is not TOML is taken as a string,
so ``--set '*.dataset=cifar10-subset'`` needs no quotes. A key written ``KEY[OLD]`` replaces only the
values equal to ``OLD`` (read the same way): ``train.dataset[cifar10]=cifar10-subset`` leaves an MNIST row
of the same grid alone. Where a key is set:

* in the stage's ``config`` and in every table value of a grid axis that sets it (a zipped axis keeps
  its rows, so the stage graph and the matching between stages stay the same);
* ``resources`` is the stage's resources table (merged), not a config key;
* a key that is itself a scalar grid axis is refused (it would change the grid);
* a key the named stage does not have yet is added to its config; the kind's schema then rejects a
  misspelt one (ray_jobs/schema.py), so ``--set train.learning_rate=0.1`` fails before anything runs;
* ``*.KEY`` touches only the stages that have KEY; none having it is an error.

The overrides become part of each run's config and so of its hash: a miniature never mixes with the
full run in one store.
"""
from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from typing import Any

ALL_STAGES = "*"
RESOURCES = "resources"
_ANY = object()  # no KEY[OLD] selector: replace every value
_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_\-]*)(\[(?P<old>.*)\])?$")


class OverrideError(ValueError):
    """A malformed override, or one that names no stage or key; the message names it."""


@dataclass(frozen=True)
class Override:
    stage: str       # a stage name or "*"
    key: str
    value: Any
    when: Any = _ANY  # KEY[OLD]: only values equal to OLD are replaced

    def text(self) -> str:
        selector = "" if self.when is _ANY else f"[{self.when}]"
        return f"{self.stage}.{self.key}{selector}={self.value!r}"


def parse_value(text: str) -> Any:
    """A TOML value, else the text itself (``cifar10-subset`` needs no quotes)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def make_override(stage: str, key_text: str, value: Any) -> Override:
    """An Override from ``KEY`` or ``KEY[OLD]`` (OLD read as a TOML value)."""
    m = _KEY.match(key_text)
    if not stage or m is None:
        raise OverrideError(f"override {stage}.{key_text}: expected STAGE.KEY or STAGE.KEY[OLD] with STAGE a stage "
                            f"name or '*' and KEY a config key")
    old = m.group("old")
    return Override(stage, m.group("key"), value, _ANY if old is None else parse_value(old))


def parse_set(text: str) -> Override:
    """``STAGE.KEY=VALUE`` (the ``--set`` flag) as an Override; OverrideError when malformed."""
    lhs, eq, rhs = text.partition("=")
    stage, dot, key = lhs.strip().partition(".")
    if not eq or not dot:
        raise OverrideError(f"--set {text!r}: expected STAGE.KEY=VALUE (STAGE may be '*'), e.g. '*.epochs=1'")
    return make_override(stage, key.strip(), parse_value(rhs.strip()))


def scale_overrides(name: str, table: Any) -> list[Override]:
    """The overrides of a ``[scale.NAME]`` table: ``{stage: {key: value}}``."""
    if not isinstance(table, dict):
        raise OverrideError(f"[scale.{name}] must be a table of stage tables (STAGE.KEY = VALUE)")
    out = []
    for stage, entries in table.items():
        if not isinstance(entries, dict) or not entries:
            raise OverrideError(f"[scale.{name}].{stage} must be a non-empty table of KEY = VALUE")
        out += [make_override(stage, key, value) for key, value in entries.items()]
    return out


def _matches(override: Override, current: Any) -> bool:
    return override.when is _ANY or current == override.when


def _apply_to_stage(name: str, raw: dict[str, Any], o: Override) -> bool:
    """Set o.key in one stage's raw table; whether the stage had (or, when named, got) the key."""
    if o.key == RESOURCES:
        if not isinstance(o.value, dict):
            raise OverrideError(f"override {o.text()}: resources must be a table such as {{ num_cpus = 1, num_gpus = 0 }}")
        raw[RESOURCES] = {**raw.get(RESOURCES, {}), **o.value}
        return True
    config, grid = raw.setdefault("config", {}), raw.get("grid", {})
    if not isinstance(config, dict) or not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        return False  # a malformed stage: parse_spec names the problem
    if o.key in grid and not any(isinstance(v, dict) for v in grid[o.key]):
        raise OverrideError(f"override {o.text()}: {o.key!r} is a grid axis of stage {name!r}; an override may not "
                            f"change the grid (set the key inside a zipped axis's tables instead)")
    hit = False
    if o.key in config and _matches(o, config[o.key]):
        config[o.key], hit = copy.deepcopy(o.value), True
    for values in grid.values():
        for row in values:
            if isinstance(row, dict) and o.key in row and _matches(o, row[o.key]):
                row[o.key], hit = copy.deepcopy(o.value), True
    has = hit or o.key in config or any(isinstance(r, dict) and o.key in r for v in grid.values() for r in v)
    if not has and o.stage != ALL_STAGES and o.when is _ANY:
        config[o.key], hit = copy.deepcopy(o.value), True
    return hit


def apply_overrides(data: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    """A copy of a parsed spec (the TOML dict) with the overrides applied in order."""
    data = copy.deepcopy(data)
    stages = data.get("stages")
    if not isinstance(stages, dict):
        return data  # parse_spec reports the missing stages
    for o in overrides:
        if o.stage != ALL_STAGES and o.stage not in stages:
            raise OverrideError(f"override {o.text()}: no stage {o.stage!r}; stages: {sorted(stages)}")
        names = list(stages) if o.stage == ALL_STAGES else [o.stage]
        hits = [_apply_to_stage(n, stages[n], o) for n in names if isinstance(stages[n], dict)]
        if not any(hits):
            what = "no stage has" if o.stage == ALL_STAGES else f"stage {o.stage!r} has no"
            value = "" if o.when is _ANY else f" equal to {o.when!r}"
            raise OverrideError(f"override {o.text()}: {what} key {o.key!r}{value}")
    return data
