"""Restricted ImageNet (Tsipras et al. / Ilyas et al., SPEC §5): 9 super-classes of ImageNet.

Expected layout under the data root (the usual ImageFolder arrangement of ILSVRC-2012)::

    <root>/imagenet/train/<wnid>/*.JPEG    1000 wnid folders (n01440764, ...), sorted = ImageNet index
    <root>/imagenet/val/<wnid>/*.JPEG      the validation images sorted into the same 1000 folders

The ImageNet class index of a wnid is its position among the 1000 sorted wnid folders, so all 1000
must be present (empty folders are fine). Only the folders inside the super-class ranges are scanned;
images are read lazily (never all in memory), resized so the short side is size·256/224 and
centre-cropped to size × size.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torchvision import transforms

from deep.data.splits import DatasetInfo

# (super-class name, first ImageNet index, last ImageNet index), inclusive, in label order (SPEC §5)
SUPER_CLASSES: tuple[tuple[str, int, int], ...] = (
    ("dog", 151, 268),
    ("cat", 281, 285),
    ("frog", 30, 32),
    ("turtle", 33, 37),
    ("bird", 80, 100),
    ("primate", 365, 382),
    ("fish", 389, 397),
    ("crab", 118, 121),
    ("insect", 300, 319),
)
CLASSES = tuple(name for name, _, _ in SUPER_CLASSES)
NUM_IMAGENET_CLASSES = 1000
DEFAULT_SIZE = 224
SPLIT_FOLDERS = {"train": "train", "test": "val"}


def super_class_of(imagenet_index: int) -> int | None:
    """The restricted label of an ImageNet class index, or None when outside every range."""
    for label, (_, lo, hi) in enumerate(SUPER_CLASSES):
        if lo <= imagenet_index <= hi:
            return label
    return None


class _RestrictedFolder(torchvision.datasets.ImageFolder):
    """ImageFolder whose class map sends each in-range wnid straight to its super-class label."""

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        wnids = sorted(e.name for e in Path(directory).iterdir() if e.is_dir())
        if len(wnids) != NUM_IMAGENET_CLASSES:
            raise ValueError(
                f"restricted-imagenet: {directory} holds {len(wnids)} class folders; the ImageNet index of a "
                f"wnid is its sorted position, so all {NUM_IMAGENET_CLASSES} wnid folders must be present"
            )
        mapping = {w: s for i, w in enumerate(wnids) if (s := super_class_of(i)) is not None}
        return list(CLASSES), mapping


class FolderSplit(torch.utils.data.Dataset):
    """A lazy split: images decoded on access. ``y`` holds all labels; there is no ``x``."""

    def __init__(self, folder: torchvision.datasets.ImageFolder, indices: torch.Tensor | None, info: DatasetInfo) -> None:
        self.folder = folder
        self.indices = indices
        self.info = info
        targets = torch.tensor(folder.targets, dtype=torch.int64)
        self.y = targets if indices is None else targets[indices]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = index if self.indices is None else int(self.indices[index])
        return self.folder[i]

    def __repr__(self) -> str:
        return f"FolderSplit({self.info.name!r}, n={len(self)}, shape={self.info.shape})"


def open_restricted_imagenet(root: Path, split: str, size: int) -> torchvision.datasets.ImageFolder:
    folder = root / "imagenet" / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise FileNotFoundError(
            f"restricted-imagenet {split}: looked for {folder} and did not find it. Arrange ILSVRC-2012 as "
            f"<root>/imagenet/{{train,val}}/<wnid>/*.JPEG and point --data-root / $ADVFEAT_DATA at <root>."
        )
    tf = transforms.Compose([
        transforms.Resize(round(size * 256 / 224)),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
    ])
    ds = _RestrictedFolder(str(folder), transform=tf, allow_empty=True)
    if len(ds) == 0:
        raise FileNotFoundError(f"restricted-imagenet {split}: no images in the super-class folders of {folder}")
    return ds
