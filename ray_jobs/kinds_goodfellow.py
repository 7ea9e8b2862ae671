"""Stage kinds of the Goodfellow et al. experiments (SPEC §4); thin wrappers of deep.experiments.goodfellow.

- ``goodfellow-logreg``: logistic regression on two MNIST classes, FGSM error and Figure 2's data.
- ``goodfellow-eval``: clean/FGSM error and confidence on mistakes of the model in input ``model``
  (a ``train`` run), with Figure 4's logit curves when ``curves`` > 0.
- ``goodfellow-transfer``: FGSM examples of input ``a`` scored on input ``b`` and back.
- ``goodfellow-l1``: exact adversarial vs L1-regularised logistic regression on the real two-class data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray_jobs import schema as S
from ray_jobs.kinds import RunContext, _eps, _require, register, train_schema

EVAL_KEYS = {"dataset", "split", "first_n", "eps", "curves", "curve_max", "curve_points", "seed"}


def logreg_schema() -> S.Schema:
    """run_logreg_binary's own keys plus any Recipe field (it trains through deep.train)."""
    keys = dict(train_schema().keys)
    keys.update({"dataset": S.Key(S.dataset()), "classes": S.Key(S.list_of(S.integer(0))),
                 "eps": S.Key(S.number(0.0)), "n_show": S.Key(S.integer(0))})  # a number: run_logreg_binary floats it
    return S.Schema(keys)


def eval_schema() -> S.Schema:
    return S.Schema({"dataset": S.Key(S.dataset()), "split": S.Key(S.split()), "first_n": S.Key(S.integer(1)),
                     "eps": S.Key(S.eps()), "curves": S.Key(S.integer(0)), "curve_max": S.Key(S.number(0.0)),
                     "curve_points": S.Key(S.integer(2, 100_000)), "seed": S.Key(S.integer(0))})


def transfer_schema() -> S.Schema:
    return S.Schema({"dataset": S.Key(S.dataset()), "split": S.Key(S.split()), "first_n": S.Key(S.integer(1)),
                     "eps": S.Key(S.eps())})


def l1_schema() -> S.Schema:
    return S.Schema({"dataset": S.Key(S.dataset()), "classes": S.Key(S.list_of(S.integer(0))),
                     "subset": S.Key(S.integer(1)), "seed": S.Key(S.integer(0)), "eps": S.Key(S.number(0.0)),
                     "alpha": S.Key(S.number(0.0, 1.0)), "l1_lams": S.Key(S.list_of(S.number(0.0))),
                     "maxiter": S.Key(S.integer(1)), "plain": S.Key(S.boolean())})


@register("goodfellow-logreg", schema=logreg_schema)
def logreg_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import run_logreg_binary

    ctx.progress(phase="logreg")
    return run_logreg_binary(config, run_dir, data_root=ctx.data_root,
                             on_epoch=lambda entry: ctx.progress(epoch=entry.get("epoch")))


def _model_and_split(config: dict[str, Any], model_dir: Path, ctx: RunContext):
    from deep.data import load_split
    from deep.train import load_run

    model, recipe = load_run(model_dir)
    dataset = config.get("dataset", recipe.get("dataset"))
    split = load_split(dataset, config.get("split", "test"), data_root=ctx.data_root, first_n=config.get("first_n"))
    return model, recipe, split


@register("goodfellow-eval", schema=eval_schema)
def eval_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import PAPER_EPS, evaluate_fgsm

    unknown = set(config) - EVAL_KEYS
    if unknown:
        raise ValueError(f"kind 'goodfellow-eval': unknown config key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(EVAL_KEYS)}")
    model, recipe, split = _model_and_split(config, _require(inputs, "model", "goodfellow-eval"), ctx)
    ctx.progress(phase="evaluate", n=len(split))
    out = evaluate_fgsm(model, split, eps=float(_eps(config.get("eps", PAPER_EPS))), curves=int(config.get("curves", 0)),
                        curve_max=float(config.get("curve_max", 1.0)),
                        curve_points=int(config.get("curve_points", 81)), seed=int(config.get("seed", 0)))
    return {**out, "model": recipe.get("model"), "method": recipe.get("method"), "model_recipe": recipe,
            "train_seconds": _train_seconds(inputs["model"])}


def _train_seconds(model_dir: Path) -> float | None:
    from deep.runfolder import RunFolder

    try:
        return RunFolder(model_dir).read_metrics().seconds_total
    except (OSError, ValueError):
        return None


@register("goodfellow-transfer", schema=transfer_schema)
def transfer_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import PAPER_EPS, transfer_both_ways
    from deep.train import load_run

    unknown = set(config) - {"dataset", "split", "first_n", "eps"}
    if unknown:
        raise ValueError(f"kind 'goodfellow-transfer': unknown config key(s) {sorted(unknown)}")
    model_a, recipe_a, split = _model_and_split(config, _require(inputs, "a", "goodfellow-transfer"), ctx)
    model_b, recipe_b = load_run(_require(inputs, "b", "goodfellow-transfer"))
    ctx.progress(phase="transfer", n=len(split))
    out = transfer_both_ways(model_a, model_b, split, eps=float(_eps(config.get("eps", PAPER_EPS))))
    return {**out, "a": {"model": recipe_a.get("model"), "method": recipe_a.get("method")},
            "b": {"model": recipe_b.get("model"), "method": recipe_b.get("method")}}


@register("goodfellow-l1", schema=l1_schema)
def l1_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import run_l1_vs_adversarial

    ctx.progress(phase="fit")
    return run_l1_vs_adversarial(config, data_root=ctx.data_root)
