"""The training loop: build, resume, run an epoch, persist (SPEC §4, §6). Files: deep.runfolder.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``; batch order and
augmentation of epoch e come from ``seed·1000 + e`` (so they need no saved state); the global torch
RNG (dropout) and the attacks' generator are saved in every checkpoint and restored on resume, so
an interrupted run ends with the same weights as an uninterrupted one. The held-out check runs
between the training RNG's save and restore, so it never changes the trained weights.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from deep import io as dio
from deep.device import prefers_channels_last, resolve_device
from deep.precision import resolve_bf16
from deep.progress import progress_enabled
from deep.runfolder import RunFolder, TrainResult, build_from_spec, load_run

from .heldout import check_heldout, heldout_plan
from .methods import TrainingMethod, build_method, set_inner_radius
from .recipe import Recipe
from .schedule import factor_at_step

log = logging.getLogger(__name__)


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


def _model_spec(recipe: Recipe, info: Any) -> dict[str, Any]:
    from deep.models import default_normalization

    mean, std = default_normalization(recipe.data.dataset)
    spec = {"name": recipe.model.name, "num_classes": int(info.num_classes), "in_shape": list(info.shape),
            "mean": None if mean is None else list(map(float, mean)),
            "std": None if std is None else list(map(float, std))}
    if recipe.model.options:  # absent otherwise, so model.json of a run without options is as before
        spec["options"] = dict(recipe.model.options)
    return spec


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


def augment_mode(recipe: Recipe, shape: tuple[int, int, int]) -> bool | str:
    """recipe.data.augment as iterate_batches' mode: crop+flip for colour images, crop only for
    grayscale ones (MNIST, Fashion-MNIST), because a mirrored digit is a different, often invalid, digit."""
    if not recipe.data.augment:
        return False
    return "crop+flip" if shape[0] == 3 else "crop"


# -- folder check --------------------------------------------------------------------------------------
def _same_recipe(stored: dict[str, Any], recipe: Recipe) -> list[str]:
    """Flat keys on which a stored recipe.json differs from recipe. Keys added after the folder was
    written take their defaults (which keep old behaviour); other methods' knobs do not count."""
    merged = {**Recipe().to_dict(), **stored}
    try:
        merged = Recipe.from_dict(merged).to_dict()
    except ValueError:
        pass  # not a valid recipe today: compare as written, which reports the differing keys
    new = recipe.to_dict()
    return sorted(k for k in set(merged) | set(new) if merged.get(k) != new.get(k))


def _check_folder(folder: RunFolder, recipe: Recipe) -> TrainResult | None:
    """The finished result if the folder holds this run done; refuse a folder holding another recipe.

    Damaged files are moved aside (deep.io.quarantine) instead of blocking the run (issue 13): a bad
    metrics.json makes the run "not done", so it is finished again from its checkpoint; a bad recipe.json
    leaves the checkpoint of unknown origin, so that is moved aside too and the run starts afresh."""
    try:
        existing = folder.read_recipe()
    except FileNotFoundError:
        existing = None
    except dio.CorruptFileError as e:
        dio.quarantine(folder.recipe_path)
        if folder.checkpoint_path.exists():
            dio.quarantine(folder.checkpoint_path)
        log.warning("%s; the run restarts from scratch", e)
        existing = None
    if existing is not None:
        diff = _same_recipe(existing, recipe)
        if diff:
            raise ValueError(f"{folder.path} holds a run with a different recipe (fields {diff}); use another --out")
    return folder.finished_result(recipe.optim.epochs)


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


# -- build / resume / run an epoch / persist ----------------------------------------------------------
@dataclass
class Session:
    """Everything one train() call builds once and every epoch updates."""

    recipe: Recipe
    folder: RunFolder
    device: torch.device
    train_split: Any
    test_split: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    method: TrainingMethod
    attack: Any
    identity: dict[str, Any]  # TrainResult's fields that describe data and machine
    steps_per_epoch: int
    start_epoch: int = 0
    seconds: float = 0.0


