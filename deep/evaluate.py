"""The evaluation API under its first import path: ``from deep.evaluate import evaluate, ...``.

The code lives in the :mod:`deep.evaluation` package (run, batches, result); see its docstring for
the data forms, and :mod:`deep.evaluation.result` for the JSON schema of :class:`EvalResult`.
"""
from deep.evaluation import (SCHEMA, AttackSpec, EvalResult, attack_split, build_attack, evaluate, iter_batches,
                             known_attacks, parse_attack, predict, transfer)

__all__ = ["SCHEMA", "AttackSpec", "EvalResult", "attack_split", "build_attack", "evaluate", "iter_batches",
           "known_attacks", "parse_attack", "predict", "transfer"]
