"""Projected gradient descent (Madry et al. 2018), ℓ∞ and ℓ2, with CE / CW-margin / KL objectives.

Distance: ‖x_adv − x‖∞ ≤ eps (sign steps, box projection) or ‖x_adv − x‖₂ ≤ eps (normalised steps of
ℓ2 length alpha per example, projection onto the ball); every iterate is clipped to [0, 1] (SPEC §0).
Shapes: x float [N, C, H, W] in [0, 1], y integer [N] (targets when targeted) → x_adv like x.
Defaults (torchattacks): eps 8/255, alpha 2/255, steps 10 (ℓ∞); eps 0.5, alpha 0.125, steps 10 (ℓ2, PGDL2).

Returned point, per example: the best iterate seen, ranked by (success, objective) on fp32 logits
(with ``bf16=True`` the steps run in bf16 and each iterate is judged by an extra fp32 forward) — a successful
iterate beats an unsuccessful one, and among equals the higher objective wins. Over restarts the same
rule picks the per-example best (a success, else the highest loss). Because a run with more steps or
restarts sees a superset of the candidates (same generator seed), it can never help the model.

``first_success=True`` (what evaluation uses under bf16; the registry builder below): an example's first
fp32-successful iterate is final and the example is attacked no further, so later steps and restarts
run on the examples not yet broken only (as AutoAttack does). Which examples succeed is unchanged;
only which successful iterate is returned differs. Why: under bf16 the fp32 judging forward of every
iterate costs more than the bf16 step itself (benchmarks/README.md). Training keeps the default (the
strongest iterate, which is what it learns from); fp32 evaluation too, so its numbers stay as before.

With both (bf16 and first_success, loss ce or cw) the bf16 logits of each step screen which iterates get
the fp32 judging forward: only those whose bf16 distance to success (untargeted: z_y − max_{j≠y} z_j;
targeted: max_{j≠t} z_j − z_t) is within a band of zero. The band is SCREEN_FACTOR times the largest
bf16-vs-fp32 error of that distance seen so far in the call (first measured on the whole batch at the
first step, then on every screened-in iterate, so it only widens), and at least SCREEN_FACTOR·1e-3 of the
largest |logit|. Every success is still an fp32 success and every returned iterate was judged in fp32;
each restart's last iterate is judged in fp32 whatever its bf16 margin. A skipped iterate could only matter
if bf16 erred by SCREEN_FACTOR times its worst error on the batch. Measured on the MNIST SmallCNN: that
error is at most ~1% of the largest |logit|.
"""
from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from deep.units import NORMS, check_eps, parse_norm  # noqa: F401  (NORMS: re-exported for callers)

from .base import Attack, Objective, check_count, check_nonneg
from .objectives import LOSSES, _margin_to_others, attack_objective, attack_success
from .registry import MAX_RESTARTS, MAX_STEPS, AttackSpec, check_steps, register_attack

DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}
SCREEN_FACTOR = 8.0  # bf16 screening band, in multiples of the worst bf16 error seen (module docstring)


def _madry_step(eps: float, steps: int) -> float:
    """Madry et al.'s step size 2.5·ε/K (0 when K = 0: no step is taken)."""
    return 2.5 * eps / steps if steps else 0.0


class _Best:
    """Per-example best candidate by (success, objective); with ``first_success`` an example's first
    successful candidate is final (``open_rows`` lists the examples still worth attacking)."""

    def __init__(self, x: Tensor, first_success: bool = False) -> None:
        self.x = x.clone()
        self.objective = torch.full((x.shape[0],), float("-inf"), device=x.device)
        self.success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self.first_success = first_success

    def open_rows(self) -> Tensor | None:
        """Indices of the examples without a success yet, or None for "every example" (no first_success,
        or none has succeeded: indexing would only copy the batch)."""
        if not self.first_success or not bool(self.success.any()):
            return None
        return (~self.success).nonzero().squeeze(1)

    def update(self, x: Tensor, objective: Tensor, success: Tensor, rows: Tensor | None = None) -> None:
        """Offer candidates for the examples ``rows`` (all when None); x, objective, success are those rows'."""
        held_success = self.success if rows is None else self.success[rows]
        held_objective = self.objective if rows is None else self.objective[rows]
        better = (success & ~held_success) | ((success == held_success) & (objective > held_objective))
        if self.first_success:
            better = better & ~held_success
        if rows is None:
            self.x = torch.where(better[:, None, None, None], x, self.x)
            self.objective = torch.where(better, objective, self.objective)
            self.success = self.success | success
        else:
            self.x[rows[better]] = x[better]
            self.objective[rows[better]] = objective[better]
            self.success[rows] = held_success | success


