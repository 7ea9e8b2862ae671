"""Build a constructed dataset shard by shard (Ilyas et al. 2019 §3; SPEC §5; DESIGN §deep.construct).

`construct_dataset` loads the source model (a run folder or a named model: deep.construct.source)
and the source split (deep.data) and calls `build_from_tensors`, which does the work on in-memory
tensors (tests call it directly with tiny models). Examples are processed in order, `shard_size` per shard and `batch_size` per batch inside a
shard; each finished shard is written atomically, so rerunning an interrupted build skips the shards
on disk. All randomness of a shard comes from a generator seeded by (seed, shard index) and the D̂_R
start images from one seeded derangement of all n indices, so a resumed build equals an
uninterrupted one exactly.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from deep.attacks.base import check_count, check_nonneg
from deep.data import load_split
from deep.device import resolve_device
from deep.io import write_json
from deep.progress import progress_enabled

from . import adversarial, robust
from .source import check_min_source_acc, check_num_outputs, check_source_accuracy, load_source
from .shards import PROVENANCE, SCHEMA, SHARDS, check_plan, read_done_shard, shard_name, write_plan, write_shard

KINDS: tuple[str, ...] = ("robust", "nonrobust", "rand", "det")
DEFAULT_STEPS = {"robust": 1000, "nonrobust": 1000, "rand": 100, "det": 100}
DEFAULT_SHARD_SIZE = 1024


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return str(kind)


def shard_generator(seed: int, index: int) -> torch.Generator:
    """CPU generator for shard `index`, a function of (seed, index) only."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build_shard(kind: str, model: nn.Module, x: Tensor, y: Tensor, lo: int, hi: int, starts: np.ndarray | None,
                 *, num_classes: int, eps: float, step: float, steps: int, batch_size: int,
                 generator: torch.Generator, bar: tqdm) -> dict[str, np.ndarray]:
    """Arrays of one shard (examples lo..hi-1 of the source)."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    xs: list[Tensor] = []
    labels: list[Tensor] = []
    stats: dict[str, list[np.ndarray]] = {}
    for b in range(lo, hi, batch_size):
        e = min(b + batch_size, hi)
        xb, yb = x[b:e], y[b:e]
        if kind in ("rand", "det"):
            t = adversarial.choose_targets(kind, yb, num_classes, generator)
            out, st = adversarial.perturb_batch(model, xb.to(device), t.to(device), eps=eps, step=step, steps=steps)
            labels.append(t)
        else:
            assert starts is not None
            idx = torch.from_numpy(starts[b:e])
            out, st = robust.invert_batch(model, xb.to(device), x[idx].to(device), step=step, steps=steps)
            labels.append(yb)
            st["start_index"] = starts[b:e].astype(np.int64)
            st["start_label"] = y[idx].numpy().astype(np.int64)
        xs.append(out.float().clamp(0.0, 1.0))
        for k, v in st.items():
            stats.setdefault(k, []).append(v)
        bar.update(e - b)
    arrays = {"x": torch.cat(xs).numpy().astype(np.float32), "y": torch.cat(labels).numpy().astype(np.int64),
              "src_index": np.arange(lo, hi, dtype=np.int64), "source_label": y[lo:hi].numpy().astype(np.int64)}
    arrays.update({k: np.concatenate(v) for k, v in stats.items()})
    return arrays


def _validate(kind: str, x: Tensor, y: Tensor, num_classes: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.shape != (x.shape[0],):
        raise ValueError(f"y must be int64 [N={x.shape[0]}], got {getattr(y, 'dtype', type(y))} "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if x.shape[0] == 0:
        raise ValueError("the source split is empty")
    if bool(torch.isnan(x).any()) or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1] without NaNs")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")
    if kind in ("robust", "nonrobust") and x.shape[0] < 2:
        raise ValueError(f"kind={kind!r} needs at least 2 source images (starts are other images)")


@dataclass(frozen=True)
class _Settings:
    """The validated knobs of one build."""

    kind: str
    num_classes: int
    eps: float
    step: float
    steps: int
    seed: int
    batch_size: int
    shard_size: int

    def params(self) -> dict[str, Any]:
        """The ``params`` record of the plan and the provenance."""
        params: dict[str, Any] = {"step": self.step, "steps": self.steps, "seed": self.seed,
                                  "batch_size": self.batch_size, "shard_size": self.shard_size}
        if self.kind in ("rand", "det"):
            params.update(eps=self.eps, norm="l2", random_start=False, target_rule=adversarial.TARGET_RULES[self.kind])
        else:
            params.update(start_rule="another training image: seeded random derangement of the indices")
        return params


def _settings(kind: str, *, num_classes: int, eps: float, step: float, steps: int | None, seed: int,
              batch_size: int, shard_size: int) -> _Settings:
    kind = check_kind(kind)
    steps = DEFAULT_STEPS[kind] if steps is None else steps
    eps, step = check_nonneg("eps", eps), check_nonneg("step", step)
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size, minimum=1)
    shard_size = check_count("shard_size", shard_size, minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    num_classes = check_count("num_classes", num_classes, minimum=2)
    return _Settings(kind, num_classes, eps, step, steps, seed, batch_size, shard_size)


def _build_shards(s: _Settings, model: nn.Module, x: Tensor, y: Tensor, out_dir: Path, plan: dict[str, Any],
                  progress: bool) -> list[dict[str, np.ndarray]]:
    """Every shard's arrays: read from disk when finished earlier, else built and written."""
    kind, n, shard_size = s.kind, int(x.shape[0]), s.shard_size
    starts = robust.derangement(n, s.seed) if kind in ("robust", "nonrobust") else None
    num_shards = (n + shard_size - 1) // shard_size
    sizes = [min(shard_size, n - i * shard_size) for i in range(num_shards)]
    shards = [read_done_shard(out_dir, i, sizes[i], tuple(x.shape[1:])) for i in range(num_shards)]
    todo_n = sum(size for size, arrays in zip(sizes, shards) if arrays is None)
    with tqdm(total=todo_n, desc=f"construct {kind}", unit="img", disable=not progress_enabled(progress)) as bar:
        for i in range(num_shards):
            if shards[i] is not None:  # finished shards are never recomputed
                continue
            t0 = time.perf_counter()
            lo, hi = i * shard_size, i * shard_size + sizes[i]
            arrays = _build_shard(kind, model, x, y, lo, hi, starts, num_classes=s.num_classes, eps=s.eps,
                                  step=s.step, steps=s.steps, batch_size=s.batch_size,
                                  generator=shard_generator(s.seed, i), bar=bar)
            arrays["seconds"] = np.array(time.perf_counter() - t0, dtype=np.float64)
            write_plan(out_dir, plan)  # only now: a build that fails before its first shard binds nothing
            write_shard(out_dir, i, arrays)
            shards[i] = arrays
    return shards  # type: ignore[return-value]  # every entry is filled by now


