"""The training loop: seeding, data, SGD, per-epoch log + checkpoint, resume (SPEC §4, §6).

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``; batch order and
augmentation of epoch e come from ``seed·1000 + e`` (so they need no saved state); the global torch
RNG (dropout) and the attacks' generator are saved in every checkpoint and restored on resume, so
an interrupted run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from deep import io as dio
from deep.device import prefers_channels_last, resolve_device
from deep.evaluate import evaluate
from deep.runfolder import RunFolder, TrainResult, build_from_spec, load_run

from .methods import make_inner_attack, set_inner_radius, training_step
from .recipe import Recipe
from .schedule import factor_at_step

log = logging.getLogger(__name__)


def progress_enabled(progress: bool) -> bool:
    """Bars on unless disabled by the caller, or by ADVFEAT_PROGRESS=0 when stderr is not a TTY."""
    if not progress:
        return False
    return not (os.environ.get("ADVFEAT_PROGRESS") == "0" and not sys.stderr.isatty())


def data_identity(name: str, split: Any) -> dict[str, Any]:
    """Name, size and a sha256 of the labels and the first 64 images, to tell datasets apart.

    Lazy folder splits (restricted-imagenet) get no hash: hashing would read the images."""
    ident: dict[str, Any] = {"dataset": name, "n": len(split), "shape": list(split.info.shape), "sha256": None}
    x, y = getattr(split, "x", None), getattr(split, "y", None)
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        h = hashlib.sha256()
        h.update(y.cpu().numpy().astype("int64").tobytes())
        h.update(x[:64].cpu().float().numpy().tobytes())
        ident["sha256"] = h.hexdigest()[:16]
    return ident


def _load_data(recipe: Recipe, data_root: Any):
    from deep.data import load_split

    train_split = load_split(recipe.dataset, "train", data_root=data_root, subset=recipe.subset,
                             first_n=recipe.first_n, seed=recipe.seed)
    test_split = load_split(recipe.dataset, "test", data_root=data_root, first_n=recipe.eval_n)
    return train_split, test_split


def _model_spec(recipe: Recipe, info: Any) -> dict[str, Any]:
    from deep.models import default_normalization

    mean, std = default_normalization(recipe.dataset)
    return {"name": recipe.model, "num_classes": int(info.num_classes), "in_shape": list(info.shape),
            "mean": None if mean is None else list(map(float, mean)),
            "std": None if std is None else list(map(float, std))}


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "attack": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["attack"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _check_folder(folder: RunFolder, recipe: Recipe) -> TrainResult | None:
    """The finished result if the folder holds this run done; refuse a folder holding another recipe.

    Damaged files are moved aside (deep.io.quarantine) instead of blocking the run (issue 13): a bad
    metrics.json makes the run "not done", so it is finished again from its checkpoint; a bad recipe.json
    leaves the checkpoint of unknown origin, so that is moved aside too and the run starts afresh."""
    try:
        # fields added to Recipe after the folder was written take their defaults (which keep old behaviour)
        existing = {**Recipe().to_dict(), **folder.read_recipe()}
    except FileNotFoundError:
        existing = None
    except dio.CorruptFileError as e:
        dio.quarantine(folder.recipe_path)
        if folder.checkpoint_path.exists():
            dio.quarantine(folder.checkpoint_path)
        log.warning("%s; the run restarts from scratch", e)
        existing = None
    if existing is not None and existing != recipe.to_dict():
        diff = sorted(k for k in set(existing) | set(recipe.to_dict()) if existing.get(k) != recipe.to_dict().get(k))
        raise ValueError(f"{folder.path} holds a run with a different recipe (fields {diff}); use another --out")
    return folder.finished_result(recipe.epochs)


def _resume_state(folder: RunFolder, dev: torch.device) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start afresh; a damaged one is moved aside."""
    if not folder.checkpoint_path.exists():
        return None
    try:
        return folder.load_checkpoint(map_location=dev)
    except dio.CorruptFileError as e:
        log.warning("%s; the run restarts from scratch", e)
        dio.quarantine(folder.checkpoint_path)
        return None


def _evaluate_slice(model: nn.Module, test_split: Any, recipe: Recipe) -> dict[str, Any]:
    name = f"pgd-{recipe.eval_steps}"
    r = evaluate(model, test_split, [name], eps=recipe.eps if recipe.eps > 0 else 0.0, norm=recipe.norm,
                 seed=recipe.seed, progress=False, bf16=recipe.bf16)
    return {"eval_clean_acc": r["clean"], "eval_pgd_acc": r["attacks"][name], "eval_attack": name,
            "eval_n": r["n"], "eval_eps": r["eps"]}


def augment_mode(recipe: Recipe, shape: tuple[int, int, int]) -> bool | str:
    """recipe.augment as iterate_batches' mode: crop+flip for colour images, crop only for grayscale
    ones (MNIST, Fashion-MNIST), because a mirrored digit is a different, often invalid, digit."""
    if not recipe.augment:
        return False
    return "crop+flip" if shape[0] == 3 else "crop"


