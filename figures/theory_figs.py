"""The theory figures (``python -m figures theory``), SPEC §2–4.

(a) Ilyas et al. Figure 4: MLE, true and robust (ε = 1, 10) parameters of the 2-d Gaussian model.
(b) Σ_r's eigenvalues against ε: Theorem 2's closed form beside adversarial training from samples.
(c) Theorem 1's vulnerability gap against anisotropy at fixed trace, with a Monte Carlo check.
(d) Tsipras et al.'s standard-vs-robust accuracy plane with Theorem 2.1's bound.
(e) Clean vs adversarial SVM weights (Theorem 2.2).
(f) Goodfellow et al.: ε‖w‖₁ against dimension with the ε·m·n line.

Each ``fig_*`` function writes PNG + PDF and returns ``(paths, caption)``; ``make_all`` writes them
all plus ``theory_captions.md``. Sample sizes are options so that the tests run in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matplotlib.axes import Axes

from figures.style import NEG_COLOUR, POS_COLOUR, save, styled, subplots

COMMAND = "python -m figures theory"

#: Figure 4 setting (SPEC §2): variance ratio 50, μ* = (10, −1). The wide axis x₁ carries the large
#: mean gap (robust feature); the narrow axis x₂ carries a small but low-noise gap (non-robust).
FIG4_MU = np.array([10.0, -1.0])
FIG4_SIGMA = np.diag([50.0, 1.0])
FIG4_EPS = (1.0, 10.0)
BALL_STEPS = 200


@dataclass(frozen=True)
class Options:
    """Sizes of the sampled parts; the defaults are the published figures, the tests use tiny ones."""

    samples: int = 20_000      # Gaussian samples for MLE and adversarial training
    svm_samples: int = 2_000   # training examples for each SVM in (d), (e)
    mc_samples: int = 200_000  # Monte Carlo draws for Theorem 1's gap in (c)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("samples", "svm_samples", "mc_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 10:
                raise ValueError(f"{name} must be an integer >= 10, got {value!r}")


FigureResult = tuple[list[Path], str]


# ------------------------------------------------------------------------------ (a) Figure 4
def _ellipse(sigma: np.ndarray, radius: float, n: int = 200) -> np.ndarray:
    """Points of {x : xᵀΣ⁻¹x = r²} (the unit ball of the Σ⁻¹ metric scaled by r)."""
    t = np.linspace(0.0, 2.0 * math.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])
    vals, vecs = np.linalg.eigh(sigma)
    return (vecs @ (np.sqrt(vals)[:, None] * circle) * radius).T


def _panel(ax: Axes, x: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, title: str) -> None:
    """Samples, the ℓ2 ball, the Σ⁻¹ ball (same area) and the boundary xᵀΣ⁻¹μ = 0."""
    show = slice(0, min(len(y), 600))
    xs, ys = x[show], y[show]
    ax.scatter(*xs[ys > 0].T, s=4, alpha=0.35, color=POS_COLOUR, label="y = +1")
    ax.scatter(*xs[ys < 0].T, s=4, alpha=0.35, color=NEG_COLOUR, label="y = −1")
    r = 3.0  # drawn radius: the unit balls scaled ×3 so that they are visible beside the data
    t = np.linspace(0.0, 2.0 * math.pi, 200)
    ax.plot(r * np.cos(t), r * np.sin(t), color="black", lw=1.2, label="ℓ2 ball")
    # Σ⁻¹ ball normalised to the ℓ2 ball's area (det Σ^{1/2} = product of half-axes): shape only.
    scale = r / math.sqrt(math.sqrt(np.linalg.det(sigma)))
    ax.plot(*_ellipse(sigma, scale).T, color="darkorange", lw=1.5, label="Σ⁻¹ ball")
    w = np.linalg.solve(sigma, mu)  # the classifier's weight Σ⁻¹μ; the boundary is ⟂ to it
    direction = np.array([-w[1], w[0]]) / np.linalg.norm(w)
    ends = np.outer([-100.0, 100.0], direction)
    ax.plot(ends[:, 0], ends[:, 1], color="green", lw=1.5, ls="--", label="boundary")
    kappa = np.linalg.cond(sigma)
    ax.set_title(f"{title}\nμ = ({mu[0]:.2f}, {mu[1]:.2f}), κ(Σ) = {kappa:.1f}")
    ax.set_xlim(-32, 32)
    ax.set_ylim(-9, 9)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$x_1$ (robust feature)")
    ax.set_ylabel(r"$x_2$ (non-robust)")


def fig_gaussian_panels(out: Path, opts: Options) -> FigureResult:
    from theory import gaussian

    x, y = gaussian.sample(FIG4_MU, FIG4_SIGMA, opts.samples, opts.seed)
    x, y = np.asarray(x), np.asarray(y)
    mu_mle, sigma_mle = gaussian.mle(x, y)
    panels = [("MLE from samples", np.asarray(mu_mle), np.asarray(sigma_mle)),
              ("true parameters", FIG4_MU, FIG4_SIGMA)]
    for eps in FIG4_EPS:
        mu_r, sigma_r = gaussian.robust_parameters(FIG4_MU, FIG4_SIGMA, eps)
        panels.append((f"robust, ε = {eps:g} (Theorem 2)", np.asarray(mu_r), np.asarray(sigma_r)))
    fig, axes = subplots(2, 2, figsize=(11, 5.2), constrained_layout=True)
    for ax, (title, mu, sigma) in zip(axes.flat, panels):
        _panel(ax, x, y, mu, sigma, title)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, markerscale=3)
    fig.suptitle("Ilyas et al. Figure 4: x ~ N(y·μ*, Σ*), μ* = (10, −1), Σ* = diag(50, 1)")
    caption = (f"Ilyas et al. Figure 4 (d = 2, Σ* = diag(50, 1), μ* = (10, −1), n = {opts.samples}): "
               "samples of both classes, the ℓ2 ball (black) and the Σ⁻¹-metric ball (orange, scaled to "
               "the same area, both ×3), and the boundary xᵀΣ⁻¹μ = 0 for the MLE, the true parameters and "
               "Theorem 2's robust parameters at ε = 1 and 10. Robust training makes the metric ball rounder "
               "(κ falls) and turns the weight Σ⁻¹μ toward the robust feature x₁ (the boundary toward vertical).")
    return save(fig, out, "fig_a_gaussian_figure4"), caption


# ------------------------------------------------------------------- (b) Σ_r eigenvalues vs ε
def fig_robust_eigenvalues(out: Path, opts: Options) -> FigureResult:
    from theory import gaussian

    eps_line = np.linspace(0.0, 10.0, 121)
    eig_line = np.array([np.linalg.eigvalsh(np.asarray(gaussian.robust_parameters(FIG4_MU, FIG4_SIGMA, e)[1]))
                         for e in eps_line])
    eps_marks = (0.5, 1.0, 2.0, 5.0, 10.0)
    x, y = gaussian.sample(FIG4_MU, FIG4_SIGMA, opts.samples, opts.seed + 1)
    lam_marks, ball_marks = [], []
    for e in eps_marks:
        lam = float(gaussian.lambda_for_epsilon(FIG4_SIGMA, e))
        lam_marks.append(np.linalg.eigvalsh(np.asarray(gaussian.adversarial_train(x, y, lam=lam)[1])))
        # 200 outer steps: the per-example-ball training's default tolerance takes thousands of
        # steps on this problem, while its eigenvalues settle (to ~1e-6 relative) within ~100.
        ball = gaussian.adversarial_train(x, y, eps=e, steps=BALL_STEPS)[1]
        ball_marks.append(np.linalg.eigvalsh(np.asarray(ball)))
    lam_marks, ball_marks = np.array(lam_marks), np.array(ball_marks)
    fig, ax = subplots(figsize=(6.2, 4.2), constrained_layout=True)
    colours = ("tab:purple", "tab:olive")
    for i, (c, which) in enumerate(zip(colours, ("smaller", "larger"))):
        ax.plot(eps_line, eig_line[:, i], color=c, lw=1.6, label=f"closed form, {which} eigenvalue")
        ax.plot(eps_marks, lam_marks[:, i], "o", color=c, ms=7,
                label=f"adv. training, penalty λ(ε), {which}")
        ax.plot(eps_marks, ball_marks[:, i], "s", mfc="none", color=c, ms=8,
                label=f"adv. training, ℓ2 ball ε, {which}")
    ax.set_yscale("log")
    ax.set_xlabel("ε (ℓ2 radius, input units)")
    ax.set_ylabel(r"eigenvalue of $\Sigma_r$")
    ax.set_title(r"Theorem 2: robust covariance $\Sigma_r$ vs $\varepsilon$ ($\Sigma^* = \mathrm{diag}(50, 1)$)")
    ax.legend(fontsize=7)
    caption = (f"Eigenvalues of Σ_r against ε for Σ* = diag(50, 1): Theorem 2's closed form with λ(ε) "
               f"(lines), adversarial training on n = {opts.samples} samples with the squared penalty at "
               "λ(ε) (filled circles, should lie on the lines) and with exact per-example ℓ2 balls of "
               f"radius ε ({BALL_STEPS} outer steps; open squares; the closed form relaxes the adversary, so these need not coincide "
               "in d = 2). The ratio of the eigenvalues, κ, falls from 50 toward 1 as ε grows.")
    return save(fig, out, "fig_b_robust_eigenvalues"), caption


# ---------------------------------------------------------------- (c) Theorem 1 vs anisotropy
def _spectrum(kappa: float, d: int, trace: float) -> np.ndarray:
    """Geometrically spaced eigenvalues with condition number κ and the given trace."""
    raw = kappa ** np.linspace(0.0, 1.0, d)
    return raw * trace / raw.sum()


def _gap_monte_carlo(vals: np.ndarray, c: float, n: int, rng: np.random.Generator) -> float:
    """E[(v+δ*)ᵀΣ⁻¹(v+δ*)] − E[vᵀΣ⁻¹v], v ~ N(0, Σ), δ* = (CΣ − I)⁻¹v, in Σ's eigenbasis."""
    v = rng.standard_normal((n, vals.size)) * np.sqrt(vals)
    adv = v + v / (c * vals - 1.0)
    return float(((adv**2 - v**2) / vals).sum(axis=1).mean())


