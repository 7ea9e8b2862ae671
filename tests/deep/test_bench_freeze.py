"""benchmarks/freeze.py swaps deep.attacks.base.frozen_parameters for a no-op to time the difference: its
A/B must report equal outputs and hand the real freeze back, or every later attack would run unfrozen."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import deep.attacks.base as base

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "freeze.py"
_spec = importlib.util.spec_from_file_location("bench_freeze", _PATH)
bench_freeze = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_freeze)


def test_ab_row_reports_equal_outputs_and_restores_the_freeze():
    real = base.frozen_parameters
    row = bench_freeze.freeze_ab("smallcnn", (1, 28, 28), repeats=1)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "smallcnn" and cells[-1] == "True", row
    assert base.frozen_parameters is real
