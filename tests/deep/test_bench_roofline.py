"""benchmarks/roofline.py: its operation count must be the exact arithmetic of one PGD step, or the
speed-up bounds it prints would be wrong; and its derived columns must follow from the measured ones."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from deep.attacks.base import frozen_parameters
from deep.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "roofline.py"
_spec = importlib.util.spec_from_file_location("bench_roofline", _PATH)
roofline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(roofline)


def _smallcnn_step_flops(batch: int) -> int:
    """By hand: multiply-adds of SmallCNN's forward on 1x28x28 (valid 3x3 convs, two 2x2 pools), times 2
    for the input-gradient backward (same products, no weight gradients), times 2 FLOPs per multiply-add."""
    convs = 26 * 26 * 32 * 9 * 1 + 24 * 24 * 32 * 9 * 32 + 10 * 10 * 64 * 9 * 32 + 8 * 8 * 64 * 9 * 64
    linears = 1024 * 200 + 200 * 200 + 200 * 10
    return 2 * 2 * (convs + linears) * batch


def test_step_flops_is_the_exact_arithmetic_of_a_frozen_pgd_step():
    model = build_model("smallcnn", num_classes=10, in_shape=(1, 28, 28)).eval()
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    with frozen_parameters(model):
        assert roofline.step_flops(model, x, y) == _smallcnn_step_flops(3)
    # with trainable weights the backward would also form weight gradients: more arithmetic, so the
    # count really follows the backward's output mask (and the freeze is what attacks run under)
    assert roofline.step_flops(model, x, y) > _smallcnn_step_flops(3)


def test_report_columns_follow_from_the_measurements(tmp_path):
    report = roofline.main(["--batch", "2", "--repeats", "1", "--models", "smallcnn", "--out", str(tmp_path)])
    row = report["models"]["smallcnn"]
    assert row["flops"] == _smallcnn_step_flops(2)
    assert report["peak_gflops"] == max(report["peak_kernels"].values()) > 0
    assert row["floor_ms"] == pytest.approx(1e3 * row["flops"] / (report["peak_gflops"] * 1e9))
    assert row["bound_ms"] == pytest.approx(row["floor_ms"] + row["other_ms"])
    assert row["max_speedup_vs_nchw"] == pytest.approx(row["nchw_ms"] / row["floor_ms"])
    assert row["bound_speedup_vs_nchw"] <= row["max_speedup_vs_nchw"]
    assert json.loads((tmp_path / "roofline.json").read_text())["models"]["smallcnn"]["flops"] == row["flops"]
    assert "| smallcnn | " in (tmp_path / "roofline.md").read_text()


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--repeats", "0"], ["--threads", "0"]])
def test_bad_counts_are_refused(argv):
    with pytest.raises(SystemExit):
        roofline.main(argv)