def train(recipe: Recipe, out_dir: str | os.PathLike[str], *, data_root: Any = None, progress: bool = True,
          device: str | torch.device | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train per the recipe into the run folder out_dir (resuming if it holds a checkpoint); final metrics."""
    from deep.data import iterate_batches

    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a deep.train.Recipe, got {type(recipe).__name__}")
    recipe.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out)
    done = _check_folder(folder, recipe)
    if done is not None:
        return done.to_dict()
    dev = resolve_device(device)
    state = _resume_state(folder, dev)
    show = progress_enabled(progress)

    train_split, test_split = _load_data(recipe, data_root)
    info = train_split.info
    torch.manual_seed(recipe.seed)
    spec = _model_spec(recipe, info)

    model = build_from_spec(spec).to(dev)
    if prefers_channels_last(model, dev):  # ~1.35x faster conv training on the CPU (deep/device.py)
        model = model.to(memory_format=torch.channels_last)
    if recipe.init_from is not None and state is None:
        # fine-tuning: start from another run's weights (a resumed run has its own checkpoint instead)
        init_model, _ = load_run(recipe.init_from)
        try:
            model.load_state_dict(init_model.state_dict())
        except RuntimeError as e:
            raise ValueError(f"recipe.init_from {recipe.init_from!r} holds another architecture: {e}") from e
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
    n = len(train_split)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: factor_at_step(recipe, k, steps_per_epoch))
    generator = torch.Generator().manual_seed(recipe.seed)
    attack = make_inner_attack(recipe, model, generator)

    start_epoch, seconds_before = 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], generator)
        start_epoch = int(state["epoch"])
        seconds_before = float(state.get("seconds", torch.tensor(0.0)))
        folder.trim_log(start_epoch)
    else:
        folder.log_path.unlink(missing_ok=True)  # a log without a checkpoint belongs to a run that never saved
    folder.write_recipe(recipe.to_dict())
    folder.write_model_spec(spec)
    base = {"data": data_identity(recipe.dataset, train_split), "eval_data": data_identity(recipe.dataset, test_split),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(dev),
            "threads": torch.get_num_threads(), "steps_per_epoch": steps_per_epoch}
    folder.write_metrics(TrainResult(**base, status="running", epochs_done=start_epoch, epochs=recipe.epochs))

    last: dict[str, Any] = {}
    seconds = seconds_before
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        model.train()
        tot_loss, tot_n, ok_clean, n_clean, ok_adv, n_adv = 0.0, 0, 0, 0, 0, 0
        batches = iterate_batches(train_split, recipe.batch_size, shuffle=True, seed=recipe.seed * 1000 + epoch,
                                  augment=augment_mode(recipe, train_split.info.shape), device=dev)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not show,
                   leave=False)
        for i, (x, y) in enumerate(bar):
            # ε warm-up: read at the end of the batch, like the lr schedule (a no-op when eps_warmup is 0)
            set_inner_radius(recipe, attack, epoch + (i + 1) / steps_per_epoch)
            out_step = training_step(recipe, model, attack, x, y)
            optimizer.zero_grad(set_to_none=True)
            out_step.loss.backward()
            optimizer.step()
            scheduler.step()
            b = int(y.shape[0])
            tot_loss += float(out_step.loss.detach()) * b
            tot_n += b
            if out_step.logits_clean is not None:
                ok_clean += int((out_step.logits_clean.detach().argmax(1) == y).sum())
                n_clean += b
            if out_step.logits_adv is not None:
                ok_adv += int((out_step.logits_adv.detach().argmax(1) == y).sum())
                n_adv += b
            bar.set_postfix(loss=f"{tot_loss / tot_n:.4f}")
        if not math.isfinite(tot_loss):
            raise ValueError(f"training diverged: non-finite loss in epoch {epoch + 1}; lower recipe.lr")
        train_seconds = time.perf_counter() - t0
        entry: dict[str, Any] = {"epoch": epoch + 1, "train_loss": tot_loss / max(tot_n, 1),
                                 "train_clean_acc": ok_clean / n_clean if n_clean else None,
                                 "train_adv_acc": ok_adv / n_adv if n_adv else None,
                                 "lr": optimizer.param_groups[0]["lr"], "train_seconds": train_seconds,
                                 "images_per_second": tot_n / train_seconds if train_seconds > 0 else None}
        if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs:
            rng = _rng_state(generator)  # evaluation must not shift the training random stream
            entry.update(_evaluate_slice(model, test_split, recipe))
            _set_rng_state(rng, generator)
        entry["seconds"] = time.perf_counter() - t0
        seconds += entry["seconds"]
        # Log first, then checkpoint: a crash in between leaves a log line past the checkpoint, which
        # RunFolder.trim_log drops on resume (the reverse order would lose the line for good).
        folder.append_log(entry)
        folder.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict(), "epoch": torch.tensor(epoch + 1),
                                "rng": _rng_state(generator), "seconds": torch.tensor(seconds, dtype=torch.float64)})
        last = entry
        folder.write_metrics(TrainResult(**base, status="running", epochs_done=epoch + 1, epochs=recipe.epochs,
                                         last=entry, seconds_total=seconds))
        if on_epoch is not None:
            on_epoch(entry)
    if not last:  # finished before this call (e.g. metrics.json was damaged): the log's last epoch
        entries = folder.read_log()
        last = entries[-1] if entries else {}
    result = TrainResult(**base, status="done", epochs_done=recipe.epochs, epochs=recipe.epochs, last=last,
                         seconds_total=seconds)
    folder.write_metrics(result)
    return result.to_dict()
