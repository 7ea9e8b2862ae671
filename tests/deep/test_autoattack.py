"""AutoAttack suite entries (deep.attacks.autoattack): registry, the ball, layout hand-back, resume, flags."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("pyautoattack")

from deep.attacks.autoattack import ADAPTERS, SUITES, APGDCE, AutoAttackSuite, autoattack  # noqa: E402
from deep.attacks.registry import build_attack, known_attacks, parse_attack  # noqa: E402
from deep.evaluation import evaluate  # noqa: E402



# Tiny models: OpenMP's second thread only adds spin-waiting (0.09 s vs 3 s CPU per APGD run here).
pytestmark = pytest.mark.usefixtures("one_thread")


NAMES = ("aa-standard", "aa-plus", "aa-rand", "apgd-ce", "apgd-t", "apgd-dlr", "fab-t", "square")


def tiny_conv(num_classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, num_classes))


def tiny_data(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x).argmax(1)


def test_suite_names_are_registered_with_version_and_repr() -> None:
    assert tuple(SUITES) == NAMES == tuple(ADAPTERS)
    assert set(NAMES) <= set(known_attacks())
    model = tiny_conv()
    for name in NAMES:
        atk = build_attack(parse_attack(name), model, eps=0.1, norm="linf", seed=0)
        assert type(atk) is ADAPTERS[name] and isinstance(atk, AutoAttackSuite) and atk.name == name
        assert atk.version.startswith("pyautoattack==") and name in repr(atk)


def test_unknown_name_is_refused_and_bf16_leaves_autoattack_in_float32() -> None:
    with pytest.raises(ValueError, match="unknown attack name 'apgd-x'.*aa-standard"):
        parse_attack("apgd-x")
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)
    fp32 = build_attack(parse_attack("apgd-ce"), model, eps=0.1, norm="linf", seed=0)(x, y)
    mixed = build_attack(parse_attack("apgd-ce"), model, eps=0.1, norm="linf", seed=0, bf16=True)(x, y)
    assert torch.equal(fp32, mixed)  # bf16 speeds up the package's own attacks in a suite, never AutoAttack


def test_apgd_ce_stays_in_the_ball_and_breaks_a_weak_model() -> None:
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)  # every example starts correctly classified
    for norm, eps in (("linf", 0.3), ("l2", 2.0)):
        x_adv = APGDCE(model, eps, norm)(x, y)
        assert x_adv.dtype == torch.float32 and x_adv.device == x.device and x_adv.shape == x.shape
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps * (1 + 1e-5)
        assert float((labels(model, x_adv) == y).float().mean()) < 1.0


def test_model_is_handed_back_bit_identical_and_attacked_channels_last() -> None:
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)
    model.train()
    model[1].eval()  # a mixed flag must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    cl = torch.channels_last
    model[0].register_forward_pre_hook(lambda m, _: seen.append(m.weight.is_contiguous(memory_format=cl)))
    autoattack("apgd-ce", model, 0.3, "linf")(x, y)
    assert sum(seen) >= 100 and len(seen) - sum(seen) <= 1  # all but the input check ran channels-last
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.is_contiguous() for p in model.parameters())
    assert model.training and model[0].training and not model[1].training


def test_same_numbers_without_and_with_forced_nchw_layout() -> None:
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)
    fast = autoattack("apgd-ce", model, 0.1, "linf")
    plain = autoattack("apgd-ce", model, 0.1, "linf")
    plain.channels_last = False
    assert torch.equal(labels(model, fast(x, y)) == y, labels(model, plain(x, y)) == y)


def test_caller_rng_state_is_restored() -> None:
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    autoattack("apgd-ce", model, 0.1, "linf", seed=7)(x, y)  # AutoAttack reseeds the global RNG inside
    assert torch.equal(torch.rand(3), expected)


class Interrupt(Exception):
    pass


class StopAfter(nn.Module):
    """Raises after `limit` forward passes: a run killed part-way."""

    def __init__(self, model: nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit, self.calls = model, limit, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.limit:
            raise Interrupt
        return self.model(x)


def test_interrupted_run_resumes_from_state_and_gives_the_same_numbers(tmp_path) -> None:
    model, x = tiny_conv(), tiny_data(12)
    y = labels(model, x)
    reference = autoattack("apgd-ce", model, 0.1, "linf", batch_size=4)(x, y)

    counting = StopAfter(model, limit=10 ** 9)
    autoattack("apgd-ce", counting, 0.1, "linf", batch_size=4, state_path=tmp_path)(x[:4], y[:4])  # a partial run
    per_chunk = counting.calls
    killed = StopAfter(model, limit=per_chunk + per_chunk // 2)  # chunk 1 is reused; dies inside chunk 3
    with pytest.raises(Interrupt):
        autoattack("apgd-ce", killed, 0.1, "linf", batch_size=4, state_path=tmp_path)(x, y)
    assert len(list(tmp_path.glob("*.pt"))) == 2 and not list(tmp_path.glob("*.tmp"))

    resumed_model = StopAfter(model, limit=10 ** 9)
    resumed = autoattack("apgd-ce", resumed_model, 0.1, "linf", batch_size=4, state_path=tmp_path)(x, y)
    assert torch.equal(resumed, reference)
    assert resumed_model.calls < 2 * per_chunk  # only the last chunk was attacked again
    other_eps = autoattack("apgd-ce", model, 0.2, "linf", batch_size=4, state_path=tmp_path)(x[:4], y[:4])
    assert len(list(tmp_path.glob("*.pt"))) == 4 and other_eps.shape == (4, 1, 6, 6)  # never a stale chunk
    other_model = tiny_conv(seed=5)
    autoattack("apgd-ce", other_model, 0.1, "linf", batch_size=4, state_path=tmp_path)(x[:4], y[:4])
    assert len(list(tmp_path.glob("*.pt"))) == 5  # another model's weights: its own chunk file


def test_autoattack_checks_are_relayed_as_flags() -> None:
    model = nn.Sequential(tiny_conv(), nn.Softmax(dim=1))  # probabilities instead of logits
    x = tiny_data()
    atk = autoattack("apgd-ce", model, 0.1, "linf")
    atk(x, labels(model, x))
    assert any("probability distribution" in f for f in atk.flags)


def test_too_few_classes_for_the_dlr_loss_is_refused() -> None:
    model, x = tiny_conv(num_classes=3), tiny_data()
    with pytest.raises(ValueError, match="at least 4 classes"):
        autoattack("aa-standard", model, 0.1, "linf")(x, labels(model, x))
    assert autoattack("apgd-ce", model, 0.1, "linf")(x, labels(model, x)).shape == x.shape


def test_aa_standard_on_a_weak_model_breaks_everything() -> None:
    model, x = tiny_conv(), tiny_data()
    y = labels(model, x)
    x_adv = autoattack("aa-standard", model, 1.0, "linf")(x, y)  # APGD-CE breaks all; the rest is skipped
    assert not bool((labels(model, x_adv) == y).any())


def test_evaluate_takes_the_worst_case_over_ours_and_autoattack() -> None:
    model, x = tiny_conv(), tiny_data(16)
    y = labels(model, x)
    y[:2] = (y[:2] + 1) % 10  # two clean errors
    result = evaluate(model, (x, y), ["pgd-5", "apgd-ce"], eps=0.05, progress=False, batch_size=8)
    assert set(result.attacks) == {"pgd-5", "apgd-ce"}
    assert result.versions["apgd-ce"].startswith("pyautoattack==")
    both = torch.as_tensor(result.correct["pgd-5"]) & torch.as_tensor(result.correct["apgd-ce"])
    both &= torch.as_tensor(result.correct["clean"])
    assert result.worst_case == pytest.approx(float(both.float().mean()))
    assert result.worst_case <= min(result.attacks.values())


class GradientInForward(nn.Module):
    """Calls autograd inside forward: AutoAttack's dynamic-defence check fires."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_conv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            torch.autograd.grad(self.inner(probe).sum(), probe)
        return self.inner(x)


