"""``python -m figures {theory,report} [options]``: the single figure generator.

- ``theory``: the theory figures of ``figures.theory_figs`` (SPEC §2–4), written to ``--out``;
- ``report``: REPORT.md and the experiment figures from a result store (``figures.report``);
- no sub-command: both, with default options.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from figures import report
from figures.theory_figs import Options, make_all

DEFAULT_OUT = Path("figures/out")


def _add_theory_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    d = Options()
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--samples", type=int, default=d.samples,
                   help="Gaussian samples for the MLE and adversarial training (default: %(default)s)")
    p.add_argument("--svm-samples", type=int, default=d.svm_samples,
                   help="training examples per SVM (default: %(default)s)")
    p.add_argument("--mc-samples", type=int, default=d.mc_samples,
                   help="Monte Carlo draws for Theorem 1's gap (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m figures",
                                     description="Write the theory figures and/or REPORT.md with the experiment "
                                                 "figures. Without a sub-command: theory, then report, with defaults.")
    sub = parser.add_subparsers(dest="command", metavar="{theory,report}")
    _add_theory_arguments(sub.add_parser(
        "theory", help="the theory figures (PNG + PDF) and theory_captions.md",
        description="write the theory figures (PNG + PDF) and theory_captions.md"))
    report.add_arguments(sub.add_parser(
        "report", help="REPORT.md and the experiment figures from a result store",
        description="write REPORT.md and the experiment figures from a result store"))
    return parser


def run_theory(args: argparse.Namespace) -> int:
    try:
        opts = Options(samples=args.samples, svm_samples=args.svm_samples,
                       mc_samples=args.mc_samples, seed=args.seed)
        make_all(args.out, opts)
    except (ValueError, FileNotFoundError) as err:
        print(f"python -m figures theory: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed by argparse
        return int(exit_.code or 0)
    if args.command == "theory":
        return run_theory(args)
    if args.command == "report":
        return report.run(args)
    theory_args = parser.parse_args(["theory"])
    return run_theory(theory_args) or report.run(parser.parse_args(["report"]))


if __name__ == "__main__":
    from deep.cli.errors import run_cli  # one error convention for every command line

    raise SystemExit(run_cli(main, prog="python -m figures",
                             interrupted="figures written so far are kept; rerun the command to write the rest"))
