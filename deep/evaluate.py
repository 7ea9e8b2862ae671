"""Robustness evaluation with a fixed JSON schema (SPEC §0, §4, §6).

Suite names are parsed by deep.attacks.registry (``known_attacks()`` lists them: fgsm, pgd-K,
pgd-KxR, cw-K, cw-KxR, ...). Step size: ``alpha`` if given, else the family's rule (PGD: 2.5·ε/K).

``evaluate`` returns::

    {"clean": acc, "attacks": {name: acc}, "worst_case": acc, "n": N, "eps": ε, "norm": norm,
     "mean_confidence_on_errors": {name: mean max-softmax on misclassified adversarial examples | None},
     "clean_error": 1 − clean, "error_rates": {name: 1 − acc}, "worst_case_error": 1 − worst_case,
     "params": {name: {"kind", "steps", "restarts", "alpha", "loss"}}, "seconds": {name: s}}

``worst_case`` is the per-example worst case over the clean input and every attack: an example
counts as robust only if it is classified correctly clean and under every attack (SPEC §0).
Accuracies are fractions in [0, 1].
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from deep.attacks.base import model_device
from deep.attacks.registry import AttackSpec, build_attack, known_attacks, parse_attack
from deep.progress import progress_enabled
from deep.units import check_eps, parse_norm

__all__ = ["AttackSpec", "attack_split", "build_attack", "evaluate", "known_attacks", "parse_attack", "predict",
           "transfer"]

def _check_split(split: Any) -> tuple[Tensor, Tensor]:
    x, y = getattr(split, "x", None), getattr(split, "y", None)
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError(f"split must have tensors .x and .y (a deep.data.TensorSplit), got {type(split).__name__}")
    if x.dim() != 4 or y.shape != (x.shape[0],):
        raise ValueError(f"split.x must be [N, C, H, W] and split.y [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("split is empty")
    return x, y


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


def _autocast(bf16: bool, device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 256, bf16: bool = False) -> tuple[Tensor, Tensor]:
    """(predicted labels [N], max-softmax confidence [N]) on the CPU, model in eval mode."""
    device = model_device(model)
    preds, confs = [], []
    was_training = model.training
    model.eval()
    try:
        for s in _batches(x.shape[0], batch_size):
            with _autocast(bf16, device):
                p = torch.softmax(model(x[s].to(device)).float(), dim=1)
            conf, pred = p.max(dim=1)
            preds.append(pred.cpu())
            confs.append(conf.cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds), torch.cat(confs)


def attack_split(model: nn.Module, split: Any, name: str, *, eps: float, norm: str = "linf", batch_size: int = 256,
                 alpha: float | None = None, seed: int = 0, progress: bool = True, bf16: bool = False) -> Tensor:
    """Adversarial versions of split.x [N, C, H, W] (CPU) under the named attack."""
    x, y = _check_split(split)
    norm = parse_norm(norm)
    eps = check_eps(eps, norm, tuple(x.shape[1:]))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    spec = parse_attack(name, eps=eps, alpha=alpha)
    atk = build_attack(spec, model, eps=eps, norm=norm, seed=seed, bf16=bf16)
    device = model_device(model)
    out = []
    batches = list(_batches(x.shape[0], batch_size))
    for s in tqdm(batches, desc=name, disable=not progress_enabled(progress), leave=False):
        out.append(atk(x[s].to(device), y[s].to(device)).cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, split: Any, suite: Sequence[str], *, eps: float, norm: str = "linf",
             batch_size: int = 256, alpha: float | None = None, seed: int = 0, progress: bool = True,
             bf16: bool = False) -> dict[str, Any]:
    """Clean and per-attack accuracy, the per-example worst case, and Goodfellow's confidence statistic."""
    x, y = _check_split(split)
    norm = parse_norm(norm)
    eps = check_eps(eps, norm, tuple(x.shape[1:]))
    if isinstance(suite, str) or len(suite) != len(set(suite)):
        raise ValueError(f"suite must be a sequence of distinct attack names, got {suite!r}")
    specs = [parse_attack(name, eps=eps, alpha=alpha) for name in suite]  # fail fast on unknown names
    y = y.cpu()
    pred, _ = predict(model, x, batch_size=batch_size, bf16=bf16)
    robust = pred == y
    result: dict[str, Any] = {"clean": float(robust.float().mean()), "attacks": {}, "n": int(y.shape[0]),
                              "eps": float(eps), "norm": norm, "mean_confidence_on_errors": {},
                              "error_rates": {}, "params": {}, "seconds": {}}
    for spec in specs:
        t0 = time.perf_counter()
        x_adv = attack_split(model, split, spec.name, eps=eps, norm=norm, batch_size=batch_size, alpha=alpha,
                             seed=seed, progress=progress, bf16=bf16)
        pred_adv, conf_adv = predict(model, x_adv, batch_size=batch_size, bf16=bf16)
        correct = pred_adv == y
        robust &= correct
        acc = float(correct.float().mean())
        result["attacks"][spec.name] = acc
        result["error_rates"][spec.name] = 1.0 - acc
        wrong = ~correct
        result["mean_confidence_on_errors"][spec.name] = float(conf_adv[wrong].mean()) if bool(wrong.any()) else None
        result["params"][spec.name] = spec.to_dict()
        result["seconds"][spec.name] = time.perf_counter() - t0
    result["worst_case"] = float(robust.float().mean())
    result["clean_error"] = 1.0 - result["clean"]
    result["worst_case_error"] = 1.0 - result["worst_case"]
    return result


def transfer(source_model: nn.Module, target_model: nn.Module, split: Any, attack_name: str, *, eps: float,
             norm: str = "linf", batch_size: int = 256, alpha: float | None = None, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Black-box transfer: examples crafted on the source model, scored on both models.

    Returns {"attack", "eps", "norm", "n", "source_clean", "target_clean", "source_adv" (source accuracy
    on its own examples), "target_adv" (target accuracy on them), "transfer_success" (fraction of
    examples the target classifies correctly clean but wrongly after transfer, among those it gets right)}.
    """
    x, y = _check_split(split)
    x_adv = attack_split(source_model, split, attack_name, eps=eps, norm=norm, batch_size=batch_size, alpha=alpha,
                         seed=seed, progress=progress)
    y = y.cpu()
    src_clean, _ = predict(source_model, x, batch_size=batch_size)
    tgt_clean, _ = predict(target_model, x, batch_size=batch_size)
    src_adv, _ = predict(source_model, x_adv, batch_size=batch_size)
    tgt_adv, _ = predict(target_model, x_adv, batch_size=batch_size)
    tgt_ok = tgt_clean == y
    fooled = tgt_ok & (tgt_adv != y)
    return {"attack": attack_name, "eps": float(eps), "norm": norm, "n": int(y.shape[0]),
            "source_clean": float((src_clean == y).float().mean()),
            "target_clean": float(tgt_ok.float().mean()),
            "source_adv": float((src_adv == y).float().mean()),
            "target_adv": float((tgt_adv == y).float().mean()),
            "transfer_success": float(fooled.sum()) / max(int(tgt_ok.sum()), 1)}
