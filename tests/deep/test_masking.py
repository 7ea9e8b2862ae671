"""Gradient-masking checks (deep.evaluation.masking): each check passes on a plain model and warns on a masked one."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deep.evaluation.masking import (Check, MaskingCheck, check_attack_gap, check_black_box, check_large_eps, check_monotone_eps,
                                     check_randomised, check_zero_gradients, checks_to_json, large_eps,
                                     masking_checks, relay_autoattack, warnings_only, zero_gradient_share)


# Tiny models: OpenMP's second thread only adds spin-waiting (0.09 s vs 3 s CPU per APGD run here).
pytestmark = pytest.mark.usefixtures("one_thread")


def linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()


class Rounded(nn.Module):
    """Quantises its input first: the input gradient is exactly zero everywhere (masked)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = linear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class DropoutAlwaysOn(nn.Module):
    """Dropout kept active in eval mode: a randomised model."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = linear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(F.dropout(x, 0.5, training=True))


def data(model: nn.Module, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return x, model(x).argmax(1)  # every example correct


def test_monotone_eps_flags_a_rise_and_passes_a_fall() -> None:
    assert check_monotone_eps({0.1: 0.6, 0.2: 0.4, 0.3: 0.4}).passed
    bad = check_monotone_eps({0.3: 0.5, 0.1: 0.6, 0.2: 0.4})
    assert not bad.passed and "0.4000 at eps 0.2 -> 0.5000 at eps 0.3" in bad.detail
    assert check_monotone_eps({0.1: 0.6}).passed  # nothing to compare


def test_large_eps_is_the_whole_box() -> None:
    assert large_eps("linf", (1, 28, 28)) == 1.0
    assert large_eps("l2", (3, 32, 32)) == pytest.approx((3 * 32 * 32) ** 0.5)


def test_large_eps_reaches_zero_on_a_plain_model_and_not_on_a_rounded_one() -> None:
    model = linear()
    x, y = data(model)
    assert check_large_eps(model, (x, y), norm="linf", attack="pgd-10").passed
    masked = Rounded()
    x, y = data(masked)
    result = check_large_eps(masked, (x, y), norm="linf", attack="fgsm")  # zero gradient: FGSM cannot move
    assert not result.passed and result.check is Check.LARGE_EPS and "expected 0" in result.detail


def test_zero_gradient_share_is_exact() -> None:
    model = linear()
    assert zero_gradient_share(model, data(model)) == 0.0
    masked = Rounded()
    assert zero_gradient_share(masked, data(masked)) == 1.0
    check = check_zero_gradients(masked, data(masked))
    assert not check.passed and check.detail.startswith("1.0000 of the correctly classified")


def test_randomised_model_calls_for_aa_rand() -> None:
    x, _ = data(linear())
    assert check_randomised(linear(), x).passed
    model = DropoutAlwaysOn()
    warned = check_randomised(model, x, suite=["apgd-ce"])
    assert not warned.passed and "add aa-rand" in warned.detail
    assert check_randomised(model, x, suite=["aa-rand"]).passed


def test_black_box_stronger_than_white_box_is_flagged_per_example() -> None:
    white = torch.tensor([True, True, False, True])
    square = torch.tensor([True, False, False, True])
    bad = check_black_box({"apgd-ce": white, "pgd-20": white, "square": square})
    assert not bad.passed and bad.detail.startswith("1 of 4 examples broken by square")
    assert check_black_box({"apgd-ce": square, "square": white}).passed  # square breaks a subset
    assert check_black_box({"aa-standard": square, "square": square}).passed  # no white-box-only entry


def test_autoattack_flags_are_relayed() -> None:
    checks = relay_autoattack({"aa-standard": ["it seems to be a randomized defense!"], "apgd-ce": []})
    assert checks == [MaskingCheck(Check.AUTOATTACK, False, "aa-standard: it seems to be a randomized defense!")]
    assert relay_autoattack({"apgd-ce": []})[0].passed
    assert relay_autoattack({}) == []


def test_all_checks_on_a_masked_model_warn_and_serialise() -> None:
    masked = Rounded()
    x, y = data(masked)
    correct = {"pgd-20": torch.ones(12, dtype=torch.bool), "square": torch.ones(12, dtype=torch.bool)}
    checks = masking_checks(masked, (x, y), norm="linf", correct=correct, suite=["pgd-20", "square"],
                            accuracy_by_eps={0.1: 1.0, 0.2: 1.0}, large_eps_attack="fgsm")
    assert [c.check for c in checks] == [Check.MONOTONE_EPS, Check.BLACK_BOX, Check.ATTACK_GAP, Check.ZERO_GRADIENTS,
                                        Check.RANDOMISED, Check.LARGE_EPS]
    assert {c.check for c in warnings_only(checks)} == {Check.ZERO_GRADIENTS, Check.LARGE_EPS}
    assert checks_to_json(checks)[3] == {"check": "zero-gradients", "passed": False,
                                         "detail": "1.0000 of the correctly classified examples have an all-zero "
                                                   "input gradient"}


def test_check_evaluation_reads_an_eval_result_and_relays_autoattack_flags() -> None:
    from deep.evaluation import evaluate
    from deep.evaluation.masking import check_evaluation, flag_lines

    masked = Rounded()
    x, y = data(masked)
    result = evaluate(masked, (x, y), ["fgsm"], eps=0.1, progress=False)
    result.flags.append("apgd-ce: not in the suite, not relayed")
    checks = check_evaluation(masked, (x, y), result)
    assert [c.check for c in checks] == [Check.MONOTONE_EPS, Check.BLACK_BOX, Check.ATTACK_GAP, Check.ZERO_GRADIENTS,
                                        Check.RANDOMISED]
    assert flag_lines(checks) == ["masking zero-gradients: 1.0000 of the correctly classified examples have an "
                                  "all-zero input gradient"]
    assert result.worst_case == 1.0  # the warning never changes the number


def test_attach_masking_checks_writes_checks_and_flags_and_keeps_the_numbers() -> None:
    from deep.evaluation import evaluate
    from deep.evaluation.masking import attach_masking_checks

    masked = Rounded()
    x, y = data(masked)
    result = evaluate(masked, (x, y), ["fgsm"], eps=0.1, progress=False)
    before = {k: v for k, v in result.to_dict().items() if k not in ("flags", "masking_checks")}
    checks = attach_masking_checks(result, masked, (x, y), batch_size=5)
    saved = result.to_dict()
    assert saved["masking_checks"] == checks_to_json(checks)
    assert [c["check"] for c in saved["masking_checks"]] == ["monotone-eps", "black-box", "attack-gap", "zero-gradients",
                                                             "randomised"]
    assert saved["flags"] == ["masking zero-gradients: 1.0000 of the correctly classified examples have an "
                              "all-zero input gradient"]
    assert {k: v for k, v in saved.items() if k not in ("flags", "masking_checks")} == before


def test_a_clean_only_evaluation_gets_no_checks() -> None:
    from deep.evaluation import evaluate
    from deep.evaluation.masking import attach_masking_checks

    masked = Rounded()  # would fail zero-gradients, but there is no robust number to check
    x, y = data(masked)
    result = evaluate(masked, (x, y), [], eps=0.0, progress=False)
    assert attach_masking_checks(result, masked, (x, y)) == []
    assert result["masking_checks"] == [] and result.flags == []


def test_attack_gap_flags_pgd_far_above_autoattack_per_example() -> None:
    # 10 examples: PGD keeps 8, AutoAttack's two entries keep 7 each but only 6 together (per example).
    t = lambda bits: torch.tensor([bool(int(b)) for b in bits])  # noqa: E731
    correct = {"pgd-20": t("1111111100"), "apgd-ce": t("1111111000"), "apgd-t": t("1111101100")}
    check = check_attack_gap(correct)
    assert not check.passed and "80.0% robust" in check.detail and "60.0%" in check.detail
    assert "+20.0 points" in check.detail
    close = {"pgd-20": t("1111111100"), "apgd-ce": t("1111111100"), "apgd-t": t("1111111100")}
    assert check_attack_gap(close).passed
    assert check_attack_gap({"pgd-20": t("1")}).passed  # nothing to compare
