"""deep.data: the restricted-ImageNet folder tree, batching, augmentation, check_images and TensorSplit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deep.data import (
    DatasetInfo,
    FolderSplit,
    TensorSplit,
    augment_batch,
    check_images,
    dataset_info,
    iterate_batches,
    load_split,
)
from deep.data import imagenet as rimnet


# ---------------------------------------------------------------- restricted ImageNet
def make_imagenet_tree(root: Path, split_folder: str, files: dict[int, int], n_classes: int = 1000) -> None:
    base = root / "imagenet" / split_folder
    rng = np.random.default_rng(7)
    for i in range(n_classes):
        (base / f"n{i:08d}").mkdir(parents=True)
    for index, count in files.items():
        for k in range(count):
            arr = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
            Image.fromarray(arr).save(base / f"n{index:08d}" / f"img_{k}.png")


def test_restricted_imagenet_ranges_match_spec():
    spec = {"dog": (151, 268), "cat": (281, 285), "frog": (30, 32), "turtle": (33, 37), "bird": (80, 100),
            "primate": (365, 382), "fish": (389, 397), "crab": (118, 121), "insect": (300, 319)}
    mapped = [rimnet.super_class_of(i) for i in range(1000)]
    for label, name in enumerate(rimnet.CLASSES):
        lo, hi = spec[name]
        assert [i for i, m in enumerate(mapped) if m == label] == list(range(lo, hi + 1))
    assert sum(m is not None for m in mapped) == sum(hi - lo + 1 for lo, hi in spec.values())


def test_restricted_imagenet_tree(tmp_path):
    # ImageNet indices: 30 frog, 151 dog, 268 dog (range end), 319 insect, 10 and 269 outside all ranges
    make_imagenet_tree(tmp_path, "train", {30: 2, 151: 1, 268: 1, 319: 1, 10: 3, 269: 2})
    s = load_split("restricted-imagenet:16", "train", data_root=tmp_path)
    assert isinstance(s, FolderSplit) and len(s) == 5
    assert sorted(s.y.tolist()) == sorted([2, 2, 0, 0, 8])
    assert s.info == DatasetInfo("restricted-imagenet:16", 9, (3, 16, 16), rimnet.CLASSES)
    batches = list(iterate_batches(s, 2, shuffle=True, seed=0))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    xs = torch.cat([b[0] for b in batches])
    assert xs.shape == (5, 3, 16, 16) and xs.dtype == torch.float32 and 0 <= float(xs.min()) <= float(xs.max()) <= 1
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == sorted(s.y.tolist())
    sub = load_split("restricted-imagenet:16", "train", data_root=tmp_path, first_n=2)
    assert len(sub) == 2 and torch.equal(sub.y, s.y[:2])
    assert dataset_info("restricted-imagenet").shape == (3, 224, 224)


def test_restricted_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"imagenet[/\\]val"):
        load_split("restricted-imagenet", "test", data_root=tmp_path)
    make_imagenet_tree(tmp_path, "val", {30: 1}, n_classes=999)
    with pytest.raises(ValueError, match="999 class folders"):
        load_split("restricted-imagenet", "test", data_root=tmp_path)
    with pytest.raises(ValueError, match="image size"):
        dataset_info("restricted-imagenet:big")


def test_restricted_imagenet_empty_ranges(tmp_path):
    make_imagenet_tree(tmp_path, "train", {10: 1})
    with pytest.raises(FileNotFoundError, match="no images"):
        load_split("restricted-imagenet:16", "train", data_root=tmp_path)


# ---------------------------------------------------------------- batching and augmentation
def _split(n: int = 10, c: int = 1, size: int = 4) -> TensorSplit:
    x = torch.rand(n, c, size, size)
    return TensorSplit(x, torch.arange(n) % 3, DatasetInfo("t", 3, (c, size, size)))


def test_iterate_batches_covers_once_and_keeps_last_partial():
    s = _split(10)
    plain = list(iterate_batches(s, 4, shuffle=False))
    assert [len(b[1]) for b in plain] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in plain]), s.x)
    shuffled = list(iterate_batches(s, 3, shuffle=True, seed=1))
    xs = torch.cat([b[0] for b in shuffled])
    order = [int(torch.nonzero((s.x.flatten(1) == r).all(1))[0]) for r in xs.flatten(1)]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert torch.equal(torch.cat([b[1] for b in shuffled]), s.y[order])
    again = torch.cat([b[0] for b in iterate_batches(s, 3, shuffle=True, seed=1)])
    other = torch.cat([b[0] for b in iterate_batches(s, 3, shuffle=True, seed=2)])
    assert torch.equal(xs, again) and not torch.equal(xs, other)
    torch.manual_seed(0)
    a = torch.cat([b[0] for b in iterate_batches(s, 3, shuffle=True)])
    torch.manual_seed(0)
    assert torch.equal(a, torch.cat([b[0] for b in iterate_batches(s, 3, shuffle=True)]))
    on_cpu = next(iterate_batches(s, 3, shuffle=False, device="cpu"))
    assert on_cpu[0].device.type == "cpu"


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_iterate_batches_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(_split(), bad, shuffle=False))


def test_iterate_batches_bad_augment():
    with pytest.raises(ValueError, match="augment"):
        next(iterate_batches(_split(), 2, shuffle=False, augment="rotate"))


def _brute_force_match(orig: torch.Tensor, out: torch.Tensor, pad: int, flips: bool) -> bool:
    """Is out some crop of the zero-padded orig (optionally flipped)? Checked over all offsets."""
    h, w = orig.shape[-2:]
    p = torch.nn.functional.pad(orig, (pad,) * 4)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = p[:, dy:dy + h, dx:dx + w]
            if torch.equal(crop, out) or (flips and torch.equal(crop.flip(-1), out)):
                return True
    return False


def test_augment_batch_is_a_padded_crop_and_flip():
    torch.manual_seed(0)
    x = torch.rand(40, 2, 6, 6) + 0.1  # no zeros, so padding is recognisable
    g = torch.Generator().manual_seed(3)
    out = augment_batch(x, g, pad=2)
    assert out.shape == x.shape
    assert all(_brute_force_match(x[i], out[i], 2, flips=True) for i in range(40))
    assert not torch.equal(out, x)
    assert torch.equal(out, augment_batch(x, torch.Generator().manual_seed(3), pad=2))
    # flip only: every image is the original or its mirror, and both happen
    flipped = augment_batch(x, g, pad=0)
    is_flip = [torch.equal(flipped[i], x[i].flip(-1)) for i in range(40)]
    assert all(f or torch.equal(flipped[i], x[i]) for i, f in enumerate(is_flip)) and 5 < sum(is_flip) < 35
    # crop without flip never mirrors
    crop_only = augment_batch(x, g, pad=1, flip=False)
    assert all(_brute_force_match(x[i], crop_only[i], 1, flips=False) for i in range(40))
    with pytest.raises(ValueError, match="pad"):
        augment_batch(x, pad=-1)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        augment_batch(x[0])


def test_iterate_batches_augment_modes():
    s = _split(8, c=3, size=6)
    s.x.add_(0.01).clamp_(max=1)
    for mode, flips in (("crop", False), (True, True)):
        for xb, _ in iterate_batches(s, 8, shuffle=False, seed=0, augment=mode):
            assert all(_brute_force_match(s.x[i], xb[i], 4, flips=flips) for i in range(8))


# ---------------------------------------------------------------- check_images and TensorSplit
def test_check_images():
    x = torch.rand(2, 1, 4, 4)
    assert check_images(x) is x
    with pytest.raises(ValueError, match="4-D"):
        check_images(x[0])
    with pytest.raises(ValueError, match="floating"):
        check_images((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        check_images(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_images(x + 1.5)
    with pytest.raises(ValueError, match="Tensor"):
        check_images(np.zeros((1, 1, 2, 2)))  # type: ignore[arg-type]


def test_tensor_split_validates():
    info = DatasetInfo("t", 3, (1, 4, 4))
    with pytest.raises(ValueError, match="float32"):
        TensorSplit(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.int64), info)
    with pytest.raises(ValueError, match="int64"):
        TensorSplit(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64), info)
    with pytest.raises(ValueError, match="info says"):
        TensorSplit(torch.zeros(2, 1, 5, 5), torch.zeros(2, dtype=torch.int64), info)
    s = TensorSplit(torch.zeros(2, 1, 4, 4), torch.tensor([0, 2]), info)
    assert len(s) == 2 and s[1][1] == 2
