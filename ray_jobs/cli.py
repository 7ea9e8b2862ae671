"""``python -m ray_jobs run SPEC``, ``status SPEC`` and ``results SPEC``.

``run`` executes every run of the spec that is not done yet (embedded local Ray unless ``--address``)
and exits 0 when all runs are done, 1 when some failed or are blocked. ``--dry-run`` and ``status``
print the expanded grid with each run's hash and state without starting Ray. ``results`` writes one
row per run (stage, grid axes, state, metrics) as CSV or JSON (ray_jobs/export.py).

Before anything runs, the spec is checked: its structure (ray_jobs/spec.py), its size (at most
``--max-runs`` runs, counted before expanding) and every run's config against its kind's schema
(ray_jobs/schema.py). A bad spec or flag is one line on stderr and exit status 2.

``--scale NAME`` applies the spec's ``[scale.NAME]`` table and ``--set STAGE.KEY=VALUE`` (repeatable)
overrides one key (ray_jobs/overrides.py), both before the checks, so a misspelt key fails the same way;
``--scale smoke`` runs a paper spec in miniature on a CPU (docs/ray.md). ``--seeds 0 1 2`` runs the spec once
per seed without editing it (ray_jobs/seeds.py has the rules; the seed-0 runs keep their hashes).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from deep.io import write_bytes
from ray_jobs.spec import DEFAULT_MAX_RUNS, Spec, SpecError, load_spec
from ray_jobs.objstore import ObjectStore, StoreUnavailableError, is_uri
from ray_jobs.objstore import open_store as open_any_store
from ray_jobs.store import Store

SPEC_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_RESOURCE_TIMEOUT_S = 3600.0


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


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="spec file or name under ray_jobs/specs/")
    parser.add_argument("--store", default="store", help="result store: a folder, or a URI "
                        "(s3://bucket/prefix, gs://..., file://...; default: store/)")
    parser.add_argument("--max-runs", type=positive_int, default=DEFAULT_MAX_RUNS,
                        help=f"refuse specs with more runs than this (default: {DEFAULT_MAX_RUNS:,})")
    parser.add_argument("--scale", default=None, help="apply the spec's [scale.NAME] overrides (e.g. smoke)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override a config key of a stage ('*' = every stage that has it); VALUE is TOML; "
                             "repeatable; part of the run hashes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[], metavar="SEED",
                        help="run every stage that has a seed once per SEED (distinct integers >= 0; "
                             "ray_jobs/seeds.py); seed 0 keeps the hashes of the plain spec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a spec's grid (skips done runs, resumes interrupted ones)")
    _spec_args(run)
    run.add_argument("--address", default=None, help="Ray cluster address ('auto' inside ray job submit)")
    run.add_argument("--dry-run", action="store_true", help="check the spec, print the grid and its states; "
                                                             "start nothing")
    run.add_argument("--num-cpus", type=positive_int, default=None, help="CPUs of the embedded Ray (default: all)")
    run.add_argument("--data-root", default=None, help="dataset root (default: $ADVFEAT_DATA, ...)")
    run.add_argument("--no-progress", action="store_true", help="no progress line")
    run.add_argument("--resource-timeout", type=positive_seconds, default=DEFAULT_RESOURCE_TIMEOUT_S,
                     help="on a cluster: seconds a run waits for a node with the CPUs/GPUs it asks for before it "
                          f"fails (default: {DEFAULT_RESOURCE_TIMEOUT_S:g})")
    run.add_argument("--allow-cpu", action="store_true",
                     help="run GPU stages on the CPU when the cluster has no GPU (default: such runs fail)")
    status = sub.add_parser("status", help="print the grid and the state of each run")
    _spec_args(status)
    results = sub.add_parser("results", help="one row per run: stage, grid axes, state, metrics")
    _spec_args(results)
    fmt = results.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", action="store_true", help="CSV, nested metrics as dotted columns")
    fmt.add_argument("--json", action="store_true", help="a JSON list of run records")
    results.add_argument("--out", default=None, help="write to this file instead of stdout")
    return parser


def checked_spec(value: str, max_runs: int, scale: str | None = None, sets: tuple[str, ...] = (),
                 seeds: tuple[int, ...] = ()) -> Spec:
    """Load (with ``scale``, the ``--set`` overrides and ``--seeds`` applied), size-check and validate a spec
    (SpecError/ValueError/FileNotFoundError on a bad one)."""
    from ray_jobs.overrides import OverrideError, parse_set
    from ray_jobs.schema import validate_spec
    from ray_jobs.seeds import check_seeds, with_seeds

    try:
        overrides = tuple(parse_set(text) for text in sets)
    except OverrideError as err:
        raise SpecError(str(err)) from err
    if seeds:
        check_seeds(seeds)  # before the spec is read: a bad flag is named first
    spec = with_seeds(load_spec(resolve_spec_path(value), scale=scale, overrides=overrides), seeds)
    validate_spec(spec, max_runs=max_runs)
    return spec


def open_store(args: argparse.Namespace) -> Store | ObjectStore:
    """``status``/``results`` read an existing store; ``run`` creates it (``--dry-run`` creates nothing).
    ``--store`` is a path or a URI (``s3://bucket/prefix``; ray_jobs/objstore.py); an object store that
    cannot be reached fails here, before anything runs."""
    if args.command in ("status", "results"):
        return open_any_store(args.store, "existing")
    return open_any_store(args.store, "plain" if args.dry_run else "create")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = checked_spec(args.spec, args.max_runs, args.scale, tuple(args.sets), tuple(args.seeds))
        store = open_store(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, StoreUnavailableError) as err:  # SpecError too
        print(f"python -m ray_jobs {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.command == "results":
        return write_results(spec, store, args)
    if args.command == "status" or args.dry_run:
        from ray_jobs.runner import describe

        print(describe(spec, store))
        return 0
    return run(spec, store, args)


def write_results(spec: Spec, store: Store, args: argparse.Namespace) -> int:
    from ray_jobs.export import result_rows, to_csv, to_json

    records = result_rows(spec, store)
    text = to_csv(records) if args.csv else to_json(records)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_bytes(args.out, text.encode("utf-8"))  # atomic: a failed export leaves no half file
        print(f"{len(records)} runs written to {args.out}", file=sys.stderr)
    return 0


def run(spec: Spec, store: Store, args: argparse.Namespace) -> int:
    from ray_jobs.runner import describe, run_spec

    data_root = args.data_root
    if data_root is None:
        from deep.dataroot import resolve_data_root

        data_root = str(resolve_data_root(None))
    summary = run_spec(spec, store, address=args.address, num_cpus=args.num_cpus, data_root=data_root,
                       progress=not args.no_progress, resource_timeout_s=args.resource_timeout,
                       allow_cpu=args.allow_cpu)
    print(describe(spec, store))
    print(f"executed {len(summary.executed)}, skipped {len(summary.skipped)} (already done); "
          f"done {summary.count('done')}, failed {summary.count('failed')}, blocked {summary.count('blocked')}")
    cpu = [store.status(h).get("cpu_seconds") for h in summary.executed]
    cpu_total = sum(c for c in cpu if isinstance(c, (int, float)))
    if cpu_total:
        print(f"CPU time of the executed runs: {cpu_total:.0f} s ({cpu_total / 60:.1f} CPU-minutes; "
              f"{sum(1 for c in cpu if isinstance(c, (int, float)))} runs recorded it)")
    return 0 if summary.ok else 1


def interrupted_message(argv: list[str]) -> str:
    """What Ctrl-C leaves behind and the command that resumes (one line, after "interrupted (Ctrl-C); ")."""
    try:
        args = build_parser().parse_args(argv)
    except (SystemExit, Exception):  # noqa: BLE001 - a hint must never raise
        return "rerun the command"
    if args.command != "run" or args.dry_run:
        return "nothing was changed"
    where = args.store if is_uri(args.store) else Path(args.store).expanduser().resolve()
    return (f"finished runs are kept in {where}; rerun "
            f"`python -m ray_jobs {shlex.join(argv)}` to run the rest (interrupted runs resume)")


if __name__ == "__main__":
    sys.exit(main())
