"""Compare the numbers of two result stores run by run: the check after a refactor.

    python benchmarks/compare_stores.py STORE_BEFORE STORE_AFTER [--spec laptop] [--rtol 0]

Runs are matched by their label (spec, stage, grid axes), not by hash, so a change that renames
hashes (a new config key, say) still compares the same experiment. Every numeric leaf of each run's
metrics is compared; timing fields (seconds, cpu/wall time) are skipped because they are not results.
Prints one line per difference and a summary; exits 1 when a number present on both sides differs
beyond --rtol or a run is missing on one side. Fields present on one side only (a result schema that
gained or dropped a field) are listed as FIELD lines and do not fail the comparison.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Iterator

from ray_jobs.store import Store

TIMING = ("seconds", "per_second", "cpu_seconds", "wall_seconds", "time", "elapsed", "duration", "started", "finished")


def _label(config: dict[str, Any]) -> tuple:
    label = config["labels"][0]
    return (label["spec"], label["stage"], tuple(sorted((k, repr(v)) for k, v in label["axes"].items())))


def _runs(store: Store, spec: str | None) -> dict[tuple, dict[str, Any]]:
    out = {}
    for run_hash in store.all_hashes():
        config = store.config(run_hash)
        if not config or not config.get("labels"):
            continue
        key = _label(config)
        if spec is None or key[0] == spec:
            out[key] = store.metrics(run_hash) if store.is_done(run_hash) else None
    return out


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not any(t in str(key) for t in TIMING):
                yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _leaves(value, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, float(obj)


def _differs(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    return abs(a - b) > rtol * max(abs(a), abs(b))


def compare(before: Store, after: Store, spec: str | None, rtol: float) -> int:
    runs_a, runs_b = _runs(before, spec), _runs(after, spec)
    problems = compared = fields = 0
    for key in sorted(set(runs_a) | set(runs_b), key=repr):
        name = f"{key[1]}[{', '.join(f'{k}={v}' for k, v in key[2])}]"
        ma, mb = runs_a.get(key), runs_b.get(key)
        if ma is None or mb is None:
            problems += 1
            print(f"MISSING {name}: before {'done' if ma else 'absent'}, after {'done' if mb else 'absent'}")
            continue
        la, lb = dict(_leaves(ma)), dict(_leaves(mb))
        for leaf in sorted(set(la) & set(lb)):
            compared += 1
            if _differs(la[leaf], lb[leaf], rtol):
                problems += 1
                print(f"DIFF {name} {leaf}: {la[leaf]} -> {lb[leaf]}")
        for leaf in sorted(set(la) ^ set(lb)):  # a field added or dropped on purpose is listed, not failed
            fields += 1
            print(f"FIELD {name} {leaf}: only {'before' if leaf in la else 'after'}")
    print(f"{len(runs_a)} runs before, {len(runs_b)} after; {compared} numbers compared; {problems} differences; "
          f"{fields} fields present on one side only")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--spec", default=None, help="compare only this spec's runs")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: exact)")
    args = parser.parse_args(argv)
    return compare(Store(args.before), Store(args.after), args.spec, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
