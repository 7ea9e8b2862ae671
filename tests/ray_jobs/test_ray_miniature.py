"""A paper spec in miniature, end to end on the CPU: the smallest one (goodfellow-paper, 15 runs) through
``python -m ray_jobs run --scale smoke`` and its report section (docs/ray.md "Paper specs in miniature")."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_goodfellow_paper_miniature_runs_and_renders(tmp_path, data_root):
    env = {**os.environ, "ADVFEAT_DATA": str(data_root)}
    store, out = tmp_path / "store", tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "ray_jobs", "run", "goodfellow-paper", "--scale", "smoke",
                          "--store", str(store), "--num-cpus", "2", "--no-progress"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "done 15, failed 0, blocked 0" in run.stdout
    report = subprocess.run([sys.executable, "-m", "figures", "report", "--store", str(store), "--spec",
                             "goodfellow-paper", "--scale", "smoke", "--out", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (out / "REPORT.md").read_text()
    assert "## Spec `goodfellow-paper`" in text and "[changed by scale smoke]" in text
    assert "--scale smoke" in text and "Total missing runs: 0." in text
    assert any(p.suffix == ".png" for p in out.iterdir())  # Figure 2 / Figure 4 drawn from the miniature's runs
