"""deep.data on the real MNIST / Fashion-MNIST / CIFAR-10-subset files against independently parsed
bytes, and on generated MNIST-style IDX and CIFAR-10 pickle trees, with their error paths."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deep.data import dataset_info, load_split
from deep.data import torchvision_sets


# ---------------------------------------------------------------- independent readers / writers
def read_idx(path: Path) -> np.ndarray:
    """IDX (MNIST) parsed with numpy alone: big-endian magic, dims, then uint8 data."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def write_mnist_tree(root: Path, folder: str = "MNIST", n_train: int = 12, n_test: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    out = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        out[split] = (x, y)
    return out


# ---------------------------------------------------------------- real data
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
@pytest.mark.parametrize("split,prefix,n", [("train", "train", 60000), ("test", "t10k", 10000)])
def test_real_mnist_like_matches_raw_idx_bytes(data_root, name, folder, split, prefix, n):
    s = load_split(name, split, data_root=data_root)
    raw = data_root / folder / "raw"
    x_raw = read_idx(raw / f"{prefix}-images-idx3-ubyte")
    y_raw = read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    assert s.x.shape == (n, 1, 28, 28) and s.x.dtype == torch.float32
    assert s.y.shape == (n,) and s.y.dtype == torch.int64
    assert float(s.x.min()) == 0.0 and float(s.x.max()) == 1.0
    assert np.array_equal(s.y.numpy(), y_raw.astype(np.int64))
    assert np.array_equal(np.bincount(s.y.numpy(), minlength=10), np.bincount(y_raw, minlength=10))
    for i in (0, 1, n - 1):
        assert np.allclose(s.x[i, 0].numpy(), x_raw[i] / 255.0, atol=1e-7)
    assert s.info == dataset_info(name) and s.info.num_classes == 10 and s.info.shape == (1, 28, 28)


def test_real_mnist_gz_matches_unzipped(data_root):
    # the .gz files are the originals; the unzipped IDX files torchvision reads must equal them
    raw = data_root / "MNIST" / "raw"
    labels = np.frombuffer(gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    assert np.array_equal(load_split("mnist", "test", data_root=data_root).y.numpy(), labels)


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_cifar10_subset(data_root, split):
    s = load_split("cifar10-subset", split, data_root=data_root)
    with np.load(data_root / "cifar10_subset.npz", allow_pickle=False) as f:
        x, y, classes = f[f"x_{split}"], f[f"y_{split}"], f["classes"]
    assert s.x.shape == (x.shape[0], 3, 32, 32) and x.shape[0] == (5085 if split == "train" else 1017)
    assert np.array_equal(s.y.numpy(), y)
    counts = np.bincount(y, minlength=10)
    assert counts.min() >= 0.85 * counts.mean()  # README: balanced to within about 10%
    assert np.allclose(s.x[7].permute(1, 2, 0).numpy(), x[7] / 255.0)
    assert s.info.classes == tuple(str(c) for c in classes) and s.info.classes[0] == "airplane"
    assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0


def test_real_subset_and_first_n(data_root):
    full = load_split("mnist", "test", data_root=data_root)
    first = load_split("mnist", "test", data_root=data_root, first_n=7)
    assert torch.equal(first.x, full.x[:7]) and torch.equal(first.y, full.y[:7])
    a = load_split("mnist", "test", data_root=data_root, subset=50, seed=3)
    b = load_split("mnist", "test", data_root=data_root, subset=50, seed=3)
    c = load_split("mnist", "test", data_root=data_root, subset=50, seed=4)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    # every subset image is a distinct image of the full split, with its own label
    where = {row.numpy().tobytes(): i for i, row in enumerate(full.x.flatten(1))}
    idx = [where[row.numpy().tobytes()] for row in a.x.flatten(1)]
    assert len(set(idx)) == 50 and torch.equal(full.y[idx], a.y)


def test_loaded_tensors_are_fresh_copies(data_root):
    a = load_split("cifar10-subset", "test", data_root=data_root, first_n=3)
    a.x.zero_()
    b = load_split("cifar10-subset", "test", data_root=data_root, first_n=3)
    assert float(b.x.sum()) > 0


# ---------------------------------------------------------------- generated MNIST-style files
def test_generated_mnist_read_only_and_exact(tmp_path):
    arrays = write_mnist_tree(tmp_path, "FashionMNIST")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for p in tmp_path.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        s = load_split("fashion-mnist", "train", data_root=tmp_path)
        t = load_split("fashion-mnist", "test", data_root=tmp_path)
    finally:
        for p in tmp_path.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    x, y = arrays["train"]
    assert np.allclose(s.x[:, 0].numpy() * 255.0, x, atol=1e-4)
    assert np.array_equal(s.y.numpy(), y) and np.array_equal(t.y.numpy(), arrays["test"][1])


def test_missing_mnist_names_file_and_how_to_supply(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*MNIST.*ADVFEAT_DATA"):
        load_split("mnist", "train", data_root=tmp_path)


def test_truncated_idx_is_a_value_error_naming_the_file(tmp_path):
    write_mnist_tree(tmp_path)
    f = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    torchvision_sets.load_mnist_like.cache_clear()
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_split("mnist", "train", data_root=tmp_path)


# ---------------------------------------------------------------- generated CIFAR-10
def write_cifar10_tree(root: Path, n_per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """torchvision's cifar-10-batches-py layout: pickled dicts with 'data' [n, 3072] (CHW rows) and 'labels'."""
    rng = np.random.default_rng(2)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        out[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return out


def test_generated_cifar10(tmp_path, monkeypatch):
    batches = write_cifar10_tree(tmp_path)
    # our generated files cannot match torchvision's md5s of the real ones: skip that check only here
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)
    torchvision_sets.load_cifar10.cache_clear()
    train = load_split("cifar10", "train", data_root=tmp_path)
    test = load_split("cifar10", "test", data_root=tmp_path)
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
    data, labels = batches["data_batch_2"]
    assert np.allclose(train.x[4:8].reshape(4, -1).numpy() * 255.0, data, atol=1e-4)  # rows are CHW
    assert train.y[4:8].tolist() == labels
    assert test.info.classes == tuple(f"class{i}" for i in range(10))
    torchvision_sets.load_cifar10.cache_clear()


def test_cifar10_missing_and_corrupt(tmp_path):
    torchvision_sets.load_cifar10.cache_clear()
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*download=True"):
        load_split("cifar10", "train", data_root=tmp_path)
    write_cifar10_tree(tmp_path)  # real md5 check runs: our files fail it
    with pytest.raises(ValueError, match="md5"):
        load_split("cifar10", "test", data_root=tmp_path)
