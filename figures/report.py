"""REPORT.md and the experiment figures, read from the ray_jobs result store: the report engine.

The engine knows no paper. Every table and figure is drawn by a *renderer* registered by a plugin
module ``figures/report_<paper>.py`` (all of them are imported; an import error stops the report).
A spec stage names the renderers its runs feed, in one of two spellings of the same thing:

* ``report = { render = ["NAME", ...] }`` – the runs go to renderer NAME;
* ``report = { rows = ["NAME:ROW", ...] }`` – the same, and each run also carries the row key ROW,
  whose ``{axis}`` placeholders are filled from the run's axes (``"il-table1:D_{construct}"``).

A renderer registered with ``per_dataset=True`` is called once per dataset (its files are
``exp-<spec>-<NAME>-<dataset>.png|pdf``); otherwise once per spec with all its runs
(``exp-<spec>-<NAME>.png|pdf``). It receives every :class:`Entry` of its group, done or not, and
returns the Markdown lines of its section; it lists the runs that are not done itself. A spec with
no report tags at all gets the generic table (renderer ``generic``: one row per run).

Which specs: those given, else every shipped spec (``ray_jobs/specs/*.toml``) with at least one run in
the store. A run reached twice (same hash) is reported once. A done run whose ``metrics.json`` does
not validate (:func:`metrics_problem`: wrong value types, accuracies outside [0, 1]) is shown as
MISSING with the reason and the file, never drawn. Accuracies in the metrics are fractions in
[0, 1]; the report shows percent (:func:`pct`).
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from deep.io import CorruptFileError, read_json
from figures.machines import measured_on
from figures.style import styled
from ray_jobs.results import InvalidResultError, check_result
from ray_jobs.spec import Run, Spec, expand, load_spec
from ray_jobs.store import Store

SPEC_DIR = Path(__file__).resolve().parents[1] / "ray_jobs" / "specs"
PLUGIN_GLOB = "report_*.py"
GENERIC = "generic"  # the renderer of a spec without report tags (figures/report_generic.py)


@dataclass
class Entry:
    """One run as a renderer sees it; ``metrics`` is None unless the run is done and its result valid."""

    renderer: str
    row: str           # the row key of a ``rows`` tag (may carry "@model"), else the renderer's name
    dataset: str
    run: Run
    state: str         # the store's state; "invalid: <why> (<file>)" for a done run with a bad result
    metrics: Any              # an eval run's EvalResult, another kind's dict (see RESULT_READERS), or None
    run_dir: Path | None = None  # the run's folder in the store (renderers read its artifacts)


DrawFn = Callable[[list[Entry], Path, str, str], list[str]]


@dataclass(frozen=True)
class Renderer:
    """A registered renderer: ``draw(entries, out_dir, stem, caption) -> Markdown lines``."""

    name: str
    draw: DrawFn
    per_dataset: bool = False

    def __call__(self, entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
        with styled():  # the house style while this renderer draws; never set globally
            return self.draw(entries, out_dir, stem, caption)


RENDERERS: dict[str, Renderer] = {}


def register_renderer(name: str, *, per_dataset: bool = False) -> Callable[[DrawFn], DrawFn]:
    """Register ``fn`` as renderer ``name``; a second, different function under one name is an error."""
    def deco(fn: DrawFn) -> DrawFn:
        old = RENDERERS.get(name)
        if old is not None and (old.draw.__module__, old.draw.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"report renderer {name!r} registered twice: {old.draw.__module__}.{old.draw.__qualname__} "
                             f"and {fn.__module__}.{fn.__qualname__}")
        RENDERERS[name] = Renderer(name, fn, per_dataset)
        return fn

    return deco


def load_plugins() -> None:
    """Import every ``figures/report_*.py`` so that its renderers are registered. An import error propagates:
    a broken plugin stops the report instead of silently dropping its tables."""
    for path in sorted(Path(__file__).resolve().parent.glob(PLUGIN_GLOB)):
        importlib.import_module(f"figures.{path.stem}")


# ------------------------------------------------------------------------------------------- values
#: Result keys that renderers format as percentages: each must be a number in [0, 1] (or null) at the top
#: level or inside ``attacks`` / ``error_rates``. ray_jobs.results range-checks numbers but lets a string
#: through; :func:`metrics_problem` also refuses a wrong type where a renderer expects a number.
FRACTION_KEYS = frozenset({
    "clean", "worst_case", "det_test_acc", "transfer_success", "target_clean", "source_clean", "clean_error",
    "fgsm_error", "fgsm_confidence_on_errors", "pseudo_label_accuracy", "clean_acc", "target_rate",
    "judge_target_rate"})
_NESTED_FRACTIONS = ("attacks", "error_rates")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fraction_problem(key: str, v: Any) -> str | None:
    if v is None:
        return None
    if not _is_number(v):
        return f"{key} = {v!r} is not a number"
    if not 0.0 <= float(v) <= 1.0:  # also catches NaN
        return f"{key} = {v!r} is outside [0, 1]"
    return None


def metrics_problem(metrics: Any) -> str | None:
    """Why a result cannot be reported (wrong types, fractions outside [0, 1], empty), or None when it can."""
    if not isinstance(metrics, dict) or not metrics:
        return "empty or not a JSON object"
    for key in FRACTION_KEYS & metrics.keys():
        if (why := _fraction_problem(key, metrics[key])) is not None:
            return why
    for group in _NESTED_FRACTIONS:
        sub = metrics.get(group)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            return f"{group} = {sub!r} is not an object"
        for name, v in sub.items():
            if (why := _fraction_problem(f"{group}.{name}", v)) is not None:
                return why
    n = metrics.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        return f"n = {n!r} is not a non-negative integer"
    eps = metrics.get("eps")
    if eps is not None and (not _is_number(eps) or not math.isfinite(eps) or eps < 0):
        return f"eps = {eps!r} is not a finite number >= 0"
    return None


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as percent with ``digits`` decimals; "—" for None. Anything that is not a fraction in
    [0, 1] is printed as INVALID with its value, never as a percentage."""
    if value is None:
        return "—"
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        return f"INVALID ({value!r})"
    return f"{100 * value:.{digits}f}"


