"""Report plugin for [TS] Tsipras et al. (SPEC §3): renderers that each print the paper's claim beside our numbers and a verdict computed from those numbers (SPEC §3 lists claims, not numbers, for
the image experiments, so the "paper" column is the claim).

- ``tsipras-tradeoff``: eval runs of models trained over a grid of ε_train → standard and robust
  accuracy vs ε_train, one panel per (dataset, norm);
- ``tsipras-samples``: eval runs of models trained on n examples at several ε_train → standard
  accuracy vs n, one line per ε_train, one panel per dataset;
- ``tsipras-gradients`` and ``tsipras-large-eps``: the image renderers, in report_tsipras_images.py.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def test_sizes(entries: list[Entry]) -> dict[str, int]:
    """:func:`test_size` per dataset: each dataset's verdicts use its own test-set size (MNIST's 1,000 images
    must not get the margin of the CIFAR subset's 500)."""
    datasets = sorted({_dataset(e) for e in entries if e.metrics is not None})
    return {ds: test_size([e for e in entries if _dataset(e) == ds]) for ds in datasets}


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
    n_test = test_sizes(entries)
    verdicts = {key: v for ds, n in n_test.items()
                for key, v in tradeoff_verdicts({k: p for k, p in points.items() if k[0] == ds}, n).items()}
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
        sizes = ", ".join(f"{n} ({ds})" for ds, n in n_test.items())
        lines += ["", f"Verdicts compare differences with two standard errors of a difference of two accuracies on "
                      f"{sizes} test images (\"within noise\" when smaller).", "",
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
                ax.plot(rx, [100 * d["robust"][et][x] for x in rx], "s--",
                        label=rf"robust acc, $\varepsilon_{{\mathrm{{test}}}}$ = {et:g}")
            ax.set_xlabel(r"$\varepsilon_{\mathrm{train}}$ " + (r"($\ell_\infty$)" if norm == "linf" else r"($\ell_2$)"))
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{ds}, {d['model']}, {norm}: trade-off, n = {n_test[ds]} test images", fontsize=8)
            ax.legend(fontsize=7)
        fig.suptitle(r"[TS] claim: standard acc falls, robust acc rises with $\varepsilon_{\mathrm{train}}$", fontsize=9)
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
        ax.set_title(f"{ds} — [TS] claim: adv. training helps at small n, hurts at large n\n"
                     f"standard accuracy on {n_test} test images", fontsize=8)
        ax.legend(fontsize=7)
    return lines + [""]
