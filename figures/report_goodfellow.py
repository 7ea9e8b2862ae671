"""Report plugin for [GF] Goodfellow et al. 2015 (SPEC §4): four renderers.

- ``goodfellow-table``: every error / confidence of the spec beside SPEC §4's published number, with
  the difference in percentage points; rows are named by each stage's ``_row`` tag;
- ``goodfellow-fig2``: GF Figure 2 from the ``goodfellow-logreg`` run (w, sign(w), clean and FGSM digits);
- ``goodfellow-fig4``: GF Figure 4 from ``goodfellow-eval`` runs with curves (logits along the FGSM
  line against ε) and the linearity / width statistics of deep.experiments.goodfellow.curve_summary;
- ``goodfellow-l1``: the ``goodfellow-l1`` run: adversarial vs L1-regularised logistic regression.

A renderer lists its runs that are not done as MISSING; nothing is drawn from a placeholder. The table
shows runs that differ only in seed as one row, mean ± sd over the seeds (figures/aggregate.py), and its
figure draws ± 1 sd error bars.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deep.units import format_eps
from figures.aggregate import Stat, seed_groups
from figures.report import Entry, pct, register_renderer
from figures.style import new_figure, save, subplots

SOURCE = "SPEC §4 (Goodfellow et al. 2015, MNIST, ε = 0.25)"

# row tag -> (label, paper clean error %, paper FGSM error %, paper confidence on FGSM mistakes %, paper's model)
# (None: SPEC §4 lists no number for that cell.)
PAPER: dict[str, tuple[str, float | None, float | None, float | None, str]] = {
    "logreg-3v7": ("logistic regression, 3 vs 7", 1.6, 99.0, None, "logistic regression"),
    "softmax": ("softmax regression (10 classes)", None, 99.9, 79.3, "shallow softmax"),
    "maxout": ("maxout net, standard", 0.94, 89.4, 97.6, "maxout (clean error of maxout + dropout)"),
    "mlp": ("ReLU MLP, standard", 0.94, 89.4, 97.6, "maxout"),
    "mlp-adv": ("ReLU MLP, FGSM adversarial training α = 0.5", 0.84, 17.9, None,
                "maxout + adv. training (FGSM error: 1600-unit maxout)"),
    "mlp-noise-sign": ("ReLU MLP, trained on x ± ε noise", None, 86.2, None, "maxout"),
    "mlp-noise-uniform": ("ReLU MLP, trained on x + U(−ε, ε) noise", None, 90.4, None, "maxout"),
    "rbf": ("shallow RBF network", None, 55.4, 1.2, "shallow RBF"),
}
SHORT = {"softmax": "softmax", "mlp": "MLP", "rbf": "RBF", "maxout": "maxout", "mlp-adv": "MLP, FGSM-trained",
         "mlp-noise-sign": "MLP, ±ε noise", "mlp-noise-uniform": "MLP, U(−ε, ε) noise"}
TRANSFER_PAPER = {"a_to_b": 19.6, "b_to_a": None}  # SPEC §4: original model's examples on the adv.-trained one


def _pct(v: float | None, digits: int = 1) -> str:
    return pct(v, digits)


def _num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _missing(entries: list[Entry]) -> list[str]:
    return [f"- MISSING `{e.run.hash}` {e.run.label()} — {e.state}" for e in entries if e.metrics is None]


def _missing_list(entries: list[Entry]) -> list[str]:
    """A blank line, "Missing runs (k):" and one line per run without metrics; nothing if none."""
    missing = _missing(entries)
    return ["", f"Missing runs ({len(missing)}):", *missing] if missing else []


def _missing_rows(entries: list[Entry], label: Callable[[Entry], str], n_blank: int) -> list[str]:
    """A table row "| label | MISSING (state) |" + n_blank empty cells + the run hash, per run without metrics."""
    return [f"| {label(e)} | MISSING ({e.state}) |" + " |" * n_blank + f" `{e.run.hash}` |"
            for e in entries if e.metrics is None]


def _paper_label(e: Entry) -> str:
    return PAPER.get(_row_key(e), (_row_key(e),))[0]


def _setting(entries: list[Entry]) -> str:
    """The attack setting of the done runs, for the figure: FGSM, ℓ∞ ε and the test images."""
    done = [e.metrics for e in entries if e.metrics is not None]
    eps = sorted({m["eps"] for m in done if isinstance(m.get("eps"), (int, float))})
    n = sorted({m.get("n", m.get("n_test")) for m in done if isinstance(m.get("n", m.get("n_test")), int)})
    return (r"FGSM, $\ell_\infty$ ε = " + ", ".join(format_eps(v) for v in eps) if eps else "FGSM") + \
        (f"; n = {', '.join(str(v) for v in n)} test images" if n else "")


def _row_key(e: Entry) -> str:
    return str(e.run.config.get("_row", e.run.stage))


# ------------------------------------------------------------------------------------ the table
def _reader(key: str) -> Callable[[Any], Any]:
    return lambda m: m.get(key)


def table_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    """One dict per reported number set: label, ours (a figures.aggregate.Stat of fractions over the seeds
    of the row, or None) and the paper's (percent). Runs that differ only in seed are one row."""
    rows: list[dict[str, Any]] = []
    for g in seed_groups(entries):
        if not g.done:
            continue
        m, key = g.done[0].metrics, _row_key(g.first)
        if "error_a_to_b" in m:  # a transfer run: two rows
            for direction, text in (("a_to_b", "FGSM examples of the standard MLP → adversarially trained MLP"),
                                    ("b_to_a", "FGSM examples of the adversarially trained MLP → standard MLP")):
                rows.append({"key": f"{key}:{direction}", "label": text, "clean": None,
                             "fgsm": g.stat(_reader(f"error_{direction}")), "conf": None, "paper_clean": None,
                             "paper_fgsm": TRANSFER_PAPER[direction], "paper_conf": None,
                             "paper_model": "maxout → adv.-trained maxout" if direction == "a_to_b" else "—",
                             "hash": g.hashes()})
            continue
        label, p_clean, p_fgsm, p_conf, p_model = PAPER.get(key, (key, None, None, None, "—"))
        rows.append({"key": key, "label": label, "clean": g.stat(_reader("clean_error")),
                     "fgsm": g.stat(_reader("fgsm_error")), "conf": g.stat(_reader("fgsm_confidence_on_errors")),
                     "paper_clean": p_clean, "paper_fgsm": p_fgsm, "paper_conf": p_conf, "paper_model": p_model,
                     "hash": g.hashes(), "rbf": m.get("rbf_max_response")})
    return rows


