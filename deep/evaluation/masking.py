"""Gradient-masking checks run after an evaluation (issue 11 item 2): warnings shown beside the number.

A robust accuracy can be high because the attacks fail rather than because the model is robust
(obfuscated gradients, Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"). Each check below tests one symptom and returns a :class:`MaskingCheck`; a failed check
is a warning to show in the JSON and the report, never a reason to hide or change the number.

Checks (``Check`` values):

- ``monotone-eps``: the robust accuracy never rises as ε grows over the evaluated grid.
- ``large-eps``: at the largest ε the norm allows (``deep.units.eps_limit``: 1 for ℓ∞, the box's
  diameter sqrt(C·H·W) for ℓ2) every image can be moved onto an image of another class, so the true
  robust accuracy is 0 for any model that predicts two classes; an attack (default PGD-20) must get there.
- ``black-box``: a black-box attack (Square) never breaks an example that the white-box attacks keep.
- ``zero-gradients``: share of correctly classified examples whose cross-entropy input gradient is
  exactly zero (a rounding/sign step, saturated softmax): gradient attacks cannot move them.
- ``randomised``: two forward passes in eval mode on the same input differ (dropout kept on, random
  input transforms); such a model calls for ``aa-rand`` (AutoAttack's EOT version) in the suite.
- ``attack-gap``: the package's own attacks (FGSM, PGD, CW) must not leave clearly more examples robust
  than AutoAttack's entries on the same images: a gap above :data:`GAP_PP` points says the simple
  attacks are blocked by something the adaptive ones get around (Croce & Hein 2020 found such gaps in
  many published defences); the worst case over the whole suite is still the number reported.
- ``autoattack``: each flag AutoAttack's own checks raised (``AutoAttackSuite.flags``), relayed.

JSON form (``checks_to_json``): ``[{"check": str, "passed": bool, "detail": str}, ...]``, kept by
:func:`attach_masking_checks` under the result's top-level key ``masking_checks``.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks.base import eval_mode, model_device
from deep.units import eps_limit, parse_norm

from .batches import iter_batches
from .result import EvalResult

BLACK_BOX: frozenset[str] = frozenset({"square"})
# Suite entries that contain a black-box attack, so they cannot stand for "the white-box attacks".
_CONTAINS_BLACK_BOX: frozenset[str] = frozenset({"aa-standard", "aa-plus", "square"})


class Check(str, enum.Enum):
    MONOTONE_EPS = "monotone-eps"
    LARGE_EPS = "large-eps"
    BLACK_BOX = "black-box"
    ZERO_GRADIENTS = "zero-gradients"
    RANDOMISED = "randomised"
    ATTACK_GAP = "attack-gap"
    AUTOATTACK = "autoattack"


GAP_PP = 5.0  # points; beyond the paired sampling noise of a few hundred images for a real masking signal


@dataclass(frozen=True)
class MaskingCheck:
    check: Check
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"check": self.check.value, "passed": self.passed, "detail": self.detail}


def checks_to_json(checks: Iterable[MaskingCheck]) -> list[dict[str, object]]:
    return [c.to_dict() for c in checks]


def warnings_only(checks: Iterable[MaskingCheck]) -> list[MaskingCheck]:
    return [c for c in checks if not c.passed]


def check_monotone_eps(accuracy_by_eps: Mapping[float, float]) -> MaskingCheck:
    """Robust accuracy (fractions) over an ε grid must not rise with ε."""
    if len(accuracy_by_eps) < 2:
        return MaskingCheck(Check.MONOTONE_EPS, True, "fewer than two eps values evaluated; nothing to compare")
    grid = sorted(accuracy_by_eps.items())
    rises = [(e0, a0, e1, a1) for (e0, a0), (e1, a1) in zip(grid, grid[1:]) if a1 > a0]
    if not rises:
        return MaskingCheck(Check.MONOTONE_EPS, True, f"non-increasing over eps {[e for e, _ in grid]}")
    text = "; ".join(f"{a0:.4f} at eps {e0:g} -> {a1:.4f} at eps {e1:g}" for e0, a0, e1, a1 in rises)
    return MaskingCheck(Check.MONOTONE_EPS, False, f"robust accuracy rises with eps: {text}")


def large_eps(norm: str, image_shape: Sequence[int]) -> float:
    """The check's ε: the largest the norm allows on [0, 1] images of this shape (see module docstring)."""
    return eps_limit(parse_norm(norm), image_shape)