def _load_data(recipe: Recipe, data_root: Any) -> tuple[Any, Any]:
    from deep.data import load_split

    d = recipe.data
    train_split = load_split(d.dataset, "train", data_root=data_root, subset=d.subset, first_n=d.first_n,
                             seed=recipe.seed)
    test_split = load_split(d.dataset, "test", data_root=data_root, first_n=recipe.heldout.n)
    return train_split, test_split


def _build_model(recipe: Recipe, spec: dict[str, Any], dev: torch.device, fresh: bool) -> nn.Module:
    """The seeded model (channels-last for conv nets on the CPU); a fresh fine-tuning run starts from
    recipe.model.init_from's weights (a resumed run has its own checkpoint instead)."""
    torch.manual_seed(recipe.seed)
    model = build_from_spec(spec).to(dev)
    if prefers_channels_last(model, dev):  # ~1.35x faster conv training on the CPU (deep/device.py)
        model = model.to(memory_format=torch.channels_last)
    if recipe.model.init_from is not None and fresh:
        init_model, _ = load_run(recipe.model.init_from)
        try:
            model.load_state_dict(init_model.state_dict())
        except RuntimeError as e:
            raise ValueError(f"recipe.init_from {recipe.model.init_from!r} holds another architecture: {e}") from e
    return model


def build(recipe: Recipe, folder: RunFolder, dev: torch.device, *, data_root: Any, fresh: bool) -> Session:
    """Data, model, SGD with its lr schedule, the method and its attack, in the seeded order."""
    train_split, test_split = _load_data(recipe, data_root)
    spec = _model_spec(recipe, train_split.info)
    model = _build_model(recipe, spec, dev, fresh)
    o = recipe.optim
    optimizer = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                                nesterov=o.nesterov)
    steps_per_epoch = math.ceil(len(train_split) / o.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: factor_at_step(o, k, steps_per_epoch))
    generator = torch.Generator().manual_seed(recipe.seed)
    method = build_method(recipe)
    identity = {"data": data_identity(recipe.data.dataset, train_split),
                "eval_data": data_identity(recipe.data.dataset, test_split), "torch": torch.__version__,
                "python": platform.python_version(), "device": str(dev), "threads": torch.get_num_threads(),
                "steps_per_epoch": steps_per_epoch, "extra": {"precision": "bf16" if recipe.bf16 else "fp32"}}
    folder.write_model_spec(spec)
    return Session(recipe, folder, dev, train_split, test_split, model, optimizer, scheduler, generator, method,
                   method.make_attack(model, generator), identity, steps_per_epoch)


def _with_precision(recipe: Recipe, dev: torch.device) -> Recipe:
    """The recipe the session runs: bf16 = 'auto' resolved for this machine (deep.precision), logged."""
    if recipe.bf16 != "auto":
        return recipe
    use = resolve_bf16(None, dev)
    log.info("bf16 = 'auto': %s on this machine", "bf16" if use else "fp32")
    return dataclasses.replace(recipe, bf16=use)


def resume(s: Session, state: dict[str, Any] | None, recipe: Recipe) -> None:
    """Restore the checkpoint's weights, optimiser, schedule and RNG (or clear a log without one).
    recipe.json gets the recipe as given (bf16 may be 'auto'); the session runs the resolved one."""
    if state is not None:
        s.model.load_state_dict(state["model"])
        s.optimizer.load_state_dict(state["optimizer"])
        s.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"], s.generator)
        s.start_epoch = int(state["epoch"])
        s.seconds = float(state.get("seconds", torch.tensor(0.0)))
        s.folder.trim_log(s.start_epoch)
    else:
        s.folder.log_path.unlink(missing_ok=True)  # a log without a checkpoint belongs to a run that never saved
    s.folder.write_recipe(recipe.to_dict())
    s.folder.write_metrics(TrainResult(**s.identity, status="running", epochs_done=s.start_epoch,
                                       epochs=s.recipe.optim.epochs))


