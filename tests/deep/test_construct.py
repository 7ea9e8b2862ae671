"""deep.construct (issue 4; Ilyas et al. 2019 §3, SPEC §5): D̂_R, D̂_NR, D̂_rand, D̂_det on tiny data.

Every statistic in the provenance record is recomputed here independently from the written shards and
the source model; shard resume is compared byte for byte with an uninterrupted build.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import deep.construct.build as build_mod
from deep.construct import (KINDS, build_from_tensors, choose_targets, construct_dataset, derangement,
                            export_madrylab, import_madrylab, read_constructed, read_provenance)

SHAPE = (1, 4, 4)
D = 16
C = 3


class TinyNet(nn.Module):
    """ImageClassifier shape: features = a small ReLU layer, head = linear."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(D, 12), nn.ReLU())
        self.head = nn.Linear(12, C)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


def make_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Classes differ by which quarter of the image is bright; plus noise. Values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = 0.35 + 0.1 * torch.rand(n, *SHAPE, generator=g)
    for k in range(C):
        x[y == k, 0, k, :] += 0.3
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained() -> tuple[TinyNet, Tensor, Tensor]:
    x, y = make_data(120, seed=1)
    model = TinyNet(seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.95  # the source model learnt the task
    return model, x, y


def build(tmp_path, kind, trained, name="out", **kw):
    model, x, y = trained
    kw = {"eps": 1.0, "step": 0.1, "steps": 20, "seed": 3, "batch_size": 16, "shard_size": 40,
          "progress": False, "num_classes": C,
          "source": {"source_dataset": "toy", "source_split": "train"}, **kw}
    out = tmp_path / name
    prov = build_from_tensors(kind, model, x, y, out, **kw)
    return out, prov


def shard_arrays(out) -> list[dict[str, np.ndarray]]:
    prov = read_provenance(out)
    res = []
    for name in prov["shards"]:
        with np.load(out / name, allow_pickle=False) as z:
            res.append({k: z[k] for k in z.files if k != "seconds"})
    return res


# -- D̂_rand / D̂_det ----------------------------------------------------------------------------
def test_det_labels_follow_rule_and_perturbations_stay_in_ball_and_box(tmp_path, trained):
    _, x, y = trained
    out, prov = build(tmp_path, "det", trained, eps=0.4)
    xc, yc, _ = read_constructed(out)
    assert xc.dtype == np.float32 and yc.dtype == np.int64 and xc.shape == tuple(x.shape)
    assert np.array_equal(yc, ((y + 1) % C).numpy())
    l2 = np.linalg.norm((xc - x.numpy()).reshape(len(yc), -1), axis=1)
    assert l2.max() <= 0.4 + 1e-5 and l2.max() > 0.3  # in the ball, and the attack used it
    assert xc.min() >= 0 and xc.max() <= 1
    s = prov["statistics"]
    assert s["l2_max"] == pytest.approx(float(l2.max()), abs=1e-5)
    assert s["l2_mean"] == pytest.approx(float(l2.mean()), abs=1e-5)
    assert s["label_histogram"] == np.bincount(yc, minlength=C).tolist()


def test_source_model_assigns_target_to_most_examples(tmp_path, trained):
    model, x, y = trained
    for kind in ("rand", "det"):
        out, prov = build(tmp_path, kind, trained, name=kind, eps=1.5, steps=30)
        xc, yc, _ = read_constructed(out)
        with torch.no_grad():
            rate = float((model(torch.from_numpy(xc)).argmax(1).numpy() == yc).mean())
        assert rate > 0.9, (kind, rate)
        assert prov["statistics"]["target_rate"] == pytest.approx(rate)


def test_rand_targets_uniform_over_all_classes_independent_of_label():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3000) % C
    t = choose_targets("rand", y, C, g)
    for k in range(C):  # each source class: targets ≈ uniform over all C classes (incl. its own)
        freq = np.bincount(t[y == k].numpy(), minlength=C) / int((y == k).sum())
        assert np.all(np.abs(freq - 1 / C) < 0.05), freq
    assert torch.equal(choose_targets("det", y, C, g), (y + 1) % C)


# -- D̂_R / D̂_NR --------------------------------------------------------------------------------
def test_inversion_lowers_representation_distance(tmp_path, trained):
    model, x, y = trained
    out, prov = build(tmp_path, "robust", trained, steps=40, step=0.05)
    xc, yc, _ = read_constructed(out)
    assert np.array_equal(yc, y.numpy())  # label kept
    starts = np.concatenate([a["start_index"] for a in shard_arrays(out)])
    with torch.no_grad():
        g_x = model.features(x)
        before = (model.features(x[torch.from_numpy(starts)]) - g_x).norm(dim=1)
        after = (model.features(torch.from_numpy(xc)) - g_x).norm(dim=1)
    assert bool((after <= before + 1e-6).all())
    assert float(after.mean()) < 0.5 * float(before.mean())
    s = prov["statistics"]
    assert s["rep_dist_before_mean"] == pytest.approx(float(before.mean()), rel=1e-4)
    assert s["rep_dist_after_mean"] == pytest.approx(float(after.mean()), rel=1e-4)
    assert s["rep_dist_after_median"] == pytest.approx(float(after.median()), rel=0.05)
    d_start = np.linalg.norm((xc - x[torch.from_numpy(starts)].numpy()).reshape(len(yc), -1), axis=1)
    assert s["pixel_dist_from_start_mean"] == pytest.approx(float(d_start.mean()), rel=1e-4)
    assert xc.min() >= 0 and xc.max() <= 1


