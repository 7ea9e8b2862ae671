"""deep.construct shards (issue 4): resume compared byte for byte with an uninterrupted build, damaged
shards rebuilt, per-shard randomness, refused parameter changes and the provenance record."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

import deep.construct.build as build_mod
from _construct_toy import C, SHAPE, build, shard_arrays
from deep.construct import read_constructed, read_provenance


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


# -- shards, resume, provenance ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rand", "robust"])
def test_resume_equals_uninterrupted_build(tmp_path, trained, monkeypatch, kind):
    full, prov_full = build(tmp_path, kind, trained, name="full", steps=5)
    assert len(prov_full["shards"]) == 3

    real_write, calls = build_mod.write_shard, []

    def failing_write(out_dir, index, arrays):
        if len(calls) == 1:
            raise KeyboardInterrupt  # the build is killed while computing its second shard
        calls.append(index)
        return real_write(out_dir, index, arrays)

    monkeypatch.setattr(build_mod, "write_shard", failing_write)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, kind, trained, name="part", steps=5)
    part = tmp_path / "part"
    with pytest.raises(ValueError, match="incomplete"):
        read_provenance(part)
    assert sorted(p.name for p in (part / "shards").glob("*.npz")) == ["shard-00000.npz"]
    assert not list((part / "shards").glob("*.tmp"))
    first_bytes = (part / "shards" / "shard-00000.npz").read_bytes()

    built = []
    real_shard = build_mod._build_shard
    monkeypatch.setattr(build_mod, "write_shard", real_write)
    monkeypatch.setattr(build_mod, "_build_shard",
                        lambda *a, **k: (built.append(a[4]), real_shard(*a, **k))[1])
    prov_part = build(tmp_path, kind, trained, name="part", steps=5)[1]
    assert built == [40, 80]  # only the missing shards were computed (their first indices)
    assert (part / "shards" / "shard-00000.npz").read_bytes() == first_bytes
    for a, b in zip(shard_arrays(full), shard_arrays(part)):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k
    assert prov_part["statistics"] == prov_full["statistics"]


def test_shard_randomness_depends_on_seed_and_shard_index_only():
    draw = lambda seed, i: torch.randint(0, 1000, (20,), generator=build_mod.shard_generator(seed, i))  # noqa: E731
    assert torch.equal(draw(0, 1), draw(0, 1))
    assert not torch.equal(draw(0, 1), draw(0, 2)) and not torch.equal(draw(0, 1), draw(1, 1))


def test_same_seed_same_dataset_other_seed_differs(tmp_path, trained):
    a = read_constructed(build(tmp_path, "rand", trained, name="a", steps=2)[0])[1]
    b = read_constructed(build(tmp_path, "rand", trained, name="b", steps=2)[0])[1]
    c = read_constructed(build(tmp_path, "rand", trained, name="c", steps=2, seed=4)[0])[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_resume_with_other_parameters_is_refused(tmp_path, trained):
    build(tmp_path, "det", trained, steps=2)
    with pytest.raises(ValueError, match="different parameters"):
        build(tmp_path, "det", trained, steps=3)


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00" * 64)
    elif how == "bad-deflate":  # a zip whose member data is corrupt
        np.savez_compressed(path, x=np.zeros((40, *SHAPE), np.float32), y=np.zeros(40, np.int64))
        raw = bytearray(path.read_bytes())
        raw[60:90] = b"\xff" * 30
        path.write_bytes(bytes(raw))
    elif how == "no-y":
        np.savez(path, x=np.zeros((40, *SHAPE), np.float32))
    elif how == "pickled":
        np.savez(path, x=np.array([object()], dtype=object), y=np.zeros(1, np.int64))
    elif how == "short":
        np.savez(path, x=np.zeros((39, *SHAPE), np.float32), y=np.zeros(39, np.int64))


@pytest.mark.parametrize("how", ["truncated", "garbage", "bad-deflate", "no-y", "pickled", "short"])
def test_damaged_shard_is_moved_aside_and_rebuilt(tmp_path, trained, how, caplog):
    full, prov_full = build(tmp_path, "rand", trained, name="full", steps=5)
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "provenance.json").unlink()  # the build was interrupted, then a shard got damaged
    _damage(part / "shards" / "shard-00001.npz", how)
    with caplog.at_level(logging.WARNING):
        prov_part = build(tmp_path, "rand", trained, name="part", steps=5)[1]
    assert "shard-00001.npz" in caplog.text
    assert len(list((part / "shards").glob("shard-00001.npz.corrupt-*"))) == 1  # moved aside, not deleted
    for a, b in zip(shard_arrays(full), shard_arrays(part)):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert prov_part["statistics"] == prov_full["statistics"]
    assert np.array_equal(read_constructed(part)[0], read_constructed(full)[0])


def test_failed_build_leaves_no_plan_that_binds_the_folder(tmp_path, trained, monkeypatch):
    def fail(*a, **k):
        raise RuntimeError("out of memory")

    with monkeypatch.context() as m:
        m.setattr(build_mod, "_build_shard", fail)
        with pytest.raises(RuntimeError, match="out of memory"):
            build(tmp_path, "det", trained, name="out", steps=3)
    assert not (tmp_path / "out" / "shards" / "plan.json").exists()
    # a plan.json without shards (left by an earlier version) is replaced, not a reason to refuse
    (tmp_path / "out" / "shards").mkdir(parents=True, exist_ok=True)
    (tmp_path / "out" / "shards" / "plan.json").write_text(json.dumps({"kind": "det", "params": {"steps": 3}}))
    corrected = build(tmp_path, "det", trained, name="out", steps=2)[0]
    fresh = build(tmp_path, "det", trained, name="fresh", steps=2)[0]
    assert np.array_equal(read_constructed(corrected)[0], read_constructed(fresh)[0])
    assert json.loads((corrected / "shards" / "plan.json").read_text())["params"]["steps"] == 2


def test_provenance_fields(tmp_path, trained):
    out, prov = build(tmp_path, "det", trained, steps=2)
    on_disk = json.loads((out / "provenance.json").read_text())
    assert on_disk == prov
    for key in ("source_dataset", "num_classes", "kind", "n", "params", "statistics", "timing", "shards"):
        assert key in prov
    assert prov["params"]["eps"] == 1.0 and prov["params"]["steps"] == 2 and prov["params"]["seed"] == 3
    assert prov["num_classes"] == C and prov["n"] == 120
