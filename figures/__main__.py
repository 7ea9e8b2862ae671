"""``python -m figures [theory|report] [options]``: the single figure generator.

- ``theory``: the theory figures of ``figures.theory_figs`` (SPEC §2–4), written to ``--out``.
- ``report``: REPORT.md and the experiment figures, by ``figures.report`` (options passed through).
- no sub-command: both, with default options (the report is skipped with a message if
  ``figures.report`` is not available).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path("figures/out")


def _theory_parser() -> argparse.ArgumentParser:
    from figures.theory_figs import Options

    d = Options()
    p = argparse.ArgumentParser(prog="python -m figures theory",
                                description="write the theory figures (PNG + PDF) and theory_captions.md")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--samples", type=int, default=d.samples,
                   help=f"Gaussian samples for the MLE and adversarial training (default {d.samples})")
    p.add_argument("--svm-samples", type=int, default=d.svm_samples,
                   help=f"training examples per SVM (default {d.svm_samples})")
    p.add_argument("--mc-samples", type=int, default=d.mc_samples,
                   help=f"Monte Carlo draws for Theorem 1's gap (default {d.mc_samples})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    return p


def run_theory(argv: Sequence[str]) -> int:
    from figures.theory_figs import Options, make_all

    args = _theory_parser().parse_args(list(argv))
    try:
        opts = Options(samples=args.samples, svm_samples=args.svm_samples,
                       mc_samples=args.mc_samples, seed=args.seed)
        make_all(args.out, opts)
    except (ValueError, FileNotFoundError) as err:
        print(f"python -m figures theory: error: {err}", file=sys.stderr)
        return 2
    return 0


def run_report(argv: Sequence[str], *, required: bool = True) -> int:
    """Hook for the experiments report: ``figures.report.main(argv)``, imported lazily."""
    try:
        report = importlib.import_module("figures.report")
    except ImportError as err:
        print(f"python -m figures report: not available yet ({err}); skipped.", file=sys.stderr)
        return 2 if required else 0
    return int(report.main(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if not argv:
        status = run_theory([])
        return status or run_report([], required=False)
    command, rest = argv[0], argv[1:]
    if command == "theory":
        return run_theory(rest)
    if command == "report":
        return run_report(rest)
    print(f"python -m figures: error: unknown sub-command {command!r} (choose theory or report)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
