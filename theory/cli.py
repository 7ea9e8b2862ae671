"""Command line of the theory package: ``python -m theory <command> [--json]``.

Commands (SPEC §2–4):
- ``tradeoff``  Tsipras et al.: standard and robust accuracy of the averaging, robust and Bayes
                classifiers at ε = 0 and ε = 2η, beside Theorem 2.1's bound.
- ``gaussian``  Ilyas et al.: Σ_r's eigenvalues, λ(ε), κ and the worst-case gradient alignment
                (Theorems 2 and 3) for a list of ε.
- ``linear``    Goodfellow et al.: the worst-case ℓ∞ shift ε‖w‖₁ against dimension.
- ``symbolic``  the sympy checks of ``theory.symbolic`` (non-zero exit if any fails).
- ``all``       everything above with default settings (what ``make reproduce`` runs).

Every command prints aligned tables, or one JSON document with ``--json``. Bad input exits with
status 2 and a message naming the offending argument.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Ilyas et al. Figure 4 setting (SPEC §2): d = 2, variance ratio 50, μ* ≈ (10, −1). The
#: high-variance axis carries the large mean gap (robust feature); the low-variance axis carries
#: the small gap that the standard classifier leans on (non-robust feature).
DEFAULT_MU = (10.0, -1.0)
DEFAULT_SIGMA_DIAG = (50.0, 1.0)
DEFAULT_EPS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
DEFAULT_NS = (10, 100, 1_000, 10_000, 100_000)


# ------------------------------------------------------------------------------------ tables
def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-align text, right-align numbers, one space-padded column per header."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    """Numbers (and percentages) are right-aligned; booleans and text are not."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and value.endswith("%"))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"
    return str(value)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _json_safe(obj: Any) -> Any:
    """Infinite/NaN floats become None so that the document is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


# ---------------------------------------------------------------------------------- tradeoff
def tradeoff_report(p: float, eta: float | None, d: int) -> dict[str, Any]:
    """Exact accuracies of the three reference classifiers of Tsipras et al. §2 and Theorem 2.1.

    ``eta=None`` uses 3/√d, the paper's running choice (averaging classifier ≈ 99.87% accurate).
    """
    from theory.tradeoff import TradeoffModel, robust_accuracy_bound

    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    eta = 3.0 / math.sqrt(d) if eta is None else eta
    model = TradeoffModel(p=p, eta=eta, d=d)
    eps = 2.0 * model.eta
    classifiers = {
        "averaging": model.averaging_weights(),
        "robust": model.robust_weights(),
        "bayes": model.bayes_weights(),
    }
    rows = []
    for name, w in classifiers.items():
        standard = float(model.linear_accuracy(w))
        robust = float(model.linear_accuracy(w, eps=eps))
        bound = float(robust_accuracy_bound(standard, model.p))
        rows.append({"classifier": name, "standard_accuracy": standard, "robust_accuracy": robust,
                     "theorem_2_1_bound": bound, "within_bound": robust <= bound + 1e-12})
    return {"p": model.p, "eta": model.eta, "d": model.d, "eps": eps, "classifiers": rows,
            "bound_at_99_percent": float(robust_accuracy_bound(0.99, model.p))}


def _print_tradeoff(rep: dict[str, Any]) -> str:
    head = (f"Tsipras et al. trade-off model: p = {rep['p']:g}, eta = {rep['eta']:.4g}, d = {rep['d']} "
            f"weak features; robust accuracy under l_inf eps = 2*eta = {rep['eps']:.4g}")
    rows = [[r["classifier"], _pct(r["standard_accuracy"]), _pct(r["robust_accuracy"]),
             _pct(r["theorem_2_1_bound"]), r["within_bound"]] for r in rep["classifiers"]]
    table = format_table(["classifier", "standard acc", "robust acc", "Thm 2.1 bound", "within"], rows)
    tail = f"Theorem 2.1: 99% standard accuracy allows at most {_pct(rep['bound_at_99_percent'])} robust accuracy."
    return "\n".join([head, table, tail])


# ---------------------------------------------------------------------------------- gaussian
def _parse_sigma(values: Sequence[float] | None, d: int) -> np.ndarray:
    """d numbers: a diagonal Σ*; d² numbers: a full matrix in row-major order."""
    if values is None:
        return np.diag(np.asarray(DEFAULT_SIGMA_DIAG, dtype=float))
    arr = np.asarray(values, dtype=float)
    if arr.size == d:
        return np.diag(arr)
    if arr.size == d * d:
        return arr.reshape(d, d)
    raise ValueError(f"--sigma needs d = {d} (diagonal) or d² = {d * d} (full matrix) numbers, got {arr.size}")


def gaussian_report(eps: Sequence[float], mu: Sequence[float] | None = None,
                    sigma: Sequence[float] | None = None) -> dict[str, Any]:
    """Theorem 2's robust parameters, λ(ε), κ(Σ_r) and Theorem 3's alignment bound for each ε."""
    from theory import gaussian

    mu_star = np.asarray(DEFAULT_MU if mu is None else mu, dtype=float)
    if mu_star.ndim != 1 or not np.all(np.isfinite(mu_star)):
        raise ValueError(f"--mu must be a finite vector, got {mu!r}")
    sigma_star = _parse_sigma(sigma, mu_star.size)
    eps_list = [float(e) for e in eps]
    for e in eps_list:
        if not math.isfinite(e) or e < 0:
            raise ValueError(f"eps must be finite and >= 0, got {e!r}")
    rows = []
    for e in eps_list:
        mu_r, sigma_r = gaussian.robust_parameters(mu_star, sigma_star, e)
        lam = math.inf if e == 0 else float(gaussian.lambda_for_epsilon(sigma_star, e))
        eig = np.linalg.eigvalsh(np.asarray(sigma_r))
        rows.append({
            "eps": e,
            "lambda": lam,
            "sigma_r_eigenvalues": eig.tolist(),
            "kappa": float(eig[-1] / eig[0]),
            "worst_case_alignment": float(gaussian.worst_case_alignment(np.asarray(sigma_r))),
            "alignment_of_mu_star": float(gaussian.gradient_alignment(mu_star, np.asarray(sigma_r))),
            "mu_r": np.asarray(mu_r).tolist(),
        })
    return {"mu_star": mu_star.tolist(), "sigma_star": sigma_star.tolist(),
            "sigma_star_eigenvalues": np.linalg.eigvalsh(sigma_star).tolist(), "rows": rows}


def _print_gaussian(rep: dict[str, Any]) -> str:
    head = (f"Ilyas et al. Gaussian model: mu* = {np.round(rep['mu_star'], 4).tolist()}, "
            f"eig(Sigma*) = {np.round(rep['sigma_star_eigenvalues'], 4).tolist()}; "
            "eps is the l2 radius (input units)")
    rows = [[r["eps"], r["lambda"], ", ".join(f"{v:.4g}" for v in r["sigma_r_eigenvalues"]),
             r["kappa"], r["worst_case_alignment"], r["alignment_of_mu_star"]] for r in rep["rows"]]
    table = format_table(["eps", "lambda(eps)", "eig(Sigma_r)", "kappa", "min_mu cos(mu, Sigma_r^-1 mu)",
                          "cos(mu*, Sigma_r^-1 mu*)"], rows)
    return "\n".join([head, table, "mu_r = mu* at every eps (Theorem 2); kappa falls as eps grows."])


# ------------------------------------------------------------------------------------ linear
def linear_report(eps: float, ns: Sequence[int], seed: int) -> dict[str, Any]:
    """Goodfellow et al.'s dimension argument: ε‖w‖₁ against ε·m·n (``theory.linear``)."""
    from theory.linear import linear_shift_table

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {seed!r}")
    return {"eps": float(eps), "seed": seed, "rows": linear_shift_table(list(ns), eps, seed=seed)}