def fig_vulnerability_gap(out: Path, opts: Options) -> FigureResult:
    from theory import gaussian

    rng = np.random.default_rng(opts.seed)
    kappas = np.geomspace(1.0, 50.0, 40)
    kappa_marks = np.array([1.0, 2.0, 5.0, 10.0, 20.0, 50.0])
    fig, ax = subplots(figsize=(6.2, 4.2), constrained_layout=True)
    for d, colour in ((2, "tab:blue"), (10, "tab:orange")):
        trace = float(d)
        # One C for the whole curve, admissible (C > 1/σ_min) at the most anisotropic Σ.
        c = 2.0 / _spectrum(kappas[-1], d, trace).min()
        closed = [float(gaussian.vulnerability_gap(np.diag(_spectrum(k, d, trace)), c)) for k in kappas]
        mc = [_gap_monte_carlo(_spectrum(k, d, trace), c, opts.mc_samples, rng) for k in kappa_marks]
        ax.plot(kappas, closed, color=colour, lw=1.6, label=f"Theorem 1, d = {d}, tr Σ = {d}, C = {c:.3g}")
        ax.plot(kappa_marks, mc, "o", mfc="none", color=colour, ms=7, label=f"Monte Carlo, d = {d}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"anisotropy $\kappa(\Sigma^*) = \sigma_{\max}/\sigma_{\min}$ (trace fixed)")
    ax.set_ylabel(r"$L_{\mathrm{adv}} - L = \mathrm{tr}[(I + (C\Sigma^* - I)^{-1})^2] - d$")
    ax.set_title("Theorem 1: vulnerability grows with metric misalignment")
    ax.legend()
    caption = (f"Theorem 1's gap L_adv − L against κ(Σ*) at fixed trace (geometric spectra, d = 2 and 10): "
               f"closed form (lines) and a Monte Carlo estimate with {opts.mc_samples} draws of "
               "v ~ N(0, Σ*), δ* = (CΣ* − I)⁻¹v (circles). The minimum is at the isotropic Σ* (κ = 1).")
    return save(fig, out, "fig_c_vulnerability_gap"), caption


# --------------------------------------------------------------- (d, e) Tsipras trade-off plane
TS_P, TS_D = 0.95, 100
TS_ETA = 4.0 / math.sqrt(TS_D)   # Theorem 2.2's regime η ≥ 4/√d
TS_EPS = 2.0 * TS_ETA            # the adversary of Theorem 2.1


def _svms(opts: Options) -> tuple[np.ndarray, np.ndarray]:
    from theory.tradeoff import TradeoffModel, train_svm

    model = TradeoffModel(p=TS_P, eta=TS_ETA, d=TS_D)
    x, y = model.sample(opts.svm_samples, opts.seed)
    return train_svm(x, y), train_svm(x, y, eps=TS_EPS)


def fig_tradeoff_plane(out: Path, opts: Options, svms: tuple[np.ndarray, np.ndarray]) -> FigureResult:
    from theory.tradeoff import TradeoffModel, robust_accuracy_bound

    model = TradeoffModel(p=TS_P, eta=TS_ETA, d=TS_D)
    std = np.linspace(0.9, 1.0, 400)
    # Both axes and every legend entry in percent (the model's accuracies are fractions).
    fig, ax = subplots(figsize=(6.4, 5.6), layout="constrained")
    ax.fill_between(100 * std, 100 * robust_accuracy_bound(std, TS_P), 100.0, color="grey", alpha=0.18,
                    label="excluded by Theorem 2.1")
    ax.plot(100 * std, 100 * robust_accuracy_bound(std, TS_P), color="black", lw=1.6,
            label=r"Theorem 2.1: robust $\leq \frac{p}{1-p}\,(1 - \mathrm{standard})$")
    # Linear classifiers between the robust and the averaging one: how the trade-off is traded.
    t = np.linspace(0.0, 1.0, 200)[:, None]
    family = (1 - t) * model.robust_weights() + t * model.averaging_weights() * TS_D / math.sqrt(TS_D)
    ax.plot(100 * model.linear_accuracy(family), 100 * model.linear_accuracy(family, eps=TS_EPS),
            color="tab:cyan", lw=1, label=r"linear $w = (1-t)\,e_1 + t\,(0, 1, \ldots, 1)/\sqrt{d}$")
    clean_svm, adv_svm = svms
    points = {
        "averaging": model.averaging_weights(),
        r"robust sign($x_1$)": model.robust_weights(),
        "Bayes-optimal": model.bayes_weights(),
        "clean SVM": clean_svm,
        "adversarial SVM": adv_svm,
    }
    # Several classifiers land on the same corner: hollow markers of decreasing size keep all visible.
    markers = (("o", 16), ("s", 12), ("*", 14), ("^", 9), ("v", 6))
    below, handles = [], []
    for (name, w), (marker, size) in zip(points.items(), markers):
        a, r = model.linear_accuracy(w), model.linear_accuracy(w, eps=TS_EPS)
        below.append(r <= robust_accuracy_bound(a, TS_P) + 1e-9)
        handles += ax.plot(100 * a, 100 * r, marker, ms=size, mfc="none", mew=1.8,
                           label=f"{name}: {100 * a:.2f}% / {100 * r:.2f}%")
    ax.set_xlim(90.0, 100.3)
    ax.set_ylim(-3.0, 103.0)
    ax.set_xlabel("standard accuracy (%)")
    ax.set_ylabel(rf"robust accuracy (%), $\ell_\infty$ $\varepsilon = 2\eta = {TS_EPS:.2f}$")
    ax.set_title(rf"Tsipras et al.: $p = {TS_P}$, $d = {TS_D}$, $\eta = 4/\sqrt{{d}} = {TS_ETA:.2f}$")
    # Two legends: the curves inside (the left middle is empty), the classifiers with their numbers below.
    ax.legend(handles=ax.get_legend_handles_labels()[0][:3], loc="center left", fontsize=7)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7, markerscale=0.6,
               title="classifier: standard / robust accuracy", title_fontsize=7)
    verdict = "every classifier lies on or below the bound" if all(below) else "A CLASSIFIER EXCEEDS THE BOUND"
    ax.text(90.5, 5.0, verdict, fontsize=8)
    caption = (f"Tsipras et al.'s trade-off (p = {TS_P}, d = {TS_D}, η = 4/√d, ε = 2η): exact standard and "
               "robust accuracy of the averaging, robust, Bayes-optimal, clean-SVM and adversarial-SVM "
               f"classifiers (SVMs trained on {opts.svm_samples} samples, scored exactly), a family of linear "
               "classifiers, and Theorem 2.1's bound; every classifier lies below the bound.")
    return save(fig, out, "fig_d_tradeoff_plane"), caption


