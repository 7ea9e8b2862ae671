"""Toy stage kinds for the runner tests; workers import this module via ``[spec].kind_modules``.

Every kind appends one line per executed unit of work to ``config["counter"]`` (a file shared by all
workers, opened in append mode so concurrent lines do not interleave), so tests can count exactly
what was computed.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from deep.io import write_json
from ray_jobs.kinds import RunContext, register


def _count(config: dict[str, Any], line: str) -> None:
    with open(config["counter"], "a") as fh:
        fh.write(line + "\n")


@register("square")
def square(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    _count(config, f"square {config['x']}")
    time.sleep(config.get("sleep", 0.0))
    return {"value": config["x"] ** 2}


@register("add_inputs")
def add_inputs(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Reads its inputs' metrics.json: the value of its input plus config['offset']."""
    total = sum(json.loads((p / "metrics.json").read_text())["value"] for p in inputs.values())
    _count(config, f"add {config['x']} {config['offset']}")
    return {"value": total + config["offset"]}


@register("fail")
def fail(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    _count(config, f"fail {config.get('x')}")
    raise ValueError(f"toy failure for x={config.get('x')}")


@register("slow_with_checkpoint")
def slow_with_checkpoint(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path,
                         ctx: RunContext) -> dict[str, Any]:
    """Counts to config['steps'], one step per config['step_s'] seconds, checkpointing each step;
    writes its pid to pid-<attempt> so a test can kill the worker mid-way."""
    ckpt = run_dir / "ckpt.json"
    step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
    resumed_from = step
    (run_dir / f"pid-{ctx.attempt}").write_text(str(os.getpid()))
    while step < config["steps"]:
        time.sleep(config["step_s"])
        step += 1
        _count(config, f"step {config['x']} {step}")
        write_json(ckpt, {"step": step})
        ctx.progress(step=step, steps=config["steps"])
    return {"value": config["x"] ** 2, "resumed_from": resumed_from, "steps": step}
