"""Stage kinds of [TS] Tsipras et al. (SPEC §3): input-gradient images and large-ε ℓ2 examples.

Both take a trained model through ``needs = { model = "STAGE" }`` (a ``train`` run), draw the first
``per_class`` examples of each class from a split of the model's dataset, call deep.experiments.tsipras,
write the arrays to an ``.npz`` in the run folder (read by figures/report_tsipras.py) and return the
summary as metrics. The trade-off and sample-size grids use the plain ``train`` / ``eval`` kinds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray_jobs import schema as S
from ray_jobs.kinds import RunContext, _eps, _require, register

GRADIENTS_FILE = "gradients.npz"
LARGE_EPS_FILE = "large_eps.npz"
_COMMON_KEYS = {"dataset", "split", "per_class", "seed"}
GRADIENT_KEYS = _COMMON_KEYS | {"clip_sigma"}
LARGE_EPS_KEYS = _COMMON_KEYS | {"eps", "alpha", "steps", "norm", "points", "strip"}


def _check_keys(kind: str, config: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"kind {kind!r}: unknown config key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _examples(config: dict[str, Any], recipe: dict[str, Any], ctx: RunContext):
    """The first ``per_class`` examples of each class of the split (default: the model's test split)."""
    from deep.data import load_split
    from deep.experiments.tsipras import pick_per_class

    dataset = config.get("dataset", recipe.get("dataset"))
    split = load_split(dataset, config.get("split", "test"), data_root=ctx.data_root)
    idx = pick_per_class(split.y, int(config.get("per_class", 1)), split.info.num_classes)
    return dataset, split.info.num_classes, split.x[idx], split.y[idx], idx


def _model_summary(recipe: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "model", "method", "norm", "eps", "epochs", "first_n", "subset", "seed")
    return {k: recipe.get(k) for k in keys}


def _common_keys() -> dict[str, S.Key]:
    return {"dataset": S.Key(S.dataset()), "split": S.Key(S.split()), "per_class": S.Key(S.integer(1)),
            "seed": S.Key(S.integer(0))}


def gradients_schema() -> S.Schema:
    return S.Schema({**_common_keys(), "clip_sigma": S.Key(S.optional(S.number(0.0, open_lo=True)))})


def large_eps_schema() -> S.Schema:
    return S.Schema({**_common_keys(), "eps": S.Key(S.eps(), required=True),
                     "alpha": S.Key(S.number(0.0, open_lo=True), required=True),
                     "steps": S.Key(S.integer(1, 100_000), required=True), "norm": S.Key(S.norm()),
                     "points": S.Key(S.integer(2, 1000)), "strip": S.Key(S.integer(1))})


@register("tsipras-gradients", schema=gradients_schema)
def gradients_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Input gradients of the model in input ``model`` ([TS] Fig. 2): ``gradients.npz`` + summary."""
    from deep.experiments.tsipras import gradient_study
    from deep.io import save_npz_compressed
    from deep.train import load_run

    _check_keys("tsipras-gradients", config, GRADIENT_KEYS)
    model, recipe = load_run(_require(inputs, "model", "tsipras-gradients"))
    dataset, _, x, y, idx = _examples(config, recipe, ctx)
    ctx.progress(phase="gradients", n=int(x.shape[0]))
    arrays, summary = gradient_study(model, x, y, clip_sigma=config.get("clip_sigma"))
    save_npz_compressed(run_dir / GRADIENTS_FILE, index=idx.numpy(), **arrays)
    return {**summary, "dataset": dataset, "split": config.get("split", "test"), "file": GRADIENTS_FILE,
            "model_recipe": _model_summary(recipe)}


@register("tsipras-large-eps", schema=large_eps_schema)
def large_eps_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    """Large-ε targeted examples on the model in input ``model`` and the interpolation toward them
    ([TS] Fig. 3/4); optional input ``judge``: another model asked to classify the examples."""
    from deep.experiments.tsipras import large_eps_study
    from deep.io import save_npz_compressed
    from deep.train import load_run

    _check_keys("tsipras-large-eps", config, LARGE_EPS_KEYS)
    for key in ("eps", "alpha", "steps"):
        if key not in config:
            raise ValueError(f"kind 'tsipras-large-eps' needs config key {key!r}")
    model, recipe = load_run(_require(inputs, "model", "tsipras-large-eps"))
    judge, judge_recipe = load_run(inputs["judge"]) if "judge" in inputs else (None, None)
    dataset, num_classes, x, y, idx = _examples(config, recipe, ctx)
    ctx.progress(phase="large-eps", n=int(x.shape[0]))
    arrays, summary = large_eps_study(
        model, x, y, num_classes=num_classes, eps=float(_eps(config["eps"])), alpha=float(config["alpha"]),
        steps=int(config["steps"]), norm=config.get("norm", "l2"), points=int(config.get("points", 9)),
        strip=int(config.get("strip", min(4, x.shape[0]))), seed=int(config.get("seed", 0)), judge=judge)
    save_npz_compressed(run_dir / LARGE_EPS_FILE, index=idx.numpy(), **arrays)
    out = {**summary, "dataset": dataset, "split": config.get("split", "test"), "file": LARGE_EPS_FILE,
           "model_recipe": _model_summary(recipe)}
    if judge_recipe is not None:
        out["judge_recipe"] = _model_summary(judge_recipe)
    return out
