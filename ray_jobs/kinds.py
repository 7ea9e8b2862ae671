"""Stage kinds: the registry mapping a spec's ``kind`` to the function that executes one run.

A kind is ``fn(config: dict, inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict``:
``inputs`` maps each ``needs`` name to the producing run's folder, ``run_dir`` is this run's folder
(the kind writes its artifacts there and resumes from them), and the returned dict becomes
``metrics.json``. The real kinds import ``deep``/``theory`` inside the function, so the runner and
its tests work without them. Extra kinds (tests, new experiments) call :func:`register` in a module
listed in the spec's ``[spec].kind_modules``, which every worker imports before running.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ray_jobs.store import Store


@dataclass
class RunContext:
    """What a kind may use besides its config: where data lives and how to report progress."""

    store: Store
    run_hash: str
    data_root: str | None
    attempt: int

    def progress(self, **fields: Any) -> None:
        """Record progress (e.g. epoch=3, epochs=10) in status.json; the runner polls it."""
        self.store.update_status(self.run_hash, progress={**fields, "time": time.time()})

    def log(self, line: str) -> None:
        self.store.log(self.run_hash, line)


class KindFn(Protocol):
    def __call__(self, config: dict[str, Any], inputs: dict[str, Path], run_dir: Path,
                 ctx: RunContext) -> dict[str, Any]: ...


KINDS: dict[str, KindFn] = {}


def register(name: str) -> Callable[[KindFn], KindFn]:
    """Decorator: ``@register("square")`` makes a function available as ``kind = "square"``."""

    def deco(fn: KindFn) -> KindFn:
        KINDS[name] = fn
        return fn

    return deco


def get_kind(name: str, modules: tuple[str, ...] | list[str] = ()) -> KindFn:
    for module in modules:
        importlib.import_module(module)
    if name not in KINDS:
        raise ValueError(f"unknown stage kind {name!r}; registered: {sorted(KINDS)} (modules: {list(modules)})")
    return KINDS[name]


def dataset_path(run_dir: Path) -> Path:
    """A construct run keeps its dataset in ``run_dir/dataset``; that folder is the dataset name."""
    inner = run_dir / "dataset"
    return inner if inner.is_dir() else run_dir


def _require(inputs: dict[str, Path], name: str, kind: str) -> Path:
    if name not in inputs:
        raise ValueError(f"kind {kind!r} needs an input named {name!r} (add needs = {{ {name} = \"STAGE\" }})")
    return inputs[name]


@register("train")
def train_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.train.train on ``Recipe.from_dict(config)``; input ``dataset`` (a construct run) replaces
    ``config["dataset"]``. The run folder is train's out_dir, so a retried run resumes its checkpoint."""
    from deep.train import Recipe, train

    cfg = dict(config)
    if "dataset" in inputs:
        cfg["dataset"] = str(dataset_path(inputs["dataset"]))

    def on_epoch(*args: Any, **kwargs: Any) -> None:
        # The callback's payload is whatever train passes (an epoch number and/or a dict of metrics).
        info: dict[str, Any] = dict(kwargs)
        for arg in args:
            if isinstance(arg, dict):
                info.update({k: v for k, v in arg.items() if isinstance(v, (int, float, str))})
            elif isinstance(arg, int):
                info.setdefault("epoch", arg)
        info.setdefault("epochs", cfg.get("epochs"))
        ctx.progress(**info)

    return train(Recipe.from_dict(cfg), run_dir, data_root=ctx.data_root, progress=False, on_epoch=on_epoch)


EVAL_KEYS = {"dataset", "split", "subset", "first_n", "seed", "suite", "eps", "norm", "batch_size"}


@register("eval")
def eval_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.evaluate.evaluate of the model in input ``model`` on a split (default: its own dataset's
    test split, which for a constructed dataset is the source dataset's real test set)."""
    from deep.data import load_split
    from deep.evaluate import evaluate
    from deep.train import load_run

    unknown = set(config) - EVAL_KEYS
    if unknown:
        raise ValueError(f"kind 'eval': unknown config key(s) {sorted(unknown)}; allowed: {sorted(EVAL_KEYS)}")
    model_dir = _require(inputs, "model", "eval")
    model, recipe = load_run(model_dir)
    dataset = config.get("dataset", recipe.get("dataset"))
    split = load_split(dataset, config.get("split", "test"), data_root=ctx.data_root,
                       subset=config.get("subset"), first_n=config.get("first_n"), seed=config.get("seed", 0))
    ctx.progress(phase="evaluate", n=len(split))
    if "eps" not in config or "norm" not in config:
        raise ValueError("kind 'eval' needs config keys 'eps' and 'norm'")
    result = evaluate(model, split, config.get("suite", ["pgd-20"]), eps=config["eps"], norm=config["norm"],
                      batch_size=config.get("batch_size", 256), seed=config.get("seed", 0), progress=False)
    return {**result, "dataset": dataset, "split": config.get("split", "test"), "model_recipe": recipe}


@register("construct")
def construct_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.construct.construct_dataset from the model in input ``source`` into ``run_dir/dataset``
    (sharded, so a retried run resumes); the metrics are the dataset's provenance record."""
    from deep.construct import construct_dataset

    source = _require(inputs, "source", "construct")
    options = {k: v for k, v in config.items() if k not in ("construct", "dataset")}
    if "construct" not in config or "dataset" not in config:
        raise ValueError("kind 'construct' needs config keys 'construct' (robust|nonrobust|rand|det) and 'dataset'")
    ctx.progress(phase="construct", construct=config["construct"])
    return construct_dataset(config["construct"], source_run=source, dataset=config["dataset"],
                             out_dir=run_dir / "dataset", data_root=ctx.data_root, progress=False, **options)


@register("theory")
def theory_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Call ``config["function"]`` ("module:function", a function of the theory package) with
    ``config["kwargs"]``; it returns a JSON-serialisable dict."""
    target = config.get("function", "")
    module_name, _, fn_name = target.partition(":")
    if not module_name.startswith("theory") or not fn_name:
        raise ValueError(f"kind 'theory': config.function must be 'theory.module:function', got {target!r}")
    fn = getattr(importlib.import_module(module_name), fn_name, None)
    if fn is None:
        raise ValueError(f"kind 'theory': {module_name} has no function {fn_name!r}")
    result = fn(**config.get("kwargs", {}))
    if not isinstance(result, dict):
        raise ValueError(f"kind 'theory': {target} returned {type(result).__name__}, expected a dict")
    return result


@register("probe")
def probe_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Where a run landed: node, the GPUs Ray assigned, and the torch device deep/ would use.
    Used by ``cluster_demo.sh`` to show that GPU-requesting runs go to the GPU node and fall back
    to the CPU when torch sees no CUDA device."""
    import socket

    import ray
    import torch

    from deep.device import default_device

    time.sleep(float(config.get("sleep", 0.0)))
    return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "cuda_available": torch.cuda.is_available(),
            "device": str(default_device()), "asked_gpus": config.get("asked_gpus", 0)}