def _print_linear(rep: dict[str, Any]) -> str:
    head = (f"Goodfellow et al.: worst l_inf shift eps*||w||_1 of a linear score, eps = {rep['eps']:g}, "
            "w_i ~ N(0, 1) (m = mean |w_i| = sqrt(2/pi))")
    rows = [[r["n"], r["max_shift"], r["eps_m_n"], r["ratio"], r["random_sign_shift"]] for r in rep["rows"]]
    return "\n".join([head, format_table(["n", "eps*||w||_1", "eps*m*n", "ratio", "random-sign shift"], rows)])


# ---------------------------------------------------------------------------------- symbolic
def symbolic_report() -> dict[str, Any]:
    """Run the sympy checks; a check that raises counts as failed (never crashes the CLI)."""
    from theory import symbolic

    checks: list[dict[str, Any]] = []
    for fn in (symbolic.check_theorem2, symbolic.check_theorem1,
               symbolic.check_adversarial_logistic, symbolic.check_kantorovich):
        try:
            checks.append(fn().to_dict())
        except AssertionError as err:
            checks.append({"name": fn.__name__, "statement": fn.__doc__.splitlines()[0] if fn.__doc__ else "",
                           "passed": False, "residual": str(err)})
    return {"checks": checks, "all_passed": all(c["passed"] for c in checks)}


