"""python -m theory: tables, --json documents checked against independent formulas, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from theory import cli

REPO = Path(__file__).resolve().parents[2]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert cli.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tradeoff_json_matches_closed_forms(capsys: pytest.CaptureFixture[str]) -> None:
    p, d = 0.9, 400
    doc = run_json(capsys, ["tradeoff", "--p", str(p), "--d", str(d)])
    eta = 3 / math.sqrt(d)  # the default η
    assert doc["eta"] == pytest.approx(eta) and doc["eps"] == pytest.approx(2 * eta)
    rows = {r["classifier"]: r for r in doc["classifiers"]}
    # Tsipras §2.1: the averaging classifier is Φ(η√d) clean and Φ(−η√d) at ε = 2η.
    assert rows["averaging"]["standard_accuracy"] == pytest.approx(norm.cdf(eta * math.sqrt(d)))
    assert rows["averaging"]["robust_accuracy"] == pytest.approx(norm.cdf(-eta * math.sqrt(d)))
    assert rows["robust"]["standard_accuracy"] == pytest.approx(p)
    assert rows["robust"]["robust_accuracy"] == pytest.approx(p)
    for r in rows.values():
        assert r["theorem_2_1_bound"] == pytest.approx(min(1.0, p / (1 - p) * (1 - r["standard_accuracy"])))
        assert r["within_bound"] is True
    assert doc["bound_at_99_percent"] == pytest.approx(min(1.0, p / (1 - p) * 0.01))


def test_tradeoff_table_is_aligned(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tradeoff", "--eta", "0.2", "--d", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("classifier"))
    rule, body = lines[header + 1], lines[header + 2: header + 5]
    # Right-aligned numeric columns end where their rule segment ends.
    ends = [i for i in range(len(rule)) if rule[i] == "-" and (i + 1 == len(rule) or rule[i + 1] == " ")]
    for row in body:
        assert row[ends[1]] == "%" and row[ends[2]] == "%"


@pytest.mark.parametrize("argv, name", [
    (["tradeoff", "--p", "1.5"], "p"),
    (["tradeoff", "--p", "0.3"], "p"),
    (["tradeoff", "--eta", "-1"], "eta"),
    (["tradeoff", "--d", "0"], "d"),
    (["linear", "--eps", "-0.1"], "eps"),
    (["linear", "--ns", "0", "10"], "ns"),
])
def test_bad_input_exits_2_naming_argument(capsys: pytest.CaptureFixture[str], argv: list[str], name: str) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and name in err


def test_unknown_command_is_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'nonsense'" in err  # one line, no usage block


def test_linear_json(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, ["linear", "--eps", "0.1", "--ns", "10", "100000", "--seed", "3"])
    big = doc["rows"][-1]
    assert big["n"] == 100000
    assert big["eps_m_n"] == pytest.approx(0.1 * math.sqrt(2 / math.pi) * 100000)
    assert big["ratio"] == pytest.approx(1.0, abs=0.02)  # LLN: sd of the ratio ≈ 0.0024 here
    assert big["max_shift"] > 10 * big["random_sign_shift"]


def test_gaussian_json_against_independent_formulas(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("theory.gaussian")
    doc = run_json(capsys, ["gaussian", "--eps", "0", "1", "10", "--mu", "3", "1", "--sigma", "4", "1", "1", "2"])
    sigma = np.array([[4.0, 1.0], [1.0, 2.0]])
    rows = doc["rows"]
    np.testing.assert_allclose(rows[0]["sigma_r_eigenvalues"], np.linalg.eigvalsh(sigma))
    assert rows[0]["lambda"] is None  # λ(0) = ∞, written as null in strict JSON
    kappas = [r["kappa"] for r in rows]
    assert kappas[0] > kappas[1] > kappas[2] >= 1.0
    for r in rows:
        k = r["kappa"]
        assert r["worst_case_alignment"] == pytest.approx(2 * math.sqrt(k) / (1 + k))
        assert r["worst_case_alignment"] <= r["alignment_of_mu_star"] + 1e-12
        assert r["mu_r"] == [3.0, 1.0]
    # Theorem 2 per eigenvalue with the reported λ, and λ's budget equation Σσ/(λs−1)² = ε².
    sig = np.linalg.eigvalsh(sigma)
    for r, eps in zip(rows[1:], (1.0, 10.0)):
        lam = r["lambda"]
        s = sig / 2 + 1 / lam + np.sqrt(sig / lam + sig**2 / 4)
        np.testing.assert_allclose(r["sigma_r_eigenvalues"], s, rtol=1e-10)
        assert np.sum(sig / (lam * s - 1) ** 2) == pytest.approx(eps**2, rel=1e-8)


def test_gaussian_bad_sigma(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("theory.gaussian")
    assert cli.main(["gaussian", "--sigma", "1", "2", "3"]) == 2
    assert "--sigma" in capsys.readouterr().err
    assert cli.main(["gaussian", "--sigma", "1", "2", "2", "-1"]) == 2
    assert "sigma" in capsys.readouterr().err
    assert cli.main(["gaussian", "--eps", "-1"]) == 2
    assert "eps" in capsys.readouterr().err


def test_symbolic_failure_gives_exit_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from theory import symbolic

    def broken() -> symbolic.CheckResult:
        raise AssertionError("Kantorovich bound does not simplify: 1")

    monkeypatch.setattr(symbolic, "check_kantorovich", broken)
    monkeypatch.setattr(symbolic, "check_theorem1", lambda: symbolic.CheckResult("theorem1_gap", "s", True, "0"))
    monkeypatch.setattr(symbolic, "check_adversarial_logistic",
                        lambda: symbolic.CheckResult("adversarial_logistic_loss", "s", True, "0"))
    monkeypatch.setattr(symbolic, "check_theorem2", lambda: symbolic.CheckResult("theorem2_stationarity", "s", True, "0"))
    assert cli.main(["symbolic", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["all_passed"] is False
    assert [c["passed"] for c in doc["checks"]] == [True, True, True, False]


def test_module_entry_point_all_json() -> None:
    """`python -m theory all --json` (what make reproduce runs) in a subprocess: one JSON document."""
    pytest.importorskip("theory.gaussian")
    proc = subprocess.run([sys.executable, "-m", "theory", "all", "--json", "--ns", "10", "100"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"tradeoff", "gaussian", "linear", "symbolic"}
    assert doc["symbolic"]["all_passed"] is True


def test_help_names_units() -> None:
    parser = cli.build_parser()
    text = parser._subparsers._group_actions[0].choices["gaussian"].format_help()  # type: ignore[union-attr]
    assert "input units" in text and "--sigma" in text


def test_eps_is_accepted_as_a_fraction_everywhere_it_is_typed(capsys):
    from theory.cli import main

    assert main(["linear", "--eps", "8/255", "--ns", "10", "--json"]) == 0
    import json
    assert json.loads(capsys.readouterr().out)["eps"] == 8 / 255


def test_a_bad_eps_fraction_is_one_clear_line(capsys):
    from theory.cli import main

    assert main(["gaussian", "--eps", "1/0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'1/0' divides by zero" in err, err
