"""deep.construct (issue 4; Ilyas et al. 2019 §3, SPEC §5): D̂_rand, D̂_det, D̂_R and D̂_NR on tiny data,
and bad input.

Every statistic in the provenance record is recomputed here independently from the written shards and
the source model (the toy task and model: tests/deep/_construct_toy.py).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _construct_toy import C, build, shard_arrays
from deep.construct import (KINDS, build_from_tensors, choose_targets, construct_dataset, derangement,
                            read_constructed, read_provenance)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py


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