def _stat(s: Stat | None, digits: int = 1) -> str:
    return "—" if s is None else s.text(digits)


def _diff(ours: Stat | None, paper: float | None) -> str:
    return "—" if ours is None or paper is None else f"{100 * ours.mean - paper:+.1f}"


@register_renderer("goodfellow-table")
def render_table(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [GF] Goodfellow et al. 2015 on MNIST: FGSM error and confidence, ours beside the paper", "",
             f"Paper numbers: {SOURCE}. Errors and confidences in %; Δ = ours − paper in percentage points. "
             "Confidence = mean max-softmax probability on the FGSM examples the model gets wrong.", "",
             "| model | ours: clean error | paper | ours: FGSM error | paper | Δ FGSM | ours: confidence on mistakes "
             "| paper | paper's model | run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows = table_rows(entries)
    for r in rows:
        lines.append(f"| {r['label']} | {_stat(r['clean'], 2)} | {_num(r['paper_clean'], 2)} | {_stat(r['fgsm'])} | "
                     f"{_num(r['paper_fgsm'])} | {_diff(r['fgsm'], r['paper_fgsm'])} | {_stat(r['conf'])} | "
                     f"{_num(r['paper_conf'])} | {r['paper_model']} | {r['hash']} |")
    lines += _missing_rows(entries, _paper_label, 7)
    rbf = [r for r in rows if r.get("rbf")]
    for r in rbf:
        lines += ["", f"RBF units' largest response (in (0, 1]): {r['rbf']['clean']:.3f} on clean test images, "
                      f"{r['rbf']['fgsm']:.3f} on their FGSM examples."]
    lines += _missing_list(entries)
    if not rows:
        return lines + ["", "No figure: every run of this table is MISSING."]
    fig, axes = subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    ys = np.arange(len(rows))
    seeded = any(r[c] is not None and r[c].n > 1 for r in rows for c in ("fgsm", "conf"))
    for ax, (col, pcol, title) in zip(axes, (("fgsm", "paper_fgsm", "FGSM error (%)"),
                                             ("conf", "paper_conf", "confidence on FGSM mistakes (%)"))):
        ours = [100 * r[col].mean if r[col] is not None else np.nan for r in rows]
        sds = [100 * (r[col].sd or 0.0) if r[col] is not None else 0.0 for r in rows]
        paper = [r[pcol] if r[pcol] is not None else np.nan for r in rows]
        ax.barh(ys - 0.2, ours, 0.4, xerr=sds if seeded else None, capsize=2, color="#1f77b4",
                label="ours, mean ± sd over seeds" if seeded else "ours")
        ax.barh(ys + 0.2, paper, 0.4, color="white", edgecolor="#d62728", hatch="//", label="paper (SPEC §4)")
        ax.set_xlim(0, 100)
        ax.set_title(title)
        ax.invert_yaxis()
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels([r["label"] for r in rows], fontsize=7)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(_setting(entries), fontsize=8)
    fig.text(0.01, -0.02, caption, fontsize=6, wrap=True)
    save(fig, out_dir, stem)
    return lines + ["", f"![GF errors and confidences]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


# ------------------------------------------------------------------------------------ Figure 2
@register_renderer("goodfellow-fig2")
def render_fig2(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [GF] Figure 2: logistic regression on 3 vs 7 — weights, sign(w), clean and FGSM digits", ""]
    done = [e for e in entries if e.metrics is not None and "figure2" in e.metrics]
    missing = _missing(entries)
    if missing:
        lines += [f"Missing runs ({len(missing)}):", *missing, ""]
    if not done:
        return lines + ["No figure: the logistic-regression run is MISSING."]
    for i, e in enumerate(done):
        m, f2 = e.metrics, e.metrics["figure2"]
        c, h, w_ = f2["shape"]
        w = np.asarray(f2["w"]).reshape(h, w_) if c == 1 else np.asarray(f2["w"]).reshape(c, h, w_).mean(0)
        clean = np.asarray(f2["clean"]).reshape(-1, h, w_)
        adv = np.asarray(f2["adversarial"]).reshape(-1, h, w_)
        names = [str(n).split(" - ")[0] for n in f2["class_names"]]  # "3 - three" → "3"
        k = clean.shape[0]
        fig = new_figure(figsize=(4.4 + 0.9 * k, 3.0))
        grid = fig.add_gridspec(2, 2 + k, width_ratios=[2.2, 2.2] + [1] * k)
        ax = fig.add_subplot(grid[:, 0])
        lim = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"(a) w (red → {names[1]})", fontsize=8)
        ax = fig.add_subplot(grid[:, 1])
        ax.imshow(np.sign(w), cmap="gray")
        ax.set_title("(b) sign(w)", fontsize=8)
        for j in range(k):
            for row, imgs, preds, tag in ((0, clean, f2["pred_clean"], "(c)"), (1, adv, f2["pred_adv"], "(d)")):
                ax = fig.add_subplot(grid[row, 2 + j])
                ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=1)
                ok = preds[j] == f2["labels"][j]
                ax.set_title(f"{tag if j == 0 else ''} → {names[preds[j]]}", fontsize=7,
                             color="black" if ok else "#d62728")
        for ax in fig.axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        fig.suptitle(f"clean error {_pct(m['clean_error'])}% (paper 1.6%), FGSM ε = {m['eps']:g} error "
                     f"{_pct(m['fgsm_error'])}% (paper 99%); top: clean test digits, bottom: FGSM", fontsize=8)
        fig.text(0.01, -0.03, caption, fontsize=6, wrap=True)
        s = stem if i == 0 else f"{stem}-{i}"
        save(fig, out_dir, s)
        lines += [f"Classes {names[0]} vs {names[1]}, {m['n_train']} training / {m['n_test']} test images; "
                  f"clean error {_pct(m['clean_error'], 2)}% (paper 1.6%), FGSM error {_pct(m['fgsm_error'], 2)}% "
                  f"(paper 99%), confidence on mistakes {_pct(m['fgsm_confidence_on_errors'])}%. The FGSM step moves "
                  f"the margin by {m['mean_margin_shift']:.2f} on average; ε‖w‖₁ = {m['eps_w_l1']:.2f} is the "
                  "unclipped worst case (the [0, 1] box cuts it where a pixel is already 0 or 1).", "",
                  f"![GF Figure 2]({s}.png)", "", f"*{caption}* Red titles: misclassified. PDF: `{s}.pdf`.", ""]
    return lines


# ------------------------------------------------------------------------------------ Figure 4
@register_renderer("goodfellow-fig4")
def render_fig4(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [GF] Figure 4: logits along the FGSM direction as ε varies", "",
             "Paper (SPEC §4 / GF Figure 4, no number published): along x + ε·sign(∇ₓJ) the logits are close to "
             "piecewise linear and a wrong class wins over a wide ε interval, not in small pockets. Ours: logits "
             "at x + ε·sign(∇ₓJ(x, y)) without the [0, 1] box. R² = straight-line fit of each logit over the "
             "whole ε range (1 = linear); 'wrong beyond ε' = fraction of the grid ε ≥ attack ε where the "
             "prediction is wrong.", "",
             "| model | examples | median R² | min R² | winner changes along the line | wrong beyond ε | "
             "median ε of first mistake | never wrong | run |", "|---|---|---|---|---|---|---|---|---|"]
    done = [e for e in entries if e.metrics is not None and "figure4" in e.metrics]
    for e in done:
        s, f4 = e.metrics["figure4"]["summary"], e.metrics["figure4"]
        label = PAPER.get(_row_key(e), (_row_key(e),))[0]
        lines.append(f"| {label} | {f4['summary_n']} | {s['r2_median']:.3f} | {s['r2_min']:.3f} | "
                     f"{s['argmax_changes_mean']:.2f} | {_pct(s['wrong_fraction_beyond_eps'])}% | "
                     f"{_num(s['flip_eps_median'], 3)} | {s['never_flipped']} | `{e.run.hash}` |")
    lines += _missing_rows(entries, _paper_label, 6)
    lines += _missing_list(entries)
    if not done:
        return lines + ["", "No figure: every run of this figure is MISSING."]
    n_ex = min(3, min(len(e.metrics["figure4"]["labels"]) for e in done))
    fig, axes = subplots(len(done), n_ex, figsize=(3.2 * n_ex, 2.4 * len(done)), squeeze=False)
    for r, e in enumerate(done):
        f4 = e.metrics["figure4"]
        grid, logits = np.asarray(f4["eps_grid"]), np.asarray(f4["logits"])
        for j in range(n_ex):
            ax = axes[r, j]
            for k in range(logits.shape[2]):
                lw = 2.0 if k == f4["labels"][j] else 0.9
                ax.plot(grid, logits[j, :, k], lw=lw, label=str(k))
            for v in (-f4["attack_eps"], f4["attack_eps"]):
                ax.axvline(v, color="gray", ls=":", lw=0.8)
            ax.set_title(f"{SHORT.get(_row_key(e), _row_key(e))}: test #{j}, y = {f4['labels'][j]}", fontsize=7)
            ax.set_xlabel("ε (FGSM direction, unclipped)")
            if j == 0:
                ax.set_ylabel("logit")
    axes[0, -1].legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="class (thick: y)")
    fig.text(0.01, -0.02, caption + " Dotted: ±attack ε.", fontsize=6, wrap=True)
    fig.tight_layout()
    save(fig, out_dir, stem)
    return lines + ["", f"![GF Figure 4]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]


# ------------------------------------------------------------------------------------ L1 vs adversarial
@register_renderer("goodfellow-l1")
def render_l1(entries: list[Entry], out_dir: Path, stem: str, caption: str) -> list[str]:
    lines = ["### [GF] §5: adversarial training vs L1 weight decay for logistic regression (real 3 vs 7 data)", "",
             "Paper (SPEC §4, a claim, no number): the adversarial loss ζ(ε‖w‖₁ − y(wᵀx + b)) is like L1 "
             "weight decay but subtracted from the margin inside ζ, so it fades once the margin is safe; L1 "
             "decay pays the penalty on every example and is more pessimistic. Ours: exact fits "
             "(theory.linear.train_logistic, L-BFGS-B); λ = (1 − α)ε makes the L1 objective an upper bound of "
             "the adversarial one. Errors in % on the test set; FGSM in R^d is the closed form "
             "y(wᵀx + b) − ε‖w‖₁ ≤ 0, FGSM in [0, 1] clips the step to the pixel box.", ""]
    done = [e for e in entries if e.metrics is not None and "fits" in e.metrics]
    lines += ["| fit | train error | clean error | FGSM error, [0, 1] | FGSM error, R^d | ‖w‖₁ | zero weights | "
              "test loss: plain / adversarial / L1 | run |", "|---|---|---|---|---|---|---|---|---|"]
    for e in done:
        for f in e.metrics["fits"]:
            tl = f["test_loss"]
            lines.append(f"| {f['label']} | {_pct(f['train_error'], 2)} | {_pct(f['clean_error'], 2)} | "
                         f"{_pct(f['fgsm_error'])} | {_pct(f['fgsm_error_unboxed'])} | {f['w_l1']:.3g} | "
                         f"{_pct(f['zero_fraction'])}% | {tl['plain']:.3f} / {tl['adversarial']:.3f} / {tl['l1']:.3f} "
                         f"| `{e.run.hash}` |")
    lines += _missing_rows(entries, lambda e: e.run.label(), 6)
    lines += _missing_list(entries)
    if not done:
        return lines + ["", "No figure: the run is MISSING."]
    fits = [f for e in done for f in e.metrics["fits"]]
    c, h, w_ = done[0].metrics["shape"]
    fig, axes = subplots(1, len(fits), figsize=(2.3 * len(fits), 2.6), squeeze=False)
    for ax, f in zip(axes[0], fits):
        w = np.asarray(f["w"]).reshape(c, h, w_).mean(0)
        lim = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{f['label']}\nclean {_pct(f['clean_error'])}%, FGSM {_pct(f['fgsm_error'])}%", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.text(0.01, -0.04, caption + " Weights w in pixel space (red: the second class).", fontsize=6, wrap=True)
    save(fig, out_dir, stem)
    return lines + ["", f"![GF L1 vs adversarial]({stem}.png)", "", f"*{caption}* PDF: `{stem}.pdf`."]
