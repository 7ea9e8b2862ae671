"""benchmarks/label_map.py tells a D̂_det student that learned the shifted labelling (y + 1) from one that
learned the true one: exact shares on hand-made predictions, and clear errors for bad input."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "label_map.py"
_spec = importlib.util.spec_from_file_location("label_map", _PATH)
label_map = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(label_map)


def test_shares_are_exact_and_the_shift_wraps_around():
    y = torch.tensor([0, 1, 2, 9, 9, 3, 4, 5])
    pred = torch.tensor([0, 2, 3, 0, 9, 7, 4, 6])  # true: 0, 9(2nd), 4 -> 3/8; y + 1: 2, 3, 0 (9 -> 0), 6 -> 4/8
    assert label_map.label_shares(pred, y, 10) == (3 / 8, 4 / 8)


def test_a_classifier_of_the_shifted_map_scores_zero_on_y():
    y = torch.arange(50) % 10
    assert label_map.label_shares((y + 1) % 10, y, 10) == (0.0, 1.0)


@pytest.mark.parametrize("pred, y, c, match", [
    (torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 10, "same non-empty 1-d"),
    (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 10, "same non-empty 1-d"),
    (torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), 1, "num_classes must be >= 2"),
])
def test_bad_input_is_named(pred, y, c, match):
    with pytest.raises(ValueError, match=match):
        label_map.label_shares(pred, y, c)


def test_a_run_folder_without_metrics_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        label_map.main(["--dataset", "mnist", "--run", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "not a finished run folder" in capsys.readouterr().err
