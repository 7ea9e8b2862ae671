"""How close an fp32 PGD step is to what this CPU core can do at all (issue 12: the AVX2 speed goal).

A PGD step is one forward pass and one input-gradient backward pass. With the parameters frozen (as
every attack here runs), the backward computes only the gradients with respect to activations, so
the convolutions and matrix products of a step cost twice the forward's multiply-adds, and nothing
else in the step does arithmetic at that scale. This script measures, one thread, batch ``--batch``:

1. ``flops``: floating-point operations of one step, counted by ``torch.utils.flop_counter`` (it
   follows the backward's output mask, so no weight gradient is counted);
2. ``peak_gflops``: the core's best fp32 rate, the fastest of a 3×3 convolution (64 and 128
   channels, channels-last) and a 2048² matrix product, each the median of ``--repeats`` calls;
3. ``nchw_ms`` / ``channels_last_ms``: the measured step, the model in NCHW (what torchattacks runs;
   benchmarks/attacks.py times ours forced to NCHW at 0.97-1.00x torchattacks) and channels-last
   (our default on the CPU), median of ``--repeats`` interleaved calls;
4. ``other_ms``: the part of the channels-last step that is not a convolution or matrix product
   (ReLU and pooling, their backward, elementwise work), from torch.profiler's self times.

From these: ``floor_ms = flops / peak`` (every convolution at the core's best rate, everything else
free), ``bound_ms = floor_ms + other_ms`` (the convolutions at peak, the rest as measured now) and the
largest speed-up any exact fp32 PGD could have over the NCHW step: ``nchw_ms / floor_ms`` and the
more realistic ``nchw_ms / bound_ms``. A goal above those numbers needs less arithmetic (fewer steps
or examples, lower precision), not a better implementation.

Run (the AVX2 emulation as in benchmarks/README.md; drop the two variables for this CPU's own kernels)::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        .venv/bin/python benchmarks/roofline.py --out runs/bench-roofline-avx2

Output: ``--out``/roofline.json (keys: ``machine``, ``batch``, ``threads``, ``load_before``,
``load_after``, ``peak_gflops``, ``peak_kernels`` and per model ``flops``, ``nchw_ms``,
``channels_last_ms``, ``other_ms``, ``floor_ms``, ``bound_ms``, ``max_speedup_vs_nchw``,
``bound_speedup_vs_nchw``, ``channels_last_speedup_vs_nchw``) and roofline.md, also printed.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from deep.attacks.base import frozen_parameters
from deep.device import channels_last
from deep.models import build_model
from deep.precision import cpu_model, kernel_level

MODELS = {"smallcnn": (1, 28, 28), "cifar-cnn": (3, 32, 32)}  # the laptop grid's two conv nets
GEMM_OPS = ("convolution", "mm", "addmm", "bmm")  # the ops whose arithmetic the floor counts


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: oneDNN picks and caches its kernels on the first call
    return statistics.median(seconds(fn) for _ in range(repeats))


def peak_gflops(repeats: int) -> dict[str, float]:
    """GFLOP/s of compute-bound fp32 kernels on one core; their maximum is the peak used below."""
    rates = {}
    for c in (64, 128):
        conv = nn.Conv2d(c, c, 3, padding=1, bias=False).requires_grad_(False).to(memory_format=torch.channels_last)
        x = torch.randn(64, c, 32, 32).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            t = median_seconds(lambda: conv(x), repeats)
        rates[f"conv3x3 {c}ch"] = 2 * 64 * 32 * 32 * c * c * 9 / t / 1e9
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    rates["matmul 2048"] = 2 * 2048 ** 3 / median_seconds(lambda: a @ b, repeats) / 1e9
    return rates


def pgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One forward and input-gradient backward, as every PGD iterate costs."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


def step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    # autograd.grad is not supported under the counter; .backward on a leaf input counts the same ops
    x = x.detach().requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


def other_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    """Self CPU time per step of everything but convolutions and matrix products (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    pgd_step(model, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            pgd_step(model, x, y)
    other = 0.0
    for event in prof.key_averages():
        # aten ops only: autograd-engine and profiler entries are wrappers whose own time is bookkeeping
        if event.key.startswith("aten::") and not any(op in event.key for op in GEMM_OPS):
            other += event.self_cpu_time_total
    return other / repeats / 1e6


def measure_model(name: str, batch: int, repeats: int) -> dict[str, float]:
    shape = MODELS[name]
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_shape=shape).eval()
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
    out: dict[str, float] = {}
    step = functools.partial(pgd_step, model, x, y)
    with frozen_parameters(model), torch.enable_grad():
        out["flops"] = step_flops(model, x, y)
        step()  # warm-up in each layout: oneDNN builds and caches its kernels for both
        with channels_last(model):
            step()
        nchw, last = [], []
        for _ in range(repeats):  # interleaved, so drifting clocks or load hit both layouts alike
            nchw.append(seconds(step))
            with channels_last(model):
                last.append(seconds(step))
        with channels_last(model):
            out["other_ms"] = 1e3 * other_seconds(model, x, y, repeats)
    out["nchw_ms"] = 1e3 * statistics.median(nchw)
    out["channels_last_ms"] = 1e3 * statistics.median(last)
    return out


def derive(row: dict[str, float], peak: float) -> dict[str, float]:
    floor = 1e3 * row["flops"] / (peak * 1e9)
    bound = floor + row["other_ms"]
    return {**row, "floor_ms": floor, "bound_ms": bound, "max_speedup_vs_nchw": row["nchw_ms"] / floor,
            "bound_speedup_vs_nchw": row["nchw_ms"] / bound,
            "channels_last_speedup_vs_nchw": row["nchw_ms"] / row["channels_last_ms"]}


def markdown(report: dict) -> str:
    lines = [f"CPU {report['machine']['cpu']}, kernels {report['machine']['kernels']}, {report['threads']} thread, "
             f"batch {report['batch']}, load {report['load_before']:.2f} before / {report['load_after']:.2f} after; "
             f"peak {report['peak_gflops']:.0f} GFLOP/s (" +
             ", ".join(f"{k} {v:.0f}" for k, v in report['peak_kernels'].items()) + ")", "",
             "| model | GFLOP per step | NCHW step | channels-last step | not conv/matmul | floor (all at peak) "
             "| floor + the rest as now | most speed-up over NCHW: floor / with the rest | channels-last now |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["models"].items():
        lines.append(f"| {name} | {r['flops'] / 1e9:.2f} | {r['nchw_ms']:.1f} ms | {r['channels_last_ms']:.1f} ms "
                     f"| {r['other_ms']:.1f} ms | {r['floor_ms']:.1f} ms | {r['bound_ms']:.1f} ms "
                     f"| {r['max_speedup_vs_nchw']:.2f}× / {r['bound_speedup_vs_nchw']:.2f}× "
                     f"| {r['channels_last_speedup_vs_nchw']:.2f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per measurement (default 9)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a Ray task)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=None, help="folder for roofline.json / roofline.md")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    kernels = peak_gflops(args.repeats)
    peak = max(kernels.values())
    models = {name: derive(measure_model(name, args.batch, args.repeats), peak) for name in args.models}
    report = {"machine": {"cpu": cpu_model(), "kernels": kernel_level(), "torch": torch.__version__},
              "batch": args.batch, "threads": args.threads, "load_before": load_before,
              "load_after": os.getloadavg()[0], "peak_gflops": peak, "peak_kernels": kernels, "models": models}
    text = markdown(report)
    print(text, end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "roofline.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "roofline.md").write_text(text)
    return report


if __name__ == "__main__":
    main()
