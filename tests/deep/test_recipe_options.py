"""Recipe keys of issue 10's paper-spec audit: model_options, checkpoint_every, random_start."""
from __future__ import annotations

import json

import pytest
import torch

from deep.models import model_option_names
from deep.runfolder import RunFolder, load_run
from deep.train import Recipe, train
from deep.train.methods import build_method
from tests.deep._tiny import tiny_recipe, write_tiny_npz


@pytest.fixture()
def tiny(tmp_path):
    return write_tiny_npz(tmp_path / "tiny.npz")


def test_model_options_reach_the_model_and_model_json(tmp_path, tiny):
    recipe = Recipe.from_dict(tiny_recipe(tiny, model="maxout", epochs=1,
                                          model_options={"hidden": [7, 5], "pieces": 2, "dropout": 0.5}))
    train(recipe, tmp_path / "run", progress=False)
    spec = RunFolder(tmp_path / "run").read_model_spec()
    assert spec["options"] == {"hidden": [7, 5], "pieces": 2, "dropout": 0.5}
    stored = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert stored["model_options"] == {"hidden": [7, 5], "pieces": 2, "dropout": 0.5}
    model, _ = load_run(tmp_path / "run")
    widths = [m.units for m in model.modules() if hasattr(m, "units")]
    assert widths == [7, 5]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules()) == 2


def test_without_model_options_model_json_is_as_before(tmp_path, tiny):
    train(Recipe.from_dict(tiny_recipe(tiny, epochs=1)), tmp_path / "run", progress=False)
    assert set(RunFolder(tmp_path / "run").read_model_spec()) == {"name", "num_classes", "in_shape", "mean", "std"}


@pytest.mark.parametrize("options, fragment", [
    ({"width": 3}, "must name options of model 'maxout'"),
    ([1, 2], "must be None or a table"),
])
def test_bad_model_options_are_refused(tiny, options, fragment):
    with pytest.raises(ValueError, match=fragment):
        Recipe.from_dict(tiny_recipe(tiny, model="maxout", model_options=options))


def test_model_option_names():
    assert model_option_names("maxout") == ("hidden", "pieces", "dropout")
    with pytest.raises(ValueError, match="unknown model"):
        model_option_names("nope")


def test_checkpoint_every_saves_on_the_interval_and_after_the_last(tmp_path, tiny, monkeypatch):
    saved: list[int] = []
    original = RunFolder.save_checkpoint
    monkeypatch.setattr(RunFolder, "save_checkpoint",
                        lambda self, state: (saved.append(int(state["epoch"])), original(self, state))[1])
    train(Recipe.from_dict(tiny_recipe(tiny, epochs=5, checkpoint_every=2)), tmp_path / "run", progress=False)
    assert saved == [2, 4, 5]
    with pytest.raises(ValueError, match="checkpoint_every"):
        Recipe.from_dict(tiny_recipe(tiny, checkpoint_every=0))


def test_checkpoint_interval_gives_the_same_weights(tmp_path, tiny):
    a = train(Recipe.from_dict(tiny_recipe(tiny, epochs=3)), tmp_path / "a", progress=False)
    b = train(Recipe.from_dict(tiny_recipe(tiny, epochs=3, checkpoint_every=2)), tmp_path / "b", progress=False)
    wa, wb = (RunFolder(tmp_path / d).load_checkpoint()["model"] for d in "ab")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["last"]["train_loss"] == b["last"]["train_loss"]


@pytest.mark.parametrize("method", ["pgd", "trades", "mart"])
def test_random_start_false_starts_the_training_attack_at_the_image(tiny, method):
    on = build_method(Recipe.from_dict(tiny_recipe(tiny, method=method)))
    off = build_method(Recipe.from_dict(tiny_recipe(tiny, method=method, random_start=False)))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    gen = torch.Generator().manual_seed(0)
    assert on.make_attack(model, gen).random_start in (True, "normal")
    assert off.make_attack(model, gen).random_start is False


def test_model_options_flag_takes_json(tiny):
    import argparse

    from deep.train.recipe import add_recipe_arguments, recipe_from_args

    parser = argparse.ArgumentParser()
    add_recipe_arguments(parser)
    args = parser.parse_args(["--model", "maxout", "--model-options", '{"hidden": [16], "dropout": 0.2}',
                              "--checkpoint-every", "3", "--no-random-start"])
    r = recipe_from_args(args, {"dataset": tiny})
    assert (r.model.options, r.checkpoint_every, r.threat.random_start) == ({"hidden": [16], "dropout": 0.2}, 3, False)