class _Screen:
    """Which bf16-stepped iterates are worth an fp32 judging forward (module docstring: the band)."""

    def __init__(self, targeted: bool) -> None:
        self.targeted = targeted
        self.band: Tensor | None = None  # None until calibrated: judge everything

    def distance(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per example, how far the logits are from success (≤ 0 at or past the decision boundary)."""
        margin = _margin_to_others(logits.float(), y)
        return -margin if self.targeted else margin

    def keep(self, logits16: Tensor, y: Tensor) -> Tensor | None:
        """Bool [N] of the iterates to judge in fp32, or None for all (not calibrated yet)."""
        return None if self.band is None else self.distance(logits16, y) <= self.band

    def calibrate(self, logits16: Tensor, logits32: Tensor, y: Tensor) -> None:
        """Widen the band to cover the bf16 error of these iterates (judged both ways)."""
        if y.numel() == 0:
            return
        error = (self.distance(logits16, y) - self.distance(logits32, y)).abs().max()
        floor = 1e-3 * logits32.float().abs().max()
        band = SCREEN_FACTOR * torch.maximum(error, floor)
        self.band = band if self.band is None else torch.maximum(self.band, band)


def _per_example_norm(t: Tensor) -> Tensor:
    """ℓ2 norm of each example as [N, 1, 1, 1], rescaled first so tiny gradients do not underflow."""
    scale = t.flatten(1).abs().amax(dim=1).clamp_min(torch.finfo(t.dtype).tiny)[:, None, None, None]
    return (t / scale).flatten(1).norm(dim=1)[:, None, None, None] * scale


class PGD(Attack):
    """PGD: `steps` ascent steps of size `alpha` on the objective `loss`, projected onto the eps-ball.

    Defaults follow torchattacks: ℓ∞ eps = 8/255, alpha = 2/255, steps = 10. For ℓ2 (``norm="l2"``
    or :class:`PGDL2`) the defaults are eps = 0.5, alpha = 0.125, steps = 10. An alpha left as None is
    Madry et al.'s 2.5·eps/steps, which gives exactly those two defaults.

    Args:
        model: maps [N, C, H, W] in [0, 1] to logits [N, K] (normalisation inside the model).
        eps: radius in pixel units (ℓ∞ or ℓ2 per `norm`); eps = 0 returns x exactly. None: the default.
        alpha: step size (ℓ∞: per-coordinate; ℓ2: length of each normalised step). None: 2.5·eps/steps.
        steps: number of gradient steps (0 evaluates the start only).
        norm: "linf" or "l2", any capitalisation ("Linf", "L2").
        random_start: True: uniform in the ε-ball (ℓ2: uniform direction × radius ε·U^{1/d});
            "normal": x + 0.001·N(0, 1) (TRADES/MART), projected into the ball and box; False: x.
        restarts: number of runs; per-example best kept.
        targeted: minimise the loss toward y (= targets) instead of maximising it away from y.
        loss: "ce", "cw" (margin) or "kl" (TRADES inner max; y unused, untargeted only).
        bf16: bfloat16 autocast for forward/backward.
        first_success: return each example's first successful iterate and stop attacking it (module docstring).
        generator: torch.Generator (CPU) for the random starts; None uses the global RNG.

    Call: ``atk(x, y) -> x_adv``; x float [N, C, H, W] in [0, 1] of the model's dtype, y integer [N]
    (any integer dtype, used as int64). ValueError for bad input, a model that does not return a
    logits tensor, or non-finite logits.
    """

    def __init__(self, model: nn.Module, eps: float | None = None, alpha: float | None = None, steps: int = 10,
                 norm: str = "linf", random_start: bool | str = True, restarts: int = 1, targeted: bool = False,
                 loss: str = "ce", *, bf16: bool = False, first_success: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(model, targeted=targeted, bf16=bf16, generator=generator)
        if not isinstance(first_success, bool):
            raise ValueError(f"first_success must be a bool, got {first_success!r}")
        self.first_success = first_success
        self.norm = parse_norm(norm)
        self.eps = check_eps(check_nonneg("eps", DEFAULT_EPS[self.norm] if eps is None else eps), self.norm)
        self.steps = check_count("steps", steps, maximum=MAX_STEPS)
        self.alpha = check_nonneg("alpha", _madry_step(self.eps, self.steps) if alpha is None else alpha)
        self.restarts = check_count("restarts", restarts, minimum=1, maximum=MAX_RESTARTS)
        if not (random_start is True or random_start is False or random_start == "normal"):
            raise ValueError(f"random_start must be True, False or 'normal', got {random_start!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if loss == "kl" and targeted:
            raise ValueError("loss='kl' is untargeted (TRADES inner maximisation); targeted=True is not allowed")
        self.random_start, self.loss = random_start, loss

    def _hyperparameters(self) -> dict[str, object]:
        return {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm,
                "random_start": self.random_start, "restarts": self.restarts, "loss": self.loss,
                **super()._hyperparameters(), **({"first_success": True} if self.first_success else {})}

    # -- geometry ------------------------------------------------------------------------
    def _project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Onto the ε-ball around x, then the [0, 1] box (clipping only shrinks |δ_i|, so it stays in the ball)."""
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norm = _per_example_norm(delta)
            delta = delta * torch.where(norm > self.eps, self.eps / norm.clamp_min(1e-30), torch.ones_like(norm))
        return (x + delta).clamp(0.0, 1.0)

    def _start(self, x: Tensor) -> Tensor:
        if self.random_start is False:
            return x.clone()
        if self.random_start == "normal":
            return self._project(x + 0.001 * self._rand(x.shape, x, "normal"), x)
        if self.norm == "linf":
            delta = (2 * self._rand(x.shape, x, "uniform") - 1) * self.eps
        else:
            direction = self._rand(x.shape, x, "normal")
            direction = direction / _per_example_norm(direction).clamp_min(1e-30)
            d = x[0].numel()
            radius = self.eps * self._rand((x.shape[0], 1, 1, 1), x, "uniform") ** (1.0 / d)
            delta = direction * radius
        return self._project(x + delta, x)

    def _step(self, x_adv: Tensor, grad: Tensor, x: Tensor) -> Tensor:
        if self.norm == "linf":
            x_adv = x_adv + self.alpha * grad.sign()
        else:
            norm = _per_example_norm(grad)
            # A zero gradient gives no direction: stay put instead of dividing by zero.
            unit = torch.where(norm > 0, grad / norm.clamp_min(1e-30), torch.zeros_like(grad))
            x_adv = x_adv + self.alpha * unit
        return self._project(x_adv, x)

    # -- attack ----------------------------------------------------------------------------
    def _perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if self.eps == 0:
            return x.clone()
        # The clean distribution is a fixed target, not a step: taken in fp32 (as fp32 runs take it).
        p_clean = torch.softmax(self._decision_logits(x).float(), dim=1) if self.loss == "kl" else None
        best = _Best(x, first_success=self.first_success)
        screened = self.first_success and self._bf16_active and self.loss != "kl"
        self._screen = _Screen(self.targeted) if screened else None
        for _ in range(self.restarts):
            x_adv = self._start(x)
            for _ in range(self.steps):
                rows = best.open_rows()
                if rows is not None and rows.numel() == 0:
                    break  # every example has its success: later steps could change nothing returned
                x_adv = self._ascend(best, x_adv, x, y, p_clean, rows)
            rows = best.open_rows()
            if rows is None or rows.numel():
                xa, yr, pc = (x_adv, y, p_clean) if rows is None else _pick(rows, x_adv, y, p_clean)
                self._judge(best, xa, yr, self._objective(yr, pc), rows=rows)
        return best.x

    def _objective(self, y: Tensor, p_clean: Tensor | None) -> Objective:
        return lambda logits: attack_objective(logits, y, self.loss, targeted=self.targeted, p_clean=p_clean)

    def _ascend(self, best: _Best, x_adv: Tensor, x: Tensor, y: Tensor, p_clean: Tensor | None,
                rows: Tensor | None) -> Tensor:
        """Judge the current iterate and take one step, on the examples ``rows`` only (all when None)."""
        if rows is None:
            xa, x0, yr, pc = x_adv, x, y, p_clean
        else:
            xa, yr, pc = _pick(rows, x_adv, y, p_clean)
            x0 = x[rows]
        objective = self._objective(yr, pc)
        grad, logits, value = self._gradient(xa, objective)
        self._judge(best, xa, yr, objective, logits, value, rows)
        stepped = self._step(xa, grad, x0)
        if rows is None:
            return stepped
        x_adv[rows] = stepped  # x_adv is this restart's own tensor (best keeps copies)
        return x_adv

    def _judge(self, best: _Best, x_adv: Tensor, y: Tensor, objective: Objective, logits: Tensor | None = None,
               value: Tensor | None = None, rows: Tensor | None = None) -> None:
        """Offer x_adv (the examples ``rows``, all when None) to `best`, judged on fp32 logits: the step's own
        when it ran in fp32, else a fresh no-grad fp32 forward (under bf16 the steps only propose; fp32
        decides what is returned), on the iterates the bf16 screen lets through when one is active."""
        if logits is not None and value is not None and not self._bf16_active:
            best.update(x_adv, value, attack_success(logits, y, self.loss, targeted=self.targeted), rows)
            return
        screen = getattr(self, "_screen", None) if logits is not None and self._bf16_active else None
        keep = None if screen is None else screen.keep(logits, y)
        if keep is not None and not bool(keep.all()):
            picked = keep.nonzero().squeeze(1)
            if picked.numel() == 0:
                return
            x_adv, y, logits = x_adv[picked], y[picked], logits[picked]
            rows = picked if rows is None else rows[picked]
            objective = self._objective(y, None)  # screening is for ce/cw only: no clean probabilities
        logits32 = self._decision_logits(x_adv)
        if screen is not None:
            screen.calibrate(logits, logits32, y)
        best.update(x_adv, objective(logits32), attack_success(logits32, y, self.loss, targeted=self.targeted), rows)


def _pick(rows: Tensor, x: Tensor, y: Tensor, p_clean: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The examples ``rows`` of the images, labels and (KL only) clean probabilities."""
    return x[rows], y[rows], None if p_clean is None else p_clean[rows]


class PGDL2(PGD):
    """PGD in ℓ2 (torchattacks' name): ``PGDL2(model, eps=0.5, alpha=None, steps=10, ...)``.

    The same attack as ``PGD(..., norm="l2")``; alpha None is 2.5·eps/steps (0.125 at the defaults).
    """

    def __init__(self, model: nn.Module, eps: float | None = None, alpha: float | None = None, steps: int = 10,
                 random_start: bool | str = True, restarts: int = 1, targeted: bool = False, loss: str = "ce",
                 *, bf16: bool = False, first_success: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(model, eps, alpha, steps, "l2", random_start, restarts, targeted, loss, bf16=bf16,
                         first_success=first_success, generator=generator)


# -- registry: suite names pgd-K, pgd-KxR, cw-K, cw-KxR ----------------------------------------
_NAME = re.compile(r"(?P<family>pgd|cw)-(?P<steps>\d+)(?:x(?P<restarts>\d+))?")


def _parse(name: str) -> AttackSpec | None:
    m = _NAME.fullmatch(name)
    if m is None:
        return None
    steps, restarts = int(m["steps"]), int(m["restarts"] or 1)
    check_steps(steps, restarts, name)
    return AttackSpec(name, "pgd", steps, restarts, None, "ce" if m["family"] == "pgd" else "cw")


def _madry_alpha(spec: AttackSpec, eps: float, alpha: float | None) -> float:
    """The caller's alpha, else 2.5·ε/K (Madry et al.)."""
    return _madry_step(eps, spec.steps) if alpha is None else alpha


@register_attack("pgd", parser=_parse, alpha_rule=_madry_alpha, forms=("pgd-K", "pgd-KxR", "cw-K", "cw-KxR"),
                 description="K-step PGD from a uniform random start, R restarts; pgd: CE, cw: CW margin")
def _build(spec: AttackSpec, model: nn.Module, *, eps: float, norm: str, seed: int, bf16: bool = False) -> PGD:
    gen = torch.Generator().manual_seed(seed)
    # Evaluation counts successes only; under bf16 stopping at the first one saves the fp32 judging
    # forwards (module docstring). fp32 keeps the strongest iterate, so fp32 numbers are unchanged.
    return PGD(model, eps, spec.alpha, spec.steps, norm, random_start=True, restarts=spec.restarts,
               loss=spec.loss, bf16=bf16, first_success=bf16, generator=gen)
