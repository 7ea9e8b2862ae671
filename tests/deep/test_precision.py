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


def test_real_measurement_returns_a_positive_ratio():
    assert precision.measure_speedup(CPU) > 0