def check_large_eps(model: nn.Module, data: Any, *, norm: str, attack: str = "pgd-20", seed: int = 0,
                    batch_size: int = 256) -> MaskingCheck:
    """Robust accuracy under ``attack`` at :func:`large_eps` must be exactly 0. data: any form
    ``deep.evaluation.iter_batches`` takes (tensors (x, y), a split, a Dataset, a DataLoader)."""
    from deep.attacks.registry import build_attack, parse_attack

    device, atk, eps = model_device(model), None, 0.0
    correct = total = 0
    for x, y in iter_batches(data, batch_size):
        if atk is None:
            eps = large_eps(norm, x.shape[1:])
            atk = build_attack(parse_attack(attack), model, eps=eps, norm=parse_norm(norm), seed=seed)
        x_adv = atk(x.to(device), y.to(device))
        with torch.no_grad(), eval_mode(model):
            correct += int((model(x_adv).argmax(1).cpu() == y).sum())
        total += int(y.shape[0])
    acc = correct / max(total, 1)
    detail = f"{attack} at eps {eps:g} ({norm}): robust accuracy {acc:.4f} on {total} examples"
    return MaskingCheck(Check.LARGE_EPS, acc == 0.0, detail + ("" if acc == 0 else "; expected 0"))


def check_black_box(correct: Mapping[str, Tensor]) -> MaskingCheck:
    """Per-example correctness [N] bool per attack: Square must break nothing the white-box attacks keep."""
    black = [n for n in correct if n in BLACK_BOX]
    white = [n for n in correct if n not in _CONTAINS_BLACK_BOX]
    if not black or not white:
        return MaskingCheck(Check.BLACK_BOX, True, "needs a black-box (square) and a white-box attack in the suite")
    kept_white = torch.stack([correct[n].bool() for n in white]).all(0)
    broken_black = ~torch.stack([correct[n].bool() for n in black]).all(0)
    only = int((kept_white & broken_black).sum())
    detail = (f"{only} of {kept_white.numel()} examples broken by {', '.join(black)} but by none of "
              f"{', '.join(white)}")
    return MaskingCheck(Check.BLACK_BOX, only == 0, detail)


def check_attack_gap(correct: Mapping[str, Tensor]) -> MaskingCheck:
    """Per-example correctness per attack: our attacks' worst case may exceed AutoAttack's by at most GAP_PP."""
    from deep.attacks.autoattack import SUITES

    aa = [n for n in correct if n in SUITES]
    ours = [n for n in correct if n not in SUITES and n != "clean"]
    if not aa or not ours:
        return MaskingCheck(Check.ATTACK_GAP, True, "needs an AutoAttack entry and one of the package's attacks")
    acc_ours = float(torch.stack([correct[n].bool() for n in ours]).all(0).float().mean()) * 100
    acc_aa = float(torch.stack([correct[n].bool() for n in aa]).all(0).float().mean()) * 100
    detail = (f"{', '.join(ours)} leave {acc_ours:.1f}% robust, AutoAttack ({', '.join(aa)}) {acc_aa:.1f}%: "
              f"gap {acc_ours - acc_aa:+.1f} points (limit {GAP_PP:g})")
    return MaskingCheck(Check.ATTACK_GAP, acc_ours - acc_aa <= GAP_PP, detail)


def zero_gradient_share(model: nn.Module, data: Any, *, batch_size: int = 256) -> float:
    """Share of the examples the model classifies correctly whose CE input gradient is exactly zero."""
    zero = total = 0
    device = model_device(model)
    with eval_mode(model), torch.enable_grad():
        for x, y in iter_batches(data, batch_size):
            xb, yb = x.to(device).clone().requires_grad_(True), y.to(device)
            logits = model(xb)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, yb, reduction="sum"), xb, allow_unused=True)
            ok = logits.argmax(1) == yb
            flat_zero = torch.ones_like(ok) if grad is None else grad.flatten(1).abs().sum(1) == 0
            zero += int((flat_zero & ok).sum())
            total += int(ok.sum())
    return zero / total if total else 0.0


def check_zero_gradients(model: nn.Module, data: Any, *, batch_size: int = 256) -> MaskingCheck:
    share = zero_gradient_share(model, data, batch_size=batch_size)
    return MaskingCheck(Check.ZERO_GRADIENTS, share == 0.0,
                        f"{share:.4f} of the correctly classified examples have an all-zero input gradient")


def is_randomised(model: nn.Module, x: Tensor) -> bool:
    """Two eval-mode forward passes on the same input differ (beyond float noise)."""
    with torch.no_grad(), eval_mode(model):
        xb = x.to(model_device(model))
        a, b = model(xb).float().nan_to_num(), model(xb).float().nan_to_num()  # NaN logits are another error
    scale = 1.0 + float(a.abs().max()) if a.numel() else 1.0
    return float((a - b).abs().max()) > 1e-5 * scale


