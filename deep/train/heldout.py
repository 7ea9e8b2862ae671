"""The per-epoch held-out check of deep.train: clean accuracy on the first ``recipe.heldout.n`` test
images, and (when enabled) PGD-``steps`` accuracy at ε.

When the robustness check runs and at which ε (``recipe.heldout``):
- ``robust`` None (default): on for adversarial methods, off for standard training;
- ``eps`` None (default): the training ε for adversarial methods (what the model was trained for);
  for standard training the dataset's convention (deep.conventions), else the recipe's eps.
The attack draws from its own generator seeded with recipe.seed, and the loop saves and restores the
training RNG around the check, so turning it on or off leaves the trained weights unchanged
(tests/deep/test_train_loop.py checks this).

Precision: with recipe.bf16 the check's PGD takes its steps in bf16, but both accuracies are measured
on fp32 forwards (deep.evaluation.run), so the eval_* numbers in log.jsonl / metrics.json are fp32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from deep.conventions import conventional_eps

from .methods import method_of
from .recipe import Recipe


@dataclass(frozen=True)
class HeldOutPlan:
    robust: bool
    eps: float
    norm: str
    steps: int

    @property
    def attack(self) -> str:
        return f"pgd-{self.steps}"


def heldout_plan(recipe: Recipe) -> HeldOutPlan:
    """Whether the robustness check runs and its threat model, per the rules in the module docstring."""
    h, t = recipe.heldout, recipe.threat
    adversarial = method_of(recipe.method).adversarial
    robust = adversarial if h.robust is None else h.robust
    eps = h.eps
    if eps is None:
        eps = t.eps if adversarial else (conventional_eps(recipe.data.dataset, t.norm) or t.eps)
    return HeldOutPlan(robust=robust, eps=float(eps), norm=t.norm, steps=h.steps)


def check_heldout(model: nn.Module, test_split: Any, recipe: Recipe, *, progress: bool) -> dict[str, Any]:
    """The log entry's ``eval_*`` fields: clean accuracy, and the PGD accuracy when the plan says so."""
    from deep.evaluate import evaluate

    plan = heldout_plan(recipe)
    suite = [plan.attack] if plan.robust else []
    r = evaluate(model, test_split, suite, eps=plan.eps if plan.robust else 0.0, norm=plan.norm, seed=recipe.seed,
                 progress=progress, bf16=recipe.bf16)
    out: dict[str, Any] = {"eval_clean_acc": r["clean"], "eval_n": r["n"]}
    if plan.robust:
        out.update({"eval_pgd_acc": r["attacks"][plan.attack], "eval_attack": plan.attack, "eval_eps": r["eps"]})
    return out
