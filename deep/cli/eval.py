"""``python -m deep eval``: accuracy of a trained model under an attack suite → OUT/metrics.json."""
from __future__ import annotations

import argparse
import json

from deep.attacks.registry import known_attacks
from deep.io import write_json

from .common import add_attack_options, add_common, add_deprecated_alias, load_model_and_split, output_folder, positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("eval", help="evaluate a run under attacks (clean, per-attack, worst case)",
                              description="Evaluate a trained model. Attack names: "
                                          + ", ".join(known_attacks()) + " (K steps, R restarts).")
    add_attack_options(p, checkpoint_required=False)
    add_model_options(p)
    p.add_argument("--attacks", nargs="+", default=["fgsm", "pgd-20", "cw-20"],
                   help="the attack suite (default: fgsm pgd-20 cw-20)")
    add_deprecated_alias(p, "--attack", "--attacks")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from deep.evaluate import evaluate
    from deep.evaluation.masking import attach_masking_checks

    model, split, recipe = load_model_and_split(args, external_loader(args))
    with output_folder(args.out, "eval") as out:
        result = evaluate(model, split, args.attacks, eps=args.eps, norm=args.norm, batch_size=args.batch_size,
                          alpha=args.alpha, seed=args.seed, progress=args.progress,
                          state_dir=out / "attack-state")  # AutoAttack resumes from here after Ctrl-C
        result["checkpoint"] = str(args.checkpoint)
        result["dataset"] = args.dataset or recipe["dataset"]
        result["split"] = args.split
        result["offset"] = args.offset  # the first example's index in the split (shards: --offset)
        if "model" in recipe:  # --model/--torchvision: the model's provenance
            result["model"] = recipe["model"]
        attach_masking_checks(result, model, split, batch_size=args.batch_size)
        write_json(out / "metrics.json", result.to_dict())
    print(json.dumps({k: result[k] for k in ("clean", "attacks", "worst_case", "n")}, sort_keys=True))
    return 0


# ------------------------------------------------------------------ any model (issue 11): --model / --torchvision
def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="MODULE:FUNCTION",
                   help="evaluate the nn.Module a factory returns (instead of --checkpoint; needs --dataset); "
                        "also 'pyautoattack:resnet18', AutoAttack's example CIFAR-10 ResNet-18")
    p.add_argument("--torchvision", default=None, metavar="NAME", help="evaluate torchvision.models NAME "
                   "(no download: give --weights; instead of --checkpoint; needs --dataset)")
    p.add_argument("--weights", default=None, help="state_dict file for --model/--torchvision (weights_only load)")
    p.add_argument("--normalize", default=None, metavar="MEAN,STD",
                   help="the model expects normalised input: C means then C stds (e.g. 0.1307,0.3081) or a "
                        "dataset name (mnist, cifar10, imagenet); inputs stay in [0, 1]")
    p.add_argument("--num-classes", type=positive_int, default=None, help="passed to the factory / torchvision model")


def external_loader(args: argparse.Namespace):
    """loader(device) -> (model, recipe) for --model/--torchvision, or None for --checkpoint."""
    from deep.models.external import load_model, parse_normalize

    chosen = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--model", args.model),
                                       ("--torchvision", args.torchvision)) if value]
    if len(chosen) != 1:
        got = ", ".join(chosen) or "none"
        raise ValueError(f"give exactly one of --checkpoint, --model, --torchvision (got {got})")
    if args.checkpoint:
        if args.weights or args.normalize or args.num_classes:
            raise ValueError("--weights, --normalize and --num-classes go with --model/--torchvision, not --checkpoint")
        return None
    if not args.dataset:
        raise ValueError(f"{chosen[0]} needs --dataset (the model carries no dataset name)")
    source = args.model or f"torchvision:{args.torchvision}"
    normalize = parse_normalize(args.normalize) if args.normalize else None

    def load(device):
        loaded = load_model(source, weights=args.weights, normalize=normalize, num_classes=args.num_classes,
                            device=device)
        return loaded.model, {"dataset": args.dataset, "model": loaded.provenance()}
    return load

