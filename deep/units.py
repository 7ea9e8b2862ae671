"""Threat-model units typed by users: ε ("8/255", "0.031", 0.5) and the norm ("Linf", "l2").

Conventions (SPEC §0): images live in [0, 1] ("pixel units"), so an ℓ∞ radius above 1 covers the
whole box and an ℓ2 radius above sqrt(C·H·W) (the box's diameter) does too. Both are refused as
almost certainly a units mistake (e.g. 8 typed for 8/255). Every error names the value and what is
allowed. Kept free of torch so spec and CLI parsing stay cheap.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from numbers import Real

NORMS: tuple[str, ...] = ("linf", "l2")
LINF_EPS_MAX = 1.0
# Used when the image shape is unknown: the ℓ2 diameter of a 3×224×224 box (the largest images here).
L2_EPS_MAX = math.sqrt(3 * 224 * 224)

_FRACTION = re.compile(r"^\s*(?P<num>[^/]+?)\s*/\s*(?P<den>[^/]+?)\s*$")


def _finite_nonneg(text: str, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {text!r} is not a number; write e.g. 0.031 or 8/255") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {text!r} must be a finite number >= 0 (e.g. 0.031 or 8/255)")
    return value


def parse_eps(value: str | float, *, name: str = "eps") -> float:
    """A radius ε ≥ 0 from a number or a string "0.031" / "8/255"; ValueError naming the value otherwise.

    No upper limit here (it depends on the norm): use :func:`check_eps` for that.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number or a string like '8/255', got {value!r}")
    if isinstance(value, Real):
        return _finite_nonneg(repr(float(value)), name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a number or a string like '8/255', got {type(value).__name__} {value!r}")
    m = _FRACTION.match(value)
    if m is None:
        return _finite_nonneg(value.strip(), name)
    num = _finite_nonneg(m["num"], f"{name} {value!r} numerator")
    den = _finite_nonneg(m["den"], f"{name} {value!r} denominator")
    if den == 0:
        raise ValueError(f"{name}: {value!r} divides by zero; write e.g. 8/255")
    return num / den


def parse_norm(norm: object) -> str:
    """'linf' or 'l2' from any capitalisation ("Linf", "L2", "LINF"); ValueError otherwise."""
    if isinstance(norm, str) and norm.strip().lower() in NORMS:
        return norm.strip().lower()
    raise ValueError(f"norm must be one of {NORMS} (any capitalisation, e.g. 'Linf', 'L2'), got {norm!r}")


def eps_limit(norm: str, shape: Sequence[int] | None = None) -> float:
    """Largest meaningful ε: 1 for ℓ∞; sqrt(C·H·W) for ℓ2 (L2_EPS_MAX when the shape is unknown)."""
    if parse_norm(norm) == "linf":
        return LINF_EPS_MAX
    return math.sqrt(math.prod(int(s) for s in shape)) if shape else L2_EPS_MAX


def check_eps(eps: str | float, norm: str, shape: Sequence[int] | None = None, *, name: str = "eps") -> float:
    """parse_eps plus the per-norm upper limit of :func:`eps_limit`; returns ε as a float."""
    value = parse_eps(eps, name=name)
    hi = eps_limit(norm, shape)
    if value > hi:
        where = f" for images of shape {tuple(shape)}" if shape else ""
        raise ValueError(f"{name} = {value:g} is out of range for norm {parse_norm(norm)!r}: must lie in "
                         f"[0, {hi:.6g}]{where} (pixel units, images in [0, 1]; did you mean {value:g}/255?)")
    return value


def format_eps(eps: float) -> str:
    """ε as users write it: a short decimal stays ("0.3", "0.031"); k/255 otherwise becomes "8/255"."""
    short = repr(float(eps))
    if len(short) <= 6:
        return short.removesuffix(".0") if short.endswith(".0") else short
    k = round(float(eps) * 255)
    return f"{k}/255" if math.isclose(k / 255, float(eps), rel_tol=1e-6) else f"{float(eps):g}"
