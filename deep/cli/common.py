"""Options shared by the sub-commands (data root, device, progress) and the JSON writer."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None,
                        help="directory holding the datasets (default: $ADVFEAT_DATA, else ~/.local/share/advfeat/data)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to compute: auto picks CUDA when present, else the CPU (default: auto)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_attack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a run folder (from `train`) or its checkpoint.pt file")
    parser.add_argument("--eps", type=float, required=True, help="attack radius ε in pixel units ([0, 1] scale)")
    parser.add_argument("--norm", default="linf", choices=("linf", "l2"), help="threat model norm (default: linf)")
    parser.add_argument("--alpha", type=float, default=None,
                        help="PGD step size in pixel units (default: 2.5·ε/steps, Madry's rule)")
    parser.add_argument("--dataset", default=None,
                        help="dataset to attack (default: the run's dataset); its test split is used")
    parser.add_argument("--split", default="test", choices=("train", "test"), help="which split to attack (default: test)")
    parser.add_argument("--n", type=int, default=None, help="use only the first N examples of the split (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per attack batch (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attacks' random starts (default: 0)")
    parser.add_argument("--out", required=True, help="output folder (metrics.json is written there)")


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_model_and_split(args: argparse.Namespace):
    """(model on the chosen device, split, recipe dict) for eval/attack."""
    from deep.data import load_split
    from deep.dataroot import resolve_data_root
    from deep.train import load_run
    from deep.train.loop import resolve_device

    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    device = resolve_device(args.device)
    model, recipe = load_run(args.checkpoint, device=device)
    dataset = args.dataset or recipe["dataset"]
    split = load_split(dataset, args.split, data_root=resolve_data_root(args.data_root), first_n=args.n)
    return model, split, recipe
