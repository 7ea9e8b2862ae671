"""deep.units: ε as users type it, the norm in any capitalisation, per-norm limits, RobustBench ε text."""
from __future__ import annotations

import math

import pytest

from deep.units import L2_EPS_MAX, check_eps, eps_limit, format_eps, parse_eps, parse_norm


@pytest.mark.parametrize("value,expected", [
    ("8/255", 8 / 255), (" 8 / 255 ", 8 / 255), ("0.031", 0.031), (0.5, 0.5), (0, 0.0), ("1e-2", 0.01), (3, 3.0),
])
def test_parse_eps_accepts_numbers_and_fractions(value, expected: float) -> None:
    assert parse_eps(value) == expected


@pytest.mark.parametrize("value,match", [
    ("8/0", "'8/0' divides by zero"), ("-1", "'-1' must be a finite number >= 0"),
    ("nan", "'nan' must be a finite"), ("inf", "'inf' must be a finite"), (float("nan"), "'nan' must be"),
    (-0.5, "'-0.5' must be"), ("abc", "'abc' is not a number"), ("1/2/3", "is not a number"),
    ("-8/255", "numerator"), (True, "got True"), (None, "got NoneType"), ("", "is not a number"),
])
def test_parse_eps_refuses_bad_values_naming_them(value, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_eps(value)


def test_norm_is_case_insensitive() -> None:
    assert [parse_norm(n) for n in ("Linf", "LINF", "linf", "L2", "l2")] == ["linf"] * 3 + ["l2"] * 2
    for bad in ("l1", "inf", None, 2):
        with pytest.raises(ValueError, match="norm must be one of"):
            parse_norm(bad)


def test_eps_limits_per_norm() -> None:
    assert eps_limit("linf") == 1.0 and eps_limit("L2", (1, 28, 28)) == 28.0
    assert eps_limit("l2") == L2_EPS_MAX == math.sqrt(3 * 224 * 224)
    assert check_eps("8/255", "Linf") == 8 / 255 and check_eps(1, "linf") == 1.0
    assert check_eps(28, "l2", (1, 28, 28)) == 28
    with pytest.raises(ValueError, match=r"eps = 8 is out of range for norm 'linf': must lie in \[0, 1\]"):
        check_eps(8, "linf")
    with pytest.raises(ValueError, match=r"must lie in \[0, 28\] for images of shape \(1, 28, 28\)"):
        check_eps(28.5, "l2", (1, 28, 28))
    with pytest.raises(ValueError, match="out of range"):
        check_eps(1e30, "l2")


def test_format_eps_writes_k_over_255() -> None:
    assert [format_eps(e) for e in (8 / 255, 2 / 255, 0.3, 0.031, 0.5, 0.2, 1.0, 0.0)] == \
        ["8/255", "2/255", "0.3", "0.031", "0.5", "0.2", "1", "0"]
    assert parse_eps(format_eps(8 / 255)) == 8 / 255
