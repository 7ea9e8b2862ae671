"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own readers, read-only.

torchvision 0.29 reads MNIST-style IDX files straight from ``<root>/<Name>/raw`` and CIFAR-10 from
``<root>/cifar-10-batches-py``; neither writes anything unless ``download=True``, so the shared,
read-only data root is safe. The raw uint8 arrays are cached per process; each call converts them
into fresh float tensors so no caller can corrupt the cache.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torchvision

# name -> (torchvision class, folder under the root, files looked for, class names)
_MNIST_LIKE = {
    "mnist": (torchvision.datasets.MNIST, "MNIST"),
    "fashion-mnist": (torchvision.datasets.FashionMNIST, "FashionMNIST"),
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FOLDER = "cifar-10-batches-py"


def mnist_classes(name: str) -> tuple[str, ...]:
    return tuple(_MNIST_LIKE[name][0].classes)


@lru_cache(maxsize=8)
def load_mnist_like(name: str, split: str, root: str, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and int64 labels [N] of ``mnist`` or ``fashion-mnist``."""
    cls, folder = _MNIST_LIKE[name]
    raw = Path(root) / folder / "raw"
    if not download:
        missing = [f for f in _IDX_FILES[split] if not (raw / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{name} {split}: looked for {', '.join(missing)} in {raw} and did not find it. Put the "
                f"unzipped IDX files of torchvision's layout there, or point --data-root / $ADVFEAT_DATA "
                f"at a folder holding {folder}/raw/, or pass download=True on a machine with a network."
            )
    try:
        ds = cls(root=root, train=(split == "train"), download=download)
    except RuntimeError as exc:
        if "not found" in str(exc):  # only reachable with download=True (the files were checked above)
            raise FileNotFoundError(f"{name} {split}: torchvision found no dataset under {raw}: {exc}") from exc
        raise ValueError(f"{name} {split}: corrupt or truncated IDX file in {raw} ({_IDX_FILES[split]}): {exc}") from exc
    except (AssertionError, ValueError, IndexError) as exc:  # torchvision asserts on a truncated IDX file
        raise ValueError(f"{name} {split}: corrupt or truncated IDX file in {raw} ({_IDX_FILES[split]}): {exc!r}") from exc
    x, y = ds.data.numpy(), ds.targets.numpy().astype(np.int64)
    if x.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{name} {split}: IDX files in {raw} disagree: images {x.shape}, labels {y.shape}")
    return x, y


@lru_cache(maxsize=4)
def load_cifar10(split: str, root: str, download: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """uint8 images [N, 32, 32, 3] (HWC), int64 labels and class names of the full CIFAR-10."""
    folder = Path(root) / CIFAR10_FOLDER
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"cifar10 {split}: looked for {folder} (torchvision's cifar-10-batches-py) and did not find it. "
            f"Unpack cifar-10-python.tar.gz under the data root (--data-root / $ADVFEAT_DATA), or pass "
            f"download=True on a machine with a network. Offline here, the shared subset is 'cifar10-subset'."
        )
    try:
        ds = torchvision.datasets.CIFAR10(root=root, train=(split == "train"), download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted" (md5 mismatch or missing)
        raise ValueError(f"cifar10 {split}: files under {folder} are missing or fail torchvision's md5 check: {exc}") from exc
    except Exception as exc:  # a truncated batch file fails inside unpickling
        raise ValueError(f"cifar10 {split}: could not read the batch files under {folder}: {exc!r}") from exc
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes)
