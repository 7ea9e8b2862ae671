"""Speed of our PGD against torchattacks' PGD on the same model, batch and steps, in one run (issue 3, "Speed").

torchattacks pins an old ``requests``, so it never enters the project's ``.venv``. Set up once
(torch/torchvision come from the local wheel store, ~70 s)::

    python3.11 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 torchattacks numpy tqdm
    ADVFEAT_DATA=../shared/data PYTHONPATH=. .bench-venv/bin/python benchmarks/attacks.py   # MNIST SmallCNN, PGD-40

What it does: trains the MNIST SmallCNN (``deep.models`` when present, else the TRADES SmallCNN defined
here) for a few hundred images' worth of steps so the attack has a real classifier to fool, takes a
test batch, then times (median of ``--repeats`` interleaved calls after one warm-up each) ℓ∞ PGD with ε, α, steps:
torchattacks.PGD and ours on the same (NCHW) model, ours forced to stay NCHW, ours under bf16 autocast, and
torchattacks on a hand-converted channels-last copy of the model. For each it
prints images/s, the ratio to torchattacks, and the attack success rate (fraction of the batch
misclassified after the attack) at ε and at a smaller ``--check-eps`` where success is not saturated.
The results also go to ``--json`` (a fixed schema, see ``main``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks import PGD
from deep.dataroot import resolve_data_root


class SmallCNN(nn.Module):
    """TRADES/Madry MNIST SmallCNN (conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10), used if deep.models is absent."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(0.5), nn.Linear(200, 200), nn.ReLU(),
        )
        self.head = nn.Linear(200, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def build_smallcnn() -> tuple[nn.Module, str]:
    try:
        from deep.models import build_model
    except ImportError:
        return SmallCNN(), "benchmarks.attacks.SmallCNN (deep.models not available)"
    return build_model("smallcnn", num_classes=10, in_shape=(1, 28, 28)), "deep.models smallcnn"


def load_mnist(data_root: Path, train: bool) -> tuple[Tensor, Tensor]:
    from torchvision.datasets import MNIST

    if not (data_root / "MNIST" / "raw").is_dir():
        raise FileNotFoundError(f"MNIST not found: expected {data_root / 'MNIST' / 'raw'}; "
                                "pass --data-root or set ADVFEAT_DATA (e.g. ../shared/data)")
    ds = MNIST(root=str(data_root), train=train, download=False)
    return ds.data.float().div(255).unsqueeze(1), ds.targets.long()


def train_briefly(model: nn.Module, x: Tensor, y: Tensor, steps: int, batch: int, seed: int) -> None:
    """Standard training (Adam, lr 1e-3) for `steps` batches: enough for ~95% accuracy on MNIST."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()


def time_round_robin(attacks: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Tensor]], y: Tensor,
                     repeats: int) -> dict[str, tuple[float, Tensor]]:
    """Median seconds per call for each attack, after one warm-up call each.

    The calls are interleaved (A B C D A B C D ...) so that a change in machine load (the CPU is
    shared) hits every variant alike instead of whichever ran last.
    """
    last = {name: atk(x, y) for name, (atk, x) in attacks.items()}
    times: dict[str, list[float]] = {name: [] for name in attacks}
    for _ in range(repeats):
        for name, (atk, x) in attacks.items():
            start = time.perf_counter()
            last[name] = atk(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), last[name]) for name in attacks}


def success_rate(model: nn.Module, x_adv: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x_adv).argmax(1) != y).float().mean().item()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128, help="images per attack call")
    p.add_argument("--steps", type=int, default=40, help="PGD steps")
    p.add_argument("--eps", type=float, default=0.3, help="ℓ∞ radius in pixel units [0, 1]")
    p.add_argument("--alpha", type=float, default=0.01, help="ℓ∞ step size in pixel units")
    p.add_argument("--check-eps", type=float, default=0.1, help="smaller ε for comparing success rates unsaturated")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per variant (median reported)")
    p.add_argument("--train-steps", type=int, default=150, help="Adam steps of batch 128 before attacking")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-random-start", action="store_true", help="start both attacks at x (deterministic)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw (default: $ADVFEAT_DATA)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--seed", type=int, default=0)
    return p


Maker = Callable[[float], Callable[[Tensor, Tensor], Tensor]]


def _variants(model: nn.Module, x: Tensor, args: argparse.Namespace, torchattacks: Any) -> dict[str, tuple[Maker, Tensor]]:
    """Each timed variant: a function of ε that builds the attack, and its input batch."""
    random_start = not args.no_random_start

    def ours(eps: float, bf16: bool = False, layout: bool | None = None) -> Callable[[Tensor, Tensor], Tensor]:
        atk = PGD(model, eps, args.alpha, args.steps, random_start=random_start, bf16=bf16,
                  generator=torch.Generator().manual_seed(args.seed))
        atk.channels_last = layout  # None: our default (channels-last for conv nets on the CPU)
        return atk

    def theirs(model_: nn.Module, eps: float) -> Callable[[Tensor, Tensor], Tensor]:
        return torchattacks.PGD(model_, eps=eps, alpha=args.alpha, steps=args.steps, random_start=random_start)

    # The fair pair is the first two: the same NCHW model object, as a user builds it. The last row
    # gives torchattacks a model converted to channels-last by hand, to show where our gain comes from.
    model_cl = build_smallcnn()[0]
    model_cl.load_state_dict(model.state_dict())
    model_cl = model_cl.to(memory_format=torch.channels_last).eval()
    return {
        "torchattacks": (lambda e: theirs(model, e), x),
        "ours": (lambda e: ours(e), x),
        "ours_nchw_forced": (lambda e: ours(e, layout=False), x),
        "ours_bf16": (lambda e: ours(e, bf16=True), x),
        "torchattacks_cl_model": (lambda e: theirs(model_cl, e), x),
    }


def _measure(model: nn.Module, variants: dict[str, tuple[Maker, Tensor]], y: Tensor,
             args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Time every variant at ε, then its success rate at ε and at the check ε."""
    timed = time_round_robin({name: (make(args.eps), inputs) for name, (make, inputs) in variants.items()},
                             y, args.repeats)
    results = {}
    for name, (make, inputs) in variants.items():
        seconds, x_adv = timed[name]
        check = make(args.check_eps)(inputs, y)
        results[name] = {"seconds": seconds, "images_per_s": args.batch / seconds,
                         "success": success_rate(model, x_adv, y), "success_check_eps": success_rate(model, check, y)}
    base = results["torchattacks"]["images_per_s"]
    for r in results.values():
        r["ratio_vs_torchattacks"] = r["images_per_s"] / base
    return results


def _print_table(out: dict, args: argparse.Namespace) -> None:
    print(f"{out['model']}, batch {args.batch}, PGD-{args.steps} ℓ∞ ε={args.eps} α={args.alpha}, "
          f"{args.threads} threads, clean acc {out['clean_accuracy']:.3f}")
    print(f"{'variant':<20}{'img/s':>9}{'ratio':>8}{'success@ε':>11}{f'success@{args.check_eps}':>14}")
    for name, r in out["results"].items():
        print(f"{name:<20}{r['images_per_s']:>9.1f}{r['ratio_vs_torchattacks']:>8.2f}"
              f"{r['success']:>11.3f}{r['success_check_eps']:>14.3f}")


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    import torchattacks  # only in .bench-venv, see the module docstring

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_root = resolve_data_root(args.data_root)
    model, model_name = build_smallcnn()
    x_train, y_train = load_mnist(data_root, train=True)
    train_briefly(model, x_train, y_train, args.train_steps, 128, args.seed)
    x_test, y_test = load_mnist(data_root, train=False)
    x, y = x_test[: args.batch], y_test[: args.batch]
    clean_acc = 1 - success_rate(model, x, y)
    results = _measure(model, _variants(model, x, args, torchattacks), y, args)
    out = {"model": model_name, "batch": args.batch, "steps": args.steps, "eps": args.eps, "alpha": args.alpha,
           "check_eps": args.check_eps, "random_start": not args.no_random_start, "threads": args.threads,
           "clean_accuracy": clean_acc, "torch": torch.__version__, "torchattacks": torchattacks.__version__,
           "results": results}
    _print_table(out, args)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