def fig_svm_weights(out: Path, opts: Options, svms: tuple[np.ndarray, np.ndarray]) -> FigureResult:
    clean_svm, adv_svm = svms
    idx = np.arange(clean_svm.size)
    fig, axes = subplots(2, 1, figsize=(7.5, 4.6), sharex=True, constrained_layout=True)
    for ax, w, title in ((axes[0], clean_svm, "clean SVM"), (axes[1], adv_svm, f"adversarial SVM (ℓ∞ ε = {TS_EPS:.2f})")):
        colours = ["tab:red"] + ["tab:blue"] * (w.size - 1)
        ax.bar(idx, w, color=colours, width=0.8)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_ylabel("weight (‖w‖₂ = 1)")
        ax.set_title(rf"{title}: $w_1$ = {w[0]:.3f}, weak-feature mass $\sum_{{i>1}} |w_i|$ = {np.abs(w[1:]).sum():.3f}")
    axes[1].set_xlabel("feature index (0 = x₁, the robust feature, red; 1…d weak features, blue)")
    caption = (f"Unit-norm SVM weights (Theorem 2.2; p = {TS_P}, d = {TS_D}, η = 4/√d, n = {opts.svm_samples}): "
               "the clean SVM spreads its weight over the weak features, the adversarially trained SVM puts "
               "it on x₁.")
    return save(fig, out, "fig_e_svm_weights"), caption


