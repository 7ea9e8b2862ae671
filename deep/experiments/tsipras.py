"""[TS] Tsipras et al. 2019, *Robustness May Be at Odds with Accuracy*: the image experiments of
SPEC §3 that are not plain training grids (those use deep.train / deep.evaluate directly).

- (b) input-gradient images: ∇ₓ CE(f(x), y) per example, shown after clipping to ±kσ of the image's
  own gradient statistics and rescaling to [0, 1] (the paper's k = 3 for CIFAR / ImageNet);
- (c) large-ε ℓ2 adversarial examples: targeted PGD toward a class t ≠ y with ε far above the training
  ε, and the straight line x + λ(x_adv − x), λ ∈ [0, 1], with the model's probabilities along it.

Shapes follow docs/DESIGN.md: images float32 [N, C, H, W] in [0, 1], labels int64 [N]. Every function
returns tensors on the CPU so callers can save them with numpy.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks import PGD
from deep.attacks.base import eval_mode, model_device
from deep.data import check_images, check_labels


def _check_pair(x: Tensor, y: Tensor, num_classes: int | None = None) -> None:
    check_images(x)
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must be int64 [N={x.shape[0]}], got "
                         f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    if num_classes is not None:
        check_labels(y, num_classes)


def pick_per_class(y: Tensor, per_class: int, num_classes: int) -> Tensor:
    """Indices of the first ``per_class`` examples of each class, in dataset order, grouped by example
    rank (all classes' first example, then all classes' second, ...), so a figure column is a class."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
    check_labels(y, num_classes)
    chosen = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        if idx.numel() < per_class:
            raise ValueError(f"class {c} has {idx.numel()} examples in the split, fewer than per_class={per_class}")
        chosen.append(idx[:per_class])
    return torch.stack(chosen, dim=1).flatten()  # [per_class * num_classes], rank-major


def choose_targets(y: Tensor, num_classes: int, seed: int) -> Tensor:
    """A target class t ≠ y per example, uniform over the other classes, from ``seed``."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 to choose a different target, got {num_classes}")
    check_labels(y, num_classes)
    gen = torch.Generator().manual_seed(int(seed))
    shift = torch.randint(1, num_classes, y.shape, generator=gen)
    return (y.cpu() + shift) % num_classes


def input_gradients(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 256) -> Tensor:
    """∇ₓ of the cross-entropy loss of each example (its own loss, not the batch mean), model in eval mode."""
    _check_pair(x, y)
    dev = model_device(model)
    out = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(dev).detach().requires_grad_(True)
            loss = F.cross_entropy(model(xb).float(), y[i:i + batch_size].to(dev), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            out.append(grad.detach().cpu())
    return torch.cat(out)


def gradient_images(grad: Tensor, *, clip_sigma: float | None = 3.0) -> Tensor:
    """Each gradient mapped to [0, 1] for display: clipped to mean ± clip_sigma·std of that example's
    gradient (all channels and pixels together), then min–max rescaled; clip_sigma=None rescales only.
    A constant gradient (e.g. exactly zero) becomes a uniform 0.5 image."""
    if not isinstance(grad, Tensor) or grad.dim() != 4 or not grad.is_floating_point():
        raise ValueError(f"grad must be a float [N, C, H, W] tensor, got {getattr(grad, 'shape', type(grad).__name__)}")
    if clip_sigma is not None and (isinstance(clip_sigma, bool) or not clip_sigma > 0):
        raise ValueError(f"clip_sigma must be None or a number > 0, got {clip_sigma!r}")
    g = grad.detach().float().flatten(1)
    if clip_sigma is not None:
        mean = g.mean(dim=1, keepdim=True)
        std = g.std(dim=1, keepdim=True, unbiased=False)
        g = torch.maximum(torch.minimum(g, mean + clip_sigma * std), mean - clip_sigma * std)
    lo, hi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
    span = hi - lo
    img = torch.where(span > 0, (g - lo) / span.clamp_min(1e-30), torch.full_like(g, 0.5))
    return img.view_as(grad)


def gradient_alignment(grad: Tensor, x: Tensor) -> Tensor:
    """Cosine between −∇ₓ loss (the direction that raises the true class) and the image's own contrast
    x − mean(x), per example. Our one-number summary of "the gradient looks like the object"; the paper
    shows pictures only. Near 0 for a noise-like gradient; positive when the loss falls by adding the
    image's own pattern."""
    if grad.shape != x.shape:
        raise ValueError(f"grad and x must have the same shape, got {tuple(grad.shape)} and {tuple(x.shape)}")
    g = -grad.detach().float().flatten(1)
    c = x.detach().float().flatten(1)
    c = c - c.mean(dim=1, keepdim=True)
    return F.cosine_similarity(g, c, dim=1, eps=1e-12)