def test_starts_are_other_images_independent_of_label(tmp_path, trained):
    _, x, y = trained
    out, prov = build(tmp_path, "nonrobust", trained, steps=1)
    arr = shard_arrays(out)
    starts = np.concatenate([a["start_index"] for a in arr])
    src = np.concatenate([a["src_index"] for a in arr])
    assert np.array_equal(src, np.arange(len(y)))
    assert np.all(starts != src) and np.array_equal(np.sort(starts), src)  # a derangement
    # Independent of y: the start's label equals y at about the chance rate sum_k p_k^2 (~1/3), not 0 or 1.
    p = np.bincount(y.numpy(), minlength=C) / len(y)
    same = float(np.mean(y.numpy()[starts] == y.numpy()))
    assert abs(same - float((p ** 2).sum())) < 0.15
    assert prov["statistics"]["start_label_equals_label"] == pytest.approx(same)
    # Over many seeds each derangement is uniform: P(start = j) ≈ 1/(n-1) for j != i.
    n, counts = 6, np.zeros((6, 6))
    for seed in range(3000):
        counts[np.arange(n), derangement(n, seed)] += 1
    assert np.all(np.diag(counts) == 0)
    off = counts[~np.eye(n, dtype=bool)] / 3000
    assert np.all(np.abs(off - 1 / (n - 1)) < 0.04)


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


# -- MadryLab format -------------------------------------------------------------------------------
def test_madrylab_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    ims = [torch.rand(7, 3, 8, 8, generator=g), torch.rand(5, 3, 8, 8, generator=g)]
    labs = [torch.randint(0, 10, (7,), generator=g), torch.randint(0, 10, (5,), generator=g)]
    src = tmp_path / "drand_CIFAR"
    src.mkdir()
    torch.save(ims, src / "CIFAR_ims")
    torch.save(labs, src / "CIFAR_lab")
    prov = import_madrylab(src, tmp_path / "imp", shard_size=4)
    assert prov["n"] == 12 and len(prov["shards"]) == 3 and prov["source_dataset"] == "cifar10"
    x, y, _ = read_constructed(tmp_path / "imp")
    assert np.array_equal(x, torch.cat(ims).numpy()) and np.array_equal(y, torch.cat(labs).numpy())
    export_madrylab(tmp_path / "imp", tmp_path / "exp", chunk=5)
    back_x = torch.load(tmp_path / "exp" / "CIFAR_ims", weights_only=True)
    back_y = torch.load(tmp_path / "exp" / "CIFAR_lab", weights_only=True)
    assert isinstance(back_x, list) and [len(t) for t in back_x] == [5, 5, 2]
    assert torch.equal(torch.cat(back_x), torch.cat(ims)) and torch.equal(torch.cat(back_y), torch.cat(labs))


