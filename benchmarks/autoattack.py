"""Time of AutoAttack (aa-standard) on MNIST for the SmallCNN: our fast layout against the plain NCHW model (issue 11).

Run (2 cores, the MNIST PGD-AT run folder of the README, the first 1,000 test images)::

    ADVFEAT_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/autoattack.py \\
        --checkpoint RUN_FOLDER --n 1000 --threads 2 --out runs/bench-autoattack

Without ``--checkpoint`` the SmallCNN is trained briefly here (standard training, like
benchmarks/attacks.py), which AutoAttack breaks almost at once; a robust model is the meaningful case.

What it times, on the same N test images, ℓ∞ ε (default 0.3), one after the other in one process:

- ``aa_fast``: ``aa-standard`` through ``deep.attacks.autoattack`` (the model channels-last on the CPU,
  handed back unchanged), in chunks of ``--batch-size``;
- ``aa_nchw``: pyautoattack's ``AutoAttack(version='standard')`` called directly on the plain NCHW model,
  ``run_standard_evaluation(x, y, batch_size=--batch-size)``, as a user of the library would;
- ``pgd20``: our PGD-20 (2.5·ε/20 steps, random start) with the default (fast) layout.

For each: seconds, images/s and robust accuracy (clean accuracy first). Output: ``OUT/autoattack.json``
and ``OUT/autoattack.md`` (a table), both with the CPU model, torch/pyautoattack versions, thread count
and the load average before and after (the CPU is shared; a high load inflates every time alike).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from deep.attacks.autoattack import autoattack, package_version
from deep.attacks.registry import build_attack, parse_attack
from deep.dataroot import resolve_data_root
from deep.precision import cpu_model


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 500) -> float:
    with torch.no_grad():
        right = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    return right / len(y)


def load_smallcnn(args: argparse.Namespace, data_root: Path) -> tuple[nn.Module, str]:
    if args.checkpoint:
        from deep.models.external import load_model

        return load_model(args.checkpoint, device="cpu").model, f"run folder {args.checkpoint}"
    from benchmarks.attacks import build_smallcnn, load_mnist, train_briefly

    model, name = build_smallcnn()
    x_train, y_train = load_mnist(data_root, train=True)
    train_briefly(model, x_train, y_train, args.train_steps, 128, args.seed)
    return model.eval(), f"{name}, {args.train_steps} Adam steps (standard training)"


def time_variants(model: nn.Module, x: Tensor, y: Tensor, args: argparse.Namespace) -> dict[str, dict]:
    from pyautoattack import AutoAttack

    def aa_fast() -> Tensor:
        return autoattack("aa-standard", model, args.eps, "linf", seed=args.seed, batch_size=args.batch_size)(x, y)

    def aa_nchw() -> Tensor:
        adversary = AutoAttack(model, device="cpu", eps=args.eps, norm="Linf", seed=args.seed, version="standard")
        with torch.no_grad():
            return adversary.run_standard_evaluation(x, y, batch_size=args.batch_size)[0]

    def pgd20() -> Tensor:
        atk = build_attack(parse_attack("pgd-20"), model, eps=args.eps, norm="linf", seed=args.seed)
        return torch.cat([atk(x[i:i + args.batch_size], y[i:i + args.batch_size])
                          for i in range(0, len(y), args.batch_size)])

    results = {}
    for name, run in (("aa_fast", aa_fast), ("aa_nchw", aa_nchw), ("pgd20", pgd20)):
        start = time.perf_counter()
        x_adv = run()
        seconds = time.perf_counter() - start
        assert all(p.is_contiguous() for p in model.parameters()), "the model must come back in NCHW layout"
        results[name] = {"seconds": seconds, "images_per_s": len(y) / seconds,
                         "robust_accuracy": accuracy(model, x_adv, y)}
        print(f"{name:<8} {seconds:9.1f} s  robust accuracy {results[name]['robust_accuracy']:.4f}", flush=True)
    return results


def markdown(out: dict) -> str:
    lines = [f"# aa-standard vs PGD-20 on {out['n']} MNIST test images (ℓ∞ ε = {out['eps']})", "",
             f"- model: {out['model']}; clean accuracy {out['clean_accuracy']:.4f}",
             f"- CPU: {out['cpu']}; {out['threads']} torch threads; load average {out['load_before']} before, "
             f"{out['load_after']} after",
             f"- torch {out['torch']}, pyautoattack {out['pyautoattack']}, batch {out['batch_size']}, "
             f"seed {out['seed']}",
             "", "| variant | seconds | images/s | robust accuracy | speed vs aa_nchw |", "|---|---|---|---|---|"]
    base = out["results"]["aa_nchw"]["seconds"]
    labels = {"aa_fast": "aa-standard, ours (channels-last)", "aa_nchw": "AutoAttack on the plain NCHW model",
              "pgd20": "PGD-20, ours"}
    for name, r in out["results"].items():
        lines.append(f"| {labels[name]} | {r['seconds']:.1f} | {r['images_per_s']:.2f} | {r['robust_accuracy']:.4f} "
                     f"| {base / r['seconds']:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="run folder of the SmallCNN to attack (default: train briefly)")
    p.add_argument("--n", type=int, default=1000, help="first N MNIST test images")
    p.add_argument("--eps", type=float, default=0.3, help="ℓ∞ radius in pixel units")
    p.add_argument("--batch-size", type=int, default=250, help="AutoAttack batch (our chunk) and PGD batch")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--train-steps", type=int, default=150, help="Adam steps when no --checkpoint is given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $ADVFEAT_DATA)")
    p.add_argument("--out", type=Path, required=True, help="folder for autoattack.json and autoattack.md")
    args = p.parse_args(argv)

    from benchmarks.attacks import load_mnist

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_root = resolve_data_root(args.data_root)
    model, model_name = load_smallcnn(args, data_root)
    x_test, y_test = load_mnist(data_root, train=False)
    x, y = x_test[:args.n], y_test[:args.n]
    load_before = [round(v, 2) for v in os.getloadavg()]
    clean = accuracy(model, x, y)
    results = time_variants(model, x, y, args)
    out = {"model": model_name, "n": len(y), "eps": args.eps, "batch_size": args.batch_size, "seed": args.seed,
           "threads": args.threads, "cpu": cpu_model(), "load_before": load_before,
           "load_after": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
           "pyautoattack": package_version(), "clean_accuracy": clean, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "autoattack.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "autoattack.md").write_text(markdown(out))
    print(markdown(out))
    return out


if __name__ == "__main__":
    main()
