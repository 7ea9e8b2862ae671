"""Robust accuracy of a model under an attack suite, streamed batch by batch (SPEC §0, §4, §6).

Each attack of the suite is built once (deep.attacks.registry) and called on every batch in order,
so its random starts continue across batches exactly as when the whole split was attacked at once.
Only per-example predictions and confidences are kept; images are never collected.

Precision: ``bf16=True`` is a speed option for the attacks' gradient steps only (they decide which
iterate to return in fp32: deep.attacks.base). Every number this module reports (clean and per-attack
predictions, confidences, transfer rates) comes from an fp32 forward with autocast off, so bf16 changes
at most the attack's path, never how its result is scored. An attack that abandoned bf16 on some
batches (its bf16 input gradient was unusable) is named in ``EvalResult.flags``.
"""
from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from deep.attacks.base import check_logits, eval_mode, model_device, model_dtype
from deep.attacks.registry import AttackSpec, build_attack, is_resumable, parse_attack, resolve_spec
from deep.progress import progress_enabled
from deep.units import check_eps, parse_norm

from .batches import data_shape, iter_batches
from .result import EvalResult, package_version


def _check_dtype(model: nn.Module, x: Tensor, name: str = "x") -> None:
    want = model_dtype(model)
    if want is not None and x.dtype != want:
        raise ValueError(f"{name} has dtype {x.dtype} but the model's parameters are {want}; convert the "
                         f"images with .to({want})")


@torch.no_grad()
def _predict_batch(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, int]:
    """(labels [B], max-softmax [B], number of classes) for one batch, from an fp32 forward (autocast off,
    also inside a caller's autocast region); ValueError on non-finite logits."""
    device = model_device(model)
    _check_dtype(model, x)
    with torch.autocast(device_type=device.type, enabled=False):
        logits = check_logits(model(x.to(device)), x.shape[0])
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("the model returned non-finite logits (NaN or inf); its accuracy is undefined")
    conf, pred = torch.softmax(logits.float(), dim=1).max(dim=1)
    return pred.cpu(), conf.cpu(), int(logits.shape[1])


def predict(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(predicted labels [N], max-softmax confidence [N]) on the CPU, model in eval mode, fp32 forward."""
    preds, confs = [], []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            pred, conf, _ = _predict_batch(model, x[i:i + batch_size])
            preds.append(pred)
            confs.append(conf)
    return torch.cat(preds), torch.cat(confs)


def _check_labels_in_range(y: Tensor, num_classes: int) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] (the model's classes), got values in [{lo}, {hi}]")


def _setup(suite: Sequence[str], data: Any, eps: Any, norm: str,
           alpha: float | None) -> tuple[str, float, list[AttackSpec]]:
    norm = parse_norm(norm)
    eps = check_eps(eps, norm, data_shape(data))
    if isinstance(suite, str) or not isinstance(suite, Sequence) or len(suite) != len(set(suite)):
        raise ValueError(f"suite must be a sequence of distinct attack names, got {suite!r}")
    specs = [resolve_spec(parse_attack(name), eps=eps, alpha=alpha) for name in suite]  # fail fast on bad names
    return norm, eps, specs


def attack_split(model: nn.Module, data: Any, name: str, *, eps: float | str, norm: str = "linf",
                 batch_size: int = 256, alpha: float | None = None, seed: int = 0, progress: bool = True,
                 bf16: bool = False) -> Tensor:
    """Adversarial versions [N, C, H, W] (CPU) of the data's images under the named attack."""
    norm, eps, (spec,) = _setup([name], data, eps, norm, alpha)
    atk = build_attack(spec, model, eps=eps, norm=norm, seed=seed, bf16=bf16)
    device = model_device(model)
    out = [atk(x.to(device), y.to(device)).cpu()
           for x, y in tqdm(iter_batches(data, batch_size), desc=name, leave=False,
                            disable=not progress_enabled(progress))]
    return torch.cat(out)


class _Tally:
    """Per-example predictions and confidences of the clean input and each attack, batch by batch."""

    def __init__(self, names: Sequence[str]) -> None:
        self.y: list[Tensor] = []
        self.pred: dict[str, list[Tensor]] = {name: [] for name in ("clean", *names)}
        self.conf: dict[str, list[Tensor]] = {name: [] for name in ("clean", *names)}
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)

    def add(self, name: str, pred: Tensor, conf: Tensor) -> None:
        self.pred[name].append(pred)
        self.conf[name].append(conf)

    def correct(self, name: str) -> Tensor:
        return torch.cat(self.pred[name]) == torch.cat(self.y)


def _run_batches(model: nn.Module, data: Any, attacks: dict[str, Any], *, batch_size: int,
                 progress: bool) -> _Tally:
    tally = _Tally(list(attacks))
    device = model_device(model)
    for x, y in tqdm(iter_batches(data, batch_size), desc="evaluate", leave=False,
                     disable=not progress_enabled(progress)):
        with eval_mode(model):
            pred, conf, num_classes = _predict_batch(model, x)
        _check_labels_in_range(y, num_classes)
        tally.y.append(y)
        tally.add("clean", pred, conf)
        for name, atk in attacks.items():
            t0 = time.perf_counter()
            x_adv = atk(x.to(device), y.to(device))
            with eval_mode(model):
                pred, conf, _ = _predict_batch(model, x_adv.cpu())
            tally.add(name, pred, conf)
            tally.seconds[name] += time.perf_counter() - t0
    return tally


