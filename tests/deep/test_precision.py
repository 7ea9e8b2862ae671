"""deep.precision: bf16 only where the machine runs it natively and faster, measured once."""
from __future__ import annotations

import pytest
import torch

from deep import precision

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVFEAT_CACHE", str(tmp_path))
    return tmp_path / "precision.json"


def test_explicit_choice_is_an_override(monkeypatch):
    monkeypatch.setattr(precision, "measure_speedup", lambda d: pytest.fail("must not measure"))
    assert precision.resolve_bf16(True, CPU) is True
    assert precision.resolve_bf16(False, CPU) is False
    with pytest.raises(ValueError, match="bf16 must be"):
        precision.resolve_bf16("yes", CPU)


def test_no_native_bf16_means_fp32_without_measuring(monkeypatch, cache):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(precision, "measure_speedup", lambda d: pytest.fail("must not measure"))
    assert precision.resolve_bf16(None, CPU) is False
    assert not cache.exists()


@pytest.mark.parametrize("speedup, expected", [(0.07, False), (1.05, False), (3.7, True)])
def test_native_bf16_is_used_only_when_measured_faster(monkeypatch, cache, speedup, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    calls = []
    monkeypatch.setattr(precision, "measure_speedup", lambda d: calls.append(d) or speedup)
    assert precision.resolve_bf16(None, CPU) is expected
    assert precision.resolve_bf16(None, CPU) is expected
    assert len(calls) == 1, "the measurement is cached per machine"
    assert cache.exists()


def test_corrupt_cache_is_measured_again(monkeypatch, cache):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.setattr(precision, "measure_speedup", lambda d: 2.0)
    cache.write_text('{"truncated": ')
    assert precision.resolve_bf16(None, CPU) is True
    assert precision.cached_speedup(CPU) == 2.0


def test_a_kernel_cap_is_measured_apart(monkeypatch, cache):
    # ONEDNN_MAX_CPU_ISA=AVX2 on an AMX CPU made bf16 14x slower: the AMX measurement must not be reused.
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"amx_bf16"})
    for name in precision.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(precision, "measure_speedup", lambda d: 3.0)
    assert precision.resolve_bf16(None, CPU) is True
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(precision, "measure_speedup", lambda d: 0.07)
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in precision.kernel_level()
    assert precision.resolve_bf16(None, CPU) is False
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert precision.resolve_bf16(None, CPU) is True, "the uncapped entry is kept"


def test_real_measurement_returns_a_positive_ratio():
    assert precision.measure_speedup(CPU) > 0


def test_recipe_auto_precision_is_resolved_per_machine_and_recorded(tmp_path, monkeypatch, cache):
    """bf16 = 'auto' in a recipe: the session trains with the machine's choice, recipe.json keeps
    'auto' (so the folder resumes on another machine) and metrics.json records what was used."""
    import argparse

    from _tiny import tiny_recipe, write_tiny_npz
    from deep.io import read_json
    from deep.train import Recipe, train
    from deep.train.recipe import add_recipe_arguments, recipe_from_args

    data = write_tiny_npz(tmp_path / "tiny.npz")
    for flags, use in (({"avx2"}, "fp32"), ({"avx512_bf16"}, "bf16")):
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: flags)
        monkeypatch.setattr(precision, "measure_speedup", lambda d: 3.0)
        out = tmp_path / use
        metrics = train(Recipe.from_dict(tiny_recipe(data, bf16="auto", epochs=1)), out, progress=False)
        assert metrics["precision"] == use
        assert read_json(out / "recipe.json")["bf16"] == "auto"
    parser = argparse.ArgumentParser()
    add_recipe_arguments(parser)
    for argv, expected in ((["--bf16", "auto"], "auto"), (["--bf16"], True), (["--no-bf16"], False),
                           (["--bf16", "false"], False)):
        assert recipe_from_args(parser.parse_args(["--dataset", "mnist", *argv])).bf16 == expected
    with pytest.raises(ValueError, match="bf16 must be true, false or 'auto'"):
        Recipe.from_dict({"dataset": "mnist", "bf16": "maybe"})


def test_a_bad_bf16_flag_is_one_clear_line(capsys):
    from deep.cli import main

    assert main(["train", "--dataset", "mnist", "--bf16", "maybe", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bf16 must be true, false or 'auto', got 'maybe'" in err, err
