"""Speed of our PGD against torchattacks' PGD on the same model, batch and steps, in one run (issues 3 and 12).

torchattacks pins an old ``requests``, so it never enters the project's ``.venv``. Set up once
(torch/torchvision come from the local wheel store, ~70 s)::

    python3.11 -m venv .bench-venv
    .bench-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 torchattacks numpy tqdm
    ADVFEAT_DATA=../shared/data PYTHONPATH=. .bench-venv/bin/python benchmarks/attacks.py --out runs/bench-attacks

What it does: trains the MNIST SmallCNN (``deep.models`` when present, else the TRADES SmallCNN defined
here) for a few hundred images' worth of steps so the attack has a real classifier to fool, takes a
test batch, then times (median of ``--repeats`` interleaved calls after one warm-up each) ℓ∞ PGD with
ε, α, steps, all on the same NCHW model object and batch: torchattacks.PGD (fp32), ours in fp32 forced
to stay NCHW, ours in fp32 channels-last (our default on the CPU), the same with first success (an
example broken in fp32 is attacked no further), and ours with bf16 steps, judging every iterate in fp32 or
(first success, what ``deep eval --bf16`` runs) the bf16-screened ones (deep/attacks/pgd.py); bf16 only
where ``deep.precision.native_bf16`` finds native bf16.

Output: ``--out``/attacks.json and ``--out``/attacks.md (also printed). JSON keys: ``model``, ``batch``,
``steps``, ``eps``, ``alpha``, ``check_eps``, ``random_start``, ``clean_accuracy``, ``machine`` (``cpu``,
``flags``: the bf16/AMX/AVX flags present, ``cpu_capability``, ``kernels`` (that level plus any
``ATEN_CPU_CAPABILITY`` / ``ONEDNN_MAX_CPU_ISA`` cap), ``threads``, ``native_bf16``, ``auto_precision``: what
``bf16 = auto`` picks here),
``load_before`` / ``load_after`` (os.getloadavg), ``torch``, ``torchattacks``, and ``results``: per variant
``seconds``, ``images_per_s``, ``ratio_vs_torchattacks`` (each also ``*_check_eps``: timed at the check ε
too), ``success`` / ``success_check_eps`` (fraction
of the batch misclassified after the attack, judged in fp32, at ε and at the smaller ``--check-eps``),
their binomial standard errors ``se`` / ``se_check_eps``, ``within_noise`` / ``within_noise_check_eps``
(|rate − torchattacks' rate| ≤ 2 combined SE), and ``fell_back_to_fp32`` (bf16 only).
"""
from __future__ import annotations

import argparse
import json
import math
import os
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
from deep.precision import NATIVE_CPU_FLAGS, cpu_flags, cpu_model, kernel_level, native_bf16, resolve_bf16


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


def binomial_se(p: float, n: int) -> float:
    """Standard error of a rate p measured on n independent images: sqrt(p (1 − p) / n)."""
    return math.sqrt(p * (1 - p) / n)


def within_noise(p: float, se: float, p_ref: float, se_ref: float) -> bool:
    """|p − p_ref| ≤ 2 combined SE (both 0 when both rates are 0 or 1: then only equality passes)."""
    return abs(p - p_ref) <= 2 * math.hypot(se, se_ref) + 1e-12


def machine() -> dict[str, Any]:
    """Where the figures were measured: CPU, the flags that decide bf16 speed, torch's kernel level, threads."""
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", *NATIVE_CPU_FLAGS, "amx_tile", "amx_int8") if f in flags]
    return {"cpu": cpu_model(), "flags": shown, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "kernels": kernel_level(), "threads": torch.get_num_threads(),
            "native_bf16": native_bf16(torch.device("cpu")),
            "auto_precision": "bf16" if resolve_bf16(None, torch.device("cpu")) else "fp32"}


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
    p.add_argument("--out", type=Path, default=None, help="folder for attacks.json and attacks.md")
    p.add_argument("--seed", type=int, default=0)
    return p


Maker = Callable[[float], Callable[[Tensor, Tensor], Tensor]]
LABELS = {"torchattacks": "torchattacks PGD, fp32", "ours_nchw": "ours, fp32, NCHW (forced)",
          "ours_channels_last": "ours, fp32, channels-last (default)",
          "ours_bf16": "ours, bf16 steps (fp32 decisions), channels-last",
          "ours_first": "ours, fp32, channels-last, first success",
          "ours_bf16_first": "ours, bf16 steps, first success (what `deep eval --bf16` runs)"}