def test_madrylab_bad_input(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    with pytest.raises(FileNotFoundError, match="CIFAR_ims"):
        import_madrylab(src, tmp_path / "o")
    (src / "CIFAR_ims").write_bytes(b"not a torch file")
    torch.save([torch.zeros(2)], src / "CIFAR_lab")
    with pytest.raises(ValueError, match="CIFAR_ims"):
        import_madrylab(src, tmp_path / "o")
    torch.save([torch.full((2, 3, 4, 4), 2.0)], src / "CIFAR_ims")
    torch.save([torch.zeros(2, dtype=torch.int64)], src / "CIFAR_lab")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        import_madrylab(src, tmp_path / "o")


# -- bad input -----------------------------------------------------------------------------------
def test_bad_input(tmp_path, trained):
    model, x, y = trained
    with pytest.raises(ValueError, match="kind"):
        build(tmp_path, "dnr", trained)
    with pytest.raises(ValueError, match="eps"):
        build(tmp_path, "rand", trained, eps=-0.1)
    with pytest.raises(ValueError, match="labels"):
        build(tmp_path, "det", trained, name="z", num_classes=2)
    with pytest.raises(ValueError, match="x must"):
        build_from_tensors("det", model, x * float("nan"), y, tmp_path / "z", num_classes=C, progress=False,
                           source={"source_dataset": "toy"})
    with pytest.raises(ValueError, match="source_dataset"):
        build_from_tensors("det", model, x, y, tmp_path / "z", num_classes=C, progress=False)
    with pytest.raises(FileNotFoundError, match="source run"):
        construct_dataset("rand", source_run=tmp_path / "nope", dataset="mnist", out_dir=tmp_path / "o")
    (tmp_path / "emptyrun").mkdir()
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        construct_dataset("rand", source_run=tmp_path / "emptyrun", dataset="mnist", out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="kind"):
        construct_dataset("drand", source_run=tmp_path / "emptyrun", dataset="mnist", out_dir=tmp_path / "o")
    with pytest.raises(FileNotFoundError):
        read_provenance(tmp_path / "missing")
    assert set(KINDS) == {"robust", "nonrobust", "rand", "det"}


# -- end to end: run folder → construct_dataset / CLI → deep.data ---------------------------------
def _tiny_run(tmp_path, trained) -> tuple:
    """A deep.train run folder holding a deep.models logreg fitted to the toy data, and an npz dataset."""
    models = pytest.importorskip("deep.models")
    if not hasattr(models, "build_model"):
        pytest.skip("deep.models.build_model not available yet")
    from deep.io import write_json
    from deep.train.checkpoint import save_checkpoint

    _, x, y = trained
    model = models.build_model("logreg", num_classes=C, in_shape=SHAPE)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", {"model": model.state_dict(), "optimizer": {}, "scheduler": {},
                                            "epoch": 1})
    write_json(run / "recipe.json", {"dataset": "toy", "model": "logreg"})
    write_json(run / "model.json", {"name": "logreg", "num_classes": C, "in_shape": list(SHAPE),
                                    "mean": None, "std": None})
    data = tmp_path / "toy.npz"
    np.savez(data, x_train=x.numpy(), y_train=y.numpy(), x_test=x[:30].numpy(), y_test=y[:30].numpy())
    return run, data, model


def test_construct_dataset_loads_through_deep_data(tmp_path, trained):
    run, data, model = _tiny_run(tmp_path, trained)
    from deep.data import load_split
    from deep.train.checkpoint import load_checkpoint

    out = tmp_path / "det"
    prov = construct_dataset("det", source_run=run, dataset=f"npz:{data}", out_dir=out, n=50, eps=1.0,
                             steps=10, batch_size=16, shard_size=20, progress=False, device="cpu")
    assert prov["source_model"]["checkpoint_sha256"] == hashlib.sha256((run / "checkpoint.pt").read_bytes()).hexdigest()
    assert prov["source_model"]["recipe"] == {"dataset": "toy", "model": "logreg"}
    assert prov["n"] == 50 and prov["source_split"] == "train"
    load_checkpoint(run / "checkpoint.pt")
    train = load_split(str(out), "train")
    test = load_split(str(out), "test")
    xc, yc, _ = read_constructed(out)
    assert torch.equal(train.x, torch.from_numpy(xc)) and torch.equal(train.y, torch.from_numpy(yc))
    _, x, y = trained
    assert torch.equal(train.y, (y[:50] + 1) % C)
    assert torch.equal(test.y, y[:30])  # the test split is the source dataset's


def test_cli_construct_and_madrylab(tmp_path, trained):
    run, data, _ = _tiny_run(tmp_path, trained)
    from deep.cli import main

    out = tmp_path / "rand"
    args = ["construct", "--construct", "rand", "--checkpoint", str(run), "--dataset", f"npz:{data}", "--out", str(out),
            "--n", "30", "--eps", "0.5", "--steps", "3", "--batch-size", "8", "--shard-size", "16",
            "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    prov = read_provenance(out)
    assert prov["params"]["steps"] == 3 and prov["n"] == 30 and len(prov["shards"]) == 2
    assert main(args) == 0  # rerun = resume of a finished build: nothing recomputed, same result
    assert read_provenance(out)["statistics"] == prov["statistics"]
    assert main(["export-madrylab", str(out), "--out", str(tmp_path / "ml")]) == 0
    assert main(["import-madrylab", str(tmp_path / "ml"), "--out", str(tmp_path / "back"),
                 "--source-dataset", f"npz:{data}", "--construct", "rand"]) == 2  # npz: needs --num-classes
    assert main(["import-madrylab", str(tmp_path / "ml"), "--out", str(tmp_path / "back"),
                 "--source-dataset", f"npz:{data}", "--construct", "rand", "--num-classes", "3"]) == 0
    assert np.array_equal(read_constructed(tmp_path / "back")[0], read_constructed(out)[0])
    assert np.array_equal(read_constructed(tmp_path / "back")[1], read_constructed(out)[1])
    assert main(["construct", "--construct", "rand", "--checkpoint", str(tmp_path / "none"), "--dataset", "mnist",
                 "--out", str(tmp_path / "o"), "--eps", "-1"]) == 2