# ------------------------------------------------------------------------------------------- collect
def _fill(template: str, run: Run) -> str:
    merged = {**run.config, **run.axes}
    # a tagged axis may be written either way: "{r}" or, as the specs spell the axis, "{_r}"
    axes = {**merged, **{k.lstrip("_"): v for k, v in merged.items()}}
    try:
        return template.format(**axes)
    except KeyError as err:
        raise ValueError(f"report row {template!r} of stage {run.stage!r} names unknown axis {err}") from err


def unique_runs(spec: Spec) -> list[Run]:
    """The spec's runs in expansion order, each hash once (two stages can reach the same computation)."""
    seen: dict[str, Run] = {}
    for run in expand(spec):
        seen.setdefault(run.hash, run)
    return list(seen.values())


def _tags(run: Run) -> list[tuple[str, str | None]]:
    """(renderer, row template or None) for every report tag of the run's stage."""
    tags: list[tuple[str, str | None]] = [(name, None) for name in run.report.get("render", [])]
    for tag in run.report.get("rows", []):
        name, _, row = tag.partition(":")
        tags.append((name, row))
    return tags


def result_problem(path: Path, kind: str) -> str | None:
    """Why the result file of a done run cannot be reported, naming the file; None when it can (or is
    missing: the store then reads the run as pending). The store's own checks (ray_jobs.results) come
    first, then :func:`metrics_problem`'s type checks of the values the renderers read."""
    try:
        raw = read_json(path)
    except FileNotFoundError:
        return None
    except CorruptFileError as err:
        return str(err)
    try:
        check_result(raw, kind, str(path))
    except InvalidResultError as err:
        return str(err)
    why = metrics_problem(raw)
    return None if why is None else f"{path}: {why}"


def _eval_result(raw: dict[str, Any]) -> Any:
    from deep.evaluation import EvalResult  # late: the report's import stays free of torch

    return EvalResult.from_dict(raw)


#: Typed readers of a kind's result: they validate (ValueError naming the field) and return what the
#: renderers read. An ``eval`` run's result is a deep.evaluation.EvalResult (which also answers the
#: dict-style reads of the plain-dict format); other kinds' results stay plain dicts.
RESULT_READERS: dict[str, Callable[[dict[str, Any]], Any]] = {"eval": _eval_result}


Read = tuple[str, Any]  # (state, result or None)


