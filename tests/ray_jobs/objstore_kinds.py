"""Toy kinds for the object-store tests: a 'train' stage that writes an artifact and an 'eval' stage that
reads its input's artifact by path. Each appends a line to ``config["counter"]`` per computation."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray_jobs.kinds import RunContext, register


def _count(config: dict[str, Any], line: str) -> None:
    with open(config["counter"], "a") as fh:
        fh.write(line + "\n")


@register("toy_train")
def toy_train(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Writes weights/w.json = {"w": 3 * x} and returns its value."""
    _count(config, f"train {config['x']}")
    (run_dir / "weights").mkdir(exist_ok=True)
    (run_dir / "weights" / "w.json").write_text(json.dumps({"w": 3 * config["x"]}))
    ctx.progress(step=1, steps=1)
    return {"w": 3 * config["x"], "train_acc": 0.5}


@register("toy_eval")
def toy_eval(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Reads the model's weights/w.json from its local path; returns w + offset and where it read it."""
    weights = inputs["model"] / "weights" / "w.json"
    _count(config, f"eval {config['x']}")
    return {"value": json.loads(weights.read_text())["w"] + config["offset"], "read_from": str(weights)}


@register("toy_fail_after_writing")
def toy_fail_after_writing(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path,
                           ctx: RunContext) -> dict[str, Any]:
    """Writes a partial artifact, then fails: nothing of it may reach the store."""
    _count(config, f"fail {config['x']}")
    (run_dir / "partial.bin").write_bytes(b"half")
    raise ValueError(f"toy failure for x={config['x']}")