@torch.no_grad()
def probabilities(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> Tensor:
    """Softmax probabilities [N, K] in eval mode, on the CPU."""
    check_images(x)
    dev = model_device(model)
    with eval_mode(model):
        return torch.cat([torch.softmax(model(x[i:i + batch_size].to(dev)).float(), dim=1).cpu()
                          for i in range(0, x.shape[0], batch_size)])


def large_eps_examples(model: nn.Module, x: Tensor, targets: Tensor, *, eps: float, alpha: float, steps: int,
                       norm: str = "l2", batch_size: int = 256, seed: int = 0) -> Tensor:
    """Targeted PGD toward ``targets`` inside the ε-ball (no random start, so the path starts at x).

    PGD keeps, per example, the iterate where the target is predicted with the highest target log-probability
    (or, if never predicted, the one closest to it)."""
    _check_pair(x, targets)
    dev = model_device(model)
    attack = PGD(model, eps, alpha, steps, norm, random_start=False, targeted=True, loss="ce",
                 generator=torch.Generator().manual_seed(int(seed)))
    return torch.cat([attack(x[i:i + batch_size].to(dev), targets[i:i + batch_size].to(dev)).cpu()
                      for i in range(0, x.shape[0], batch_size)])


def interpolate(x: Tensor, x_adv: Tensor, points: int) -> tuple[Tensor, Tensor]:
    """λ = 0, 1/(points−1), ..., 1 and the images x + λ(x_adv − x): ([P], [P, N, C, H, W])."""
    if x.shape != x_adv.shape:
        raise ValueError(f"x and x_adv must have the same shape, got {tuple(x.shape)} and {tuple(x_adv.shape)}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    lam = torch.linspace(0.0, 1.0, points)
    path = x[None] + lam[:, None, None, None, None] * (x_adv - x)[None]
    return lam, path.clamp(0.0, 1.0)  # a convex combination stays in [0, 1]; the clamp only removes rounding


def gradient_study(model: nn.Module, x: Tensor, y: Tensor, *, clip_sigma: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input gradients of ``model`` on (x, y): arrays (x, y, grad, image, pred) and a summary."""
    _check_pair(x, y)
    grad = input_gradients(model, x, y)
    probs = probabilities(model, x)
    pred = probs.argmax(dim=1)
    align = gradient_alignment(grad, x)
    arrays = {"x": x.cpu().numpy(), "y": y.cpu().numpy(), "grad": grad.numpy(),
              "image": gradient_images(grad, clip_sigma=clip_sigma).numpy(), "pred": pred.numpy()}
    summary = {"n": int(x.shape[0]), "clip_sigma": clip_sigma, "clean_acc": float((pred == y.cpu()).float().mean()),
               "alignment_mean": float(align.mean()), "alignment_std": float(align.std(unbiased=False)),
               "alignment": [float(a) for a in align]}
    return arrays, summary


def large_eps_study(model: nn.Module, x: Tensor, y: Tensor, *, num_classes: int, eps: float, alpha: float, steps: int,
                    norm: str = "l2", points: int = 9, strip: int = 4, seed: int = 0,
                    judge: nn.Module | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Large-ε targeted examples of (x, y) toward seeded targets t ≠ y, the interpolation from x to them,
    and a summary: how often the model predicts t at x_adv, its probability of t along the line, the
    perturbation sizes, and — when a ``judge`` model is given — how often that other model also
    predicts t at x_adv (a perturbation that carries the target's features should transfer)."""
    _check_pair(x, y, num_classes)
    if isinstance(strip, bool) or not isinstance(strip, int) or not 1 <= strip <= x.shape[0]:
        raise ValueError(f"strip must be an integer in [1, {x.shape[0]}], got {strip!r}")
    targets = choose_targets(y, num_classes, seed)
    x_adv = large_eps_examples(model, x, targets, eps=eps, alpha=alpha, steps=steps, norm=norm, seed=seed)
    lam, path = interpolate(x.cpu(), x_adv, points)
    n, k = x.shape[0], num_classes
    path_probs = probabilities(model, path.flatten(0, 1)).view(points, n, k)
    p_adv = path_probs[-1]
    rows = torch.arange(n)
    delta = (x_adv - x.cpu()).flatten(1)
    arrays = {"x": x.cpu().numpy(), "y": y.cpu().numpy(), "target": targets.numpy(), "x_adv": x_adv.numpy(),
              "lam": lam.numpy(), "path_probs": path_probs.numpy(), "strip": path[:, :strip].numpy()}
    summary = {
        "n": n, "eps": float(eps), "norm": norm, "alpha": float(alpha), "steps": int(steps), "points": int(points),
        "clean_acc": float((path_probs[0].argmax(1) == y.cpu()).float().mean()),
        "target_rate": float((p_adv.argmax(1) == targets).float().mean()),
        "target_prob_mean": float(p_adv[rows, targets].mean()),
        "target_prob_along_path": [float(v) for v in path_probs[:, rows, targets].mean(dim=1)],
        "true_prob_along_path": [float(v) for v in path_probs[:, rows, y.cpu()].mean(dim=1)],
        "delta_l2_mean": float(delta.norm(dim=1).mean()),
        "delta_linf_mean": float(delta.abs().amax(dim=1).mean()),
    }
    if judge is not None:
        j = probabilities(judge, x_adv).argmax(1)
        arrays["judge_pred"] = j.numpy()
        summary["judge_target_rate"] = float((j == targets).float().mean())
        summary["judge_true_rate"] = float((j == y.cpu()).float().mean())
    return arrays, summary