# ---------------------------------------------------------------------- (f) ε‖w‖₁ vs dimension
def fig_linear_growth(out: Path, opts: Options) -> FigureResult:
    from theory.linear import linear_shift_table

    eps = 0.25
    rows = linear_shift_table(np.unique(np.geomspace(1, 100_000, 26).astype(int)), eps, seed=opts.seed)
    n = np.array([r["n"] for r in rows])
    fig, ax = subplots(figsize=(6.2, 4.2), constrained_layout=True)
    ax.plot(n, [r["max_shift"] for r in rows], "o", color="tab:red", label="worst case ε‖w‖₁ (FGSM)")
    ax.plot(n, [r["eps_m_n"] for r in rows], color="black", lw=1.4, label="ε·m·n, m = E|w_i| = √(2/π)")
    ax.plot(n, [r["random_sign_shift"] for r in rows], "^", color="tab:gray", label="random-sign η: |wᵀη|")
    ax.plot(n, eps * np.sqrt(n), color="tab:gray", lw=1, ls="--", label="ε·√n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension n")
    ax.set_ylabel(f"change of the linear score wᵀη, ‖η‖∞ = ε = {eps}")
    ax.set_title("Goodfellow et al.: the adversarial shift grows linearly with dimension")
    ax.legend()
    caption = (f"Goodfellow et al.'s linear argument (ε = {eps}, w_i ~ N(0, 1)): the worst ℓ∞ shift "
               "ε‖w‖₁ follows ε·m·n, while a random-sign perturbation of the same size moves the score "
               "only ~ε√n.")
    return save(fig, out, "fig_f_linear_growth"), caption


