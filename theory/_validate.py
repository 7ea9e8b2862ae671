"""Input checks shared by the theory modules (one place, so every message reads the same)."""
from __future__ import annotations

import math

import numpy as np


def nonneg_scalar(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise ValueError naming ``name`` if it is not finite and >= 0."""
    if isinstance(value, bool) or not np.isscalar(value):
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v
