"""Datasets by name as in-memory tensors, batching and augmentation (docs/DESIGN.md, deep.data)."""
from deep.data.batches import augment_batch, iterate_batches
from deep.data.imagenet import FolderSplit
from deep.data.registry import KNOWN_NAMES, NAME_PREFIXES, dataset_info, load_split
from deep.data.splits import DatasetInfo, TensorSplit, check_images, check_labels

__all__ = [
    "DatasetInfo",
    "FolderSplit",
    "KNOWN_NAMES",
    "NAME_PREFIXES",
    "TensorSplit",
    "augment_batch",
    "check_images",
    "check_labels",
    "dataset_info",
    "iterate_batches",
    "load_split",
]
