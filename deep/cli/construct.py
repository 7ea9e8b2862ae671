"""``python -m deep construct`` / ``import-madrylab`` / ``export-madrylab`` (issue 4; SPEC §5).

construct writes OUT/shards/*.npz and OUT/provenance.json; rerunning the same command resumes an
interrupted build. The result is usable as ``--dataset OUT`` by train and eval.
"""
from __future__ import annotations

import argparse
import json

from .common import add_common


def add_parser(subparsers) -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = subparsers.add_parser(
        "construct", formatter_class=fmt,
        help="build D_R / D_NR / D_rand / D_det (Ilyas et al. 2019) from a trained run",
        description="robust: invert the ROBUST run's representation (D_R); nonrobust: the same with the "
                    "standard run (D_NR); rand/det: targeted l2 PGD on the standard run toward t uniform over "
                    "all classes / t = (y+1) mod C, relabelled t. Paper values are the defaults.")
    p.add_argument("--kind", required=True, choices=("robust", "nonrobust", "rand", "det"))
    p.add_argument("--checkpoint", required=True, help="source run folder (from `train`) or its checkpoint.pt")
    p.add_argument("--dataset", required=True, help="source dataset name (deep.data), e.g. cifar10-subset, mnist")
    p.add_argument("--split", default="train", choices=("train", "test"), help="source split")
    p.add_argument("--out", required=True, help="output directory (resumed when it holds a partial build)")
    p.add_argument("--n", type=int, default=None, help="use the first N examples of the split (default: all)")
    p.add_argument("--eps", type=float, default=0.5, help="rand/det: l2 radius in pixel units")
    p.add_argument("--step", type=float, default=0.1, help="l2 length of each normalised step (pixel units)")
    p.add_argument("--steps", type=int, default=None,
                   help="iterations (default: 100 for rand/det, 1000 for robust/nonrobust)")
    p.add_argument("--seed", type=int, default=0, help="seed of targets (rand) and start images (robust/nonrobust)")
    p.add_argument("--batch-size", type=int, default=128, help="examples per batch")
    p.add_argument("--shard-size", type=int, default=1024, help="examples per shard (the unit of resume)")
    add_common(p)
    p.set_defaults(func=run_construct)

    q = subparsers.add_parser("import-madrylab", formatter_class=fmt,
                              help="convert a released folder with CIFAR_ims / CIFAR_lab into a dataset directory")
    q.add_argument("src", help="the released folder (e.g. drand_CIFAR)")
    q.add_argument("--out", required=True, help="output dataset directory")
    q.add_argument("--source-dataset", default="cifar10", help="deep.data name whose test split goes with it")
    q.add_argument("--kind", default="madrylab", help="label stored in the provenance (e.g. rand, det, robust)")
    q.add_argument("--num-classes", type=int, default=None,
                   help="number of classes (default: known for cifar10, cifar10-subset, mnist, fashion-mnist)")
    q.set_defaults(func=run_import)

    r = subparsers.add_parser("export-madrylab", formatter_class=fmt,
                              help="write a constructed dataset as CIFAR_ims / CIFAR_lab (MadryLab's format)")
    r.add_argument("src", help="a constructed dataset directory")
    r.add_argument("--out", required=True, help="output folder")
    r.set_defaults(func=run_export)
    return p


def run_construct(args: argparse.Namespace) -> int:
    from deep.construct import construct_dataset
    from deep.dataroot import resolve_data_root

    prov = construct_dataset(args.kind, source_run=args.checkpoint, dataset=args.dataset, out_dir=args.out,
                             split=args.split, n=args.n, eps=args.eps, step=args.step, steps=args.steps,
                             seed=args.seed, batch_size=args.batch_size, shard_size=args.shard_size,
                             data_root=resolve_data_root(args.data_root), progress=args.progress,
                             device=args.device)
    print(json.dumps({"out": args.out, "n": prov["n"], "statistics": prov["statistics"],
                      "seconds": prov["timing"]["seconds"]}, sort_keys=True))
    return 0


def run_import(args: argparse.Namespace) -> int:
    from deep.construct import import_madrylab

    prov = import_madrylab(args.src, args.out, source_dataset=args.source_dataset, kind=args.kind,
                           num_classes=args.num_classes)
    print(json.dumps({"out": args.out, "n": prov["n"]}))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from deep.construct import export_madrylab

    print(export_madrylab(args.src, args.out))
    return 0
