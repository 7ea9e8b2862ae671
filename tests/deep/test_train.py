"""deep.train: Recipe validation, lr schedules, every method, checkpoint/resume, load_run errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from _tiny import tiny_recipe
from deep.train import Recipe, load_run, train
from deep.train.schedule import lr_factor

torch.set_num_threads(2)


def _recipe(tiny_name: str, **kw) -> Recipe:
    return Recipe.from_dict(tiny_recipe(tiny_name, **kw))


# -- Recipe ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,match", [
    ("eps", -0.1, "eps"), ("method", "magic", "method"), ("model", "nope", "model"),
    ("dataset", "imagenet-42", "dataset"), ("epochs", 0, "epochs"), ("schedule", "warp", "schedule"),
    ("norm", "l3", "norm"), ("lr", float("nan"), "lr"), ("fgsm_alpha", 2.0, "fgsm_alpha"),
    ("batch_size", 1.5, "batch_size"), ("milestones", [-1], "milestones"),
])
def test_recipe_rejects_bad_values(tiny: str, field: str, value, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _recipe(tiny, **{field: value})


def test_recipe_rejects_subset_with_first_n_and_unknown_fields(tiny: str) -> None:
    with pytest.raises(ValueError, match="subset"):
        _recipe(tiny, subset=10, first_n=10)
    with pytest.raises(ValueError, match="unknown recipe fields"):
        Recipe.from_dict({**_recipe(tiny).to_dict(), "learning_rate": 1})


def test_recipe_json_round_trip_and_step_size(tiny: str) -> None:
    r = _recipe(tiny, method="pgd", milestones=[1, 1.5], alpha=None, steps=4, eps=0.2)
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.step_size() == pytest.approx(2.5 * 0.2 / 4)  # Madry's rule
    assert _recipe(tiny, method="fast", eps=0.2).step_size() == pytest.approx(0.25)  # Wong: 1.25·ε


def test_lr_schedules_by_hand(tiny: str) -> None:
    step = _recipe(tiny, schedule="step", epochs=10, milestones=[5, 8], gamma=0.1)
    assert [lr_factor(step.optim, t) for t in (0, 4.9, 5, 7.9, 8, 10)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cyc = _recipe(tiny, schedule="cyclic", epochs=10)  # peak at 4 epochs, zero at 0 and 10
    assert [lr_factor(cyc.optim, t) for t in (0, 2, 4, 7, 10)] == pytest.approx([0, 0.5, 1, 0.5, 0])
    one = _recipe(tiny, schedule="onecycle", epochs=10)
    assert lr_factor(one.optim, 0) == pytest.approx(1 / 25) and lr_factor(one.optim, 3) == pytest.approx(1.0)
    assert lr_factor(one.optim, 10) == pytest.approx(1 / 25e4)
    assert lr_factor(one.optim, 6.5) == pytest.approx((1 + 1 / 25e4) / 2)  # cosine midpoint of the decay


# -- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["standard", "pgd", "fgsm", "fast", "trades", "mart", "noise-sign",
                                    "noise-uniform"])
def test_each_method_trains_one_epoch(tiny: str, tmp_path: Path, method: str) -> None:
    r = _recipe(tiny, method=method, epochs=1)
    metrics = train(r, tmp_path / method, progress=False)
    last = metrics["last"]
    assert metrics["status"] == "done" and last["epoch"] == 1
    assert math.isfinite(last["train_loss"])
    assert 0 <= last["eval_clean_acc"] <= 1
    # the held-out PGD check is opt-in for standard training, on by default for the adversarial methods
    assert ("eval_pgd_acc" in last) == (method != "standard")
    if method != "standard":
        assert 0 <= last["eval_pgd_acc"] <= 1 and last["eval_eps"] == pytest.approx(0.1)
    # The adversarial methods must see attacked inputs (accuracy on them is logged).
    assert (last["train_adv_acc"] is None) == (method == "standard")


def test_standard_training_lowers_loss(tiny: str, tmp_path: Path) -> None:
    train(_recipe(tiny, epochs=4, lr=0.1), tmp_path / "r", progress=False)
    log = [json.loads(ln) for ln in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2, 3, 4]
    assert log[-1]["train_loss"] < log[0]["train_loss"]


class _Interrupt(Exception):
    pass


def _raise_after_first(entry: dict) -> None:
    if entry["epoch"] == 1:
        raise _Interrupt


@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_resume_reproduces_uninterrupted_run(tiny: str, tmp_path: Path, method: str) -> None:
    r = _recipe(tiny, method=method, schedule="cyclic", augment=True)
    straight = train(r, tmp_path / "straight", progress=False)
    with pytest.raises(_Interrupt):
        train(r, tmp_path / "resumed", progress=False, on_epoch=_raise_after_first)
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["status"] == "running"
    resumed = train(r, tmp_path / "resumed", progress=False)
    a, _ = load_run(tmp_path / "straight")
    b, _ = load_run(tmp_path / "resumed")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    assert resumed["last"]["train_loss"] == pytest.approx(straight["last"]["train_loss"], rel=1e-5)
    assert len((tmp_path / "resumed" / "log.jsonl").read_text().splitlines()) == 2


def test_checkpoint_is_weights_only_and_finished_run_returns(tiny: str, tmp_path: Path) -> None:
    r = _recipe(tiny, epochs=1)
    first = train(r, tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert int(state["epoch"]) == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng"}
    stamp = (tmp_path / "checkpoint.pt").stat().st_mtime_ns
    again = train(r, tmp_path, progress=False)
    assert again == first and (tmp_path / "checkpoint.pt").stat().st_mtime_ns == stamp  # nothing retrained
    assert first["data"]["n"] == 96 and first["data"]["sha256"]
    with pytest.raises(ValueError, match="different recipe"):
        train(_recipe(tiny, epochs=1, lr=0.5), tmp_path, progress=False)


def test_same_seed_same_weights_different_seed_differs(tiny: str, tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train(_recipe(tiny, epochs=1, seed=seed, method="fast"), tmp_path / name, progress=False)
    wa, wb, wc = (load_run(tmp_path / n)[0].state_dict() for n in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


# -- load_run errors --------------------------------------------------------------------------------
def test_load_run_errors(tiny: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nothing-here")
    train(_recipe(tiny, epochs=1), tmp_path / "run", progress=False)
    model, recipe = load_run(tmp_path / "run" / "checkpoint.pt")
    assert recipe["dataset"] == tiny and not model.training
    ckpt = tmp_path / "run" / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="checkpoint.pt"):
        load_run(tmp_path / "run")
    ckpt.unlink()
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_run(tmp_path / "run")


def test_augmentation_never_mirrors_grayscale_digits() -> None:
    # A horizontally flipped digit is another (often invalid) digit: crop only for 1-channel images.
    from deep.train import Recipe
    from deep.train.loop import augment_mode

    on = Recipe.from_dict({"dataset": "mnist", "model": "smallcnn", "augment": True})
    assert augment_mode(on, (1, 28, 28)) == "crop"
    assert augment_mode(on, (3, 32, 32)) == "crop+flip"
    assert augment_mode(Recipe(), (3, 32, 32)) is False
