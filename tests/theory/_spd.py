"""Random symmetric positive-definite matrices for the Gaussian-model tests (seeded, and a hypothesis strategy)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


def random_orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spd_from(eigs: np.ndarray, seed: int) -> np.ndarray:
    q = random_orthogonal(eigs.size, seed)
    m = (q * eigs) @ q.T
    return 0.5 * (m + m.T)


@st.composite
def spd_matrices(draw: st.DrawFn, min_d: int = 1, max_d: int = 6) -> np.ndarray:
    """Random SPD matrices: log-uniform eigenvalues in [e^-1.5, e^1.5], a random rotation."""
    d = draw(st.integers(min_d, max_d))
    logs = draw(st.lists(st.floats(-1.5, 1.5), min_size=d, max_size=d))
    seed = draw(st.integers(0, 2**31 - 1))
    return spd_from(np.exp(np.array(logs)), seed)


def quad(v: np.ndarray, sigma_inv: np.ndarray) -> np.ndarray:
    """Row-wise squared Mahalanobis norm vᵀΣ⁻¹v."""
    return np.einsum("ni,ij,nj->n", v, sigma_inv, v)
