"""deep.data on npz files and constructed-dataset directories: layouts, bad content, names, splits,
and the subset / first_n validation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deep.data import KNOWN_NAMES, DatasetInfo, dataset_info, load_split


# ---------------------------------------------------------------- npz writer
def write_npz(path: Path, **overrides) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 4, size=20).astype(np.int64),
        "x_test": rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 4, size=10).astype(np.int64),
        "classes": np.array(["a", "b", "c", "d"]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


# ---------------------------------------------------------------- npz
def test_npz_uint8_nhwc(tmp_path):
    arrays = write_npz(tmp_path / "d.npz")
    s = load_split(f"npz:{tmp_path / 'd.npz'}", "train")
    assert s.x.shape == (20, 3, 8, 8)
    assert np.allclose(s.x.permute(0, 2, 3, 1).numpy(), arrays["x_train"] / 255.0)
    info = dataset_info(f"npz:{tmp_path / 'd.npz'}")
    assert info == DatasetInfo(f"npz:{tmp_path / 'd.npz'}", 4, (3, 8, 8), ("a", "b", "c", "d"))


@pytest.mark.parametrize("layout", ["nchw1", "nhwc1", "nchw3", "nhw"])
def test_npz_float_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    base = rng.random((5, 1 if layout != "nchw3" else 3, 6, 6), dtype=np.float32)  # NCHW truth
    stored = {"nchw1": base, "nchw3": base, "nhwc1": base.transpose(0, 2, 3, 1), "nhw": base[:, 0]}[layout]
    y = np.arange(5, dtype=np.int64) % 2
    np.savez(tmp_path / "f.npz", x_train=stored, y_train=y, x_test=stored, y_test=y)
    s = load_split(f"npz:{tmp_path / 'f.npz'}", "test")
    assert np.array_equal(s.x.numpy(), base)
    assert s.info.num_classes == 2 and s.info.classes is None


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"y_test": None}, "missing arrays"),
        ({"x_train": np.full((20, 8, 8, 3), np.nan, dtype=np.float32)}, "NaN"),
        ({"x_train": np.full((20, 8, 8, 3), 2.0, dtype=np.float32)}, r"\[0, 1\]"),
        ({"x_train": np.zeros((20, 8, 8, 5), dtype=np.uint8)}, "channel axis"),
        ({"x_train": np.zeros((20, 64), dtype=np.uint8)}, "3-D or 4-D"),
        ({"y_train": np.zeros(19, dtype=np.int64)}, "labels"),
        ({"y_train": np.zeros(20, dtype=np.float32)}, "integer"),
        ({"y_train": np.full(20, 7, dtype=np.int64)}, r"\[0, 3\]"),
        ({"x_train": np.zeros((20, 8, 8, 3), dtype=np.int32)}, "uint8 or float"),
        ({"x_train": np.array([None] * 20, dtype=object)}, "readable"),
    ],
)
def test_npz_bad_content(tmp_path, overrides, match):
    write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(ValueError, match=match):
        load_split(f"npz:{tmp_path / 'bad.npz'}", "train")


def test_npz_missing_and_truncated(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_split(f"npz:{tmp_path / 'nope.npz'}", "train")
    write_npz(tmp_path / "t.npz")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.npz"):
        load_split(f"npz:{tmp_path / 't.npz'}", "train")
    with pytest.raises(FileNotFoundError, match="cifar10_subset.npz.*ADVFEAT_DATA"):
        load_split("cifar10-subset", "train", data_root=tmp_path)


# ---------------------------------------------------------------- names, splits, subset validation
def test_unknown_name_and_split(tmp_path):
    with pytest.raises(ValueError, match="known names: mnist, fashion-mnist"):
        load_split("imagenet-21k", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("svhn")
    with pytest.raises(FileNotFoundError, match="not a constructed-dataset directory"):
        load_split(str(tmp_path / "missing_dir"), "train")
    write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(f"npz:{tmp_path / 'd.npz'}", "val")  # type: ignore[arg-type]
    assert set(KNOWN_NAMES) >= {"mnist", "fashion-mnist", "cifar10", "cifar10-subset", "restricted-imagenet"}


@pytest.mark.parametrize("kw", [{"subset": 0}, {"subset": 21}, {"first_n": -1}, {"first_n": True},
                                {"subset": 2.5}, {"subset": 3, "first_n": 3}])
def test_subset_first_n_validation(tmp_path, kw):
    write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="subset|first_n"):
        load_split(f"npz:{tmp_path / 'd.npz'}", "train", **kw)


def test_subset_bounds_inclusive(tmp_path):
    write_npz(tmp_path / "d.npz")
    name = f"npz:{tmp_path / 'd.npz'}"
    full = load_split(name, "train")
    assert torch.equal(load_split(name, "train", subset=20).x, full.x)  # all 20, in dataset order
    assert len(load_split(name, "train", first_n=1)) == 1


def test_offset_selects_disjoint_shards_that_cover_the_split(tmp_path):
    write_npz(tmp_path / "d.npz")
    name = f"npz:{tmp_path / 'd.npz'}"
    full = load_split(name, "train")
    shards = [load_split(name, "train", first_n=5, offset=j) for j in (0, 5, 10, 15)]
    assert torch.equal(torch.cat([s.x for s in shards]), full.x) and torch.equal(torch.cat([s.y for s in shards]), full.y)
    assert torch.equal(load_split(name, "train", offset=17).x, full.x[17:])  # alone: the rest of the split
    assert torch.equal(load_split(name, "train", offset=0).x, full.x)


@pytest.mark.parametrize("kw, match", [({"offset": -1}, "offset must be"), ({"offset": 20}, "offset must be"),
                                       ({"offset": True}, "offset must be"), ({"offset": 18, "first_n": 3}, "first_n"),
                                       ({"offset": 2, "subset": 3}, "not with subset")])
def test_offset_validation(tmp_path, kw, match):
    write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match=match):
        load_split(f"npz:{tmp_path / 'd.npz'}", "train", **kw)


# ---------------------------------------------------------------- constructed-dataset directories
def write_constructed(root: Path, source: str, shards: list[tuple[np.ndarray, np.ndarray]], **prov) -> Path:
    (root / "shards").mkdir(parents=True)
    meta = {"source_dataset": source, "num_classes": 4, "kind": "d_rand"} | prov
    (root / "provenance.json").write_text(json.dumps(meta))
    for i, (x, y) in enumerate(shards):
        np.savez(root / "shards" / f"shard-{i:05d}.npz", x=x, y=y)
    return root


def _shards(rng, sizes=(3, 5)):
    return [(rng.random((n, 3, 8, 8), dtype=np.float32), rng.integers(0, 4, n).astype(np.int64)) for n in sizes]


def test_constructed_dir(tmp_path):
    arrays = write_npz(tmp_path / "src.npz")
    shards = _shards(np.random.default_rng(5))
    d = write_constructed(tmp_path / "built", f"npz:{tmp_path / 'src.npz'}", shards)
    for name in (str(d), f"dir:{d}"):
        train = load_split(name, "train")
        assert np.array_equal(train.x.numpy(), np.concatenate([s[0] for s in shards]))
        assert np.array_equal(train.y.numpy(), np.concatenate([s[1] for s in shards]))
        test = load_split(name, "test")
        assert np.array_equal(test.y.numpy(), arrays["y_test"])
        assert test.info.num_classes == 4 and train.info.shape == (3, 8, 8)
    assert dataset_info(str(d)).num_classes == 4
    assert torch.equal(load_split(str(d), "train", first_n=4).y, train.y[:4])


@pytest.mark.parametrize(
    "breakage,error,match",
    [
        ("no_provenance", FileNotFoundError, "provenance.json"),
        ("bad_json", ValueError, "corrupt JSON file .*provenance.json"),
        ("no_source", ValueError, "source_dataset"),
        ("float64", ValueError, "float32"),
        ("nan", ValueError, "NaN"),
        ("label", ValueError, r"\[0, 3\]"),
        ("shape", ValueError, "differs"),
        ("no_shards", FileNotFoundError, "shard"),
        ("truncated", ValueError, "shard-00001"),
    ],
)
def test_constructed_dir_errors(tmp_path, breakage, error, match):
    rng = np.random.default_rng(6)
    shards = _shards(rng)
    if breakage == "float64":
        shards[1] = (shards[1][0].astype(np.float64), shards[1][1])
    if breakage == "nan":
        shards[0][0][0, 0, 0, 0] = np.nan
    if breakage == "label":
        shards[1][1][0] = 4
    if breakage == "shape":
        shards[1] = (rng.random((2, 3, 9, 9), dtype=np.float32), np.zeros(2, np.int64))
    d = write_constructed(tmp_path / "c", "mnist", [] if breakage == "no_shards" else shards)
    if breakage == "no_provenance":
        (d / "provenance.json").unlink()
    if breakage == "bad_json":
        (d / "provenance.json").write_text("{not json")
    if breakage == "no_source":
        (d / "provenance.json").write_text(json.dumps({"num_classes": 4}))
    if breakage == "truncated":
        f = d / "shards" / "shard-00001.npz"
        f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(error, match=match):
        load_split(f"dir:{d}", "train")


def test_constructed_dir_source_mismatch_and_corrupt_first_shard(tmp_path):
    rng = np.random.default_rng(8)
    write_npz(tmp_path / "src.npz", x_test=rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8))
    d = write_constructed(tmp_path / "c", f"npz:{tmp_path / 'src.npz'}", _shards(rng))
    assert len(load_split(d, "train")) == 8  # a Path is accepted as the name too
    with pytest.raises(ValueError, match="source dataset"):
        load_split(f"dir:{d}", "test")
    f = d / "shards" / "shard-00000.npz"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(ValueError, match="shard-00000"):
        dataset_info(f"dir:{d}")
