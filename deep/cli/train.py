"""``python -m deep train``: train a model per a Recipe into a run folder (resumes if interrupted)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deep.io import CorruptFileError, read_json

from .common import add_common, check_eps_range, check_out_path, eps_value, norm_value, output_folder, prefetch, rename_flag

EXAMPLE = ("example: python -m deep train --dataset mnist --model smallcnn --method mart --eps 0.3 "
           "--epochs 1 --subset 5000 --out runs/mart")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from deep.train import add_recipe_arguments

    p = subparsers.add_parser("train", help="train a model (standard or adversarial) into a run folder",
                              description="Train a model. Every epoch appends to OUT/log.jsonl and saves "
                                          "OUT/checkpoint.pt; rerunning the same command resumes.",
                              epilog=EXAMPLE)
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, recipe.json, metrics.json, log.jsonl)")
    p.add_argument("--recipe", default=None, help="JSON file with recipe fields; flags given here override it")
    add_common(p)
    add_recipe_arguments(p)
    _apply_conventions(p)
    p.set_defaults(func=run)
    return p


def _apply_conventions(p: argparse.ArgumentParser) -> None:
    """The Recipe generates one flag per field; give them the CLI-wide names and value types."""
    rename_flag(p, "--first-n", "--n")
    for flag, kind in (("--eps", eps_value), ("--alpha", eps_value), ("--eval-eps", eps_value),
                       ("--norm", norm_value)):
        action = p._option_string_actions.get(flag)
        if action is not None:
            action.type = kind
    for action in p._actions:  # "None" defaults mean "not given", which the help need not say
        if action.help:
            action.help = action.help.replace(" (default: None)", "")


def read_recipe_file(value: str) -> dict[str, Any]:
    """The ``--recipe`` JSON object; errors name the file and what was expected."""
    path = Path(value)
    if path.is_dir():
        raise IsADirectoryError(f"--recipe {value!r} is a folder; give a JSON file such as RUN/recipe.json")
    if not path.is_file():
        raise FileNotFoundError(f"--recipe file not found: {value!r}")
    try:
        base = read_json(path)
    except CorruptFileError as err:
        raise ValueError(f"--recipe {value!r} is not valid JSON ({err})") from None
    if not isinstance(base, dict):
        raise ValueError(f"--recipe {value!r} must hold a JSON object of recipe fields, got {type(base).__name__}")
    return base


def run(args: argparse.Namespace) -> int:
    from deep.dataroot import resolve_data_root
    from deep.train import recipe_from_args, train

    base = None if args.recipe is None else read_recipe_file(args.recipe)
    try:
        recipe = recipe_from_args(args, base)
    except ValueError as err:
        if base is None:
            raise
        raise ValueError(f"{err} (from --recipe {args.recipe!r} and the flags)") from None
    check_eps_range(recipe.eps, recipe.norm)
    check_out_path(args.out)
    data_root = resolve_data_root(args.data_root)
    prefetch(recipe.dataset, data_root, args.download)
    with output_folder(args.out, "train") as out:
        # one readable line per epoch and a summary; the JSON entries are in OUT/log.jsonl and OUT/metrics.json
        train(recipe, out, data_root=data_root, progress=args.progress, device=args.device, verbose=True)
    return 0
