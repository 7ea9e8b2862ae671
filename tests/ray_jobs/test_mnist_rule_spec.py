"""ray_jobs/specs/mnist-rule.toml claims to reuse laptop's MNIST chain verbatim (same run hashes, so a store
filled by `make reproduce` already holds those runs) and to differ only in the D_R source; checked here on
the expanded specs, and its report tags name registered tables."""
from __future__ import annotations

from pathlib import Path

from figures.report import RENDERERS, load_plugins
from ray_jobs.spec import expand, load_spec

SPECS = Path(__file__).resolve().parents[2] / "ray_jobs" / "specs"
SHARED = ("train_std", "construct_nonrobust", "train_on_nonrobust", "rule_std", "rule_nonrobust")


def test_shared_stages_are_laptops_runs_and_the_new_source_trains_at_the_rule_eps() -> None:
    rule = expand(load_spec(SPECS / "mnist-rule.toml"))
    laptop = {r.hash: r for r in expand(load_spec(SPECS / "laptop.toml"))}
    for r in rule:
        if r.stage in SHARED:
            assert r.hash in laptop and laptop[r.hash].stage == r.stage, r.stage
        else:
            assert r.hash not in laptop, r.stage  # the new source and everything downstream of it
    by_stage = {r.stage: r for r in rule}
    source = by_stage["train_adv_rule"]
    assert source.config["eps"] == by_stage["rule_adv"].config["eps"] == 3.0
    assert source.inputs["init"] == by_stage["train_std"].hash
    assert by_stage["construct_robust"].inputs["source"] == source.hash
    laptop_rule_adv = [r for r in laptop.values() if r.stage == "rule_adv" and r.config.get("dataset") == "mnist"]
    assert laptop_rule_adv and all(r.config["eps"] == 3.0 for r in laptop_rule_adv)  # the same rule eps


def test_report_tags_name_registered_tables() -> None:
    load_plugins()
    tags = [tag for r in expand(load_spec(SPECS / "mnist-rule.toml")) for tag in r.report.get("rows", [])]
    assert len(tags) == 6
    for tag in tags:
        assert tag.split(":")[0] in RENDERERS, tag