def run_epoch(s: Session, epoch: int, *, show: bool) -> dict[str, Any]:
    """One pass over the training set; the log entry's training fields."""
    from deep.data import iterate_batches

    r, t0 = s.recipe, time.perf_counter()
    s.model.train()
    tot_loss, tot_n, ok_clean, n_clean, ok_adv, n_adv = 0.0, 0, 0, 0, 0, 0
    batches = iterate_batches(s.train_split, r.optim.batch_size, shuffle=True, seed=r.seed * 1000 + epoch,
                              augment=augment_mode(r, s.train_split.info.shape), device=s.device)
    bar = tqdm(batches, total=s.steps_per_epoch, desc=f"epoch {epoch + 1}/{r.optim.epochs}", disable=not show,
               leave=False)
    for i, (x, y) in enumerate(bar):
        # ε warm-up: read at the end of the batch, like the lr schedule (a no-op when eps_warmup is 0)
        set_inner_radius(r, s.attack, epoch + (i + 1) / s.steps_per_epoch)
        out = s.method.step(s.model, s.attack, x, y)
        s.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        s.optimizer.step()
        s.scheduler.step()
        b = int(y.shape[0])
        tot_loss += float(out.loss.detach()) * b
        tot_n += b
        # The training accuracies count the training forward's own logits: bf16 when recipe.bf16 (a cheap
        # running estimate, left as is). The held-out numbers (check_heldout) are fp32 forwards.
        if out.logits_clean is not None:
            ok_clean += int((out.logits_clean.detach().argmax(1) == y).sum())
            n_clean += b
        if out.logits_adv is not None:
            ok_adv += int((out.logits_adv.detach().argmax(1) == y).sum())
            n_adv += b
        bar.set_postfix(loss=f"{tot_loss / tot_n:.4f}")
    if not math.isfinite(tot_loss):
        raise ValueError(f"training diverged: non-finite loss in epoch {epoch + 1}; lower recipe.lr")
    seconds = time.perf_counter() - t0
    return {"epoch": epoch + 1, "train_loss": tot_loss / max(tot_n, 1),
            "train_clean_acc": ok_clean / n_clean if n_clean else None,
            "train_adv_acc": ok_adv / n_adv if n_adv else None, "lr": s.optimizer.param_groups[0]["lr"],
            "train_seconds": seconds, "images_per_second": tot_n / seconds if seconds > 0 else None}


def held_out(s: Session, epoch: int, *, show: bool) -> dict[str, Any]:
    """The held-out check's fields when it is due after this epoch ({} otherwise)."""
    r = s.recipe
    if (epoch + 1) % r.heldout.every != 0 and epoch + 1 != r.optim.epochs:
        return {}
    rng = _rng_state(s.generator)  # the check must not shift the training random stream
    try:
        return check_heldout(s.model, s.test_split, r, progress=show)
    finally:
        _set_rng_state(rng, s.generator)


def persist(s: Session, entry: dict[str, Any]) -> None:
    """Log first, then checkpoint, then metrics: a crash in between leaves a log line past the
    checkpoint, which RunFolder.trim_log drops on resume (the reverse order would lose the line).
    The checkpoint is saved every ``recipe.checkpoint_every`` epochs and after the last (one file,
    overwritten); the log lines of the epochs since the last save are dropped and redone on resume."""
    s.folder.append_log(entry)
    epochs, every = s.recipe.optim.epochs, s.recipe.checkpoint_every
    if entry["epoch"] % every == 0 or entry["epoch"] == epochs:
        save_checkpoint(s, entry)
    s.folder.write_metrics(TrainResult(**s.identity, status="running", epochs_done=entry["epoch"],
                                       epochs=s.recipe.optim.epochs, last=entry, seconds_total=s.seconds))


def save_checkpoint(s: Session, entry: dict[str, Any]) -> None:
    s.folder.save_checkpoint({"model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
                              "scheduler": s.scheduler.state_dict(), "epoch": torch.tensor(entry["epoch"]),
                              "rng": _rng_state(s.generator), "seconds": torch.tensor(s.seconds, dtype=torch.float64)})


