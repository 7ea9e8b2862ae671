"""Stage kinds: the registry mapping a spec's ``kind`` to the function that executes one run.

A kind is ``fn(config: dict, inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict``:
``inputs`` maps each ``needs`` name to the producing run's folder, ``run_dir`` is this run's folder
(the kind writes its artifacts there and resumes from them), and the returned dict becomes
``metrics.json``. The real kinds import ``deep``/``theory`` inside the function, so the runner and
its tests work without them. Extra kinds (tests, new experiments) call :func:`register` in a module
listed in the spec's ``[spec].kind_modules``, which every worker imports before running.

A kind may declare the schema of its config (``@register("name", schema=factory)``, a zero-argument
function returning a :class:`ray_jobs.schema.Schema`, called only when a spec is validated so that
importing this module stays light); ``python -m ray_jobs run`` and ``--dry-run`` check every run's
config against it before Ray starts (ray_jobs/schema.py).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ray_jobs import schema as S
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
KIND_SCHEMAS: dict[str, Callable[[], S.Schema]] = {}


def register(name: str, schema: Callable[[], S.Schema] | None = None) -> Callable[[KindFn], KindFn]:
    """Decorator: ``@register("square")`` makes a function available as ``kind = "square"``;
    ``schema`` (a factory) declares its config for validation before anything runs."""

    def deco(fn: KindFn) -> KindFn:
        KINDS[name] = fn
        if schema is not None:
            KIND_SCHEMAS[name] = schema
        return fn

    return deco


def import_kind_modules(modules: tuple[str, ...] | list[str] = ()) -> None:
    """Import the modules that register extra kinds (a spec's ``[spec].kind_modules``)."""
    for module in modules:
        importlib.import_module(module)


def get_kind(name: str, modules: tuple[str, ...] | list[str] = ()) -> KindFn:
    import_kind_modules(modules)
    if name not in KINDS:
        raise ValueError(f"unknown stage kind {name!r}; registered: {sorted(KINDS)} (modules: {list(modules)})")
    return KINDS[name]


def dataset_path(run_dir: Path) -> Path:
    """A construct run keeps its dataset in ``run_dir/dataset``; that folder is the dataset name."""
    inner = run_dir / "dataset"
    return inner if inner.is_dir() else run_dir


def store_relative(value: str, store_root: Path) -> str | None:
    """deep.runfolder.store_relative: a path's part below a store's root (``runs/<hash>/...``) or None."""
    from deep.runfolder import store_relative as relative

    return relative(value, store_root)


def resolve_dataset(value: Any, store_root: Path) -> Any:
    """deep.runfolder.resolve_dataset: a recipe's dataset, re-rooted at ``store_root`` if the store moved."""
    from deep.runfolder import resolve_dataset as resolve

    return resolve(value, store_root)


def rebase_recipe(run_dir: Path, store_root: Path) -> None:
    """Before resuming a train run: point recipe.json's dataset at this store's copy (RunFolder.rebase)."""
    from deep.runfolder import RunFolder

    RunFolder(run_dir).rebase(store_root)


def _eps(value: Any) -> float:
    """A config's ε as a number: specs may write "8/255" (deep.units.parse_eps)."""
    from deep.units import parse_eps

    return parse_eps(value) if isinstance(value, str) else value


def _require(inputs: dict[str, Path], name: str, kind: str) -> Path:
    if name not in inputs:
        raise ValueError(f"kind {kind!r} needs an input named {name!r} (add needs = {{ {name} = \"STAGE\" }})")
    return inputs[name]


def _source_input(config: dict[str, Any], inputs: dict[str, Path], kind: str) -> tuple[Path | None, str | None]:
    """(input ``source``, config ``source_model``): exactly one is given (deep.construct.source)."""
    from deep.construct.source import check_one_source

    run, name = inputs.get("source"), config.get("source_model")
    check_one_source(run, name, run_name="input 'source' (needs = { source = \"STAGE\" })",
                     model_name="config key 'source_model'", where=f"kind {kind!r}: ")
    return run, name


def _named_model(name: str, kind: str, key: str, config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(model on the CPU, as load_run gives a run's; provenance record) of a model named as
    deep.models.external loads it (deep.construct.source.load_source). A named model carries no
    dataset, so the config must name one."""
    from deep.construct.source import load_source

    if "dataset" not in config:
        raise ValueError(f"kind {kind!r}: config key {key!r} ({name!r}) needs config key 'dataset' "
                         "(a named model carries no dataset)")
    loaded = load_source(None, name, "cpu")
    return loaded.model, loaded.record


def recipe_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as ``Recipe.from_dict`` takes it: an ε written as a string ("8/255") becomes its
    number (numbers pass unchanged, so the recipe of every existing spec is the same)."""
    from deep.units import parse_eps

    return {**config, "eps": parse_eps(config["eps"])} if isinstance(config.get("eps"), str) else dict(config)


def train_schema() -> S.Schema:
    """Every Recipe field; the rules across fields are Recipe's own (``Recipe.from_dict``)."""
    from deep.train import Recipe
    from deep.train import recipe as recipe_module

    # The flat keys Recipe.from_dict takes (a Recipe composed of parts lists them in flat_keys()).
    flat = getattr(recipe_module, "flat_keys", None)
    names = flat() if flat is not None else [f.name for f in dataclasses.fields(Recipe)]
    keys = {name: S.Key(S.anything()) for name in names}
    keys["eps"] = S.Key(S.eps())
    return S.Schema(keys, extra=lambda cfg: Recipe.from_dict(recipe_config(cfg)) and None)


@register("train", schema=train_schema)
def train_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.train.train on ``Recipe.from_dict(config)``; input ``dataset`` (a construct run) replaces
    ``config["dataset"]``. The run folder is train's out_dir, so a retried run resumes its checkpoint."""
    from deep.train import Recipe, train

    cfg = recipe_config(config)
    if "dataset" in inputs:
        cfg["dataset"] = str(dataset_path(inputs["dataset"]))
        rebase_recipe(run_dir, ctx.store.root)

    def on_epoch(entry: dict[str, Any]) -> None:
        # deep.train calls this with each finished epoch's log entry (epoch 1-based, losses,
        # accuracies, timings); its scalar fields become the run's progress in status.json.
        info = {k: v for k, v in entry.items() if isinstance(v, (int, float, str))}
        info.setdefault("epochs", cfg.get("epochs"))
        ctx.progress(**info)

    return train(Recipe.from_dict(cfg), run_dir, data_root=ctx.data_root, progress=False, on_epoch=on_epoch)


EVAL_KEYS = {"dataset", "split", "subset", "first_n", "offset", "seed", "suite", "eps", "norm", "batch_size", "alpha",
             "external_model"}
MAX_BATCH = 1_000_000


def eval_schema() -> S.Schema:
    return S.Schema({
        "dataset": S.Key(S.dataset()), "split": S.Key(S.split()), "subset": S.Key(S.integer(1)),
        "first_n": S.Key(S.integer(1)), "offset": S.Key(S.integer(0)), "seed": S.Key(S.integer(0)), "suite": S.Key(S.list_of(S.attack())),
        "eps": S.Key(S.eps(), required=True), "norm": S.Key(S.norm(), required=True),
        "batch_size": S.Key(S.integer(1, MAX_BATCH)), "alpha": S.Key(S.optional(S.number(0.0, open_lo=True))),
        "external_model": S.Key(S.text())})


@register("eval", schema=eval_schema)
def eval_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.evaluate.evaluate of the model in input ``model`` on a split (default: its own dataset's
    test split, which for a constructed dataset is the source dataset's real test set). Config
    ``external_model`` (e.g. "pyautoattack:resnet18", deep.models.external) replaces input ``model``
    (exactly one; ``dataset`` is then required); its provenance is the metrics' ``model_recipe``."""
    from deep.data import load_split
    from deep.evaluate import evaluate
    from deep.evaluation.masking import attach_masking_checks

    unknown = set(config) - EVAL_KEYS
    if unknown:
        raise ValueError(f"kind 'eval': unknown config key(s) {sorted(unknown)}; allowed: {sorted(EVAL_KEYS)}")
    model, recipe = _eval_model(config, inputs)
    dataset = config.get("dataset", resolve_dataset(recipe.get("dataset"), ctx.store.root))
    split = load_split(dataset, config.get("split", "test"), data_root=ctx.data_root,
                       subset=config.get("subset"), first_n=config.get("first_n"), seed=config.get("seed", 0),
                       offset=config.get("offset", 0))
    ctx.progress(phase="evaluate", n=len(split))
    if "eps" not in config or "norm" not in config:
        raise ValueError("kind 'eval' needs config keys 'eps' and 'norm'")
    # alpha: the step size of the suite's iterative attacks (default: each attack's own rule)
    result = evaluate(model, split, config.get("suite", ["pgd-20"]), eps=_eps(config["eps"]), norm=config["norm"],
                      batch_size=config.get("batch_size", 256), alpha=config.get("alpha"), seed=config.get("seed", 0),
                      progress=False, state_dir=run_dir / "attack-state")  # a retried run resumes AutoAttack
    attach_masking_checks(result, model, split, batch_size=config.get("batch_size", 256))  # as `deep eval` does
    return {**result, "dataset": dataset, "split": config.get("split", "test"), "offset": config.get("offset", 0),
            "model_recipe": recipe}


def _eval_model(config: dict[str, Any], inputs: dict[str, Path]) -> tuple[Any, dict[str, Any]]:
    """(model, recipe) of the eval kind: input ``model`` (a run folder) or config ``external_model``."""
    from deep.train import load_run

    from deep.construct.source import check_one_source

    name = config.get("external_model")
    check_one_source(inputs.get("model"), name, run_name="input 'model' (needs = { model = \"STAGE\" })",
                     model_name="config key 'external_model'", where="kind 'eval': ")
    if name is None:
        return load_run(inputs["model"])
    model, provenance = _named_model(name, "eval", "external_model", config)
    return model, {"model": name, **provenance}


def construct_schema() -> S.Schema:
    return S.Schema({
        "construct": S.Key(S.one_of("robust", "nonrobust", "rand", "det"), required=True),
        "dataset": S.Key(S.dataset(), required=True), "min_source_acc": S.Key(S.number(0.0, 1.0)),
        "split": S.Key(S.split()), "n": S.Key(S.integer(1)), "eps": S.Key(S.number(0.0, open_lo=True)),
        "step": S.Key(S.number(0.0, open_lo=True)), "steps": S.Key(S.integer(1, 100_000)),
        "seed": S.Key(S.integer(0)), "batch_size": S.Key(S.integer(1, MAX_BATCH)),
        "shard_size": S.Key(S.integer(1)), "source_model": S.Key(S.text())})


@register("construct", schema=construct_schema)
def construct_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """deep.construct.construct_dataset from the model in input ``source`` (or the one config
    ``source_model`` names, e.g. "pyautoattack:resnet18"; exactly one) into ``run_dir/dataset``
    (sharded, so a retried run resumes); the metrics are the dataset's provenance record."""
    from deep.construct import construct_dataset

    source, source_model = _source_input(config, inputs, "construct")
    options = {k: v for k, v in config.items() if k not in ("construct", "dataset", "min_source_acc", "source_model")}
    if "construct" not in config or "dataset" not in config:
        raise ValueError("kind 'construct' needs config keys 'construct' (robust|nonrobust|rand|det) and 'dataset'")
    ctx.progress(phase="construct", construct=config["construct"])
    # min_source_acc: the same held-out check as `deep construct --min-source-acc` (deep.construct.source);
    # opt-in for specs (absent: 0, no check), as before
    return construct_dataset(config["construct"], source_run=source, source_model=source_model,
                             dataset=config["dataset"], out_dir=run_dir / "dataset", data_root=ctx.data_root,
                             progress=False,
                             min_source_acc=float(config.get("min_source_acc", 0.0)),
                             min_source_acc_override="set min_source_acc = 0 in the stage's config", **options)


TRANSFER_KEYS = {"dataset", "split", "first_n", "seed", "attack", "eps", "norm", "alpha", "batch_size", "model",
                 "source_model"}


def transfer_schema() -> S.Schema:
    return S.Schema({
        "dataset": S.Key(S.dataset()), "split": S.Key(S.split()), "first_n": S.Key(S.integer(1)),
        "seed": S.Key(S.integer(0)), "attack": S.Key(S.attack()), "eps": S.Key(S.eps(), required=True),
        "norm": S.Key(S.norm(), required=True), "alpha": S.Key(S.optional(S.number(0.0, open_lo=True))),
        "batch_size": S.Key(S.integer(1, MAX_BATCH)), "model": S.Key(S.model()), "source_model": S.Key(S.text())})


@register("transfer", schema=transfer_schema)
def transfer_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """[IL] Fig 3: deep.evaluate.transfer of the ``source`` model's adversarial examples to the
    ``target`` model (an architecture trained on D), plus the clean accuracy on the same real split of
    the optional input ``det`` (that architecture trained on D_det). ``dataset`` defaults to the
    source model's dataset; the attack is untargeted (``attack``, default pgd-20) at ``eps``/``norm``;
    ``model``, when given (the grid axis that selects the target), must be the target's architecture.
    Config ``source_model`` (e.g. "pyautoattack:resnet18", deep.models.external) replaces input
    ``source`` (exactly one; ``dataset`` is then required); its provenance (name, weights' sha256) goes
    into the metrics as ``source_provenance``."""
    from deep.data import load_split
    from deep.evaluate import predict, transfer
    from deep.train import load_run

    unknown = set(config) - TRANSFER_KEYS
    if unknown:
        raise ValueError(f"kind 'transfer': unknown config key(s) {sorted(unknown)}; allowed: {sorted(TRANSFER_KEYS)}")
    if "eps" not in config or "norm" not in config:
        raise ValueError("kind 'transfer' needs config keys 'eps' and 'norm'")
    source_run, source_model = _source_input(config, inputs, "transfer")
    if source_model is not None:
        source, provenance = _named_model(source_model, "transfer", "source_model", config)
        source_recipe: dict[str, Any] = {"model": source_model}
    else:
        source, source_recipe = load_run(source_run)
    target, target_recipe = load_run(_require(inputs, "target", "transfer"))
    if "model" in config and config["model"] != target_recipe.get("model"):  # the grid axis naming the target
        raise ValueError(f"kind 'transfer': config model {config['model']!r} but the target run trained "
                         f"{target_recipe.get('model')!r}")
    dataset = config.get("dataset", source_recipe.get("dataset"))
    split = load_split(dataset, config.get("split", "test"), data_root=ctx.data_root,
                       first_n=config.get("first_n"), seed=config.get("seed", 0))
    ctx.progress(phase="transfer", n=len(split))
    result = transfer(source, target, split, config.get("attack", "pgd-20"), eps=_eps(config["eps"]), norm=config["norm"],
                      alpha=config.get("alpha"), batch_size=config.get("batch_size", 256),
                      seed=config.get("seed", 0), progress=False)
    out: dict[str, Any] = {**result, "dataset": dataset, "split": config.get("split", "test"),
                           "source_model": source_recipe.get("model"), "target_model": target_recipe.get("model"),
                           "target_recipe": target_recipe}
    if source_model is not None:
        out["source_provenance"] = provenance
    if "det" in inputs:
        det, det_recipe = load_run(inputs["det"])
        pred, _ = predict(det, split.x, batch_size=config.get("batch_size", 256))
        out["det_test_acc"] = float((pred == split.y.cpu()).float().mean())
        out["det_model"] = det_recipe.get("model")
        out["det_recipe"] = {**det_recipe, "dataset": resolve_dataset(det_recipe.get("dataset"), ctx.store.root)}
    return out


def theory_modules() -> tuple[str, ...]:
    """The modules of the theory package ("theory", "theory.cli", ...): the only ones the kind imports."""
    import theory

    names = [m.name for m in pkgutil.iter_modules(theory.__path__) if not m.name.startswith("_")]
    return ("theory", *(f"theory.{n}" for n in sorted(names) if n != "__main__"))


def theory_function(value: Any) -> str | None:
    """None when ``value`` is "theory.module:function" of a real theory module, else what is expected."""
    module_name, _, fn_name = value.partition(":") if isinstance(value, str) else ("", "", "")
    if module_name not in theory_modules() or not fn_name.isidentifier():
        return f"'theory.module:function' with module one of {theory_modules()}"
    return None


def theory_schema() -> S.Schema:
    is_dict: S.Check = lambda v: None if isinstance(v, dict) else "a table of keyword arguments"
    return S.Schema({"function": S.Key(theory_function, required=True), "kwargs": S.Key(is_dict)})


@register("theory", schema=theory_schema)
def theory_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Call ``config["function"]`` ("module:function", a function of a module of the theory package)
    with ``config["kwargs"]``; it returns a JSON-serialisable dict."""
    target = config.get("function", "")
    expected = theory_function(target)
    if expected is not None:
        raise ValueError(f"kind 'theory': config.function must be {expected}, got {target!r}")
    module_name, _, fn_name = target.partition(":")
    fn = getattr(importlib.import_module(module_name), fn_name, None)
    if fn is None:
        raise ValueError(f"kind 'theory': {module_name} has no function {fn_name!r}")
    result = fn(**config.get("kwargs", {}))
    if not isinstance(result, dict):
        raise ValueError(f"kind 'theory': {target} returned {type(result).__name__}, expected a dict")
    return result


def probe_schema() -> S.Schema:
    return S.Schema({"sleep": S.Key(S.number(0.0, 3600.0)), "asked_gpus": S.Key(S.number(0.0)),
                     "i": S.Key(S.anything())})


@register("probe", schema=probe_schema)
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