def _variants(model: nn.Module, args: argparse.Namespace, torchattacks: Any, bf16: bool) -> dict[str, Maker]:
    """Each timed variant as a function of ε that builds the attack; all attack the same model object."""
    random_start = not args.no_random_start

    def ours(eps: float, layout: bool, bf16: bool = False, first: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
        atk = PGD(model, eps, args.alpha, args.steps, random_start=random_start, bf16=bf16, first_success=first,
                  generator=torch.Generator().manual_seed(args.seed))
        atk.channels_last = layout
        return atk

    variants: dict[str, Maker] = {
        "torchattacks": lambda e: torchattacks.PGD(model, eps=e, alpha=args.alpha, steps=args.steps,
                                                   random_start=random_start),
        "ours_nchw": lambda e: ours(e, False),
        "ours_channels_last": lambda e: ours(e, True),
        # first_success stops attacking an example once it is broken (deep/attacks/pgd.py): shown apart,
        # so the table separates what precision buys from what skipping broken examples buys.
        "ours_first": lambda e: ours(e, True, first=True),
    }
    if bf16:  # without native bf16 it is many times slower than fp32 (deep/precision.py): not worth timing
        variants["ours_bf16"] = lambda e: ours(e, True, bf16=True)
        variants["ours_bf16_first"] = lambda e: ours(e, True, bf16=True, first=True)
    return variants


def _measure(model: nn.Module, variants: dict[str, Maker], x: Tensor, y: Tensor,
             args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Time every variant at ε and at the check ε, with its success rate (fp32 verdicts) at each.

    Both are timed because first success gains most where the attack breaks nearly every image (it
    then stops early) and least where most images survive every step (the check ε): the second
    throughput is the per-step speed-up alone."""
    attacks = {eps: {name: make(eps) for name, make in variants.items()} for eps in (args.eps, args.check_eps)}
    timed = {eps: time_round_robin({name: (atk, x) for name, atk in attacks[eps].items()}, y, args.repeats)
             for eps in attacks}
    results: dict[str, dict[str, Any]] = {}
    for name in variants:
        (seconds, x_adv), (seconds_check, check) = timed[args.eps][name], timed[args.check_eps][name]
        rate, rate_check = success_rate(model, x_adv, y), success_rate(model, check, y)
        results[name] = {"seconds": seconds, "images_per_s": len(y) / seconds, "success": rate,
                         "se": binomial_se(rate, len(y)), "seconds_check_eps": seconds_check,
                         "images_per_s_check_eps": len(y) / seconds_check, "success_check_eps": rate_check,
                         "se_check_eps": binomial_se(rate_check, len(y))}
        if name.startswith("ours_bf16"):  # either ε's call fell back
            results[name]["fell_back_to_fp32"] = any(attacks[e][name].fell_back_to_fp32 for e in attacks)
    ref = results["torchattacks"]
    for r in results.values():
        r["ratio_vs_torchattacks"] = r["images_per_s"] / ref["images_per_s"]
        r["ratio_vs_torchattacks_check_eps"] = r["images_per_s_check_eps"] / ref["images_per_s_check_eps"]
        r["within_noise"] = within_noise(r["success"], r["se"], ref["success"], ref["se"])
        r["within_noise_check_eps"] = within_noise(r["success_check_eps"], r["se_check_eps"],
                                                   ref["success_check_eps"], ref["se_check_eps"])
    return results


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = [f"# PGD-{out['steps']} ℓ∞ (ε = {out['eps']}, α = {out['alpha']}) on {out['batch']} MNIST test images",
             "", f"- model: {out['model']}; clean accuracy {out['clean_accuracy']:.4f}",
             f"- CPU: {m['cpu']}; flags {', '.join(m['flags']) or 'none of interest'}; torch kernels "
             f"{m['kernels']}; native bf16 flags: {m['native_bf16']}; `bf16 = auto` picks {m['auto_precision']}",
             f"- {m['threads']} torch threads; load average {out['load_before']} before, {out['load_after']} after",
             f"- torch {out['torch']}, torchattacks {out['torchattacks']}, random start {out['random_start']}", "",
             f"| variant | images/s @ ε={out['eps']} | vs torchattacks | success @ ε={out['eps']} "
             f"| images/s @ ε={out['check_eps']} | vs torchattacks | success @ ε={out['check_eps']} |",
             "|---|---|---|---|---|---|---|"]
    for name, r in out["results"].items():
        lines.append(f"| {LABELS[name]} | {r['images_per_s']:.1f} | {r['ratio_vs_torchattacks']:.2f}× "
                     f"| {r['success']:.3f} ± {r['se']:.3f} | {r['images_per_s_check_eps']:.1f} "
                     f"| {r['ratio_vs_torchattacks_check_eps']:.2f}× "
                     f"| {r['success_check_eps']:.3f} ± {r['se_check_eps']:.3f} |")
    lines.append("")
    for name, r in out["results"].items():
        if name == "torchattacks":
            continue
        same = r["within_noise"] and r["within_noise_check_eps"]
        lines.append(f"- {LABELS[name]}: success rates {'within' if same else 'NOT within'} sampling noise "
                     f"(2 combined binomial SE) of torchattacks' fp32 ones at both ε"
                     + (f"; fell back to fp32: {r['fell_back_to_fp32']}" if "fell_back_to_fp32" in r else ""))
    if "ours_bf16" not in out["results"]:
        lines.append("- bf16 not timed: this CPU has no native bf16 (deep.precision.native_bf16)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    import torchattacks  # only in .bench-venv, see the module docstring

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_root = resolve_data_root(args.data_root)
    load_before = [round(v, 2) for v in os.getloadavg()]
    model, model_name = build_smallcnn()
    x_train, y_train = load_mnist(data_root, train=True)
    train_briefly(model, x_train, y_train, args.train_steps, 128, args.seed)
    x_test, y_test = load_mnist(data_root, train=False)
    x, y = x_test[: args.batch], y_test[: args.batch]
    info = machine()
    results = _measure(model, _variants(model, args, torchattacks, info["native_bf16"]), x, y, args)
    out = {"model": model_name, "batch": args.batch, "steps": args.steps, "eps": args.eps, "alpha": args.alpha,
           "check_eps": args.check_eps, "random_start": not args.no_random_start,
           "clean_accuracy": 1 - success_rate(model, x, y), "machine": info, "load_before": load_before,
           "load_after": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__,
           "torchattacks": torchattacks.__version__, "results": results}
    print(markdown(out))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "attacks.json").write_text(json.dumps(out, indent=2) + "\n")
        (args.out / "attacks.md").write_text(markdown(out))
    return out


if __name__ == "__main__":
    main()
