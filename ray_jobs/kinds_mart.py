"""Stage kinds of [MART] Wang et al. 2020 (SPEC §6); the logic lives in deep.train and deep.experiments.mart.

- ``mart-train``: the plain ``train`` kind, plus an optional input ``init`` (a train run) whose weights
  start the run (``Recipe.init_from``; the CPU-scale spec fine-tunes a standard model adversarially).
- ``mart-pseudolabel``: the unlabeled-data setting's training set: the first ``labeled_n`` training
  images with their labels + the next ``unlabeled_n`` labeled by the standard model in input ``source``,
  written to ``run_dir/dataset`` (a constructed-dataset directory a ``mart-train`` stage takes as
  input ``dataset``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray_jobs import schema as S
from ray_jobs.kinds import RunContext, _require, register, train_kind, train_schema

PSEUDO_KEYS = {"dataset", "labeled_n", "unlabeled_n"}


@register("mart-train", schema=train_schema)
def mart_train_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    cfg, rest = dict(config), dict(inputs)
    if "init" in rest:
        cfg["init_from"] = str(rest.pop("init"))
    return train_kind(cfg, rest, run_dir, ctx)


def pseudolabel_schema() -> S.Schema:
    return S.Schema({"dataset": S.Key(S.dataset(), required=True), "labeled_n": S.Key(S.integer(1), required=True),
                     "unlabeled_n": S.Key(S.integer(1), required=True)})


@register("mart-pseudolabel", schema=pseudolabel_schema)
def pseudolabel_kind(config: dict[str, Any], inputs: dict[str, Path], run_dir: Path, ctx: RunContext) -> dict[str, Any]:
    from deep.experiments.mart import write_pseudo_labeled
    from deep.train import load_run

    unknown = set(config) - PSEUDO_KEYS
    if unknown or PSEUDO_KEYS - set(config):
        raise ValueError(f"kind 'mart-pseudolabel': config needs exactly the keys {sorted(PSEUDO_KEYS)}, "
                         f"got {sorted(config)}")
    source = _require(inputs, "source", "mart-pseudolabel")
    model, recipe = load_run(source)
    ctx.progress(phase="pseudo-label", n=config["unlabeled_n"])
    prov = write_pseudo_labeled(model, config["dataset"], config["labeled_n"], config["unlabeled_n"],
                                run_dir / "dataset", data_root=ctx.data_root, source_run=str(source))
    return {**prov, "source_recipe": {k: recipe.get(k) for k in ("dataset", "method", "first_n", "epochs")}}
