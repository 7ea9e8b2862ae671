"""EvalResult: JSON round trip, validation, old files, RobustBench export (issue 11 item 4)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from deep.evaluation import SCHEMA, EvalResult, evaluate
from deep.evaluation.result import pack_bits, unpack_bits
from deep.io import read_json, write_json
from deep.units import parse_eps


@pytest.fixture(scope="module")
def result() -> EvalResult:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(21, 1, 3, 4, generator=g), torch.randint(0, 3, (21,), generator=g)
    return evaluate(model, (x, y), ["fgsm", "pgd-3"], eps=8 / 255, batch_size=8, seed=4, progress=False)


def test_result_fields(result: EvalResult) -> None:
    assert result.n == 21 and result.seed == 4 and result.norm == "linf" and result.eps == 8 / 255
    assert set(result.correct) == {"clean", "fgsm", "pgd-3", "worst_case"}
    for name, acc in [("clean", result.clean), ("fgsm", result.attacks["fgsm"]), ("worst_case", result.worst_case)]:
        assert result.correct[name].mean() == pytest.approx(acc)
    assert result.correct["worst_case"].tolist() == \
        (result.correct["clean"] & result.correct["fgsm"] & result.correct["pgd-3"]).tolist()
    assert result.versions["pgd-3"].startswith("advfeat==") and result.flags == []
    assert result.params["pgd-3"] == {"kind": "pgd", "steps": 3, "restarts": 1, "alpha": 2.5 * (8 / 255) / 3,
                                      "loss": "ce"}


def test_json_round_trip_keeps_the_old_keys(result: EvalResult, tmp_path) -> None:
    d = result.to_dict()
    assert d["schema"] == SCHEMA == "advfeat.eval/1"
    for key in ("clean", "attacks", "worst_case", "n", "eps", "norm", "mean_confidence_on_errors", "clean_error",
                "error_rates", "worst_case_error", "params", "seconds"):  # what ray_jobs and figures read today
        assert key in d, key
    assert d["error_rates"]["fgsm"] == 1 - d["attacks"]["fgsm"]
    result.extra["dataset"] = "mnist"
    try:
        result.save(tmp_path / "metrics.json")
        back = EvalResult.load(tmp_path / "metrics.json")
    finally:
        result.extra.clear()
    assert back.to_dict() == json.loads(json.dumps({**d, "dataset": "mnist"}))
    assert back.extra == {"dataset": "mnist"}
    assert {k: v.tolist() for k, v in back.correct.items()} == {k: v.tolist() for k, v in result.correct.items()}


def test_dict_style_reads_still_work(result: EvalResult) -> None:
    assert result["clean"] == result.clean and result["error_rates"] == result.error_rates
    assert {**result}["attacks"] == result.attacks and "worst_case" in result
    with pytest.raises(KeyError, match="result field"):
        result["clean"] = 0.5


def test_files_from_before_the_schema_load() -> None:
    old = {"clean": 0.75, "attacks": {"pgd-20": 0.5}, "worst_case": 0.5, "n": 10, "eps": 0.3, "norm": "linf",
           "mean_confidence_on_errors": {"pgd-20": 0.8}, "clean_error": 0.25, "error_rates": {"pgd-20": 0.5},
           "worst_case_error": 0.5, "params": {"pgd-20": {"kind": "pgd", "steps": 20, "restarts": 1,
                                                          "alpha": 0.0375, "loss": "ce"}},
           "seconds": {"pgd-20": 1.5}, "dataset": "mnist", "split": "test", "model_recipe": {"model": "mlp"}}
    r = EvalResult.from_dict(old)
    assert (r.clean, r.attacks, r.seed, r.correct, r.flags) == (0.75, {"pgd-20": 0.5}, None, {}, [])
    assert r.extra == {"dataset": "mnist", "split": "test", "model_recipe": {"model": "mlp"}}
    assert {k: v for k, v in r.to_dict().items() if k in old} == old


@pytest.mark.parametrize("change,match", [
    ({"clean": 1e9}, r"clean must be a finite accuracy in \[0, 1\], got 1000000000.0"),
    ({"clean": float("nan")}, "clean must be a finite accuracy"),
    ({"clean": "0.9"}, "clean must be a finite accuracy"),
    ({"attacks": {"pgd-20": -0.1}}, r"attacks\['pgd-20'\]"),
    ({"attacks": []}, "attacks must be a JSON object"),
    ({"worst_case": True}, "worst_case"),
    ({"n": 0}, "n must be an integer >= 1"),
    ({"n": 2.5}, "n must be an integer"),
    ({"eps": -1}, "eps must be a finite number >= 0"),
    ({"norm": "l1"}, "norm must be one of"),
    ({"seed": -3}, "seed"),
    ({"schema": "advfeat.eval/9"}, "schema must be 'advfeat.eval/1'"),
    ({"seconds": {"pgd-20": float("inf")}}, "seconds"),
    ({"mean_confidence_on_errors": {"pgd-20": 2.0}}, "mean_confidence_on_errors"),
    ({"correct": {"clean": "AAAA"}}, r"correct\['clean'\]: holds 3 bytes, 10 examples need 2"),
    ({"correct": {"clean": "not base64!"}}, "not base64"),
    ({"flags": "warning"}, "flags must be a list"),
])
def test_validation_names_the_bad_field(change: dict, match: str) -> None:
    good = {"clean": 0.9, "attacks": {"pgd-20": 0.4}, "worst_case": 0.4, "n": 10, "eps": 0.3, "norm": "linf"}
    with pytest.raises(ValueError, match=match):
        EvalResult.from_dict({**good, **change})
    for missing in ("clean", "n"):
        with pytest.raises(ValueError, match="lacks key"):
            EvalResult.from_dict({k: v for k, v in good.items() if k != missing})


def test_load_names_the_file(tmp_path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"clean": 2.0, "attacks": {}, "worst_case": 0.0, "n": 1, "eps": 0.0, "norm": "linf"})
    with pytest.raises(ValueError, match="metrics.json: clean must be"):
        EvalResult.load(path)


def test_bits_pack_msb_first() -> None:
    mask = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    assert pack_bits(mask) == "gYA=" and unpack_bits("gYA=", 9).tolist() == mask.tolist()


def test_robustbench_export_round_trips(result: EvalResult, tmp_path) -> None:
    r = EvalResult.from_dict({**result.to_dict(), "attacks": {**result.attacks, "aa-standard": 0.5342}})
    rb = r.to_robustbench(name="Overfitting in adversarially robust deep learning", architecture="WideResNet-34-20",
                          dataset="cifar10")
    assert rb["eps"] == "8/255" and rb["threat_model"] == "Linf" and rb["autoattack_acc"] == "53.42"
    assert rb["clean_acc"] == f"{100 * r.clean:.2f}" and rb["dataset"] == "cifar10"
    write_json(tmp_path / "rb.json", rb)
    back = read_json(tmp_path / "rb.json")
    assert back == rb and parse_eps(back["eps"]) == r.eps
    assert float(back["clean_acc"]) / 100 == pytest.approx(r.clean, abs=5e-5)
    l2 = EvalResult(clean=0.9108, attacks={}, worst_case=0.7291, n=10, eps=0.5, norm="l2")
    assert l2.to_robustbench(attack="worst_case") == {"number_forward_passes": 1, "threat_model": "L2", "eps": "0.5",
                                                      "clean_acc": "91.08", "autoattack_acc": "72.91"}
    with pytest.raises(ValueError, match="no result for attack 'aa-standard'"):
        l2.to_robustbench()
