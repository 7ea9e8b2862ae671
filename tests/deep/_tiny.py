"""Tiny synthetic npz dataset shared by the train/evaluate/CLI tests (3 classes, 1×6×6 images), and the
flat recipe the training tests start from."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_npz(path: Path, n_train: int = 96, n_test: int = 48, seed: int = 0) -> str:
    """Write the dataset and return its deep.data name ``npz:<path>``.

    Class c brightens row-band c of the image, so a linear model learns it in a few steps."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, size=n).astype(np.int64)
        x = 0.5 + 0.05 * rng.normal(size=(n, 1, 6, 6))
        for i, c in enumerate(y):
            x[i, 0, 2 * c:2 * c + 2, :] += 0.3
        return np.clip(x, 0, 1).astype(np.float32), y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


# A 2-epoch MLP recipe on the tiny data: seconds per run. Tests override single keys.
TINY_RECIPE: dict[str, object] = dict(model="mlp", method="standard", epochs=2, batch_size=32, lr=0.05, eps=0.1,
                                      steps=2, eval_n=16, eval_steps=2, schedule="constant", seed=3)


def tiny_recipe(dataset: str, /, **overrides: object) -> dict[str, object]:
    """The flat recipe dict ``TINY_RECIPE`` on ``dataset`` with ``overrides`` applied (they may replace the
    dataset too)."""
    return {"dataset": dataset, **TINY_RECIPE, **overrides}
