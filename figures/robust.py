"""AutoAttack beside PGD, and the gradient-masking warnings, for every robust number of the report (issue 11).

Read from an eval result (a deep.evaluation.EvalResult, or the plain dict of older results):

* **AutoAttack entries**: the attacks whose suite name is one of :data:`AA_SUITES` (the keys of
  deep.attacks.autoattack.SUITES, repeated here so the report never imports torch). The AA number of a
  result is the per-example worst case over its AA entries (an example counts only if every AA entry
  left it correct), computed from the result's per-example ``correct`` vectors; when a result lacks them
  for some entry (older files, plain dicts) it is the minimum of the entries' accuracies, an upper
  bound of the worst case, and :func:`aa_exact` says so. The suite is named by :func:`aa_label`
  (``apgd-ce`` + ``apgd-t`` → "APGD-CE+T", ``aa-standard`` → "AA-standard").
* **PGD**: the attacks named ``pgd-*``; with several, the lowest accuracy. The gap is PGD − AA, in points.
* **Warnings** (:func:`warnings`): the result's ``flags`` (attack flags, AutoAttack's own checks and
  failed masking checks, ``"<source>: <message>"``) plus every failed check in an ``extra``
  ``masking_checks`` list (``[{"check", "passed", "detail"}]``, deep.evaluation.masking) not already
  there. Renderers list them under the table holding the row (:func:`warning_lines`); the number is
  always shown as measured.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

AA_SUITES: tuple[str, ...] = ("aa-standard", "aa-plus", "aa-rand", "apgd-ce", "apgd-t", "apgd-dlr", "fab-t", "square")
_DISPLAY = {"aa-standard": "AA-standard", "aa-plus": "AA-plus", "aa-rand": "AA-rand", "apgd-ce": "APGD-CE",
            "apgd-t": "APGD-T", "apgd-dlr": "APGD-DLR", "fab-t": "FAB-T", "square": "Square"}


def _attacks(r: Any) -> dict[str, float]:
    return dict(r.get("attacks") or {})


def aa_names(r: Any) -> list[str]:
    """The result's AutoAttack entries, in the order of :data:`AA_SUITES`."""
    ran = _attacks(r)
    return [name for name in AA_SUITES if name in ran]


def aa_label(names: Iterable[str]) -> str:
    """A suite's short name: "APGD-CE+T" for apgd-ce and apgd-t, else the display names joined by "+"."""
    shown = [_DISPLAY.get(n, n) for n in names]
    if len(shown) > 1 and all(s.startswith("APGD-") for s in shown):
        return "APGD-" + "+".join(s.removeprefix("APGD-") for s in shown)
    return "+".join(shown)


def _correct(r: Any) -> dict[str, np.ndarray]:
    """Per-example correctness by attack, when the result carries it as vectors (an EvalResult)."""
    got = getattr(r, "correct", None)
    return got if isinstance(got, dict) else {}


def aa_exact(r: Any) -> bool:
    """Whether :func:`aa_accuracy` is the per-example worst case (True) or the minimum (False)."""
    names = aa_names(r)
    return len(names) <= 1 or all(n in _correct(r) for n in names)


def aa_accuracy(r: Any) -> float | None:
    """The AutoAttack accuracy of a result (module docstring); None when it ran no AutoAttack entry."""
    names = aa_names(r)
    if not names:
        return None
    ran = _attacks(r)
    if len(names) == 1:
        return float(ran[names[0]])
    if aa_exact(r):
        correct = _correct(r)
        return float(np.logical_and.reduce([np.asarray(correct[n], dtype=bool) for n in names]).mean())
    return min(float(ran[n]) for n in names)


def pgd_names(r: Any) -> list[str]:
    return [name for name in _attacks(r) if name.startswith("pgd")]


def pgd_accuracy(r: Any) -> float | None:
    """The lowest accuracy under the result's ``pgd-*`` attacks; None when it ran none."""
    ran = _attacks(r)
    accs = [float(ran[n]) for n in pgd_names(r)]
    return min(accs) if accs else None


def aa_gap(r: Any) -> float | None:
    """PGD − AutoAttack accuracy (a fraction; the report shows points); None unless both ran."""
    pgd, aa = pgd_accuracy(r), aa_accuracy(r)
    return None if pgd is None or aa is None else pgd - aa


def _labels(results: Iterable[Any], names: Callable[[Any], list[str]], label: Callable[[list[str]], str]) -> str | None:
    seen = list(dict.fromkeys(label(names(r)) for r in results if names(r)))
    return " / ".join(seen) if seen else None


def aa_suite(results: Iterable[Any]) -> str | None:
    """The AA suite label(s) of the results that ran AutoAttack ("APGD-CE+T", "AA-standard / APGD-CE"),
    or None when none did: a table adds its AA columns only then."""
    return _labels(list(results), aa_names, aa_label)


def pgd_suite(results: Iterable[Any]) -> str:
    return _labels(list(results), pgd_names, lambda ns: "/".join(n.upper() for n in ns)) or "PGD"


def aa_note(results: Iterable[Any]) -> list[str]:
    """The sentence under a table with AA columns: how the AA number and the gap were computed."""
    results = list(results)
    inexact = any(not aa_exact(r) for r in results)
    how = ("the minimum of the AA entries' accuracies (these results keep no per-example correctness; the "
           "true worst case can be lower)" if inexact else "the per-example worst case over the AA entries")
    return [f"AA = AutoAttack (pyautoattack) accuracy: {how}; PGD − AA in percentage points (positive: PGD "
            "overestimated robustness); rows not evaluated with AutoAttack show —. The worst-case column is "
            "over every attack, AutoAttack included."]


def warnings(r: Any) -> list[str]:
    """The result's warnings: ``flags`` then the failed ``masking_checks`` not already among them."""
    if r is None:
        return []
    out = [str(f) for f in (r.get("flags") or [])]
    for c in r.get("masking_checks") or []:
        if not isinstance(c, dict) or c.get("passed", True):
            continue
        line = str(c.get("detail")) if c.get("check") == "autoattack" else f"masking {c.get('check')}: {c.get('detail')}"
        if line not in out:
            out.append(line)
    return out


def warning_lines(rows: Iterable[tuple[str, str, Any]]) -> list[str]:
    """Markdown under a table: one bullet per warning of each (row label, run hash, result); nothing when
    no result has a warning."""
    bullets = [f"- {label} (`{h}`): {w}" for label, h, r in rows for w in warnings(r)]
    if not bullets:
        return []
    return ["", "**Warnings** (attack flags and failed gradient-masking checks; the numbers above are shown as "
                "measured):", "", *bullets]