def _fallback_flags(atk: Any) -> list[str]:
    """The warning for an attack that ran some batches in fp32 because bf16 lost its input gradient
    (deep.attacks.base counts them per call, i.e. per batch here); [] when it never fell back."""
    k = int(getattr(atk, "fp32_fallbacks", 0))
    if k == 0:
        return []
    return [f"bf16 input gradient unusable on {k} batch(es); those batches were attacked in fp32"]


def _resume_options(spec: AttackSpec, state_dir: str | Path | None) -> dict[str, Any]:
    if state_dir is None or not is_resumable(spec):
        return {}
    return {"state_path": Path(state_dir) / spec.name}


def evaluate(model: nn.Module, data: Any, suite: Sequence[str], *, eps: float | str, norm: str = "linf",
             batch_size: int = 256, alpha: float | None = None, seed: int = 0, progress: bool = True,
             bf16: bool = False, state_dir: str | Path | None = None) -> EvalResult:
    """Clean and per-attack accuracy, the per-example worst case, and Goodfellow's confidence statistic.

    data: tensors (x, y), a split with .x/.y, a DataLoader or a Dataset of (image, label); streamed.
    eps: a number or a string such as "8/255" (at most 1 for ℓ∞, sqrt(C·H·W) for ℓ2).
    bf16: the attacks take their gradient steps in bf16 (speed); every accuracy and confidence is still
        measured with an fp32 forward (module docstring).
    state_dir: where resumable attacks (AutoAttack's suites) keep per-batch state, one folder per
        attack; an interrupted evaluation called again with the same folder redoes only what is missing
        and gives the same numbers.
    """
    norm, eps, specs = _setup(suite, data, eps, norm, alpha)
    attacks = {spec.name: build_attack(spec, model, eps=eps, norm=norm, seed=seed, bf16=bf16,
                                       **_resume_options(spec, state_dir)) for spec in specs}
    tally = _run_batches(model, data, attacks, batch_size=batch_size, progress=progress)
    robust = tally.correct("clean")
    correct = {"clean": robust.numpy()}
    result = EvalResult(clean=float(robust.float().mean()), attacks={}, worst_case=0.0, n=int(robust.shape[0]),
                        eps=float(eps), norm=norm, seed=seed, versions={})
    for spec in specs:
        ok = tally.correct(spec.name)
        robust = robust & ok
        wrong = ~ok
        conf = torch.cat(tally.conf[spec.name])
        result.attacks[spec.name] = float(ok.float().mean())
        result.mean_confidence_on_errors[spec.name] = float(conf[wrong].mean()) if bool(wrong.any()) else None
        result.params[spec.name] = spec.to_dict()
        result.seconds[spec.name] = tally.seconds[spec.name]
        atk = attacks[spec.name]
        result.versions[spec.name] = getattr(atk, "version", None) or package_version()
        result.flags.extend(f"{spec.name}: {flag}" for flag in getattr(atk, "flags", []))
        result.flags.extend(f"{spec.name}: {flag}" for flag in _fallback_flags(atk))
        correct[spec.name] = ok.numpy()
    result.worst_case = float(robust.float().mean())
    correct["worst_case"] = robust.numpy()
    result.correct = correct
    result.validate()
    return result


def transfer(source_model: nn.Module, target_model: nn.Module, data: Any, attack_name: str, *, eps: float | str,
             norm: str = "linf", batch_size: int = 256, alpha: float | None = None, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Black-box transfer: examples crafted on the source model, scored on both models.

    Returns {"attack", "eps", "norm", "n", "source_clean", "target_clean", "source_adv" (source accuracy
    on its own examples), "target_adv" (target accuracy on them), "transfer_success" (fraction of
    examples the target classifies correctly clean but wrongly after transfer, among those it gets right)}.
    """
    norm, eps, (spec,) = _setup([attack_name], data, eps, norm, alpha)
    atk = build_attack(spec, source_model, eps=eps, norm=norm, seed=seed)
    device = model_device(source_model)
    cols: dict[str, list[Tensor]] = {k: [] for k in ("y", "src_clean", "tgt_clean", "src_adv", "tgt_adv")}
    for x, y in tqdm(iter_batches(data, batch_size), desc=attack_name, leave=False,
                     disable=not progress_enabled(progress)):
        x_adv = atk(x.to(device), y.to(device)).cpu()
        cols["y"].append(y)
        for key, model, inputs in (("src_clean", source_model, x), ("tgt_clean", target_model, x),
                                   ("src_adv", source_model, x_adv), ("tgt_adv", target_model, x_adv)):
            with eval_mode(model):
                cols[key].append(_predict_batch(model, inputs)[0])
    y, src_clean, tgt_clean, src_adv, tgt_adv = (torch.cat(cols[k]) for k in cols)
    tgt_ok = tgt_clean == y
    fooled = tgt_ok & (tgt_adv != y)
    return {"attack": attack_name, "eps": float(eps), "norm": norm, "n": int(y.shape[0]),
            "source_clean": float((src_clean == y).float().mean()),
            "target_clean": float(tgt_ok.float().mean()),
            "source_adv": float((src_adv == y).float().mean()),
            "target_adv": float((tgt_adv == y).float().mean()),
            "transfer_success": float(fooled.sum()) / max(int(tgt_ok.sum()), 1)}