# -- the readable report -------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def format_epoch(entry: dict[str, Any], epochs: int) -> str:
    """One line per epoch, e.g. ``epoch  2/10  loss 0.4123  train 91.2% clean, 45.1% adv  held-out 97.5%
    (pgd-10 at ε=0.3: 88.0%)  12.3 s`` (a method logs the training accuracies of the views it sees)."""
    seen = [f"{_pct(entry[k])}{label}" for k, label in (("train_clean_acc", " clean"), ("train_adv_acc", " adv"))
            if entry.get(k) is not None]
    if len(seen) == 1 and seen[0].endswith(" clean"):
        seen = [seen[0].removesuffix(" clean")]  # standard training: one accuracy, nothing to tell apart
    parts = [f"epoch {entry['epoch']:>{len(str(epochs))}}/{epochs}", f"loss {entry['train_loss']:.4f}",
             "train " + ", ".join(seen)]
    if "eval_clean_acc" in entry:
        robust = (f" ({entry['eval_attack']} at ε={entry['eval_eps']:.4g}: {_pct(entry['eval_pgd_acc'])})"
                  if "eval_pgd_acc" in entry else "")
        parts.append(f"held-out {_pct(entry['eval_clean_acc'])}{robust}")
    parts.append(f"{entry['seconds']:.1f} s")
    return "  ".join(parts)


def format_summary(result: TrainResult, folder: RunFolder) -> str:
    """The final line: epochs, time, the last held-out numbers and the run folder."""
    last = result.last or {}
    held = ""
    if "eval_clean_acc" in last:
        held = f"; held-out ({last.get('eval_n', '?')} test images) clean {_pct(last['eval_clean_acc'])}"
        if "eval_pgd_acc" in last:
            held += f", {last['eval_attack']} at ε={last['eval_eps']:.4g} {_pct(last['eval_pgd_acc'])}"
    return (f"done: {result.epochs_done} epochs in {result.seconds_total or 0.0:.1f} s{held}; "
            f"run folder {folder.path}")


def _say(line: str) -> None:
    tqdm.write(line, file=sys.stdout)  # between progress bars, never through them


# -- the entry point -------------------------------------------------------------------------------------
def train(recipe: Recipe, out_dir: str | os.PathLike[str], *, data_root: Any = None, progress: bool = True,
          device: str | torch.device | None = None, verbose: bool = False,
          on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train per the recipe into the run folder out_dir (resuming if it holds a checkpoint); the final
    metrics (TrainResult.to_dict()). verbose prints one readable line per epoch and a summary to stdout;
    the JSON entries go to out_dir/log.jsonl either way. The folder is locked for the call
    (deep.io.output_lock), so two processes never train into one folder."""
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a deep.train.Recipe, got {type(recipe).__name__}")
    with dio.output_lock(out_dir, "train") as out:
        folder = RunFolder(out)
        done = _check_folder(folder, recipe)
        if done is not None:
            if verbose:
                _say("nothing to train (finished before); " + format_summary(done, folder))
            return done.to_dict()
        dev = resolve_device(device)
        state = _resume_state(folder, dev)
        show = progress_enabled(progress)
        s = build(_with_precision(recipe, dev), folder, dev, data_root=data_root, fresh=state is None)
        resume(s, state, recipe)
        plan = heldout_plan(recipe)
        if verbose and plan.robust:
            _say(f"held-out check: {plan.attack} at {plan.norm} ε={plan.eps:.4g} on {len(s.test_split)} test images")
        last: dict[str, Any] = {}
        for epoch in range(s.start_epoch, recipe.optim.epochs):
            t0 = time.perf_counter()
            entry = run_epoch(s, epoch, show=show)
            entry.update(held_out(s, epoch, show=show))
            entry["seconds"] = time.perf_counter() - t0
            s.seconds += entry["seconds"]
            persist(s, entry)
            last = entry
            if verbose:
                _say(format_epoch(entry, recipe.optim.epochs))
            if on_epoch is not None:
                on_epoch(entry)
        if not last:  # finished before this call (metrics.json was damaged): the log's entry of the last epoch
            epochs = recipe.optim.epochs
            logged = [e for e in folder.read_log() if e.get("epoch") == epochs]
            # if the log lost it too, the held-out numbers again from the checkpoint (the training ones are gone)
            last = logged[-1] if logged else {"epoch": epochs, **held_out(s, epochs - 1, show=show)}
        result = TrainResult(**s.identity, status="done", epochs_done=recipe.optim.epochs,
                             epochs=recipe.optim.epochs, last=last, seconds_total=s.seconds)
        folder.write_metrics(result)
        if verbose:
            _say(format_summary(result, folder))
        return result.to_dict()
