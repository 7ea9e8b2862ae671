"""``python -m deep construct`` / ``import-madrylab`` / ``export-madrylab`` (issue 4; SPEC §5).

construct writes OUT/shards/*.npz and OUT/provenance.json; rerunning the same command resumes an
interrupted build. The result is usable as ``--dataset OUT`` by train and eval.
"""
from __future__ import annotations

import argparse
import json

from .common import (add_common, add_deprecated_alias, check_out_path, eps_value, nonneg_int, output_folder, positive_int,
                     prefetch)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "construct",
        help="build D_R / D_NR / D_rand / D_det (Ilyas et al. 2019) from a trained run or a named model",
        description="robust: invert the ROBUST run's representation (D_R); nonrobust: the same with the "
                    "standard run (D_NR); rand/det: targeted l2 PGD on the standard run toward t uniform over "
                    "all classes / t = (y+1) mod C, relabelled t. Paper values are the defaults.")
    p.add_argument("--construct", required=True, choices=("robust", "nonrobust", "rand", "det"),
                   help="which dataset to build: robust (D_R), nonrobust (D_NR), rand (D_rand) or det (D_det)")
    add_deprecated_alias(p, "--kind", "--construct")
    p.add_argument("--checkpoint", default=None, help="source run folder (from `train`) or its checkpoint.pt")
    p.add_argument("--source-model", default=None, metavar="NAME",
                   help="instead of --checkpoint: a model by name, as `deep eval --model` loads it, e.g. "
                        "pyautoattack:resnet18 (its name and weights' sha256 go into the provenance)")
    p.add_argument("--dataset", required=True, help="source dataset name (deep.data), e.g. cifar10-subset, mnist")
    p.add_argument("--split", default="train", choices=("train", "test"), help="source split (default: train)")
    p.add_argument("--out", required=True, help="output folder (resumed when it holds a partial build)")
    p.add_argument("--n", type=positive_int, default=None, help="use the first N examples of the split (default: all)")
    p.add_argument("--eps", type=eps_value, default=0.5,
                   help="rand/det: l2 radius in pixel units, e.g. 0.5 or 128/255 (default: 0.5)")
    p.add_argument("--alpha", type=eps_value, default=0.1,
                   help="step size: l2 length of each normalised step in pixel units (default: 0.1)")
    add_deprecated_alias(p, "--step", "--alpha")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="iterations (default: 100 for rand/det, 1000 for robust/nonrobust)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="seed of targets (rand) and start images (robust/nonrobust) (default: 0)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="examples per batch (default: 128)")
    p.add_argument("--shard-size", type=positive_int, default=1024,
                   help="examples per shard, the unit of resume (default: 1024)")
    p.add_argument("--min-source-acc", type=min_source_acc, default=None, metavar="ACC",
                   help="refuse a source model whose clean accuracy on the first 1000 test images is below ACC "
                        "(default: 1.5 / number of classes, i.e. well above chance; 0 disables the check)")
    add_common(p)
    p.set_defaults(func=run_construct)

    q = subparsers.add_parser("import-madrylab",
                              help="convert a released folder with CIFAR_ims / CIFAR_lab into a dataset directory")
    q.add_argument("src", help="the released folder (e.g. drand_CIFAR)")
    q.add_argument("--out", required=True, help="output dataset folder")
    q.add_argument("--source-dataset", default="cifar10",
                   help="deep.data name whose test split goes with it (default: cifar10)")
    q.add_argument("--construct", default="madrylab",
                   help="which construction it is, stored in the provenance: rand, det, robust, ... (default: madrylab)")
    add_deprecated_alias(q, "--kind", "--construct")
    q.add_argument("--num-classes", type=positive_int, default=None,
                   help="number of classes (default: known for cifar10, cifar10-subset, mnist, fashion-mnist)")
    q.set_defaults(func=run_import)

    r = subparsers.add_parser("export-madrylab",
                              help="write a constructed dataset as CIFAR_ims / CIFAR_lab (MadryLab's format)")
    r.add_argument("src", help="a constructed dataset directory")
    r.add_argument("--out", required=True, help="output folder")
    r.set_defaults(func=run_export)
    return p


def run_construct(args: argparse.Namespace) -> int:
    from deep.construct import construct_dataset
    from deep.dataroot import resolve_data_root

    from deep.construct.source import check_one_source

    check_one_source(args.checkpoint, args.source_model, run_name="--checkpoint", model_name="--source-model")
    check_out_path(args.out)
    data_root = resolve_data_root(args.data_root)
    prefetch(args.dataset, data_root, args.download)
    with output_folder(args.out, "construct") as out:
        prov = construct_dataset(args.construct, source_run=args.checkpoint, source_model=args.source_model,
                                 dataset=args.dataset, out_dir=out,
                                 split=args.split, n=args.n, eps=args.eps, step=args.alpha, steps=args.steps,
                                 seed=args.seed, batch_size=args.batch_size, shard_size=args.shard_size,
                                 data_root=data_root, progress=args.progress, device=args.device,
                                 min_source_acc=args.min_source_acc)
    print(json.dumps({"out": args.out, "n": prov["n"], "statistics": prov["statistics"],
                      "seconds": prov["timing"]["seconds"], "source_heldout": prov.get("source_heldout")},
                     sort_keys=True))
    return 0


def min_source_acc(text: str) -> float:
    """``--min-source-acc``: an accuracy in [0, 1]; the message names the flag and the value."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected an accuracy in [0, 1] (0 disables the check), got {text!r}")
    return value


def run_import(args: argparse.Namespace) -> int:
    from deep.construct import import_madrylab

    check_out_path(args.out)
    prov = import_madrylab(args.src, args.out, source_dataset=args.source_dataset, kind=args.construct,
                           num_classes=args.num_classes)
    print(json.dumps({"out": args.out, "n": prov["n"]}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from deep.construct import export_madrylab

    check_out_path(args.out)
    print(export_madrylab(args.src, args.out))
    return 0
