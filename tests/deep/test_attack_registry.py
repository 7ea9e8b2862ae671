"""deep.attacks.registry: names, limits, builders, and a toy attack added from this file alone."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from deep.attacks import FGSM, PGD
from deep.attacks.registry import (AttackSpec, build_attack, known_attacks, parse_attack, register_attack,
                                   resolve_spec, unregister_attack)
from deep.evaluate import evaluate


def test_builtin_names_parse_to_their_settings() -> None:
    assert parse_attack("pgd-40x5") == AttackSpec("pgd-40x5", "pgd", 40, 5, None, "ce")
    assert parse_attack("cw-20") == AttackSpec("cw-20", "pgd", 20, 1, None, "cw")
    assert parse_attack("fgsm") == AttackSpec("fgsm", "fgsm", 1, 1, None, "ce")
    assert parse_attack("pgd-0").steps == 0  # PGD(steps=0) is valid: the start point only
    assert parse_attack("pgd-40", eps=0.3).alpha == 2.5 * 0.3 / 40
    assert parse_attack("pgd-0", eps=0.3).alpha == 0.0
    assert parse_attack("cw-20", eps="8/255", alpha=0.01).alpha == 0.01
    assert parse_attack("fgsm", eps=0.1, alpha=0.5).alpha == 0.1  # FGSM's step is ε itself
    assert resolve_spec(parse_attack("pgd-10"), eps=0.5).to_dict() == {
        "kind": "pgd", "steps": 10, "restarts": 1, "alpha": 0.125, "loss": "ce"}
    names = known_attacks()
    assert names[names.index("fgsm"):names.index("fgsm") + 5] == ["fgsm", "pgd-K", "pgd-KxR", "cw-K", "cw-KxR"]


@pytest.mark.parametrize("name,match", [
    ("deepfool", "unknown attack name 'deepfool'; known: .*fgsm, pgd-K, pgd-KxR, cw-K, cw-KxR"),
    ("pgd-99999999999", r"steps = 99999999999 is out of range; must lie in \[0, 100000\]"),
    ("cw-10x0", r"restarts = 0 is out of range; must lie in \[1, 1000\]"),
    ("pgd-10x1001", r"restarts = 1001 .* \[1, 1000\]"),
    ("PGD-10", "unknown attack"), ("pgd-", "unknown attack"), ("pgd-1.5", "unknown attack"),
    (7, "must be a string"),
])
def test_bad_names_are_refused_naming_the_range(name, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_attack(name)


def test_builders_make_the_same_attacks_as_before() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    atk = build_attack(parse_attack("cw-7x2"), model, eps=0.2, norm="Linf", seed=3)
    assert isinstance(atk, PGD)
    assert (atk.eps, atk.alpha, atk.steps, atk.restarts, atk.loss, atk.norm, atk.random_start) == \
        (0.2, 2.5 * 0.2 / 7, 7, 2, "cw", "linf", True)
    assert isinstance(build_attack(parse_attack("fgsm"), model, eps=0.1, norm="linf", seed=0), FGSM)
    fgm = build_attack(parse_attack("fgsm"), model, eps=0.5, norm="L2", seed=0)  # ℓ2: one step of length ε
    assert isinstance(fgm, PGD) and (fgm.alpha, fgm.steps, fgm.random_start, fgm.norm) == (0.5, 1, False, "l2")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        build_attack(parse_attack("fgsm"), model, eps=8, norm="linf", seed=0)
    with pytest.raises(ValueError, match="norm"):
        build_attack(parse_attack("fgsm"), model, eps=0.1, norm="l1", seed=0)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_attack("pgd", builder=lambda *a, **k: None, description="again")


# -- a new attack added through the registry from this file only --------------------------------
class ShiftToBlack:
    """Toy ℓ∞ attack (not an Attack subclass): moves every pixel ε toward 0."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return (x - self.eps).clamp(0.0, 1.0)


@pytest.fixture
def toy_attack():
    @register_attack("dark", pattern=r"dark(?:-(?P<steps>\d+))?", forms=("dark", "dark-K"),
                     description="toy: shift every pixel ε toward black")
    def _build(spec: AttackSpec, model: nn.Module, *, eps: float, norm: str, seed: int, bf16: bool = False):
        return ShiftToBlack(eps)
    yield
    unregister_attack("dark")


def test_a_new_attack_registers_and_evaluates(toy_attack) -> None:
    assert parse_attack("dark-3") == AttackSpec("dark-3", "dark", 3, 1, None, "ce")
    assert "dark-K" in known_attacks()

    class Brightness(nn.Module):  # class 1 iff the mean pixel exceeds 0.5
        def forward(self, x: Tensor) -> Tensor:
            m = x.flatten(1).mean(1)
            return torch.stack([0.5 - m, m - 0.5], dim=1)

    x = torch.tensor([0.2, 0.55, 0.58, 0.7, 0.9]).reshape(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    y = torch.tensor([0, 1, 1, 1, 1])
    r = evaluate(Brightness(), (x, y), ["dark", "pgd-5"], eps=0.1, progress=False)
    # 0.55 and 0.58 fall below 0.5 after the shift; 0.2 stays class 0: 3 of 5 robust to "dark".
    assert r["clean"] == 1.0 and r["attacks"]["dark"] == pytest.approx(0.6)
    assert r["params"]["dark"] == {"kind": "dark", "steps": 1, "restarts": 1, "alpha": None, "loss": "ce"}