def _read(store: Store, run: Run) -> Read:
    """The run's state and its result when done and valid. A done run with a bad result reads as
    "invalid: <file>: <why>"; the report leaves that file alone (the next ``run`` redoes it)."""
    state = store.status(run.hash).get("state", "pending")
    if state != "done":
        return state, None
    path = store.run_dir(run.hash) / "metrics.json"
    why = result_problem(path, run.kind)
    if why is not None:
        return f"invalid: {why}", None
    metrics = store.metrics(run.hash)
    if metrics is None:
        return "pending", None
    try:
        return "done", RESULT_READERS.get(run.kind, dict)(metrics)
    except ValueError as err:
        return f"invalid: {path}: {err}", None


def collect(spec: Spec, store: Store, reads: dict[str, Read] | None = None) -> list[Entry]:
    """One Entry per (renderer, row, run); the generic renderer for every run of a spec without tags.
    ``reads``: :func:`_read` of each run hash, when the caller has them already."""
    load_plugins()
    # Every stage's view of a run, not only the first: a run that two stages reach (one hash) fills the
    # rows of both (laptop's Fashion-MNIST evals are Fig 2(b)'s and Fig 2(b)-at-the-rule's); `seen` keeps
    # each (renderer, row, run) once.
    runs = expand(spec)
    reads = reads if reads is not None else {h: _read(store, r) for h, r in {r.hash: r for r in runs}.items()}
    tagged = any(_tags(r) for r in runs)
    entries: list[Entry] = []
    seen: set[tuple[str, str, str]] = set()
    for run in runs:
        for name, row in (_tags(run) if tagged else [(GENERIC, None)]):
            if name not in RENDERERS:
                raise ValueError(f"stage {run.stage!r}: unknown report renderer {name!r}; known: {sorted(RENDERERS)}")
            key = name if row is None else _fill(row, run)
            if (name, key, run.hash) in seen:
                continue
            seen.add((name, key, run.hash))
            state, metrics = reads[run.hash]
            entries.append(Entry(name, key, str(run.config.get("dataset", "?")), run, state, metrics,
                                 store.run_dir(run.hash)))
    return entries


# ------------------------------------------------------------------------------------------- write
def default_specs(store: Store) -> list[Path]:
    """Every shipped spec with at least one run in the store."""
    present = set(store.all_hashes())
    return [p for p in sorted(SPEC_DIR.glob("*.toml")) if present and any(r.hash in present for r in expand(load_spec(p)))]


def open_store(path: Path | str) -> Store:
    """The store at ``path``: FileNotFoundError (NotADirectoryError for a file) when there is none, so a
    mistyped ``--store`` is an error instead of a report where every run is MISSING. An object-store URI
    (``s3://bucket/prefix``) is first downloaded, without checkpoints and datasets, into a temporary
    folder (ray_jobs.nodecache.download_results)."""
    from ray_jobs.nodecache import download_results
    from ray_jobs.objstore import is_uri

    if is_uri(str(path)):
        local = Store.open_existing(download_results(str(path), Path(tempfile.mkdtemp(prefix="advfeat-report-"))))
        local.shown_as = str(path)  # type: ignore[attr-defined] - the report names the URI, not the copy
        return local
    return Store.open_existing(str(path).removeprefix("file://"))


def shown(store: Store) -> str:
    """How the report names the store: its URI when it was downloaded from object storage."""
    return str(getattr(store, "shown_as", store.root))


