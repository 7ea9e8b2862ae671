"""Command line of deep/: one module per sub-command, each exposing ``add_parser(subparsers)``.

The sub-command's parser sets ``func`` (called with the parsed args, returns an exit code).
``construct.add_parser`` also registers ``import-madrylab`` and ``export-madrylab``. Errors follow
:mod:`deep.cli.errors` (one line and exit status 2 for bad input, 130 for Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from .common import check_required
from .errors import DEBUG_ENV, DEBUG_FLAG, run_cli

PROG = "python -m deep"
SUBCOMMANDS: tuple[str, ...] = ("train", "eval", "attack", "construct")

#: What Ctrl-C leaves behind, per command (printed with the interrupt; ``{out}`` is ``--out``).
_ON_INTERRUPT: dict[str, str] = {
    "train": "{out}/checkpoint.pt holds the last finished epoch; rerun the same command to resume",
    "construct": "the finished shards in {out} are kept; rerun the same command to resume",
    "eval": "nothing was saved (metrics.json is written at the end); rerun the same command",
    "attack": "nothing was saved (attacked.npz is written at the end); rerun the same command",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="Image experiments: train, evaluate and attack models, and "
                                                 "construct datasets (SPEC §4–6).")
    parser.add_argument(DEBUG_FLAG, action="store_true",
                        help=f"show the full traceback of an error (also {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"deep.cli.{name}").add_parser(sub)
    return parser


def _interrupt_hint(argv: Sequence[str]) -> str:
    command = next((a for a in argv if not a.startswith("-")), "")
    out = argv[argv.index("--out") + 1] if "--out" in argv[:-1] else "OUT"
    return _ON_INTERRUPT.get(command, "rerun the same command").format(out=out)


def _dispatch(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_required(parser, args)
    return int(args.func(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deep``: the exit status (0 ok, 2 bad input, 130 interrupted)."""
    return run_cli(_dispatch, argv, prog=PROG, interrupted=_interrupt_hint)
