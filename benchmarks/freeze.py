"""What freezing the parameters during an attack saves (deep.attacks.base.frozen_parameters), and the
cifar-cnn step costs that ../shared/docs/MEASURED.md gives for the AVX2-only EPYC, on this machine.

    PYTHONPATH=. .venv/bin/python benchmarks/freeze.py                    # this CPU's own kernels
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=. .venv/bin/python benchmarks/freeze.py

A/B: fp32 ℓ2 PGD-10 (ε 0.5) on 128 random images, 1 thread, with the freeze and with it replaced by a
no-op, interleaved, median of 9 timed calls each (one warm-up pair); the two outputs must be equal.
MEASURED.md protocol: one SGD training step and one PGD-5 call on 128 random images, 1 thread, median
of 5. Prints the kernel level (with any cap) and the load average before and after.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import deep.attacks.base as base
from deep.attacks import PGD
from deep.models import build_model
from deep.precision import kernel_level

MODELS = (("cifar-cnn", (3, 32, 32)), ("smallcnn", (1, 28, 28)))


def seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def freeze_ab(name: str, shape: tuple[int, int, int], repeats: int = 9) -> str:
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_shape=shape)
    x, y = torch.rand(128, *shape), torch.randint(0, 10, (128,))
    freeze = base.frozen_parameters
    variants = {"frozen": freeze, "not frozen": lambda m: contextlib.nullcontext()}
    times: dict[str, list[float]] = {label: [] for label in variants}
    outputs: dict[str, torch.Tensor] = {}
    try:
        for rep in range(repeats + 1):
            for label, context in variants.items():
                base.frozen_parameters = context
                atk = PGD(model, eps=0.5, steps=10, norm="l2", generator=torch.Generator().manual_seed(1))
                dt = seconds(lambda: outputs.__setitem__(label, atk(x, y)))
                if rep:
                    times[label].append(dt)
    finally:
        base.frozen_parameters = freeze
    a, b = statistics.median(times["frozen"]), statistics.median(times["not frozen"])
    same = torch.equal(outputs["frozen"], outputs["not frozen"])
    return f"| {name} | {a:.3f} s | {b:.3f} s | {1 - a / b:.1%} | {same} |"


def measured_md_protocol() -> str:
    torch.manual_seed(0)
    model = build_model("cifar-cnn", num_classes=10, in_shape=(3, 32, 32))
    x, y = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_step() -> None:
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    atk = PGD(model, eps=0.5, steps=5, norm="l2")
    out = []
    for label, call in (("training step", train_step), ("PGD-5", lambda: atk(x, y))):
        call()
        out.append(f"{label} {statistics.median(seconds(call) for _ in range(5)):.3f} s")
    return "cifar-cnn, MEASURED.md protocol: " + ", ".join(out)


def main() -> None:
    torch.set_num_threads(1)
    before = [round(v, 2) for v in os.getloadavg()]
    rows = [freeze_ab(name, shape) for name, shape in MODELS]
    protocol = measured_md_protocol()
    print(f"kernels {kernel_level()}; 1 thread; load average {before} before, {[round(v, 2) for v in os.getloadavg()]} after\n")
    print("| model | PGD-10 frozen | not frozen | saving | same output |\n|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{protocol}")


if __name__ == "__main__":
    main()