def _spec_section(spec_path: Path, store: Store, out: Path, scale: str | None = None,
                  seeds: tuple[int, ...] = ()) -> tuple[list[str], list[str]]:
    """The Markdown of one spec (its ``[scale.NAME]`` miniature when ``scale`` is given, over ``seeds`` when
    given: ray_jobs/seeds.py) and the hashes of its runs that are not done (or not valid)."""
    from ray_jobs.seeds import seeds_flag, with_seeds

    spec = with_seeds(load_spec(spec_path, scale=scale), seeds)
    runs = unique_runs(spec)
    shipped = spec_path.resolve().parent == SPEC_DIR and spec_path.stem == spec.name
    scaled = (f" --scale {scale}" if scale else "") + seeds_flag(seeds)
    command = f"python -m ray_jobs run {spec.name if shipped else spec_path}{scaled} --store {shown(store)}"
    reads = {r.hash: _read(store, r) for r in runs}
    entries = collect(spec, store, reads)
    states = {h: state for h, (state, _) in reads.items()}
    lines = [f"## Spec `{spec.name}`", "", spec.description, "",
             f"Produced by `{command}` (spec file `{spec_path}`), then `python -m figures report --store {shown(store)}"
             f"{seeds_flag(seeds)}`.",
             "", "Runs: " + ", ".join(f"{s} {sum(1 for v in states.values() if v == s)}"
                                      for s in ("done", "failed", "blocked", "running", "pending"))
             + (f", invalid {sum(1 for v in states.values() if v.startswith('invalid'))}"
                if any(v.startswith("invalid") for v in states.values()) else ""), ""]
    measured = measured_on(store.status(h) for h, state in states.items() if state == "done")
    lines += [measured, ""] if measured else []
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.renderer, e.dataset if RENDERERS[e.renderer].per_dataset else ""), []).append(e)
    for (name, dataset), group in groups.items():
        stem = f"exp-{spec.name}-{name}" + (f"-{dataset}" if dataset else "")
        lines += RENDERERS[name](group, out, stem, f"Spec {spec.name} ({spec_path.name}); command: {command}.")
        lines.append("")
    missing = [r for r in runs if states[r.hash] != "done"]
    if missing:
        lines += [f"### Missing results of `{spec.name}` ({len(missing)} of {len(runs)} runs)", ""]
        for r in missing:
            error = store.status(r.hash).get("error")
            why = f": {str(error).splitlines()[0]}" if error and not states[r.hash].startswith("invalid") else ""
            lines.append(f"- MISSING `{r.hash}` {r.label()} — {states[r.hash]}{why}")
        lines.append("")
    return lines, [r.hash for r in missing]


def write_report(store: Path | str, out: Path | str, specs: Sequence[Path | str] | None = None,
                 scale: str | None = None, seeds: Sequence[int] = ()) -> Path:
    """Write ``out/REPORT.md`` and ``out/exp-*.png|pdf`` from the store; return the REPORT.md path.
    ``specs``: spec files to report on (default: :func:`default_specs`); ``scale``: report on their
    ``[scale.NAME]`` miniatures (ray_jobs/spec.py); ``seeds``: on their runs over these seeds, as run with
    ``ray_jobs run --seeds`` (ray_jobs/seeds.py). FileNotFoundError: no store."""
    from ray_jobs.seeds import check_seeds

    seeds = check_seeds(seeds) if seeds else ()
    store_obj = open_store(store)
    out = Path(out)
    spec_paths = [Path(p) for p in (specs if specs is not None else default_specs(store_obj))]
    load_plugins()
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Experiment report", "",
             f"Generated from the result store `{shown(store_obj)}` by `figures/report.py`. Every number "
             "below was read from a run's `metrics.json`; a run that is not done is listed as MISSING.", ""]
    if (out / "theory_captions.md").exists():  # written by `python -m figures theory` into the same folder
        lines += ["The theory figures and their captions: [theory_captions.md](theory_captions.md).", ""]
    if not spec_paths:
        lines += ["No shipped spec has a run in this store; name a spec with `--spec`.", ""]
    missing_all: list[str] = []
    for spec_path in spec_paths:
        section, missing = _spec_section(spec_path, store_obj, out, scale, seeds)
        lines += section
        missing_all += missing
    lines += [f"Total missing runs: {len(missing_all)}.", ""]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The report's options (shared by ``python -m figures report`` and ``python -m figures.report``)."""
    parser.add_argument("--store", default="store", help="the result store (default: %(default)s)")
    parser.add_argument("--out", default="figures/out", help="output folder (default: %(default)s)")
    parser.add_argument("--spec", action="append", default=None,
                        help="spec file or name (repeatable; default: every shipped spec with a run in the store)")
    parser.add_argument("--scale", default=None,
                        help="report on the specs' [scale.NAME] miniatures, as run with `ray_jobs run --scale NAME`")
    parser.add_argument("--seeds", type=int, nargs="+", default=[], metavar="SEED",
                        help="report on the specs run over these seeds, as run with `ray_jobs run --seeds ...`")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report for parsed options; a user error is one line on stderr and exit status 2."""
    try:
        specs = None
        if args.spec:
            from ray_jobs.cli import resolve_spec_path

            specs = [resolve_spec_path(s) for s in args.spec]
        path = write_report(args.store, Path(args.out), specs, scale=getattr(args, "scale", None),
                            seeds=tuple(getattr(args, "seeds", ())))
    except (FileNotFoundError, NotADirectoryError, ValueError, ConnectionError) as err:
        print(f"python -m figures report: error: {err}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m figures report",
                                     description="write REPORT.md and the experiment figures from a result store")
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
