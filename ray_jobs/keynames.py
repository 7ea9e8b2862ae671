"""Key names in spec configs: the command line's names beside the keys the store records.

A stage's config and grid may name a concept as the command line does (``n``, ``attacks``, ``alpha``)
or by the key a kind records in its run config (``first_n``, ``suite``, ``step``). The spec parser
renames the former to the latter before hashing, so a spec written either way names the same runs and
existing stores resume. :data:`KEY_ALIASES` lists the renamings per kind.
"""
from __future__ import annotations

from typing import Any


class KeyNameError(ValueError):
    """Both spellings of one setting in one table."""


# The command line's name of a concept -> the key a kind's config (and so the run hash) records, per kind.
KEY_ALIASES: dict[str, dict[str, str]] = {
    "eval": {"n": "first_n", "attacks": "suite"},
    "transfer": {"n": "first_n"},
    "construct": {"alpha": "step"},
    "train": {"n": "first_n"},
    "mart-train": {"n": "first_n"},
}


def canonical_table(table: dict[str, Any], aliases: dict[str, str], where: str) -> dict[str, Any]:
    both = [f"{a!r} and {k!r}" for a, k in aliases.items() if a in table and k in table]
    if both:
        raise KeyNameError(f"{where}: {', '.join(both)} name the same setting; keep one")
    return {aliases.get(k, k): v for k, v in table.items()}


def canonical_keys(kind: str, config: dict[str, Any], grid: dict[str, Any], where: str) -> tuple[dict, dict]:
    """config and grid with KEY_ALIASES[kind] renamed to the recorded keys (scalar axes and the keys of
    zipped axes' tables alike)."""
    aliases = KEY_ALIASES.get(kind, {})
    if not aliases:
        return config, grid
    config = canonical_table(config, aliases, f"{where} config")
    grid = canonical_table(grid, aliases, f"{where} grid")
    grid = {axis: [canonical_table(v, aliases, f"{where} grid axis {axis!r}") if isinstance(v, dict) else v
                   for v in values] if isinstance(values, list) else values for axis, values in grid.items()}
    return config, grid
