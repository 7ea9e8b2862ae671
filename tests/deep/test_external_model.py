"""Any model (deep.models.external): factories, torchvision, AutoAttack's ResNet-18, weights, normalisation, the CLI."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from deep.models.external import (PYAUTOATTACK_RESNET18_SHA256, Normalized, load_model, load_weights,
                                  parse_normalize)

REPO = Path(__file__).resolve().parents[2]


def factory(num_classes: int = 10) -> nn.Module:
    """An MNIST-shaped conv net: the external model of these tests (also loaded by `deep eval --model`)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, num_classes))


def not_a_module() -> str:
    return "a string"


def test_factory_with_weights_round_trips_and_records_sha256(tmp_path) -> None:
    trained = factory()
    with torch.no_grad():
        trained[3].bias.add_(1.0)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.state_dict().items()}}, path)  # DataParallel form
    loaded = load_model(f"{__name__}:factory", weights=str(path))
    assert loaded.kind == "factory" and not loaded.model.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), trained.state_dict().values()))
    assert loaded.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_model(f"{__name__}:factory", num_classes=3).model[3].out_features == 3


def test_bad_factories_get_one_clear_error() -> None:
    with pytest.raises(ValueError, match="module 'no_such_module' does not import"):
        load_model("no_such_module:f")
    with pytest.raises(ValueError, match="has no function 'missing'"):
        load_model(f"{__name__}:missing")
    with pytest.raises(ValueError, match="returned str, not a torch.nn.Module"):
        load_model(f"{__name__}:not_a_module")


def test_mismatched_weights_name_missing_and_unexpected_keys(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys 0\.bias, 0\.weight, 3\.bias, 3\.weight; unexpected keys bias, "
                                         r"weight"):
        load_model(f"{__name__}:factory", weights=str(path))
    shaped = tmp_path / "shape.pt"
    torch.save(factory(num_classes=3).state_dict(), shaped)
    with pytest.raises(ValueError, match="size mismatch"):
        load_weights(factory(), shaped)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(factory(), tmp_path / "absent.pt")


def test_normalize_wraps_the_model_and_keeps_inputs_in_unit_range() -> None:
    mean, std = parse_normalize("0.1307,0.3081")
    assert (mean, std) == ((0.1307,), (0.3081,))
    assert parse_normalize("imagenet") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(ValueError, match="2·C numbers"):
        parse_normalize("0.1,0.2,0.3")
    loaded = load_model(f"{__name__}:factory", normalize=(mean, std))
    assert isinstance(loaded.model, Normalized)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(loaded.model(x), factory()((x - 0.1307) / 0.3081))
    with pytest.raises(ValueError, match="stds finite and > 0"):
        Normalized(factory(), (0.5,), (0.0,))


def test_torchvision_model_by_name() -> None:
    loaded = load_model("torchvision:resnet18", num_classes=10)
    assert loaded.kind == "torchvision" and loaded.model.fc.out_features == 10
    with pytest.raises(ValueError, match="torchvision model 'no_such_net' is unknown"):
        load_model("torchvision:no_such_net")


def test_pyautoattack_resnet18_loads_with_its_recorded_sha256(monkeypatch) -> None:
    pytest.importorskip("pyautoattack")
    loaded = load_model("pyautoattack:resnet18")
    assert loaded.weights_sha256 == PYAUTOATTACK_RESNET18_SHA256
    with torch.no_grad():
        assert loaded.model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="pip install pyautoattack"):
        load_model("pyautoattack:resnet18")


def test_run_folder_source_refuses_extra_weights(tmp_path) -> None:
    with pytest.raises(ValueError, match="carries its own weights"):
        load_model(str(tmp_path), weights="w.pt")


def test_cli_evaluates_a_factory_end_to_end_with_autoattack(tmp_path, data_root) -> None:
    pytest.importorskip("pyautoattack")
    out = tmp_path / "eval"
    env = {**os.environ, "ADVFEAT_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "deep", "eval", "--model", "tests.deep.test_external_model:factory",
           "--dataset", "mnist", "--n", "6", "--eps", "8/255", "--attacks", "pgd-5", "apgd-ce",
           "--normalize", "mnist", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 6 and set(metrics["attacks"]) == {"pgd-5", "apgd-ce"}
    assert metrics["worst_case"] <= min(metrics["attacks"].values())
    assert metrics["versions"]["apgd-ce"].startswith("pyautoattack==")
    assert metrics["model"]["source"] == "tests.deep.test_external_model:factory"
    assert metrics["model"]["normalize"] == [[0.1307], [0.3081]]
    assert {c["check"] for c in metrics["masking_checks"]} >= {"zero-gradients", "randomised", "black-box"}
    bad = subprocess.run(cmd[:5] + ["tests.deep.test_external_model:not_a_module"] + cmd[6:], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a torch.nn.Module" in bad.stderr and "Traceback" not in bad.stderr
