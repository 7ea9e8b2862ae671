"""[MART] experiment options of deep.train: loss ablations, the S⁻/S⁺ perturbation sets, ε warm-up,
initialisation from another run, and tolerance of run folders written before these fields existed."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from deep.attacks import PGD
from deep.train import Recipe, load_run, train
from deep.train.methods import inner_radius_factor, perturb_subset, set_inner_radius, training_step

from _tiny import write_tiny_npz


class FixedLogits(nn.Module):
    """logits = 2·x flattened: the test picks the inputs that give the logits it wants."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x.flatten(1)


def _ln(v: float) -> float:
    return math.log(v)


# Natural logits (0, 0, 0) → p = (1/3, 1/3, 1/3); adversarial logits (0, ln 2, 0) → q = (1/4, 1/2, 1/4); y = 0.
# By hand: CE(q) = ln 4; BCE(q) = −ln q_0 − ln(1 − q_1) = ln 4 + ln 2 = ln 8;
# KL(p ‖ q) = (1/3)(ln(4/3) + ln(2/3) + ln(4/3)) = (1/3) ln(32/27); 1 − p_0 = 2/3; λ = 3.
KL = _ln(32 / 27) / 3
HAND = {"none": _ln(8) + 3 * KL * 2 / 3, "no-weight": _ln(8) + 3 * KL, "no-kl": _ln(8), "ce": _ln(4) + 3 * KL * 2 / 3}


@pytest.mark.parametrize("ablation", sorted(HAND))
def test_training_step_mart_ablations_match_hand_values(ablation: str) -> None:
    x = torch.zeros(1, 1, 1, 3)
    x_adv = torch.tensor([0.0, math.log(2) / 2, 0.0]).view(1, 1, 1, 3)
    recipe = Recipe.from_dict({"method": "mart", "lam": 3.0, "mart_ablation": ablation})
    out = training_step(recipe, FixedLogits(), lambda xx, yy: x_adv, x, torch.tensor([0]))
    assert float(out.loss) == pytest.approx(HAND[ablation], rel=1e-5)


