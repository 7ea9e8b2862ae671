"""python -m figures theory: every expected file is written (tiny sample sizes), hooks and bad input."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

import figures.__main__ as fig_main
from figures.theory_figs import Options

STEMS = ("fig_a_gaussian_figure4", "fig_b_robust_eigenvalues", "fig_c_vulnerability_gap",
         "fig_d_tradeoff_plane", "fig_e_svm_weights", "fig_f_linear_growth")
TINY = ["--samples", "200", "--svm-samples", "60", "--mc-samples", "2000", "--seed", "1"]


def test_theory_figures_written(tmp_path: Path) -> None:
    pytest.importorskip("theory.gaussian")
    out = tmp_path / "out"
    before = dict(matplotlib.rcParams)
    assert fig_main.main(["theory", "--out", str(out), *TINY]) == 0
    assert dict(matplotlib.rcParams) == before  # the house style is applied per figure, never globally
    for stem in STEMS:
        png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert pdf.read_bytes()[:5] == b"%PDF-", pdf
    captions = (out / "theory_captions.md").read_text(encoding="utf-8")
    for stem in STEMS:
        assert f"## {stem}.png" in captions
    assert captions.count("Command: `python -m figures theory`") == len(STEMS)
    assert "samples = 200" in captions


@pytest.mark.parametrize("flag", ["--samples", "--svm-samples", "--mc-samples"])
def test_bad_sizes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert fig_main.main(["theory", "--out", str(tmp_path), flag, "0"]) == 2
    assert flag.lstrip("-").replace("-", "_") in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_options_validate() -> None:
    with pytest.raises(ValueError, match="samples"):
        Options(samples=5)


def test_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert fig_main.main(["nonsense"]) == 2
    assert "invalid choice: 'nonsense' (choose from 'theory', 'report')" in capsys.readouterr().err


def test_default_runs_theory_then_report(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(fig_main, "run_theory", lambda args: calls.append(f"theory:{args.out}") or 0)
    monkeypatch.setattr(fig_main.report, "run", lambda args: calls.append(f"report:{args.store}") or 0)
    assert fig_main.main([]) == 0
    assert calls == ["theory:figures/out", "report:store"]
