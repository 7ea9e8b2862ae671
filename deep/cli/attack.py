"""``python -m deep attack``: save an attacked split as OUT/attacked.npz (x, y, x_adv) + OUT/metrics.json."""
from __future__ import annotations

import argparse
import json

import numpy as np

from deep.attacks.registry import known_attacks
from deep.io import save_npz_compressed, write_json

from .common import add_attack_options, add_common, add_deprecated_alias, load_model_and_split, output_folder


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("attack", help="attack a split with one attack and save the adversarial set",
                              description="Attack a split with a trained model and save OUT/attacked.npz "
                                          "(x float32 NCHW in [0, 1], y int64, x_adv float32).")
    add_attack_options(p)
    p.add_argument("--attacks", default="pgd-40", metavar="ATTACK",
                   help="the one attack whose examples are saved: " + ", ".join(known_attacks())
                        + " (default: pgd-40)")
    add_deprecated_alias(p, "--attack", "--attacks")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from deep.evaluate import attack_split, predict

    model, split, recipe = load_model_and_split(args)
    name = args.attacks
    with output_folder(args.out, "attack") as out:
        x_adv = attack_split(model, split, name, eps=args.eps, norm=args.norm, batch_size=args.batch_size,
                             alpha=args.alpha, seed=args.seed, progress=args.progress)
        y = split.y.cpu()
        clean_pred, _ = predict(model, split.x, batch_size=args.batch_size)
        adv_pred, conf = predict(model, x_adv, batch_size=args.batch_size)
        save_npz_compressed(out / "attacked.npz", x=split.x.cpu().numpy().astype(np.float32),
                            y=y.numpy().astype(np.int64), x_adv=x_adv.numpy().astype(np.float32))
        delta = (x_adv - split.x.cpu()).flatten(1)
        dist = delta.abs().amax(1) if args.norm == "linf" else delta.norm(dim=1)
        wrong = adv_pred != y
        result = {"attack": name, "eps": args.eps, "norm": args.norm, "n": int(y.shape[0]),
                  "clean": float((clean_pred == y).float().mean()), "attacks": {name: float((~wrong).float().mean())},
                  "mean_confidence_on_errors": {name: float(conf[wrong].mean()) if bool(wrong.any()) else None},
                  "max_distance": float(dist.max()), "checkpoint": str(args.checkpoint),
                  "dataset": args.dataset or recipe["dataset"], "split": args.split, "file": "attacked.npz"}
        write_json(out / "metrics.json", result)
    print(json.dumps({k: result[k] for k in ("clean", "attacks", "n")}, sort_keys=True))
    return 0