class ByFirstPixel(nn.Module):
    """Predicts class 1 when the first pixel is > 0.5, else class 0 (two classes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1)[:, :1] - 0.5
        return torch.cat([-10 * s, 10 * s], dim=1)


@pytest.mark.parametrize("which", ["correct", "misclassified"])
def test_perturb_subset_attacks_only_the_named_set(which: str) -> None:
    x = torch.tensor([[0.9, 0.2], [0.1, 0.2], [0.9, 0.2], [0.1, 0.2]]).view(4, 1, 1, 2)
    y = torch.tensor([1, 1, 0, 0])  # the model is right on examples 0 and 3, wrong on 1 and 2
    model = ByFirstPixel().train()
    seen = []

    def mark(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        seen.append(yy.clone())
        return (xx + 0.05).clamp(0, 1)

    out = perturb_subset(which, model, mark, x, y)
    changed = (out != x).flatten(1).any(dim=1).tolist()
    assert changed == ([True, False, False, True] if which == "correct" else [False, True, True, False])
    assert model.training  # the set is decided in eval mode, and train mode is restored
    assert torch.equal(seen[0], y[torch.tensor(changed)])


def test_perturb_subset_with_an_empty_set_returns_the_batch() -> None:
    x = torch.tensor([[0.9, 0.2]]).view(1, 1, 1, 2)
    out = perturb_subset("misclassified", ByFirstPixel(), lambda a, b: a * 0, x,
                         torch.tensor([1]))
    assert torch.equal(out, x)


def test_warmup_factor_and_attack_radius() -> None:
    r = Recipe.from_dict({"method": "pgd", "eps": 0.3, "steps": 5, "epochs": 4, "eps_warmup": 2.0})
    assert [inner_radius_factor(r, t) for t in (0.0, 0.5, 2.0, 3.0)] == [0.0, 0.25, 1.0, 1.0]
    atk = PGD(FixedLogits(), 0.3, r.step_size(), 5)
    set_inner_radius(r, atk, 0.5)
    assert atk.eps == pytest.approx(0.075) and atk.alpha == pytest.approx(0.15 * 0.25)
    set_inner_radius(r, atk, 2.5)
    assert atk.eps == pytest.approx(0.3) and atk.alpha == pytest.approx(0.15)
    no = Recipe.from_dict({"method": "pgd", "eps": 0.3, "steps": 5})
    atk2 = PGD(FixedLogits(), 0.123, 0.01, 5)
    set_inner_radius(no, atk2, 0.0)  # without warm-up the attack is left alone
    assert atk2.eps == 0.123 and atk2.alpha == 0.01
    assert inner_radius_factor(no, 0.0) == 1.0


@pytest.mark.parametrize("kw, field", [
    ({"method": "pgd", "mart_ablation": "no-kl"}, "mart_ablation"),
    ({"method": "mart", "mart_ablation": "nope"}, "mart_ablation"),
    ({"method": "mart", "perturb": "correct"}, "perturb"),
    ({"method": "pgd", "perturb": "some"}, "perturb"),
    ({"method": "pgd", "epochs": 2, "eps_warmup": 3.0}, "eps_warmup"),
    ({"method": "pgd", "eps_warmup": -1.0}, "eps_warmup"),
    ({"method": "pgd", "init_from": "/no/such/run"}, "init_from"),
])
def test_recipe_rejects_bad_mart_fields(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Recipe.from_dict(kw)


def test_defaults_keep_old_recipes_unchanged() -> None:
    r = Recipe()
    assert (r.mart_ablation, r.perturb, r.eps_warmup, r.init_from) == ("none", "all", 0.0, None)


def _tiny_recipe(data: str, **kw) -> Recipe:
    base = dict(dataset=data, model="logreg", epochs=1, batch_size=32, lr=0.1, eps=0.1, steps=2, eval_n=16,
                eval_steps=2, seed=0)
    return Recipe.from_dict({**base, **kw})


def test_init_from_starts_from_the_given_weights(tmp_path) -> None:
    data = write_tiny_npz(tmp_path / "tiny.npz")
    train(_tiny_recipe(data, method="standard", epochs=2), tmp_path / "a", progress=False)
    a, _ = load_run(tmp_path / "a")
    # lr ~0: the run's final weights are its initial ones
    train(_tiny_recipe(data, method="standard", lr=1e-12, init_from=str(tmp_path / "a"), seed=5),
          tmp_path / "b", progress=False)
    train(_tiny_recipe(data, method="standard", lr=1e-12, seed=5), tmp_path / "c", progress=False)
    b, _ = load_run(tmp_path / "b")
    c, _ = load_run(tmp_path / "c")
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert any(not torch.allclose(pa, pc) for pa, pc in zip(a.state_dict().values(), c.state_dict().values()))


def test_pgd_perturb_and_warmup_train_end_to_end(tmp_path) -> None:
    data = write_tiny_npz(tmp_path / "tiny.npz")
    m = train(_tiny_recipe(data, method="pgd", perturb="misclassified", eps_warmup=0.5, epochs=2),
              tmp_path / "p", progress=False)
    assert m["status"] == "done" and math.isfinite(m["last"]["train_loss"])
    m2 = train(_tiny_recipe(data, method="mart", mart_ablation="ce"), tmp_path / "q", progress=False)
    assert m2["status"] == "done"


def test_run_folder_written_before_the_new_fields_still_resumes(tmp_path) -> None:
    data = write_tiny_npz(tmp_path / "tiny.npz")
    r = _tiny_recipe(data, method="standard")
    first = train(r, tmp_path / "old", progress=False)
    stored = json.loads((tmp_path / "old" / "recipe.json").read_text())
    for key in ("mart_ablation", "perturb", "eps_warmup", "init_from"):
        stored.pop(key)
    (tmp_path / "old" / "recipe.json").write_text(json.dumps(stored))
    assert train(r, tmp_path / "old", progress=False)["last"] == first["last"]
    with pytest.raises(ValueError, match="different recipe"):
        train(_tiny_recipe(data, method="standard", lr=0.2), tmp_path / "old", progress=False)
