"""Datasets by name: ``load_split`` and ``dataset_info`` (docs/DESIGN.md, deep.data).

Names: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar10-subset``, ``restricted-imagenet`` (or
``restricted-imagenet:<size>``, default 224), ``npz:<path>``, and a constructed-dataset directory
given as ``dir:<path>`` or as a plain path.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Literal

from deep.data import constructed, imagenet, npz, torchvision_sets
from deep.data.splits import (
    DatasetInfo,
    TensorSplit,
    check_labels,
    images_from_array,
    labels_from_array,
    select_indices,
)
from deep.dataroot import resolve_data_root

KNOWN_NAMES = ("mnist", "fashion-mnist", "cifar10", "cifar10-subset", "restricted-imagenet")
# Names with an argument: ``npz:<path>``, ``dir:<path>``, ``restricted-imagenet:<size>`` (besides
# constructed-dataset directories, which are plain paths).
NAME_PREFIXES = ("npz:", "dir:", "restricted-imagenet:")
CIFAR10_SUBSET_FILE = "cifar10_subset.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown dataset {name!r}; known names: {', '.join(KNOWN_NAMES)}, "
        f"'restricted-imagenet:<size>', 'npz:<path>', 'dir:<path>' (a constructed-dataset directory)"
    )


def _parse(name: str) -> tuple[str, str]:
    """(kind, argument) of a dataset name."""
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(f"dataset name must be a string, got {type(name).__name__}")
    name = os.fspath(name)
    if name in ("mnist", "fashion-mnist"):
        return "mnist-like", name
    if name == "cifar10":
        return "cifar10", ""
    if name == "cifar10-subset":
        return "npz-root", CIFAR10_SUBSET_FILE
    if name == "restricted-imagenet" or name.startswith("restricted-imagenet:"):
        size_text = name.partition(":")[2] or str(imagenet.DEFAULT_SIZE)
        if not size_text.isdigit() or not 8 <= int(size_text) <= 1024:
            raise ValueError(f"restricted-imagenet image size must be an integer in [8, 1024], got {size_text!r}")
        return "imagenet", size_text
    if name.startswith("npz:"):
        return "npz", name[4:]
    if name.startswith("dir:"):
        return "dir", name[4:]
    path = Path(name).expanduser()
    if constructed.is_constructed_dir(path):
        return "dir", name
    if os.sep in name or name.startswith((".", "~")) or path.exists():
        raise FileNotFoundError(
            f"dataset {name!r} looks like a path but {path} is not a constructed-dataset directory "
            f"(no {path / constructed.PROVENANCE}); for an npz file write 'npz:{name}'"
        )
    raise _unknown(name)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _npz_info(name: str, path: Path) -> DatasetInfo:
    arrays = npz.read_npz(path)
    classes = npz.npz_classes(arrays, path)
    x = arrays["x_test"]
    shape = tuple(images_from_array(x[:1], source=f"{path} x_test").shape[1:])
    top = max(int(arrays[k].max(initial=-1)) for k in ("y_train", "y_test")) + 1
    num_classes = len(classes) if classes is not None else top
    return DatasetInfo(name, num_classes, shape, classes)  # type: ignore[arg-type]


def dataset_info(name: str, *, data_root: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """Name, number of classes, image shape (C, H, W) and class names of a dataset."""
    kind, arg = _parse(name)
    name = os.fspath(name)
    root = resolve_data_root(data_root)
    if kind == "mnist-like":
        return DatasetInfo(name, 10, (1, 28, 28), torchvision_sets.mnist_classes(name))
    if kind == "cifar10":
        return DatasetInfo(name, 10, (3, 32, 32), CIFAR10_CLASSES)
    if kind == "npz-root":
        return replace(_npz_info(name, root / arg), name=name)
    if kind == "npz":
        return _npz_info(name, Path(arg).expanduser())
    if kind == "imagenet":
        size = int(arg)
        return DatasetInfo(name, len(imagenet.CLASSES), (3, size, size), imagenet.CLASSES)
    path = Path(arg).expanduser()
    prov = constructed.read_provenance(path)
    first = constructed.shard_paths(path)[0]
    shape = tuple(constructed.read_shard(first)["x"].shape[1:])
    classes = prov.get("classes")
    return DatasetInfo(name, prov["num_classes"], shape, tuple(classes) if classes else None)  # type: ignore[arg-type]


def _load_arrays(name: str, kind: str, arg: str, split: str, root: Path, download: bool):
    """(images array, labels array, info) of an in-memory dataset, before any conversion."""
    if kind == "mnist-like":
        x, y = torchvision_sets.load_mnist_like(name, split, str(root), download)
        return x, y, dataset_info(name)
    if kind == "cifar10":
        x, y, classes = torchvision_sets.load_cifar10(split, str(root), download)
        return x, y, DatasetInfo(name, len(classes), (3, 32, 32), classes)
    path = root / arg if kind == "npz-root" else Path(arg).expanduser()
    arrays = npz.read_npz(path)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.shape[:1] != y.shape[:1]:
        raise ValueError(f"{path}: x_{split} has {x.shape[0]} images but y_{split} has {y.shape[0]} labels")
    return x, y, _npz_info(name, path)


def _constructed(name: str, path: Path, split: str, root: Path, download: bool) -> TensorSplit | imagenet.FolderSplit:
    prov = constructed.read_provenance(path)
    info = dataset_info(name)
    if split == "train":
        x, y = constructed.load_constructed_train(path, info.num_classes)
        return TensorSplit(x, y, info)
    test = load_split(prov["source_dataset"], "test", data_root=root, download=download)
    if tuple(test.info.shape) != info.shape or test.info.num_classes != info.num_classes:
        raise ValueError(
            f"{path}: shards hold {info.shape} images of {info.num_classes} classes but the source dataset "
            f"{prov['source_dataset']!r} has {test.info.shape} images of {test.info.num_classes} classes"
        )
    info = replace(info, classes=info.classes or test.info.classes)
    if isinstance(test, imagenet.FolderSplit):
        return imagenet.FolderSplit(test.folder, test.indices, info)
    return TensorSplit(test.x, test.y, info)


def load_split(
    name: str,
    split: Literal["train", "test"],
    *,
    data_root: str | os.PathLike[str] | None = None,
    subset: int | None = None,
    first_n: int | None = None,
    seed: int = 0,
    download: bool = False,
    offset: int = 0,
) -> TensorSplit | imagenet.FolderSplit:
    """One split of a dataset as float32 NCHW images in [0, 1] and int64 labels.

    ``subset=k`` keeps k examples drawn at random with ``seed`` (in dataset order); ``first_n=k``
    keeps the first k; ``offset=j`` skips the first j (with ``first_n``: examples j .. j+k-1).
    ``restricted-imagenet`` returns a lazy :class:`FolderSplit` instead.
    """
    _check_split(split)
    kind, arg = _parse(name)
    name = os.fspath(name)
    root = resolve_data_root(data_root)
    if kind == "imagenet":
        folder = imagenet.open_restricted_imagenet(root, split, int(arg))
        idx = select_indices(len(folder), subset=subset, first_n=first_n, seed=seed, offset=offset)
        return imagenet.FolderSplit(folder, idx, dataset_info(name))
    if kind == "dir":
        full = _constructed(name, Path(arg).expanduser(), split, root, download)
        idx = select_indices(len(full), subset=subset, first_n=first_n, seed=seed, offset=offset)
        if idx is None:
            return full
        if isinstance(full, imagenet.FolderSplit):
            base = full.indices[idx] if full.indices is not None else idx
            return imagenet.FolderSplit(full.folder, base, full.info)
        return TensorSplit(full.x[idx], full.y[idx], full.info)
    x, y, info = _load_arrays(name, kind, arg, split, root, download)
    idx = select_indices(int(x.shape[0]), subset=subset, first_n=first_n, seed=seed, offset=offset)
    if idx is not None:  # select before converting: a 100-image subset of MNIST costs no 188 MB
        x, y = x[idx.numpy()], y[idx.numpy()]
    source = f"{name} {split}"
    split_ = TensorSplit(images_from_array(x, source=source), labels_from_array(y, source=source), info)
    check_labels(split_.y, info.num_classes, name=f"labels of {source}")
    return split_
