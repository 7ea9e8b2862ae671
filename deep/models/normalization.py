"""Per-dataset input normalisation (mean, std per channel), used as the models' defaults."""
from __future__ import annotations

MNIST = ((0.1307,), (0.3081,))
FASHION_MNIST = ((0.2860,), (0.3530,))
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IDENTITY = ((0.0,), (1.0,))

_BY_NAME = {
    "mnist": MNIST,
    "fashion-mnist": FASHION_MNIST,
    "cifar10": CIFAR10,
    "cifar10-subset": CIFAR10,
    "restricted-imagenet": IMAGENET,
}


def default_normalization(dataset_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the named dataset's training images; a constructed-dataset directory uses its
    source dataset's; anything else (npz files) gets the identity (0,), (1,)."""
    name = str(dataset_name)
    base = name.partition(":")[0] if name.startswith("restricted-imagenet") else name
    if base in _BY_NAME:
        return _BY_NAME[base]
    source = _constructed_source(name)
    if source is not None and source != name:
        return default_normalization(source)
    return IDENTITY


def _constructed_source(name: str) -> str | None:
    from deep.data.constructed import is_constructed_dir, read_provenance
    from pathlib import Path

    path = Path(name[4:] if name.startswith("dir:") else name).expanduser()
    if not is_constructed_dir(path):
        return None
    return read_provenance(path)["source_dataset"]