def _print_symbolic(rep: dict[str, Any]) -> str:
    rows = [[c["name"], c["passed"], c["residual"] if len(c["residual"]) < 40 else c["residual"][:37] + "...",
             c["statement"]] for c in rep["checks"]]
    return "\n".join(["Symbolic checks (sympy): residual = simplified difference to the closed form",
                      format_table(["check", "passed", "residual", "statement"], rows)])


# ------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m theory", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
        return sp

    t = add("tradeoff", "Tsipras et al. trade-off model: exact accuracies and Theorem 2.1's bound")
    _add_tradeoff_args(t)
    g = add("gaussian", "Ilyas et al. Gaussian model: robust parameters (Theorem 2), kappa, alignment (Theorem 3)")
    _add_gaussian_args(g)
    lin = add("linear", "Goodfellow et al.: growth of the worst-case shift eps*||w||_1 with dimension")
    _add_linear_args(lin)
    add("symbolic", "sympy checks of the closed forms (exit status 1 if any fails)")
    a = add("all", "every command above (what `make reproduce` runs)")
    _add_tradeoff_args(a)
    _add_gaussian_args(a)
    _add_linear_args(a, eps_flag="--linear-eps")
    return parser


def _add_tradeoff_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--p", type=float, default=0.95,
                    help="probability that x1 agrees with the label, in [1/2, 1] (default 0.95)")
    sp.add_argument("--eta", type=float, default=None,
                    help="mean of each weak feature given y=+1, > 0 (default 3/sqrt(d))")
    sp.add_argument("--d", type=int, default=1000, help="number of weak features (integer >= 1, default 1000)")


def _eps(text: str) -> float:
    """ε as typed anywhere in the package: a number or a fraction ("8/255"); deep.units has no torch import."""
    from deep.units import parse_eps

    try:
        return parse_eps(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_gaussian_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--eps", type=_eps, nargs="+", default=list(DEFAULT_EPS),
                    help="l2 adversary radii in input units, each >= 0, numbers or fractions such as 1/2 "
                         "(default 0 0.5 1 2 5 10)")
    sp.add_argument("--mu", type=float, nargs="+", default=None,
                    help=f"class mean mu* (d numbers; default {DEFAULT_MU})")
    sp.add_argument("--sigma", type=float, nargs="+", default=None,
                    help=f"Sigma*: d numbers (diagonal) or d*d numbers (row-major, SPD); default diag{DEFAULT_SIGMA_DIAG}")


def _add_linear_args(sp: argparse.ArgumentParser, eps_flag: str = "--eps") -> None:
    sp.add_argument(eps_flag, dest="linear_eps", type=_eps, default=0.25,
                    help="l_inf radius in input units (pixels in [0, 1]; a number or a fraction such as 8/255; "
                         "default 0.25, GF's MNIST value)")
    sp.add_argument("--ns", type=int, nargs="+", default=list(DEFAULT_NS),
                    help="dimensions n to tabulate (integers >= 1)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")


Runner = Callable[[argparse.Namespace], dict[str, Any]]
_COMMANDS: dict[str, tuple[Runner, Callable[[dict[str, Any]], str]]] = {
    "tradeoff": (lambda a: tradeoff_report(a.p, a.eta, a.d), _print_tradeoff),
    "gaussian": (lambda a: gaussian_report(a.eps, a.mu, a.sigma), _print_gaussian),
    "linear": (lambda a: linear_report(a.linear_eps, a.ns, a.seed), _print_linear),
    "symbolic": (lambda a: symbolic_report(), _print_symbolic),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 a symbolic check failed, 2 bad input, 130 Ctrl-C).

    Errors follow the project's convention (:mod:`deep.cli.errors`): one line naming the bad value.
    """
    from deep.cli.errors import run_cli

    return run_cli(_run, argv, prog="python -m theory",
                   interrupted="theory commands save nothing; rerun the command")


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    names = list(_COMMANDS) if args.command == "all" else [args.command]
    reports = {name: _COMMANDS[name][0](args) for name in names}
    if args.json:
        doc = reports if args.command == "all" else reports[args.command]
        print(json.dumps(_json_safe(doc), indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(_COMMANDS[name][1](rep) for name, rep in reports.items()))
    failed = "symbolic" in reports and not reports["symbolic"]["all_passed"]
    return 1 if failed else 0
