"""Representation matching (Ilyas et al. 2019, §3 / App. C; SPEC §5): construct D̂_R and D̂_NR.

z = argmin_{z ∈ [0,1]^d} ‖g(z) − g(x_target)‖₂ with g = model.features (penultimate representation),
solved by normalised gradient descent from x_start: each step has ℓ2 length `step` per example, then z
is clipped to [0, 1]. Returned per example: the iterate with the smallest distance seen (the final
one whenever descent keeps improving, as it does away from the optimum). With bf16 only the steps are
bf16; which iterate is returned and the distances reported are decided on fp32 features.
Shapes: x_start, x_target float [N, C, H, W] in [0, 1] → z like x_start; distances [N].
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from deep.progress import progress_enabled

from .base import Attack, check_count, check_nonneg, eval_mode
from .pgd import _per_example_norm


class RepresentationMatch(Attack):
    """Called as ``rm(x_start, x_target) -> z``; ``rm.run(...)`` also returns distances before/after.

    Args:
        model: exposes ``model.features(x) -> [N, D]`` (the penultimate representation).
        step: ℓ2 length of each normalised descent step, in pixel units (default 0.1).
        steps: number of descent steps (default 1000).
        progress: show a progress bar (also subject to ADVFEAT_PROGRESS).
        bf16: bfloat16 autocast for the descent steps; distances and the returned iterate are fp32 (``run``).

    ``last_distances`` holds (dist_before, dist_after) of the latest call, each [N] on the model's device.
    """

    def __init__(self, model: nn.Module, step: float = 0.1, steps: int = 1000, *, progress: bool = False,
                 bf16: bool = False) -> None:
        super().__init__(model, bf16=bf16)
        if not callable(getattr(model, "features", None)):
            raise ValueError("model must expose model.features(x) -> [N, D] (the penultimate representation)")
        self.step = check_nonneg("step", step)
        self.steps = check_count("steps", steps)
        self.progress = progress
        self.last_distances: tuple[Tensor, Tensor] | None = None

    def _hyperparameters(self) -> dict[str, object]:
        return {"step": self.step, "steps": self.steps, **super()._hyperparameters()}

    def __call__(self, x_start: Tensor, x_target: Tensor) -> Tensor:  # type: ignore[override]
        return self.run(x_start, x_target)[0]

    def _forward(self, x: Tensor) -> Tensor:
        # What is matched (and differentiated) is the representation; flatten(1) leaves [N, D] as it is.
        return self.model.features(x).flatten(1)

    @staticmethod
    def _distance_to(g: Tensor, g_target: Tensor) -> Tensor:
        return (g.float() - g_target).norm(dim=1)

    def run(self, x_start: Tensor, x_target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (z, dist_before, dist_after) with dist = ‖g(·) − g(x_target)‖₂ per example.

        With bf16 the descent steps run in bf16 but g(x_target), both distances returned and the choice
        of the best iterate use fp32 features (one extra fp32 forward per step); a call whose first bf16
        gradient is unusable runs in fp32 (deep.attacks.base: same check, log line and counters).
        """
        x_start = self._check_x("x_start", x_start)
        x_target = self._check_x("x_target", x_target)
        if x_start.shape != x_target.shape:
            raise ValueError(f"x_start and x_target must have the same shape, got "
                             f"{tuple(x_start.shape)} and {tuple(x_target.shape)}")
        self.fell_back_to_fp32, self._gradient_checked, self._finite = False, False, None
        with eval_mode(self.model), torch.enable_grad():
            g_target = self._decision_logits(x_target).float()
            before = self._distance_to(self._decision_logits(x_start), g_target)
            best_z, best_d = x_start.clone(), before.clone()
            z = x_start.clone()

            def objective(g: Tensor) -> Tensor:
                # The squared distance has the same direction of descent and a defined gradient at 0.
                return self._distance_to(g, g_target).square()

            for _ in tqdm(range(self.steps), desc="representation match",
                          disable=not progress_enabled(self.progress)):
                grad, g, _ = self._gradient(z, objective)
                # Judge z in fp32: reuse the step's features unless they are bf16.
                dist = self._distance_to(self._decision_logits(z) if self._bf16_active else g, g_target)
                better = dist < best_d
                best_z = torch.where(better[:, None, None, None], z, best_z)
                best_d = torch.where(better, dist, best_d)
                norm = _per_example_norm(grad)
                unit = torch.where(norm > 0, grad / norm.clamp_min(1e-30), torch.zeros_like(grad))
                z = (z - self.step * unit).clamp(0.0, 1.0)
            dist = self._distance_to(self._decision_logits(z), g_target)
            better = dist < best_d
            best_z = torch.where(better[:, None, None, None], z, best_z)
            best_d = torch.where(better, dist, best_d)
        self.last_distances = (before, best_d)
        return best_z.detach(), before, best_d
