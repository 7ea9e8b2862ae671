"""Numeric precision chosen by the machine, never by a spec (issue 12).

bf16 autocast speed depends on the processor: on a CPU with native bf16 (``avx512_bf16`` or
``amx_bf16``) PGD ran 3.7x faster than torchattacks' fp32, while on an AVX2-only AMD EPYC the same
code was 7.6x slower for a training step and 14x slower for PGD-5 (cifar-cnn, 128 images, one
thread; ../shared/docs/MEASURED.md). So "auto" uses bf16 only where the hardware has it natively
AND a measurement on this machine shows it faster; the measurement is taken once per machine, torch
version, thread count and kernel level and cached in ``~/.cache/advfeat/precision.json``
(``$ADVFEAT_CACHE``). The kernel level is in the key because ``ATEN_CPU_CAPABILITY`` and
``ONEDNN_MAX_CPU_ISA`` change which kernels run on the same CPU: capped at AVX2 on an AMX Xeon, bf16
measured 0.07x fp32 (7 Dec), as on the AVX2-only EPYC.

``resolve_bf16(True|False, device)`` returns the explicit choice unchanged: the override.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from deep.io import read_json, write_json

log = logging.getLogger(__name__)

NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by 10 %: below that its lower logit precision is not worth it


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where the file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 natively (CUDA: compute capability >= 8; CPU: the flags)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & set(NATIVE_CPU_FLAGS))


def _probe_model() -> nn.Module:
    # A small conv net of the shape the CPU-scale specs train (cifar-cnn-like), fixed weights.
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(1024, 10))


def _time_step(model: nn.Module, x: torch.Tensor, bf16: bool, repeats: int = 3) -> float:
    times = []
    for i in range(repeats + 1):  # the first call warms up kernels and is not counted
        start = time.perf_counter()
        xi = x.clone().requires_grad_(True)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(xi).float().logsumexp(dim=1).sum()
        loss.backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure_speedup(device: torch.device) -> float:
    """fp32 time / bf16 time of one forward+backward of the probe net on 64 CIFAR-sized images."""
    model = _probe_model().to(device)
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    return _time_step(model, x, False) / _time_step(model, x, True)


def _cache_path() -> Path:
    root = os.environ.get("ADVFEAT_CACHE") or Path.home() / ".cache" / "advfeat"
    return Path(root) / "precision.json"


ISA_CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def kernel_level() -> str:
    """torch's CPU kernel level and any ISA cap set in the environment, e.g. "AVX2 ONEDNN_MAX_CPU_ISA=AVX2"."""
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAP_VARIABLES if os.environ.get(name)]
    return " ".join([torch.backends.cpu.get_cpu_capability(), *caps])


def _machine_key(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    ident = f"{device.type}|{name}|{sorted(cpu_flags() & set(NATIVE_CPU_FLAGS))}|{torch.__version__}|" \
            f"{torch.get_num_threads()}|{kernel_level() if device.type == 'cpu' else ''}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def cached_speedup(device: torch.device) -> float:
    """measure_speedup, taken once per machine and cached (a corrupt cache is measured again)."""
    path, key = _cache_path(), _machine_key(device)
    try:
        cache = read_json(path)
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)):
        return float(entry["speedup"])
    speedup = measure_speedup(device)
    cache[key] = {"speedup": speedup, "device": device.type, "cpu": cpu_model(), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "kernels": kernel_level(),
                  "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        write_json(path, cache)
    except OSError as err:  # a read-only home must not stop a run: the choice is just not remembered
        log.warning("could not cache the bf16 measurement in %s: %s", path, err)
    return speedup


def resolve_bf16(requested: bool | None, device: torch.device | str) -> bool:
    """The precision to use: an explicit True/False as given; None ("auto") decides by the machine."""
    if requested is not None:
        if not isinstance(requested, bool):
            raise ValueError(f"bf16 must be true, false or unset (auto), got {requested!r}")
        return requested
    device = torch.device(device)
    if not native_bf16(device):
        log.info("precision: fp32 (no native bf16 on %s)", cpu_model() if device.type == "cpu" else device)
        return False
    speedup = cached_speedup(device)
    use = speedup >= MIN_SPEEDUP
    log.info("precision: %s (bf16 measured %.2fx the speed of fp32 on this machine)", "bf16" if use else "fp32",
             speedup)
    return use
