"""Which labelling a student trained on D̂_rand / D̂_det learned: the true one, or D̂_det's shifted one.

Run (the student run folders of `cifar-resnet18`, found with `--dry-run`)::

    ADVFEAT_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/label_map.py \\
        --dataset cifar10-subset --run STORE/runs/HASH ... --out runs/label-map

Why: [IL] Table 1 reads test accuracy on real images after training on relabelled adversarial images. A
student can fit D̂_det (label t = y + 1 mod C) in two ways. If it learns the source's non-robust features,
it predicts y on real images (the paper's 43.7%). If it learns the visible content, which still shows
class y but is labelled y + 1, it predicts y + 1 on real images and its accuracy falls below chance.
The share of real test images predicted y + 1 tells the two apart; for D̂_rand (random t) both shares
stay near 1/C when nothing generalises.

Output: OUT/label_map.json and OUT/label_map.md (per run: n, share predicted y, share predicted y + 1).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from deep.data import load_split
from deep.evaluation.run import predict
from deep.runfolder import load_run


def label_shares(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """(share of pred == y, share of pred == (y + 1) mod num_classes) for 1-d integer tensors."""
    if pred.shape != y.shape or pred.ndim != 1 or len(y) == 0:
        raise ValueError(f"label_shares: pred {tuple(pred.shape)} and y {tuple(y.shape)} must be the same non-empty 1-d shape")
    if num_classes < 2:
        raise ValueError(f"label_shares: num_classes must be >= 2, got {num_classes}")
    same = (pred == y).double().mean().item()
    shifted = (pred == (y + 1) % num_classes).double().mean().item()
    return same, shifted


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--run", action="append", required=True, type=Path, help="a trained run folder (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    for run in args.run:
        if not (run / "metrics.json").is_file():
            ap.error(f"{run}: not a finished run folder (no metrics.json)")
    torch.set_num_threads(args.threads)
    split = load_split(args.dataset, "test")
    rows = []
    for run in args.run:
        model, _ = load_run(run)
        same, shifted = label_shares(predict(model, split.x)[0], split.y, split.info.num_classes)
        rows.append({"run": str(run), "n": len(split.y), "pred_y": same, "pred_y_plus_1": shifted})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "label_map.json").write_text(json.dumps({"dataset": args.dataset, "rows": rows}, indent=1))
    lines = ["| run | n | predicted y | predicted y + 1 |", "|---|---|---|---|"]
    lines += [f"| `{Path(r['run']).name}` | {r['n']} | {100 * r['pred_y']:.1f}% | {100 * r['pred_y_plus_1']:.1f}% |" for r in rows]
    (args.out / "label_map.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