def check_randomised(model: nn.Module, x: Tensor, suite: Sequence[str] = ()) -> MaskingCheck:
    if not is_randomised(model, x):
        return MaskingCheck(Check.RANDOMISED, True, "two eval-mode forward passes agree")
    has_rand = "aa-rand" in suite
    return MaskingCheck(Check.RANDOMISED, has_rand,
                        "two eval-mode forward passes on the same input differ (a randomised model): "
                        + ("aa-rand is in the suite" if has_rand else "add aa-rand (AutoAttack with EOT) to the suite"))


def relay_autoattack(flags: Mapping[str, Sequence[str]]) -> list[MaskingCheck]:
    """{suite name: AutoAttack's flag messages} -> one failed check per message, or one passed check."""
    checks = [MaskingCheck(Check.AUTOATTACK, False, f"{name}: {msg}") for name, msgs in flags.items() for msg in msgs]
    if flags and not checks:
        checks.append(MaskingCheck(Check.AUTOATTACK, True, f"no AutoAttack flags ({', '.join(flags)})"))
    return checks


def masking_checks(model: nn.Module, data: Any, *, norm: str, correct: Mapping[str, Tensor],
                   suite: Sequence[str] = (), accuracy_by_eps: Mapping[float, float] | None = None,
                   autoattack_flags: Mapping[str, Sequence[str]] | None = None, large_eps_attack: str | None = "pgd-20",
                   seed: int = 0, batch_size: int = 256) -> list[MaskingCheck]:
    """Every check for one evaluation. ``correct``: per-attack per-example correctness [N] (bool);
    ``accuracy_by_eps``: worst-case robust accuracy per evaluated ε; ``large_eps_attack=None`` skips
    the large-ε attack (it costs one more attack over the data)."""
    first_x, _ = next(iter(iter_batches(data, batch_size)))
    checks = [check_monotone_eps(accuracy_by_eps or {}), check_black_box(correct), check_attack_gap(correct),
              check_zero_gradients(model, data, batch_size=batch_size), check_randomised(model, first_x, suite)]
    if large_eps_attack is not None:
        checks.append(check_large_eps(model, data, norm=norm, attack=large_eps_attack, seed=seed,
                                      batch_size=batch_size))
    checks.extend(relay_autoattack(autoattack_flags or {}))
    return checks


def check_evaluation(model: nn.Module, data: Any, result: EvalResult, *, batch_size: int = 256,
                     accuracy_by_eps: Mapping[float, float] | None = None,
                     large_eps_attack: str | None = None) -> list[MaskingCheck]:
    """:func:`masking_checks` for an :class:`EvalResult` of ``evaluate(model, data, ...)``; AutoAttack's
    flags are read back from ``result.flags`` (``"<suite name>: <message>"``)."""
    from deep.attacks.autoattack import SUITES

    correct = {name: torch.as_tensor(result.correct[name]) for name in result.attacks if name in result.correct}
    relayed: dict[str, list[str]] = {name: [] for name in result.attacks if name in SUITES}
    for line in result.flags:
        name, _, message = line.partition(": ")
        if name in relayed:
            relayed[name].append(message)
    return masking_checks(model, data, norm=result.norm, correct=correct, suite=list(result.attacks),
                          accuracy_by_eps=accuracy_by_eps, autoattack_flags=relayed,
                          large_eps_attack=large_eps_attack, seed=result.seed or 0, batch_size=batch_size)


def flag_lines(checks: Iterable[MaskingCheck]) -> list[str]:
    """The failed checks as ``EvalResult.flags`` lines: ``"masking <check>: <detail>"`` (AutoAttack's own
    flags are already there, so they are not repeated)."""
    return [f"masking {c.check.value}: {c.detail}" for c in checks if not c.passed and c.check is not Check.AUTOATTACK]


def attach_masking_checks(result: EvalResult, model: nn.Module, data: Any, *,
                          batch_size: int = 256) -> list[MaskingCheck]:
    """The cheap checks of :func:`check_evaluation` (no large-ε attack: one gradient pass over the data and
    two forward passes of one batch) written into ``result``: every check under
    ``result.extra["masking_checks"]`` (:func:`checks_to_json`), the failed ones appended to
    ``result.flags`` (:func:`flag_lines`). The numbers are never touched. ``deep eval`` and the ray_jobs
    ``eval`` kind both call this, so their results carry the same checks. A clean-only evaluation (an
    empty suite) has no robust number to check: ``masking_checks`` is then [] and nothing is computed
    (the clean evaluations of whole test sets in the specs stay as cheap as before)."""
    checks = check_evaluation(model, data, result, batch_size=batch_size) if result.attacks else []
    result.extra["masking_checks"] = checks_to_json(checks)
    result.flags.extend(flag_lines(checks))
    return checks
