"""Goodfellow, Shlens, Szegedy 2015 ("Explaining and harnessing adversarial examples", SPEC §4) on MNIST.

The library pieces (deep.train, deep.attacks.FGSM, deep.evaluate, theory.linear) do the work; this
module holds what is specific to the paper's experiments:

- :func:`class_view` — a k-class view of a dataset (GF's logistic regression is on 3s vs 7s);
- :func:`run_logreg_binary` — that logistic regression, trained with deep.train, scored clean and
  under FGSM, with the pictures of GF's Figure 2 (w, sign(w), clean and adversarial digits);
- :func:`linear_pixel_weights` — a linear model's weights in pixel space (where ε lives);
- :func:`evaluate_fgsm` — clean/FGSM error and confidence on mistakes, plus the optional logit
  curves of GF's Figure 4 (:func:`logit_curves`, :func:`curve_summary`) and RBF unit responses;
- :func:`transfer_both_ways` — FGSM examples of one model scored on another, in both directions;
- :func:`l1_vs_adversarial_logreg` — theory.linear's exact adversarial logistic regression against
  L1 weight decay, fitted on the real 3-vs-7 data.

Error rates and confidences are fractions in [0, 1]; ε is in pixel units.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deep.attacks.base import eval_mode
from deep.data import DatasetInfo, TensorSplit, load_split
from deep.evaluate import attack_split, evaluate, predict, transfer
from deep.io import save_npz

PAPER_EPS = 0.25  # GF's ε for MNIST (pixels in [0, 1])


# ----------------------------------------------------------------------------------- data
def class_view(split: TensorSplit, classes: Sequence[int]) -> TensorSplit:
    """The examples of ``split`` whose label is in ``classes``, relabelled 0..k−1 in the order given
    (so ``classes=(3, 7)`` maps 3 → 0 and 7 → 1, the logistic regression's y = −1 / +1)."""
    if not isinstance(split, TensorSplit):
        raise ValueError(f"split must be a deep.data.TensorSplit, got {type(split).__name__}")
    keep = [int(c) for c in classes]
    if len(keep) < 2 or len(set(keep)) != len(keep):
        raise ValueError(f"classes must name at least two distinct labels, got {list(classes)!r}")
    bad = [c for c in keep if not 0 <= c < split.info.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not labels of {split.info.name!r} (0..{split.info.num_classes - 1})")
    lookup = torch.full((split.info.num_classes,), -1, dtype=torch.int64)
    lookup[torch.tensor(keep)] = torch.arange(len(keep))
    new_y = lookup[split.y]
    mask = new_y >= 0
    names = split.info.classes
    info = DatasetInfo(f"{split.info.name}:{','.join(map(str, keep))}", len(keep), split.info.shape,
                       tuple(names[c] for c in keep) if names else tuple(str(c) for c in keep))
    return TensorSplit(split.x[mask].contiguous(), new_y[mask].contiguous(), info)


def write_npz_dataset(path: Path, train: TensorSplit, test: TensorSplit) -> str:
    """Save a train/test pair as an npz dataset and return its deep.data name ``npz:<path>``, so
    deep.train can train on a filtered view. 8-bit images (MNIST) are stored as uint8 NCHW, which is
    exact and 4× smaller; anything else as float32."""
    def compact(x: Tensor) -> np.ndarray:
        u = torch.round(x * 255)
        if not torch.allclose(u / 255, x, atol=1e-6):
            return x.float().numpy()
        return u.to(torch.uint8).numpy()

    path = Path(path)
    save_npz(path, x_train=compact(train.x), y_train=train.y.numpy(), x_test=compact(test.x),
             y_test=test.y.numpy(), classes=np.array(train.info.classes or (), dtype=str))
    return f"npz:{path}"


# ----------------------------------------------------------------------------------- linear models
def linear_pixel_weights(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(W [K, d], b [K]) of a logreg ImageClassifier in pixel space: the model computes
    W₀((x − μ)/σ) + b₀ = (W₀/σ)x + (b₀ − W₀μ/σ), and ε is measured in x."""
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Flatten) or not isinstance(getattr(model, "head", None), nn.Linear):
        raise ValueError("linear_pixel_weights needs a 'logreg' model (Flatten body, Linear head)")
    c, h, w = model.in_shape
    with torch.no_grad():
        mean = model.mean.reshape(c, 1).expand(c, h * w).reshape(-1)
        std = model.std.reshape(c, 1).expand(c, h * w).reshape(-1)
        weight = model.head.weight / std
        bias = model.head.bias - model.head.weight @ (mean / std)
    return weight.double().numpy(), bias.double().numpy()


def binary_margin(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """z_y − z_{1−y} of a two-class model: the logistic regression's y·(wᵀx + b) with w = W₁ − W₀."""
    with torch.no_grad():
        z = model(x)
    if z.shape[1] != 2:
        raise ValueError(f"binary_margin needs a two-class model, got {z.shape[1]} classes")
    sign = 2.0 * y.to(z.dtype) - 1.0
    return sign * (z[:, 1] - z[:, 0])


def run_logreg_binary(config: dict[str, Any], run_dir: Path, *, data_root: Any = None, progress: bool = False,
                      on_epoch: Any = None) -> dict[str, Any]:
    """GF §4's logistic regression on two MNIST classes: train (deep.train on an npz view), FGSM at ε,
    and Figure 2's data. Config keys: dataset (mnist), classes ([3, 7]), eps (0.25), n_show (12), and
    any deep.train.Recipe field (epochs, lr, batch_size, seed, ...)."""
    from deep.train import Recipe, load_run, train

    cfg = dict(config)
    dataset = cfg.pop("dataset", "mnist")
    classes = [int(c) for c in cfg.pop("classes", [3, 7])]
    eps = float(cfg.pop("eps", PAPER_EPS))
    n_show = int(cfg.pop("n_show", 12))
    if len(classes) != 2:
        raise ValueError(f"logistic regression needs exactly two classes, got {classes}")
    run_dir = Path(run_dir)
    train_split = class_view(load_split(dataset, "train", data_root=data_root), classes)
    test_split = class_view(load_split(dataset, "test", data_root=data_root), classes)
    name = write_npz_dataset(run_dir / "binary.npz", train_split, test_split)
    recipe = Recipe.from_dict({"model": "logreg", "method": "standard", "eval_n": len(test_split), "eval_steps": 1,
                               **cfg, "dataset": name, "eps": eps})
    train_metrics = train(recipe, run_dir / "train", data_root=data_root, progress=progress, on_epoch=on_epoch)
    model, _ = load_run(run_dir / "train")
    result = evaluate(model, test_split, ["fgsm"], eps=eps, progress=progress)
    weight, bias = linear_pixel_weights(model)
    w, b = weight[1] - weight[0], float(bias[1] - bias[0])

    # Figure 2: half of each class, FGSM at ε; and the margin shift FGSM achieved against ε‖w‖₁
    # (equal without the [0, 1] box; the box cuts it where a pixel is already at 0 or 1).
    x_adv = attack_split(model, test_split, "fgsm", eps=eps, progress=progress)
    shift = binary_margin(model, test_split.x, test_split.y) - binary_margin(model, x_adv, test_split.y)
    idx = torch.cat([torch.nonzero(test_split.y == k).flatten()[: n_show // 2] for k in (0, 1)])
    pred_clean, _ = predict(model, test_split.x[idx])
    pred_adv, conf_adv = predict(model, x_adv[idx])
    shape = list(test_split.info.shape)
    return {
        "experiment": "logreg-binary", "dataset": dataset, "classes": classes, "eps": eps,
        "n_train": len(train_split), "n_test": len(test_split),
        "clean_error": result["clean_error"], "fgsm_error": result["error_rates"]["fgsm"],
        "fgsm_confidence_on_errors": result["mean_confidence_on_errors"]["fgsm"],
        "eps_w_l1": eps * float(np.abs(w).sum()), "mean_margin_shift": float(shift.mean()),
        "evaluation": result.to_dict(), "train": train_metrics,
        "figure2": {"shape": shape, "w": np.round(w, 6).tolist(), "b": b,
                    "labels": test_split.y[idx].tolist(), "class_names": list(test_split.info.classes or classes),
                    "clean": np.round(test_split.x[idx].flatten(1).numpy(), 4).tolist(),
                    "adversarial": np.round(x_adv[idx].flatten(1).numpy(), 4).tolist(),
                    "pred_clean": pred_clean.tolist(), "pred_adv": pred_adv.tolist(),
                    "conf_adv": np.round(conf_adv.numpy(), 4).tolist()},
    }


# ----------------------------------------------------------------------------------- Figure 4
def fgsm_direction(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """sign(∇ₓ CE(model(x), y)) per example (model in eval mode), the FGSM direction at x."""
    with eval_mode(model), torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_req), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_req)
    return grad.sign()


def logit_curves(model: nn.Module, x: Tensor, y: Tensor, eps_grid: Sequence[float]) -> np.ndarray:
    """Logits [n, len(eps_grid), K] at x + ε·sign(∇ₓJ(x, y)) for each ε of the grid, WITHOUT the
    [0, 1] box: GF's Figure 4 follows the FGSM line itself to show how linear the model is along it."""
    grid = torch.as_tensor([float(e) for e in eps_grid], dtype=torch.float32)
    if grid.dim() != 1 or grid.numel() < 2 or not bool(torch.isfinite(grid).all()):
        raise ValueError(f"eps_grid must hold at least two finite numbers, got {list(eps_grid)!r}")
    d = fgsm_direction(model, x, y)
    out = []
    with eval_mode(model), torch.no_grad():
        for e in grid:
            out.append(model(x + e * d))
    return torch.stack(out, dim=1).double().numpy()


def curve_summary(curves: np.ndarray, eps_grid: Sequence[float], y: Sequence[int], attack_eps: float) -> dict[str, Any]:
    """How linear the logits are along the FGSM line and how wide the ε ranges where one class wins are.

    - ``r2_median``: median over examples and classes of the R² of a straight-line fit of the logit
      against ε over the whole grid (1 = exactly linear);
    - ``argmax_changes_mean``: mean number of times the winning class changes along the grid;
    - ``wrong_fraction_beyond_eps``: over ε ∈ [attack_eps, max grid], the mean fraction of the grid
      where the prediction is wrong (GF: adversarial examples fill wide intervals, not pockets);
    - ``flip_eps_median``: median smallest ε > 0 at which the prediction becomes wrong (None if never).
    """
    c = np.asarray(curves, dtype=float)
    grid = np.asarray(eps_grid, dtype=float)
    labels = np.asarray(y)
    if c.ndim != 3 or c.shape[1] != grid.shape[0] or c.shape[0] != labels.shape[0]:
        raise ValueError(f"curves must be [n, len(eps_grid)={grid.shape[0]}, K] with n = len(y) = {labels.shape[0]}, "
                         f"got {c.shape}")
    centred = grid - grid.mean()
    slope = np.einsum("g,ngk->nk", centred, c - c.mean(axis=1, keepdims=True)) / (centred ** 2).sum()
    fit = c.mean(axis=1, keepdims=True) + slope[:, None, :] * centred[None, :, None]
    ss_res = ((c - fit) ** 2).sum(axis=1)
    ss_tot = ((c - c.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 1.0)
    pred = c.argmax(axis=2)  # [n, G]
    changes = (pred[:, 1:] != pred[:, :-1]).sum(axis=1)
    wrong = pred != labels[:, None]
    beyond = grid >= attack_eps
    positive = grid > 0
    flips = [float(grid[positive][np.argmax(row[positive])]) for row in wrong if row[positive].any()]
    return {"r2_median": float(np.median(r2)), "r2_min": float(r2.min()),
            "argmax_changes_mean": float(changes.mean()),
            "wrong_fraction_beyond_eps": float(wrong[:, beyond].mean()) if beyond.any() else None,
            "flip_eps_median": float(np.median(flips)) if flips else None,
            "never_flipped": int(labels.shape[0] - len(flips))}


# ----------------------------------------------------------------------------------- evaluation
def evaluate_fgsm(model: nn.Module, split: TensorSplit, *, eps: float = PAPER_EPS, curves: int = 0,
                  curve_max: float = 1.0, curve_points: int = 81, seed: int = 0,
                  progress: bool = False) -> dict[str, Any]:
    """Clean and FGSM error with the mean confidence on FGSM mistakes (deep.evaluate), plus, when
    ``curves`` > 0, Figure 4's logit curves on the first ``curves`` examples over ε ∈ ±curve_max and
    their :func:`curve_summary` on the first 500; for an RBF model, its units' largest response."""
    result = evaluate(model, split, ["fgsm"], eps=eps, seed=seed, progress=progress)
    out: dict[str, Any] = {"clean_error": result["clean_error"], "fgsm_error": result["error_rates"]["fgsm"],
                           "fgsm_confidence_on_errors": result["mean_confidence_on_errors"]["fgsm"],
                           "n": result.n, "eps": eps, "evaluation": result.to_dict()}
    body = getattr(model, "body", None)
    if body is not None and any(type(m).__name__ == "RBFLayer" for m in body.modules()):
        x_adv = attack_split(model, split, "fgsm", eps=eps, progress=progress)
        with torch.no_grad():
            clean_r = model.features(split.x).max(dim=1).values
            adv_r = model.features(x_adv).max(dim=1).values
        out["rbf_max_response"] = {"clean": float(clean_r.mean()), "fgsm": float(adv_r.mean())}
    if curves:
        if not isinstance(curves, int) or curves < 0:
            raise ValueError(f"curves must be an integer >= 0, got {curves!r}")
        grid = np.linspace(-curve_max, curve_max, int(curve_points))
        n_sum = min(len(split), max(curves, 500))
        c = logit_curves(model, split.x[:n_sum], split.y[:n_sum], grid)
        out["figure4"] = {"eps_grid": np.round(grid, 6).tolist(), "labels": split.y[:curves].tolist(),
                          "logits": np.round(c[:curves], 4).tolist(), "attack_eps": eps,
                          "summary": curve_summary(c, grid, split.y[:n_sum].numpy(), eps), "summary_n": n_sum}
    return out


def transfer_both_ways(model_a: nn.Module, model_b: nn.Module, split: TensorSplit, *, eps: float = PAPER_EPS,
                       progress: bool = False) -> dict[str, Any]:
    """FGSM examples of A scored on B and of B on A (deep.evaluate.transfer); ``error_a_to_b`` is B's
    error rate on A's examples (GF: the original model's examples on the adversarially trained one)."""
    ab = transfer(model_a, model_b, split, "fgsm", eps=eps, progress=progress)
    ba = transfer(model_b, model_a, split, "fgsm", eps=eps, progress=progress)
    return {"eps": eps, "n": ab["n"], "a_to_b": ab, "b_to_a": ba,
            "error_a_to_b": 1.0 - ab["target_adv"], "error_b_to_a": 1.0 - ba["target_adv"]}


# ----------------------------------------------------------------------------------- L1 vs adversarial
def _flat_pm1(split: TensorSplit) -> tuple[np.ndarray, np.ndarray]:
    if split.info.num_classes != 2:
        raise ValueError(f"a logistic regression needs a two-class split, got {split.info.num_classes} classes")
    return split.x.flatten(1).double().numpy(), 2.0 * split.y.double().numpy() - 1.0


def linear_errors(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, eps: float) -> dict[str, float]:
    """Clean error, FGSM error in closed form on R^d (margin − ε‖w‖₁ ≤ 0, the exact worst case) and
    FGSM error with the step clipped to the [0, 1] pixel box, of sign(wᵀx + b) on labels y ∈ {±1}."""
    from theory.linear import fgsm_logistic

    margin = y * (x @ w + b)
    x_box = np.clip(fgsm_logistic(w, b, x, y, eps), 0.0, 1.0)
    return {"clean_error": float((margin <= 0).mean()),
            "fgsm_error_unboxed": float((margin - eps * np.abs(w).sum() <= 0).mean()),
            "fgsm_error": float((y * (x_box @ w + b) <= 0).mean())}


def l1_vs_adversarial_logreg(train: TensorSplit, test: TensorSplit, *, eps: float = PAPER_EPS, alpha: float = 0.5,
                             l1_lams: Sequence[float] = (0.125,), maxiter: int = 500,
                             plain: bool = True) -> dict[str, Any]:
    """GF §5 on real data: plain, adversarial (α·ζ(−m) + (1 − α)·ζ(ε‖w‖₁ − m), the exact FGSM
    objective) and L1-penalised (ζ(−m) + λ‖w‖₁) logistic regression, fitted exactly by
    theory.linear.train_logistic
    (``plain=False`` skips the unregularised fit, whose weights grow until ``maxiter`` on separable data).

    λ = (1 − α)·ε makes the L1 objective an upper bound of the adversarial one (ζ(a + c) ≤ ζ(a) + c),
    paid on every example even when its margin is safe: GF's "L1 is too pessimistic". For each fit:
    test errors (:func:`linear_errors`), ‖w‖₁, the fraction of zero weights, the three mean test
    losses of theory.linear.l1_vs_adversarial, and w itself (for the weight pictures).
    """
    from theory.linear import l1_vs_adversarial, train_logistic

    x_tr, y_tr = _flat_pm1(train)
    x_te, y_te = _flat_pm1(test)
    fits: list[tuple[str, dict[str, Any]]] = [("plain", {"method": "plain"})] if plain else []
    fits.append((f"adversarial eps={eps:g}", {"method": "adversarial", "eps": eps, "alpha": alpha}))
    fits += [(f"L1 lambda={lam:g}", {"method": "l1", "lam": float(lam)}) for lam in l1_lams]
    rows = []
    for label, kw in fits:
        w, b = train_logistic(x_tr, y_tr, maxiter=maxiter, **kw)
        losses = l1_vs_adversarial(w, b, x_te, y_te, eps)
        rows.append({"label": label, **kw, **linear_errors(w, b, x_te, y_te, eps),
                     "w_l1": float(np.abs(w).sum()), "zero_fraction": float((np.abs(w) < 1e-8).mean()),
                     "test_loss": {k: float(v.mean()) for k, v in losses.items()},
                     "train_error": float((y_tr * (x_tr @ w + b) <= 0).mean()),
                     "w": np.round(w, 6).tolist(), "b": b})
    return {"eps": eps, "alpha": alpha, "n_train": len(train), "n_test": len(test),
            "shape": list(train.info.shape), "fits": rows}


def run_l1_vs_adversarial(config: dict[str, Any], *, data_root: Any = None) -> dict[str, Any]:
    """:func:`l1_vs_adversarial_logreg` on a two-class view. Config: dataset (mnist), classes ([3, 7]),
    eps, alpha, l1_lams, maxiter, plain, subset (fit on this many training examples, seeded; default all)."""
    cfg = dict(config)
    dataset = cfg.pop("dataset", "mnist")
    classes = [int(c) for c in cfg.pop("classes", [3, 7])]
    subset, seed = cfg.pop("subset", None), int(cfg.pop("seed", 0))
    unknown = set(cfg) - {"eps", "alpha", "l1_lams", "maxiter", "plain"}
    if unknown:
        raise ValueError(f"run_l1_vs_adversarial: unknown config key(s) {sorted(unknown)}")
    train = class_view(load_split(dataset, "train", data_root=data_root), classes)
    if subset is not None:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(train), generator=g)[: int(subset)]
        train = TensorSplit(train.x[idx], train.y[idx], train.info)
    test = class_view(load_split(dataset, "test", data_root=data_root), classes)
    out = l1_vs_adversarial_logreg(train, test, **cfg)
    return {"experiment": "l1-vs-adversarial", "dataset": dataset, "classes": classes, **out}


__all__ = ["PAPER_EPS", "binary_margin", "class_view", "curve_summary", "evaluate_fgsm", "fgsm_direction",
           "l1_vs_adversarial_logreg", "linear_errors", "linear_pixel_weights", "logit_curves",
           "run_l1_vs_adversarial", "run_logreg_binary", "transfer_both_ways", "write_npz_dataset"]