# ----------------------------------------------------------------------------------- driver
def make_all(out: Path | str, opts: Options | None = None,
             log: Callable[[str], None] = print) -> list[Path]:
    """Write every theory figure and ``theory_captions.md`` into ``out``; return the written paths."""
    opts = Options() if opts is None else opts
    out = Path(out)
    svms = _svms(opts)
    makers: list[Callable[[], FigureResult]] = [
        lambda: fig_gaussian_panels(out, opts),
        lambda: fig_robust_eigenvalues(out, opts),
        lambda: fig_vulnerability_gap(out, opts),
        lambda: fig_tradeoff_plane(out, opts, svms),
        lambda: fig_svm_weights(out, opts, svms),
        lambda: fig_linear_growth(out, opts),
    ]
    written: list[Path] = []
    captions = ["# Theory figures", "",
                f"Produced by `{COMMAND}` (samples = {opts.samples}, svm_samples = {opts.svm_samples}, "
                f"mc_samples = {opts.mc_samples}, seed = {opts.seed}).", ""]
    for make in makers:
        with styled():  # the house style for this figure only; the caller's rcParams are untouched
            paths, caption = make()
        written += paths
        log(f"wrote {paths[0]} (+ .pdf)")
        captions += [f"## {paths[0].name}", "", caption, "", f"Command: `{COMMAND}`", ""]
    cap_path = out / "theory_captions.md"
    cap_path.write_text("\n".join(captions), encoding="utf-8")
    written.append(cap_path)
    return written
