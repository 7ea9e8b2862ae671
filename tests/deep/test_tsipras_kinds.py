"""The [TS] stage kinds and report renderers end to end on a tiny synthetic dataset (no real data)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _tiny import write_tiny_npz

from deep.train import Recipe, train
from figures import report_tsipras as rt
from figures import report_tsipras_images as rti
from figures.report import Entry
from ray_jobs.kinds import RunContext, get_kind
from ray_jobs.spec import Run
from ray_jobs.store import Store

MODULES = ("ray_jobs.kinds_tsipras",)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ts")
    name = write_tiny_npz(root / "tiny.npz")
    base = dict(dataset=name, model="logreg", epochs=2, batch_size=32, lr=0.1, schedule="constant", eval_n=16,
                eval_steps=1, seed=0)
    train(Recipe.from_dict(dict(**base, method="standard")), root / "std", progress=False)
    train(Recipe.from_dict(dict(**base, method="pgd", norm="l2", eps=0.5, steps=2)), root / "rob", progress=False)
    return root


def ctx(tmp_path: Path) -> RunContext:
    return RunContext(store=Store(tmp_path / "store"), run_hash="feedface", data_root=None, attempt=1)


def fake_run(stage: str, h: str) -> Run:
    return Run(stage, "k", {}, {}, {}, h, 1.0, 0.0, 0, 0, {})


def test_gradient_and_large_eps_kinds_write_arrays_and_render(models, tmp_path):
    grad_kind = get_kind("tsipras-gradients", MODULES)
    large_kind = get_kind("tsipras-large-eps", MODULES)
    entries_g, entries_l = [], []
    for tag, judge in (("std", "rob"), ("rob", "std")):
        gdir, ldir = tmp_path / f"g-{tag}", tmp_path / f"l-{tag}"
        gdir.mkdir(), ldir.mkdir()
        mg = grad_kind({"per_class": 2, "clip_sigma": 3.0}, {"model": models / tag}, gdir, ctx(tmp_path))
        ml = large_kind({"per_class": 1, "eps": 3.0, "alpha": 0.2, "steps": 20, "points": 3, "strip": 2},
                        {"model": models / tag, "judge": models / judge}, ldir, ctx(tmp_path))
        json.dumps(mg), json.dumps(ml)  # metrics must be JSON
        with np.load(gdir / mg["file"], allow_pickle=False) as z:
            assert z["image"].shape == (6, 1, 6, 6) and z["y"].tolist() == [0, 1, 2, 0, 1, 2]
        with np.load(ldir / ml["file"], allow_pickle=False) as z:
            assert z["strip"].shape == (3, 2, 1, 6, 6) and not np.any(z["target"] == z["y"])
        assert ml["model_recipe"]["method"] == ("standard" if tag == "std" else "pgd")
        assert ml["judge_recipe"]["method"] == ("pgd" if tag == "std" else "standard")
        entries_g.append(Entry("render:tsipras-gradients", "x", "tiny", fake_run("g", f"g{tag}"), "done", mg, gdir))
        entries_l.append(Entry("render:tsipras-large-eps", "x", "tiny", fake_run("l", f"l{tag}"), "done", ml, ldir))
    entries_g.append(Entry("render:tsipras-gradients", "x", "tiny", fake_run("g", "gmissing"), "failed", None, None))
    out = tmp_path / "out"
    lines = rti.render_gradients(entries_g, out, "exp-g", "caption")
    assert any("MISSING `gmissing`" in ln for ln in lines)
    assert any(ln.startswith("- ") and "robust gradients more aligned" in ln for ln in lines)
    lines = rti.render_large_eps(entries_l, out, "exp-l", "caption")
    assert any("judge" in ln for ln in lines)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["exp-g-npz-tiny.png", "exp-l-npz-tiny-interp.png", "exp-l-npz-tiny.png"]


def test_kinds_reject_unknown_or_missing_keys(models, tmp_path):
    with pytest.raises(ValueError, match="unknown config key"):
        get_kind("tsipras-gradients", MODULES)({"per_clas": 1}, {"model": models / "std"}, tmp_path, ctx(tmp_path))
    with pytest.raises(ValueError, match="'eps'"):
        get_kind("tsipras-large-eps", MODULES)({"alpha": 0.1, "steps": 1}, {"model": models / "std"}, tmp_path,
                                               ctx(tmp_path))
    with pytest.raises(ValueError, match="needs an input named 'model'"):
        get_kind("tsipras-gradients", MODULES)({}, {}, tmp_path, ctx(tmp_path))


def eval_entry(h: str, method: str, norm: str, eps_tr: float, n: int, eps_test: float, clean: float, robust: float,
               test_norm: str | None = None):
    recipe = {"method": method, "norm": norm, "eps": eps_tr if method != "standard" else 0.3, "model": "mlp",
              "first_n": n}
    m = {"clean": clean, "worst_case": robust, "eps": eps_test, "n": 1000, "norm": test_norm or norm, "model_recipe": recipe}
    return Entry("render:x", "x", "mnist", fake_run("e", h), "done", m)


def test_tradeoff_and_sample_verdicts_follow_the_numbers(tmp_path):
    falls = [eval_entry("a", "standard", "linf", 0, 5000, 0.2, 0.98, 0.01),
             eval_entry("b", "pgd", "linf", 0.1, 5000, 0.2, 0.97, 0.30),
             eval_entry("c", "pgd", "linf", 0.2, 5000, 0.2, 0.90, 0.60),
             eval_entry("d", "pgd", "l2", 1.0, 5000, 0.2, 0.10, 0.10, test_norm="linf")]  # an l2 model evaluated in linf: skipped
    v = rt.tradeoff_verdicts(rt.tradeoff_points(falls), 1000)
    assert set(v) == {("mnist", "linf")}
    v = v[("mnist", "linf")]
    assert v["clean_falls"] and v["clean_monotone"] and v["robust_rises"]
    assert v["clean_drop_pp"] == pytest.approx(8.0)
    other = eval_entry("x", "pgd", "linf", 0.2, 5000, 0.2, 0.5, 0.4)
    other.metrics["dataset"] = "cifar10-subset"  # another dataset's run gets its own curve, never mixed in
    assert set(rt.tradeoff_points([*falls, other])) == {("mnist", "linf"), ("cifar10-subset", "linf")}
    rises = [falls[0], eval_entry("c2", "pgd", "linf", 0.2, 5000, 0.2, 0.99, 0.005)]
    v = rt.tradeoff_verdicts(rt.tradeoff_points(rises), 1000)[("mnist", "linf")]
    assert v["clean_falls"] is rt.NOISE and v["robust_rises"] is rt.NOISE  # 1 pp on 1,000 images
    v = rt.tradeoff_verdicts(rt.tradeoff_points(rises), 10**6)[("mnist", "linf")]
    assert v["clean_falls"] is False and v["robust_rises"] is False

    curve = [eval_entry("s1", "standard", "linf", 0, 100, 0.1, 0.60, 0.0),
             eval_entry("s2", "standard", "linf", 0, 10000, 0.1, 0.97, 0.0),
             eval_entry("r1", "pgd", "linf", 0.1, 100, 0.1, 0.65, 0.2),
             eval_entry("r2", "pgd", "linf", 0.1, 10000, 0.1, 0.95, 0.7)]
    v = rt.sample_verdicts(rt.sample_points(curve), 10**5)[("linf", 0.1)]
    assert v["helps_small"] is True and v["hurts_large"] is True
    assert v["diff_pp"][100] == pytest.approx(5.0) and v["diff_pp"][10000] == pytest.approx(-2.0)
    v = rt.sample_verdicts(rt.sample_points(curve), 300)[("linf", 0.1)]
    assert v["helps_small"] is rt.NOISE and v["hurts_large"] is rt.NOISE  # 5 pp at 60% on 300 images: < 2 SE
    missing = Entry("render:x", "x", "mnist", fake_run("e", "gone"), "pending", None)
    lines = rt.render_samples([*curve, missing], tmp_path, "exp-s", "cap")
    assert any("MISSING `gone`" in ln for ln in lines) and (tmp_path / "exp-s.png").is_file()
    lines = rt.render_tradeoff(falls, tmp_path, "exp-t", "cap")
    assert (tmp_path / "exp-t.png").is_file() and any("| mnist | linf | yes | yes | 8.0 | 2.1 | yes |" in ln for ln in lines)
    # Another dataset measured on fewer images keeps MNIST's margin at MNIST's own n (2.1 pp on 1,000 images).
    small = eval_entry("y", "pgd", "linf", 0.2, 5000, 0.2, 0.5, 0.4)
    small.metrics.update(dataset="cifar10-subset", n=100)
    assert rt.test_sizes([*falls, small]) == {"cifar10-subset": 100, "mnist": 1000}
    lines = rt.render_tradeoff([*falls, small], tmp_path, "exp-t2", "cap")
    assert any("| mnist | linf | yes | yes | 8.0 | 2.1 | yes |" in ln for ln in lines)


@pytest.mark.parametrize("spec", ["tsipras", "tsipras-paper"])
def test_specs_expand_and_report_every_run_missing_on_an_empty_store(spec, tmp_path):
    from figures.report import SPEC_DIR, write_report
    from ray_jobs.kinds import KINDS
    from ray_jobs.spec import expand, load_spec

    loaded = load_spec(SPEC_DIR / f"{spec}.toml")
    runs = expand(loaded)
    get_kind("tsipras-gradients", loaded.kind_modules)
    assert {r.kind for r in runs} <= set(KINDS)
    (tmp_path / "store" / "runs").mkdir(parents=True)  # the report refuses a store that does not exist
    report = write_report(tmp_path / "store", tmp_path / "out", [SPEC_DIR / f"{spec}.toml"]).read_text()
    assert f"Total missing runs: {len({r.hash for r in runs})}." in report  # a run reached twice counts once
    for title in ("trade-off", "training-set size", "Input gradients", "Large-ε"):
        assert title in report
