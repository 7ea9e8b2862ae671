"""Report plugin for [TS] Tsipras et al. (SPEC §3), the image renderers (helpers in report_tsipras.py).

- ``tsipras-gradients``: ``tsipras-gradients`` runs → a grid of input-gradient images per model;
- ``tsipras-large-eps``: ``tsipras-large-eps`` runs → the large-ε examples per model and the
  interpolation strips from x to them.

Both read the ``.npz`` their kind wrote into the run folder (``metrics["file"]``, ray_jobs/kinds_tsipras.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.report import Entry, register_renderer
from figures.report_tsipras import CLAIMS, _caption_lines, _missing, _pct, _save, _verdict, eps_train, model_label
from figures.style import subplots

def _as_image(a: np.ndarray) -> tuple[np.ndarray, str | None]:
    """CHW → HW (grey) or HWC (colour) for imshow."""
    if a.shape[0] == 1:
        return a[0], "gray"
    return np.transpose(a, (1, 2, 0)), None


def _show(ax, a: np.ndarray) -> None:
    """One CHW image in [0, 1] in a bare panel (no ticks, no grid)."""
    img, cmap = _as_image(a)
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _load(e: Entry) -> dict[str, np.ndarray] | None:
    if e.metrics is None or e.run_dir is None:
        return None
    path = Path(e.run_dir) / e.metrics["file"]
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _by_dataset(entries: list[Entry]) -> dict[str, list[tuple[Entry, dict[str, np.ndarray]]]]:
    groups: dict[str, list[tuple[Entry, dict[str, np.ndarray]]]] = {}
    for e in entries:
        arrays = _load(e)
        if arrays is not None:
            groups.setdefault(str(e.metrics.get("dataset", e.dataset)), []).append((e, arrays))
    for g in groups.values():  # standard model first, then by ε_train
        g.sort(key=lambda p: (p[0].metrics["model_recipe"].get("method") != "standard",
                              eps_train(p[0].metrics["model_recipe"])))
    return groups


MAX_COLS = 10


def slug(dataset: str) -> str:
    """A file-name-safe form of a dataset name (``npz:/a/b.npz`` → ``npz-b``)."""
    import re

    if "/" in dataset:
        prefix, _, path = dataset.rpartition(":")
        dataset = (prefix + "-" if prefix else "") + Path(path).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-") or "dataset"


@register_renderer("tsipras-gradients")
def render_gradients(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [TS] Input gradients of standard vs robust models", "", f"Paper: {CLAIMS['gradients']}", "",
             "Ours, per model: the mean over the shown examples of cos(−∇ₓ loss, x − mean(x)) (our summary of "
             "\"the gradient looks like the image\", not a paper number).", "",
             "| dataset | model | clean acc on shown (%) | alignment mean ± sd | display | run |", "|---|---|---|---|---|---|"]
    groups = _by_dataset(entries)
    verdict_lines = []
    for ds, group in groups.items():
        for e, _ in group:
            m = e.metrics
            clip = "min–max" if m.get("clip_sigma") is None else f"clip ±{m['clip_sigma']:g}σ, min–max"
            lines.append(f"| {ds} | {model_label(m['model_recipe'])} | {_pct(m['clean_acc'])} | "
                         f"{m['alignment_mean']:.3f} ± {m['alignment_std']:.3f} | {clip} | `{e.run.hash}` |")
        std = [e.metrics["alignment_mean"] for e, _ in group if e.metrics["model_recipe"].get("method") == "standard"]
        rob = [e.metrics["alignment_mean"] for e, _ in group if e.metrics["model_recipe"].get("method") != "standard"]
        if std and rob:
            verdict_lines.append(f"- {ds}: robust gradients more aligned with the image than standard ones "
                                 f"({max(rob):.3f} vs {std[0]:.3f}): {_verdict(max(rob) > std[0])}.")
    lines += [""] + verdict_lines
    if not groups:
        return lines + ["", "No figure: every run is MISSING."] + _missing(entries)
    for ds, group in groups.items():
        x = group[0][1]["x"]
        cols = min(MAX_COLS, x.shape[0])
        rows = 1 + len(group)
        fig, axes = subplots(rows, cols, figsize=(1.0 * cols + 1.2, 1.05 * rows + 0.4), squeeze=False)
        row_arrays = [("image", x)] + [(model_label(e.metrics["model_recipe"]), a["image"]) for e, a in group]
        for r, (name, imgs) in enumerate(row_arrays):
            for c in range(cols):
                ax = axes[r][c]
                _show(ax, imgs[c])
                if c == 0:
                    ax.set_ylabel(name if len(name) < 18 else name.replace(" (", "\n("), fontsize=6)
        fig.suptitle(f"[TS] input gradients, {ds} (first example of each class)", fontsize=9)
        fig.tight_layout()
        s = f"{stem}-{slug(ds)}"
        _save(fig, out_dir, s, caption)
        lines += _caption_lines(s, caption, f"tsipras gradients {ds}")
    return lines + [""] + _missing(entries)


@register_renderer("tsipras-large-eps")
def render_large_eps(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [TS] Large-ε ℓ2 adversarial examples and the interpolation toward them", "",
             f"Paper: {CLAIMS['large-eps']}", "",
             "Ours: targeted ℓ2 PGD (no random start) toward a seeded class t ≠ y. *target rate*: the attacked model "
             "predicts t; *judge target rate*: the other model of the pair also predicts t on the same image "
             "(a perturbation that carries the target's features transfers).", "",
             "| dataset | model | ε (ℓ2) | steps × α | mean ‖δ‖₂ | target rate (%) | mean p(t) | judge | judge target rate (%) | run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    groups = _by_dataset(entries)
    verdict_lines = []
    for ds, group in groups.items():
        for e, _ in group:
            m = e.metrics
            judge = model_label(m["judge_recipe"]) if "judge_recipe" in m else "—"
            lines.append(f"| {ds} | {model_label(m['model_recipe'])} | {m['eps']:g} | {m['steps']} × {m['alpha']:g} | "
                         f"{m['delta_l2_mean']:.2f} | {_pct(m['target_rate'])} | {m['target_prob_mean']:.3f} | {judge} | "
                         f"{_pct(m.get('judge_target_rate'))} | `{e.run.hash}` |")
        std = [e.metrics.get("judge_target_rate") for e, _ in group if e.metrics["model_recipe"].get("method") == "standard"]
        rob = [e.metrics.get("judge_target_rate") for e, _ in group if e.metrics["model_recipe"].get("method") != "standard"]
        if std and rob and std[0] is not None and rob[0] is not None:
            verdict_lines.append(f"- {ds}: the robust model's large-ε examples carry the target to the other model "
                                 f"more often than the standard model's ({_pct(rob[0])}% vs {_pct(std[0])}%): "
                                 f"{_verdict(rob[0] > std[0])}.")
    lines += [""] + verdict_lines
    if not groups:
        return lines + ["", "No figure: every run is MISSING."] + _missing(entries)
    for ds, group in groups.items():
        s = f"{stem}-{slug(ds)}"
        _examples_figure(ds, group, out_dir, s, caption)
        lines += _caption_lines(s, caption, f"tsipras large-eps {ds}")
        _strips_figure(ds, group, out_dir, f"{s}-interp", caption)
        lines += _caption_lines(f"{s}-interp", caption, f"tsipras interpolation {ds}")
    return lines + [""] + _missing(entries)


def _examples_figure(ds: str, group: list[tuple[Entry, dict[str, np.ndarray]]], out_dir: Path, stem: str,
                     caption: str) -> None:
    """One row of originals, then one row of large-ε examples per model (titles: target and its probability)."""
    x = group[0][1]["x"]
    cols = min(MAX_COLS, x.shape[0])
    rows = 1 + len(group)
    fig, axes = subplots(rows, cols, figsize=(1.0 * cols + 1.2, 1.2 * rows + 0.4), squeeze=False)
    for c in range(cols):
        _show(axes[0][c], x[c])
        axes[0][c].set_title(f"y={int(group[0][1]['y'][c])}", fontsize=6)
    axes[0][0].set_ylabel("original", fontsize=6)
    for r, (e, a) in enumerate(group, start=1):
        p = a["path_probs"][-1]
        for c in range(cols):
            t = int(a["target"][c])
            _show(axes[r][c], a["x_adv"][c])
            axes[r][c].set_title(f"→{t} p={p[c, t]:.2f}", fontsize=6)
        name = model_label(e.metrics["model_recipe"])
        axes[r][0].set_ylabel(f"{name.replace(' (', chr(10) + '(')}\nε={e.metrics['eps']:g}", fontsize=6)
    fig.suptitle(f"[TS] large-ε ℓ2 targeted examples, {ds} (title: target and its probability)", fontsize=9)
    fig.tight_layout()
    _save(fig, out_dir, stem, caption)


def _strips_figure(ds: str, group: list[tuple[Entry, dict[str, np.ndarray]]], out_dir: Path, stem: str,
                   caption: str) -> None:
    """Interpolation strips: for each model and each strip example, x + λ(x_adv − x) for λ from 0 to 1."""
    strip_rows = [(e, a, i) for e, a in group for i in range(a["strip"].shape[1])]
    points = group[0][1]["lam"].shape[0]
    fig, axes = subplots(len(strip_rows), points, figsize=(0.95 * points + 1.4, 1.1 * len(strip_rows) + 0.4),
                         squeeze=False)
    for r, (e, a, i) in enumerate(strip_rows):
        t, y = int(a["target"][i]), int(a["y"][i])
        for c in range(points):
            ax = axes[r][c]
            _show(ax, a["strip"][c, i])
            pr = a["path_probs"][c, i]
            ax.set_title(f"λ={a['lam'][c]:.2f}\np(y)={pr[y]:.2f} p(t)={pr[t]:.2f}", fontsize=5)
        name = model_label(e.metrics["model_recipe"]).split(" (")[0]
        axes[r][0].set_ylabel(f"{name}\n{y}→{t}", fontsize=6)
    fig.suptitle(f"[TS] interpolation x + λ(x_adv − x), {ds}", fontsize=9)
    fig.tight_layout()
    _save(fig, out_dir, stem, caption)
