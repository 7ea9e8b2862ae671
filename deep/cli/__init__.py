"""Command line of deep/: one module per sub-command, each exposing ``add_parser(subparsers)``.

The sub-command's parser sets ``func`` (called with the parsed args, returns an exit code).
``construct`` (issue 4) is registered when its module exists.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

SUBCOMMANDS: tuple[str, ...] = ("train", "eval", "attack")
OPTIONAL_SUBCOMMANDS: tuple[str, ...] = ("construct",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deep",
                                     description="Image experiments: train, evaluate and attack models (SPEC §4–6).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"deep.cli.{name}").add_parser(sub)
    for name in OPTIONAL_SUBCOMMANDS:
        if importlib.util.find_spec(f"deep.cli.{name}") is not None:
            importlib.import_module(f"deep.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        # Bad input is reported as one line naming the problem, not a traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2