def _provenance(s: _Settings, x: Tensor, source: dict[str, Any], shards: list[dict[str, np.ndarray]],
                heldout: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance record: the plan's fields, per-kind statistics, timing and the shard files (and the
    source's held-out check, deep.construct.source, when construct_dataset ran it)."""
    n, num_shards = int(x.shape[0]), len(shards)
    per_example = {k: np.concatenate([sh[k] for sh in shards]) for k in shards[0] if k not in ("x", "seconds")}
    if s.kind in ("rand", "det"):
        statistics = adversarial.summarise(per_example, s.num_classes)
    else:
        statistics = robust.summarise(per_example)
    seconds = float(sum(float(sh["seconds"]) for sh in shards))
    extra = {} if heldout is None else {"source_heldout": heldout}
    return {**extra,
        "schema": SCHEMA, "kind": s.kind, "n": n, "num_classes": s.num_classes, "shape": list(x.shape[1:]),
        **source, "params": s.params(), "statistics": statistics,
        "timing": {"seconds": seconds, "seconds_per_example": seconds / n, "num_shards": num_shards,
                   "threads": torch.get_num_threads()},
        "shards": [f"{SHARDS}/{shard_name(i)}" for i in range(num_shards)],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def build_from_tensors(kind: str, model: nn.Module, x: Tensor, y: Tensor, out_dir: Path | str, *,
                       num_classes: int, eps: float = 0.5, step: float = 0.1, steps: int | None = None,
                       seed: int = 0, batch_size: int = 128, shard_size: int = DEFAULT_SHARD_SIZE,
                       source: dict[str, Any] | None = None, progress: bool = True,
                       heldout: dict[str, Any] | None = None) -> dict[str, Any]:
    """Construct D̂_R / D̂_NR / D̂_rand / D̂_det from source tensors into `out_dir`; returns the provenance.

    `source` holds the provenance fields describing where x, y and the model came from
    (source_dataset, source_split, source_model); they also enter the resume check. `heldout` (the
    source's held-out check) is recorded in the provenance only, so it never blocks a resume.
    """
    s = _settings(kind, num_classes=num_classes, eps=eps, step=step, steps=steps, seed=seed, batch_size=batch_size,
                  shard_size=shard_size)
    _validate(s.kind, x, y, s.num_classes)
    x, y = x.detach().float().cpu(), y.detach().cpu()
    out_dir = Path(out_dir)
    source = dict(source or {})
    if not isinstance(source.get("source_dataset"), str):
        raise ValueError("source must name 'source_dataset' (the deep.data name the test split comes from)")
    plan = {"schema": SCHEMA, "kind": s.kind, "n": int(x.shape[0]), "num_classes": s.num_classes,
            "shape": list(x.shape[1:]), "params": s.params(), "source": source}
    check_plan(out_dir, plan)
    provenance = _provenance(s, x, source, _build_shards(s, model, x, y, out_dir, plan, progress), heldout)
    write_json(out_dir / PROVENANCE, provenance)  # last: its presence marks the build complete
    return provenance


def construct_dataset(kind: str, *, source_run: Path | str | None = None, dataset: str, out_dir: Path | str,
                      split: str = "train", n: int | None = None, eps: float = 0.5, step: float = 0.1,
                      steps: int | None = None, seed: int = 0, batch_size: int = 128, data_root=None,
                      progress: bool = True, shard_size: int = DEFAULT_SHARD_SIZE,
                      device: str | torch.device | None = None,  # None/'auto': CUDA if present
                      min_source_acc: float | None = None,
                      min_source_acc_override: str = "pass --min-source-acc 0",
                      source_model: str | None = None) -> dict[str, Any]:
    """Construct a dataset of `kind` from the model in `source_run` (or the model `source_model` names,
    as deep.models.external loads it, e.g. "pyautoattack:resnet18"; exactly one of the two) and the
    first `n` examples of `dataset`/`split` (all when n is None); writes `out_dir` and returns its
    provenance record.

    D̂_R needs the robust (adversarially trained) run, D̂_NR / D̂_rand / D̂_det the standard run.
    A source whose held-out clean accuracy is below `min_source_acc` (None: 1.5 / num_classes; 0: no
    check) is refused before anything is written (deep.construct.source); the ValueError's last words
    are `min_source_acc_override`: how the caller's user turns the check off.
    """
    kind = check_kind(kind)
    check_min_source_acc(min_source_acc)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None:
        check_count("n", n, minimum=1)
    check_nonneg("eps", eps)
    loaded = load_source(source_run, source_model, resolve_device(device))
    src = load_split(dataset, split, data_root=data_root, first_n=n)
    if source_model is not None:  # a run folder was trained on its dataset; a named model may not fit it
        check_num_outputs(loaded.model, src.x, src.info.num_classes, loaded.name)
    checked = check_source_accuracy(loaded.model, dataset, num_classes=src.info.num_classes, minimum=min_source_acc,
                                    name=loaded.name, override=min_source_acc_override, data_root=data_root,
                                    batch_size=batch_size)
    return build_from_tensors(
        kind, loaded.model, src.x, src.y, out_dir, num_classes=src.info.num_classes, eps=eps, step=step,
        steps=steps, seed=seed, batch_size=batch_size, shard_size=shard_size, progress=progress,
        heldout=checked.to_dict(), source={"source_dataset": dataset, "source_split": split, "source_first_n": n,
                                           "source_model": loaded.record})
