"""``python -m ray_jobs run SPEC`` and ``python -m ray_jobs status SPEC``.

``run`` executes every run of the spec that is not done yet (embedded local Ray unless ``--address``)
and exits 0 when all runs are done, 1 when some failed or are blocked. ``--dry-run`` and ``status``
print the expanded grid with each run's hash and state without starting Ray.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ray_jobs.runner import describe, run_spec
from ray_jobs.spec import SpecError, expand, load_spec
from ray_jobs.store import Store

SPEC_DIR = Path(__file__).resolve().parent / "specs"


def resolve_spec_path(value: str) -> Path:
    """A path, or the name of a spec under ray_jobs/specs/ (``laptop`` -> specs/laptop.toml)."""
    path = Path(value)
    if path.is_file():
        return path
    named = SPEC_DIR / f"{value}.toml"
    if named.is_file():
        return named
    available = sorted(p.stem for p in SPEC_DIR.glob("*.toml"))
    raise FileNotFoundError(f"spec {value!r} is neither a file nor a spec name; available: {available}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a spec's grid (skips done runs, resumes interrupted ones)")
    run.add_argument("spec", help="spec file or name under ray_jobs/specs/")
    run.add_argument("--address", default=None, help="Ray cluster address ('auto' inside ray job submit)")
    run.add_argument("--store", default="store", help="result store root (default: store/)")
    run.add_argument("--dry-run", action="store_true", help="print the grid and its states; start nothing")
    run.add_argument("--num-cpus", type=int, default=None, help="CPUs of the embedded Ray (default: all)")
    run.add_argument("--data-root", default=None, help="dataset root (default: $ADVFEAT_DATA, ...)")
    run.add_argument("--no-progress", action="store_true", help="no progress line")
    status = sub.add_parser("status", help="print the grid and the state of each run")
    status.add_argument("spec")
    status.add_argument("--store", default="store")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = load_spec(resolve_spec_path(args.spec))
        expand(spec)  # validates the needs matching before anything starts
    except (SpecError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = Store(args.store)
    if args.command == "status" or args.dry_run:
        print(describe(spec, store))
        return 0
    data_root = args.data_root
    if data_root is None:
        from deep.dataroot import resolve_data_root

        data_root = str(resolve_data_root(None))
    summary = run_spec(spec, store, address=args.address, num_cpus=args.num_cpus, data_root=data_root,
                       progress=not args.no_progress)
    print(describe(spec, store))
    print(f"executed {len(summary.executed)}, skipped {len(summary.skipped)} (already done); "
          f"done {summary.count('done')}, failed {summary.count('failed')}, blocked {summary.count('blocked')}")
    cpu = [store.status(h).get("cpu_seconds") for h in summary.executed]
    cpu_total = sum(c for c in cpu if isinstance(c, (int, float)))
    if cpu_total:
        print(f"CPU time of the executed runs: {cpu_total:.0f} s ({cpu_total / 60:.1f} CPU-minutes; "
              f"{sum(1 for c in cpu if isinstance(c, (int, float)))} runs recorded it)")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
