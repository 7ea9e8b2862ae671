"""Report plugin for [TS] Tsipras et al. (SPEC §3): four renderers, each printing the paper's claim
beside our numbers and a verdict computed from those numbers (SPEC §3 lists claims, not numbers, for
the image experiments, so the "paper" column is the claim).

- ``tsipras-tradeoff``: eval runs of models trained over a grid of ε_train → standard and robust
  accuracy vs ε_train, one panel per (dataset, norm);
- ``tsipras-samples``: eval runs of models trained on n examples at several ε_train → standard
  accuracy vs n, one line per ε_train, one panel per dataset;
- ``tsipras-gradients``: ``tsipras-gradients`` runs → a grid of input-gradient images per model;
- ``tsipras-large-eps``: ``tsipras-large-eps`` runs → the large-ε examples per model and the
  interpolation strips from x to them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from figures.report import Entry, pct, register_renderer
from figures.style import save, subplots

CLAIMS = {
    "tradeoff": "[TS] §2 and §4: training against a larger ε lowers standard accuracy while it raises robust "
                "accuracy (Theorem 2.1 makes the trade-off unavoidable in the model of SPEC §3).",
    "samples": "[TS] §4 / SPEC §3(a): adversarial training helps standard accuracy with few training samples "
               "and hurts it with many (MNIST, CIFAR-10, Restricted ImageNet; ℓ2 and ℓ∞).",
    "gradients": "[TS] §4 / SPEC §3(b): input gradients of robust models look like the object (perceptually "
                 "aligned); those of standard models look like noise.",
    "large-eps": "[TS] §4 / SPEC §3(c): large-ε ℓ2 adversarial examples on robust models change the image toward "
                 "the target class (they look like the target); on standard models they look like noise. "
                 "The interpolation from x to the example moves smoothly between the two classes.",
}


# ------------------------------------------------------------------------------------------- helpers
def eps_train(recipe: dict[str, Any]) -> float:
    """ε_train of a training recipe: 0 for standard training."""
    return 0.0 if recipe.get("method") == "standard" else float(recipe.get("eps", 0.0))


def n_train(recipe: dict[str, Any]) -> int | None:
    n = recipe.get("first_n") or recipe.get("subset")
    return None if n is None else int(n)


def model_label(recipe: dict[str, Any]) -> str:
    if recipe.get("method") == "standard":
        return f"standard ({recipe.get('model')})"
    norm = {"linf": "ℓ∞", "l2": "ℓ2"}.get(recipe.get("norm"), recipe.get("norm"))
    return f"{recipe.get('method')} {norm} ε={recipe.get('eps'):g} ({recipe.get('model')})"


def _pct(v: float | None) -> str:
    return pct(v, 1)


def _missing(entries: list[Entry]) -> list[str]:
    return [f"- MISSING `{e.run.hash}` {e.run.label()} — {e.state}" for e in entries if e.metrics is None]


def _caption_lines(stem: str, caption: str, alt: str) -> list[str]:
    return ["", f"![{alt}]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


def _save(fig, out_dir: Path, stem: str, caption: str) -> None:
    fig.text(0.01, -0.02, caption, fontsize=6, wrap=True)
    save(fig, out_dir, stem)


NOISE = "noise"


def margin(p1: float, p2: float, n: int) -> float:
    """Two standard errors of the difference of two accuracies measured on n test images each (treated as
    independent; the runs share their test images, so this is conservative)."""
    return 2.0 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / max(int(n), 1))


def compare(diff: float, tol: float) -> bool | str:
    """True if diff > tol, False if diff < −tol, else NOISE (the sign is not resolved by the test set)."""
    return True if diff > tol else (False if diff < -tol else NOISE)


def _verdict(ok: bool | str | None) -> str:
    if ok is None:
        return "n/a (runs missing)"
    if ok == NOISE:
        return "within noise"
    return "yes" if ok else "**no**"


def test_size(entries: list[Entry]) -> int:
    """The smallest number of test images among the done eval runs (sets the noise margin)."""
    return min((int(e.metrics.get("n", 0)) for e in entries if e.metrics is not None), default=0)


# ------------------------------------------------------------------------------------------- trade-off
def _dataset(e: Entry) -> str:
    return str((e.metrics or {}).get("dataset", e.dataset))


def tradeoff_points(entries: list[Entry]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (dataset, eval norm): {ε_train: clean acc} and {ε_test: {ε_train: robust acc}} from done eval
    runs. A standard model (ε_train 0) belongs to every norm; an adversarially trained model to its own."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        if e.metrics is None:
            continue
        m, recipe = e.metrics, e.metrics.get("model_recipe", {})
        norm = m["norm"]
        if recipe.get("method") != "standard" and recipe.get("norm") != norm:
            continue
        d = out.setdefault((_dataset(e), norm), {"clean": {}, "robust": {}, "model": recipe.get("model")})
        et = eps_train(recipe)
        d["clean"][et] = m["clean"]
        d["robust"].setdefault(float(m["eps"]), {})[et] = m["worst_case"]
    return out


def tradeoff_verdicts(points: dict[tuple[str, str], dict[str, Any]], n_test: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (dataset, norm): does standard accuracy at the largest ε_train fall below that of ε_train = 0, does it never
    rise from one ε_train to the next, and does robust accuracy at the largest ε_test rise from the standard
    model to the largest-ε_train model? Each answer is NOISE when the difference is within two standard errors."""
    res = {}
    for norm, d in points.items():
        clean = d["clean"]
        eps = sorted(clean)
        if len(eps) < 2 or eps[0] != 0.0:
            res[norm] = {"clean_falls": None, "robust_rises": None, "clean_monotone": None}
            continue
        rob = d["robust"].get(max(d["robust"]) if d["robust"] else None, {})
        values = [clean[e] for e in eps]
        c0, c1 = clean[0.0], clean[eps[-1]]
        res[norm] = {
            "clean_falls": compare(c0 - c1, margin(c0, c1, n_test)),
            "clean_monotone": all(b <= a + margin(a, b, n_test) for a, b in zip(values, values[1:])),
            "robust_rises": (compare(rob[eps[-1]] - rob[0.0], margin(rob[eps[-1]], rob[0.0], n_test))
                             if 0.0 in rob and eps[-1] in rob else None),
            "clean_drop_pp": 100 * (c0 - c1),
            "margin_pp": 100 * margin(c0, c1, n_test),
        }
    return res


