"""``python -m deep eval``: accuracy of a trained model under an attack suite → OUT/metrics.json."""
from __future__ import annotations

import argparse
import json

from deep.attacks.registry import known_attacks
from deep.io import write_json

from .common import add_attack_options, add_common, add_deprecated_alias, load_model_and_split, output_folder


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="evaluate a run under attacks (clean, per-attack, worst case)",
                              description="Evaluate a trained model. Attack names: "
                                          + ", ".join(known_attacks()) + " (K steps, R restarts).")
    add_attack_options(p)
    p.add_argument("--attacks", nargs="+", default=["fgsm", "pgd-20", "cw-20"],
                   help="the attack suite (default: fgsm pgd-20 cw-20)")
    add_deprecated_alias(p, "--attack", "--attacks")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from deep.evaluate import evaluate

    model, split, recipe = load_model_and_split(args)
    with output_folder(args.out, "eval") as out:
        result = evaluate(model, split, args.attacks, eps=args.eps, norm=args.norm, batch_size=args.batch_size,
                          alpha=args.alpha, seed=args.seed, progress=args.progress)
        result["checkpoint"] = str(args.checkpoint)
        result["dataset"] = args.dataset or recipe["dataset"]
        result["split"] = args.split
        write_json(out / "metrics.json", result.to_dict())
    print(json.dumps({k: result[k] for k in ("clean", "attacks", "worst_case", "n")}, sort_keys=True))
    return 0
