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

from ray_jobs.kinds import RunContext, _require, register

EVAL_KEYS = {"dataset", "split", "first_n", "eps", "curves", "curve_max", "curve_points", "seed"}


@register("goodfellow-logreg")
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


@register("goodfellow-eval")
def eval_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import PAPER_EPS, evaluate_fgsm

    unknown = set(config) - EVAL_KEYS
    if unknown:
        raise ValueError(f"kind 'goodfellow-eval': unknown config key(s) {sorted(unknown)}; "
                         f"allowed: {sorted(EVAL_KEYS)}")
    model, recipe, split = _model_and_split(config, _require(inputs, "model", "goodfellow-eval"), ctx)
    ctx.progress(phase="evaluate", n=len(split))
    out = evaluate_fgsm(model, split, eps=float(config.get("eps", PAPER_EPS)), curves=int(config.get("curves", 0)),
                        curve_max=float(config.get("curve_max", 1.0)),
                        curve_points=int(config.get("curve_points", 81)), seed=int(config.get("seed", 0)))
    return {**out, "model": recipe.get("model"), "method": recipe.get("method"), "model_recipe": recipe,
            "train_seconds": _train_seconds(inputs["model"])}


def _train_seconds(model_dir: Path) -> float | None:
    import json

    try:
        return json.loads((model_dir / "metrics.json").read_text()).get("seconds_total")
    except (OSError, ValueError):
        return None


@register("goodfellow-transfer")
def transfer_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import PAPER_EPS, transfer_both_ways
    from deep.train import load_run

    unknown = set(config) - {"dataset", "split", "first_n", "eps"}
    if unknown:
        raise ValueError(f"kind 'goodfellow-transfer': unknown config key(s) {sorted(unknown)}")
    model_a, recipe_a, split = _model_and_split(config, _require(inputs, "a", "goodfellow-transfer"), ctx)
    model_b, recipe_b = load_run(_require(inputs, "b", "goodfellow-transfer"))
    ctx.progress(phase="transfer", n=len(split))
    out = transfer_both_ways(model_a, model_b, split, eps=float(config.get("eps", PAPER_EPS)))
    return {**out, "a": {"model": recipe_a.get("model"), "method": recipe_a.get("method")},
            "b": {"model": recipe_b.get("model"), "method": recipe_b.get("method")}}


@register("goodfellow-l1")
def l1_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.goodfellow import run_l1_vs_adversarial

    ctx.progress(phase="fit")
    return run_l1_vs_adversarial(config, data_root=ctx.data_root)
