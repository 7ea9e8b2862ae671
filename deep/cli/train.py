"""``python -m deep train``: train a model per a Recipe into a run folder (resumes if interrupted)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_common

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
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from deep.dataroot import resolve_data_root
    from deep.train import recipe_from_args, train

    base = None
    if args.recipe is not None:
        path = Path(args.recipe)
        if not path.is_file():
            raise FileNotFoundError(f"--recipe file not found: {path}")
        base = json.loads(path.read_text())
    recipe = recipe_from_args(args, base)
    metrics = train(recipe, Path(args.out), data_root=resolve_data_root(args.data_root), progress=args.progress,
                    device=args.device, on_epoch=lambda e: print(json.dumps(e, sort_keys=True), flush=True))
    print(json.dumps({"status": metrics["status"], "out": str(args.out), "last": metrics.get("last")}, sort_keys=True))
    return 0
