"""Robustness evaluation: ``evaluate(model, data, suite, eps=...) -> EvalResult`` (SPEC §0, §4, §6).

- :mod:`.run`: ``evaluate``, ``attack_split``, ``transfer``, ``predict`` (streamed batch by batch);
- :mod:`.batches`: the accepted data forms (tensors, (x, y), TensorSplit, Dataset, DataLoader);
- :mod:`.result`: :class:`EvalResult`, its JSON schema ``advfeat.eval/1`` and the RobustBench export.

Suite names are parsed by :mod:`deep.attacks.registry` (``known_attacks()`` lists them).
"""
from deep.attacks.registry import AttackSpec, build_attack, known_attacks, parse_attack

from .batches import iter_batches
from .result import SCHEMA, EvalResult
from .run import attack_split, evaluate, predict, transfer

__all__ = ["SCHEMA", "AttackSpec", "EvalResult", "attack_split", "build_attack", "evaluate", "iter_batches",
           "known_attacks", "parse_attack", "predict", "transfer"]