def test_dynamic_defence_flag_does_not_leak_to_the_next_model() -> None:
    x = tiny_data()
    dynamic = GradientInForward()
    flagged = autoattack("apgd-ce", dynamic, 0.1, "linf")
    flagged(x, labels(dynamic, x))
    assert any("dynamic defense" in f for f in flagged.flags)
    plain = tiny_conv()
    clean = autoattack("apgd-ce", plain, 0.1, "linf")
    clean(x, labels(plain, x))
    assert not any("dynamic defense" in f for f in clean.flags)


def test_registry_forwards_batch_size_and_state_path(tmp_path) -> None:
    model, x = tiny_conv(), tiny_data()
    atk = build_attack(parse_attack("apgd-ce"), model, eps=0.1, norm="linf", seed=0, batch_size=4,
                       state_path=tmp_path)
    assert (atk.batch_size, atk.state_path) == (4, tmp_path)
    atk(x, labels(model, x))
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_evaluate_resumes_autoattack_from_its_state_dir(tmp_path) -> None:
    """evaluate(state_dir=...) hands AutoAttack a folder per suite name; an interrupted evaluation
    called again redoes only the missing batches and gives the same numbers."""
    model, x = tiny_conv(), tiny_data(12)
    y = labels(model, x)
    reference = evaluate(model, (x, y), ["pgd-3", "apgd-ce"], eps=0.1, batch_size=4, progress=False)
    killed = StopAfter(model, limit=10 ** 9)
    evaluate(killed, (x[:4], y[:4]), ["apgd-ce"], eps=0.1, batch_size=4, progress=False, state_dir=tmp_path)
    assert len(list((tmp_path / "apgd-ce").glob("*.pt"))) == 1  # the first batch is kept
    again = StopAfter(model, limit=10 ** 9)
    resumed = evaluate(again, (x, y), ["pgd-3", "apgd-ce"], eps=0.1, batch_size=4, progress=False,
                       state_dir=tmp_path)
    assert resumed.attacks == reference.attacks and resumed.worst_case == reference.worst_case
    assert not (tmp_path / "pgd-3").exists()  # the package's own attacks keep no state
