"""Any spec over several seeds without editing it: ``--seeds 0 1 2`` (ray_jobs/seeds.py; issue 12 item 5).
Expansion only and a synthetic store: nothing is trained."""
from __future__ import annotations

from pathlib import Path

import pytest

from figures import report
from ray_jobs import cli
from ray_jobs.seeds import MAX_SEEDS, check_seeds, with_seeds
from ray_jobs.spec import SpecError, expand, load_spec, parse_spec
from ray_jobs.store import Store
from test_report_seeds import _metrics, _spec  # the synthetic Fig 2(b) pipeline of the report's seed tests

SPECS = Path(cli.__file__).resolve().parent / "specs"
SEEDS = (0, 1, 2)
ZIPPED = "transfer_train_D"  # laptop's stage whose seeds sit in its zipped rows: distinct models, kept as written


def test_laptop_over_three_seeds_keeps_every_seed_0_hash_and_pipes_each_seed_through():
    spec = load_spec(SPECS / "laptop.toml")
    plain, seeded = expand(spec), expand(with_seeds(spec, SEEDS))
    zipped = [r for r in plain if r.stage == ZIPPED]
    assert len(zipped) == 3 and len(plain) == 91  # 24 of them Fashion-MNIST (4 shared by two stages)
    # every stage runs once per seed, except the zipped-seed stage whose 3 runs serve all seeds
    assert len(seeded) == 3 * len(plain) - 2 * len(zipped) == 267
    assert {r.hash for r in seeded if r.axes.get("seed") == 0 and r.stage != ZIPPED} | {r.hash for r in zipped} \
        == {r.hash for r in plain}
    assert {r.stage for r in seeded if "seed" not in r.axes} == set()
    by_hash = {r.hash: r for r in seeded}
    for r in seeded:
        for name, h in r.inputs.items():
            up = by_hash[h]
            if up.stage == ZIPPED:
                assert r.stage == "transfer" and up.config["seed"] == (1 if up.config["model"] == "cifar-cnn" else 0)
            else:
                assert up.axes["seed"] == r.axes["seed"], (r.label(), name, up.label())
    # a stage with a seed key runs with that seed; one that inherits it gets the config it had (no seed key)
    train = sorted((r.axes["seed"], r.config["seed"]) for r in seeded if r.stage == "train_std")
    assert train == [(0, 0)] * 3 + [(1, 1)] * 3 + [(2, 2)] * 3  # MNIST, Fashion-MNIST, CIFAR subset
    construct = {r.axes["seed"]: r.config["seed"] for r in seeded if r.stage == "construct_robust"}
    assert construct == {0: 0, 1: 1, 2: 2}
    assert all("seed" not in r.config for r in seeded if r.stage in ("eval_std", "mart_eval", "transfer"))


def test_mart_over_three_seeds_is_three_copies_whose_seed_0_is_the_plain_spec():
    spec = load_spec(SPECS / "mart.toml")
    plain, seeded = expand(spec), expand(with_seeds(spec, SEEDS))
    assert len(seeded) == 3 * len(plain)
    assert {r.hash for r in seeded if r.axes["seed"] == 0} == {r.hash for r in plain}
    assert sorted({r.axes["seed"] for r in seeded}) == [0, 1, 2]


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_spec_expands_over_seeds_and_keeps_its_hashes(path: Path):
    spec = load_spec(path)
    plain = {r.hash for r in expand(spec)}
    seeded = {r.hash for r in expand(with_seeds(spec, (1, 0)))}
    assert plain <= seeded
    assert (len(seeded) > len(plain)) == any("seed" in stage.config for stage in spec.stages)
    assert with_seeds(spec, ()) is spec  # no --seeds: the spec as written


def test_a_seed_axis_keeps_the_seeds_also_asked_for_and_refuses_none_in_common():
    stages = {"train": {"kind": "train", "grid": {"seed": [0, 1, 2, 3], "dataset": ["a"]}},
              "eval": {"kind": "eval", "needs": {"model": "train"}, "grid": {"dataset": ["a"]}}}
    spec = parse_spec({"stages": stages}, name="s")
    runs = expand(with_seeds(spec, (3, 1, 7)))
    assert [(r.stage, r.axes["seed"]) for r in runs] == [("train", 1), ("train", 3), ("eval", 1), ("eval", 3)]
    none = r"spec s: stage 'train': its seed axis \[0, 1, 2, 3\] has none of --seeds \[5\]; give seeds from that axis"
    with pytest.raises(SpecError, match=none):
        with_seeds(spec, (5,))


@pytest.mark.parametrize(("seeds", "message"), [
    ((), "got 0 seeds; give 1 to 20"),
    ((-1,), "-1 is not a seed; seeds are integers >= 0"),
    ((0, True), "True is not a seed"),
    ((0, 1.5), "1.5 is not a seed"),
    ((0, 2, 0, 2, 1), r"\[0, 2\] given more than once; seeds must be distinct"),
    (tuple(range(MAX_SEEDS + 1)), "got 21 seeds; give 1 to 20"),
])
def test_bad_seeds_are_refused(seeds, message):
    with pytest.raises(ValueError, match=rf"^--seeds: {message}"):
        check_seeds(seeds)


def test_cli_dry_run_over_seeds_and_a_bad_seed_flag(tmp_path: Path, capsys):
    store = str(tmp_path / "store")
    assert cli.main(["run", "smoke", "--seeds", "0", "2", "--dry-run", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "spec smoke: 4 runs" in out and "train[seed=2]" in out and "eval[seed=2]" in out
    assert cli.main(["run", "smoke", "--seeds", "1", "1", "--dry-run", "--store", store]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "python -m ray_jobs run: error: --seeds: [1] given more than once; seeds must be distinct"
    assert not Path(store).exists()


def test_report_over_seeds_aggregates_the_runs_of_the_unseeded_spec(tmp_path: Path):
    spec_file = _spec(tmp_path, False)  # `seed = 0` in the train config: no seed axis written
    runs = expand(with_seeds(load_spec(spec_file), SEEDS))
    store = Store(tmp_path / "store")
    evals = {r.axes["seed"]: r for r in runs if r.stage == "eval" and r.config["dataset"] == "cifar10-subset"}
    for seed, (clean, pgd) in zip(SEEDS, ((0.60, 0.30), (0.62, 0.33), (0.67, 0.36))):
        store.finish(evals[seed].hash, _metrics(clean, pgd))
    argv = ["--store", str(store.root), "--out", str(tmp_path / "out"), "--spec", str(spec_file)]
    assert report.main(argv + ["--seeds", "0", "1", "2"]) == 0
    text = (tmp_path / "out" / "REPORT.md").read_text()
    hashes = ", ".join(f"`{evals[s].hash}`" for s in SEEDS)
    # clean 60, 62, 67: 63 ± √13; robust 30, 33, 36: 33 ± 3
    assert f"| standard training on D | 63.00 ± 3.61 (n=3) | 33.00 ± 3.00 (n=3) | 95.25 | 4.49 | {hashes} |" in text
    assert f"--seeds 0 1 2 --store {store.root}`" in text and "[seeds: 0, 1, 2]" in text
    # without --seeds the report reads the plain spec: seed 0's run only
    assert report.main(argv) == 0
    assert "| standard training on D | 60.00 | 30.00 |" in (tmp_path / "out" / "REPORT.md").read_text()
    assert report.main(argv + ["--seeds", "0", "-3"]) == 2