@register_renderer("tsipras-tradeoff")
def render_tradeoff(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    points = tradeoff_points(entries)
    n_test = test_size(entries)
    verdicts = tradeoff_verdicts(points, n_test)
    lines = ["### [TS] Standard vs robust accuracy over ε_train (the trade-off)", "",
             f"Paper: {CLAIMS['tradeoff']}", ""]
    if points:
        lines += ["| dataset | norm | model | ε_train | standard acc (%) | robust acc (%) at ε_test | run |",
                  "|---|---|---|---|---|---|---|"]
        for e in entries:
            if e.metrics is None:
                continue
            r = e.metrics.get("model_recipe", {})
            if r.get("method") != "standard" and r.get("norm") != e.metrics["norm"]:
                continue
            lines.append(f"| {_dataset(e)} | {e.metrics['norm']} | {r.get('model')} | {eps_train(r):g} | {_pct(e.metrics['clean'])} | "
                         f"{_pct(e.metrics['worst_case'])} at {e.metrics['eps']:g} | `{e.run.hash}` |")
        lines += ["", f"Verdicts compare differences with two standard errors of a difference of two accuracies on "
                      f"{n_test} test images (\"within noise\" when smaller).", "",
                  "| dataset | norm | claim: standard acc falls as ε_train grows | never rises along our grid | "
                  "drop ε_train 0 → max (pp) | ±2 SE (pp) | claim: robust acc rises |", "|---|---|---|---|---|---|---|"]
        for (ds, norm), v in verdicts.items():
            drop, tol = v.get("clean_drop_pp"), v.get("margin_pp")
            lines.append(f"| {ds} | {norm} | {_verdict(v['clean_falls'])} | {_verdict(v['clean_monotone'])} | "
                         f"{'—' if drop is None else f'{drop:.1f}'} | {'—' if tol is None else f'{tol:.1f}'} | "
                         f"{_verdict(v['robust_rises'])} |")
        keys = sorted(points)
        fig, axes = subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
        for ax, (ds, norm) in zip(axes[0], keys):
            d = points[(ds, norm)]
            xs = sorted(d["clean"])
            ax.plot(xs, [100 * d["clean"][x] for x in xs], "o-", color="k", label="standard accuracy")
            for et in sorted(d["robust"]):
                rx = sorted(d["robust"][et])
                ax.plot(rx, [100 * d["robust"][et][x] for x in rx], "s--", label=f"robust acc, ε_test={et:g}")
            ax.set_xlabel(f"ε_train ({'ℓ∞' if norm == 'linf' else 'ℓ2'})")
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{ds}, {d['model']}, {norm}: trade-off")
            ax.legend(fontsize=7)
        fig.suptitle("[TS] claim: standard acc falls, robust acc rises with ε_train", fontsize=9)
        fig.tight_layout()
        _save(fig, out_dir, stem, caption)
        lines += _caption_lines(stem, caption, "tsipras trade-off")
    else:
        lines.append("No figure: every run is MISSING.")
    return lines + [""] + _missing(entries)


# ------------------------------------------------------------------------------------------- sample size
def sample_points(entries: list[Entry]) -> dict[tuple[str, float], dict[int, float]]:
    """{(norm, ε_train): {n: clean acc}} from done eval runs (standard models under norm '-')."""
    out: dict[tuple[str, float], dict[int, float]] = {}
    for e in entries:
        if e.metrics is None:
            continue
        r = e.metrics.get("model_recipe", {})
        n = n_train(r)
        if n is None:
            continue
        key = ("-", 0.0) if r.get("method") == "standard" else (str(r.get("norm")), eps_train(r))
        out.setdefault(key, {})[n] = e.metrics["clean"]
    return out


def sample_verdicts(points: dict[tuple[str, float], dict[int, float]],
                    n_test: int) -> dict[tuple[str, float], dict[str, Any]]:
    """For each ε_train > 0, Δ(n) = its standard accuracy minus standard training's, at every n both have.
    "helps with few": Δ > 2 SE at some n of the smaller half of the sizes (False if instead Δ < −2 SE there,
    NOISE if every Δ of that half is within 2 SE); "hurts with many": Δ < −2 SE at the largest n."""
    std = points.get(("-", 0.0), {})
    res = {}
    for key, curve in points.items():
        if key == ("-", 0.0):
            continue
        common = sorted(set(curve) & set(std))
        if len(common) < 2:
            res[key] = {"helps_small": None, "hurts_large": None}
            continue
        diffs = {n: curve[n] - std[n] for n in common}
        small = [compare(diffs[n], margin(curve[n], std[n], n_test)) for n in common[: (len(common) + 1) // 2]]
        helps = True if True in small else (False if False in small else NOISE)
        large = common[-1]
        hurts = compare(-diffs[large], margin(curve[large], std[large], n_test))
        res[key] = {"diff_pp": {n: 100 * d for n, d in diffs.items()}, "n_large": large,
                    "n_small": common[: (len(common) + 1) // 2], "helps_small": helps, "hurts_large": hurts,
                    "margin_large_pp": 100 * margin(curve[large], std[large], n_test)}
    return res


@register_renderer("tsipras-samples")
def render_samples(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [TS] Standard accuracy vs training-set size", "", f"Paper: {CLAIMS['samples']}", ""]
    n_test = test_size(entries)
    by_ds: dict[str, list[Entry]] = {}
    for e in entries:
        if e.metrics is not None:
            by_ds.setdefault(_dataset(e), []).append(e)
    if not by_ds:
        return lines + ["No figure: every run is MISSING.", ""] + _missing(entries)
    fig, axes = subplots(1, len(by_ds), figsize=(5.0 * len(by_ds), 3.6), squeeze=False)
    for ax, (ds, group) in zip(axes[0], sorted(by_ds.items())):
        lines += [f"**{ds}**", ""] + _samples_dataset(group, ax, n_test, ds)
    fig.tight_layout()
    _save(fig, out_dir, stem, caption)
    lines += _caption_lines(stem, caption, "tsipras sample size")
    return lines + [""] + _missing(entries)


def _samples_dataset(entries: list[Entry], ax, n_test: int, ds: str) -> list[str]:
    """The tables of one dataset's sample-size curves, and its curves drawn on ``ax``."""
    points = sample_points(entries)
    verdicts = sample_verdicts(points, n_test)
    lines: list[str] = []
    if points:
        ns = sorted({n for c in points.values() for n in c})
        keys = sorted(points, key=lambda k: (k[0] != "-", k))
        label = {k: ("standard" if k[0] == "-" else f"{k[0]} ε={k[1]:g}") for k in keys}
        lines += ["| training | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
        for k in keys:
            lines.append(f"| {label[k]} | " + " | ".join(_pct(points[k].get(n)) for n in ns) + " |")
        lines += ["", f"Δ = standard accuracy of the adversarially trained model minus that of standard training "
                      f"(pp); verdicts use two standard errors on {n_test} test images (\"within noise\" when smaller).", "",
                  "| ε_train | " + " | ".join(f"Δ n={n}" for n in ns) + " | claim: helps with few | claim: hurts with many |",
                  "|---|" + "---|" * (len(ns) + 2)]
        for k, v in verdicts.items():
            if v["helps_small"] is None:
                lines.append(f"| {label[k]} | " + " | ".join("—" for _ in ns) + " | n/a | n/a |")
                continue
            cells = [("—" if n not in v["diff_pp"] else f"{v['diff_pp'][n]:+.1f}") for n in ns]
            lines.append(f"| {label[k]} | " + " | ".join(cells) + f" | {_verdict(v['helps_small'])} "
                         f"(n ≤ {max(v['n_small'])}) | {_verdict(v['hurts_large'])} (n={v['n_large']}, "
                         f"±{v['margin_large_pp']:.1f}) |")
        for k in keys:
            xs = sorted(points[k])
            ax.plot(xs, [100 * points[k][x] for x in xs], "o-", label=label[k], color="k" if k[0] == "-" else None)
        ax.set_xscale("log")
        ax.set_xlabel("training-set size n")
        ax.set_ylabel("standard test accuracy (%)")
        ax.set_title(f"{ds} — [TS] claim: adv. training helps at small n, hurts at large n", fontsize=8)
        ax.legend(fontsize=7)
    return lines + [""]


# ------------------------------------------------------------------------------------------- images
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
        s = f"{stem}-{slug(ds)}"
        _save(fig, out_dir, s, caption)
        lines += _caption_lines(s, caption, f"tsipras large-eps {ds}")

        # interpolation strips: for each model, each strip example, λ from 0 to 1
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
        s = f"{stem}-{slug(ds)}-interp"
        _save(fig, out_dir, s, caption)
        lines += _caption_lines(s, caption, f"tsipras interpolation {ds}")
    return lines + [""] + _missing(entries)
