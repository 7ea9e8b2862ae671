"""Datasets stored as one ``.npz`` (``x_train, y_train, x_test, y_test`` [, ``classes``]), no pickles.

Images may be uint8 (divided by 255) or float in [0, 1], NHWC or NCHW (the channel axis is the one
of size 1 or 3). The shared CIFAR-10 subset (``cifar10_subset.npz``) is one such file.
"""
from __future__ import annotations

import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


@lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    """All arrays of the file (cached per path and modification time)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in REQUIRED_KEYS if k not in f.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing}; an npz dataset needs {list(REQUIRED_KEYS)}")
            return {k: f[k] for k in f.files}
    except ValueError as exc:
        if "missing arrays" in str(exc):
            raise
        raise ValueError(f"{path}: not a readable npz dataset ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: corrupt or truncated npz file ({exc!r})") from exc


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an npz dataset; FileNotFoundError when absent, ValueError when corrupt."""
    if not path.is_file():
        raise FileNotFoundError(
            f"npz dataset: looked for {path} and did not find it. Give an existing file as 'npz:<path>', "
            f"or, for 'cifar10-subset', point --data-root / $ADVFEAT_DATA at the folder holding cifar10_subset.npz."
        )
    return _read(str(path.resolve()), path.stat().st_mtime_ns)


def npz_classes(arrays: dict[str, np.ndarray], path: Path) -> tuple[str, ...] | None:
    if "classes" not in arrays:
        return None
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "US":
        raise ValueError(f"{path}: 'classes' must be a 1-D array of strings, got {classes.dtype} {classes.shape}")
    return tuple(str(c) for c in classes)
