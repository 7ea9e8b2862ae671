"""benchmarks/construct_steps.py measures a D̂_rand / D̂_det build's target rate at more steps by
re-attacking only the images the build missed. That is exact only if every image hit within K steps is
hit within K' > K steps (no random start; PGD keeps its best iterate by target hit first). Checked here
against two real toy builds, at K and at K' steps.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from _construct_toy import build, shard_arrays

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/deep/conftest.py

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "construct_steps.py"
_spec = importlib.util.spec_from_file_location("construct_steps", _PATH)
construct_steps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(construct_steps)


@pytest.mark.parametrize("kind", ["rand", "det"])
def test_failures_reattacked_give_the_rate_of_a_longer_build(tmp_path, trained, kind):
    model, x, _ = trained
    short, long_ = 4, 8
    build(tmp_path / "short", kind, trained, name="dataset", eps=0.6, steps=short)
    build(tmp_path / "long", kind, trained, name="dataset", eps=0.6, steps=long_)
    prov, index, target, hits = construct_steps.failures(tmp_path / "short")
    long_hits = sum(int(a["target_hit"].sum()) for a in shard_arrays(tmp_path / "long" / "dataset"))
    assert 0 < hits < long_hits <= len(x)  # the toy setting has failures at K that K' steps fix
    params = prov["params"]
    xf, tf = x[torch.from_numpy(index)], torch.from_numpy(target)
    assert construct_steps.attack_hits(model, xf, tf, params, short) == 0  # the replay reproduces the build
    assert hits + construct_steps.attack_hits(model, xf, tf, params, long_) == long_hits


def test_bad_input_gets_a_one_line_error(tmp_path, trained, capsys):
    build(tmp_path / "robust", "robust", trained, name="dataset", steps=2)
    with pytest.raises(ValueError, match="'robust' build; target rates exist for 'rand' and 'det'"):
        construct_steps.failures(tmp_path / "robust")
    with pytest.raises(FileNotFoundError, match="constructed dataset directory not found"):
        construct_steps.failures(tmp_path / "nothing-here")
    for bad in ("0", "-3", "ten"):
        with pytest.raises(SystemExit) as e:
            construct_steps.main(["--run", str(tmp_path / "robust"), "--steps", bad, "--out", str(tmp_path / "o")])
        assert e.value.code == 2
        assert "a number of PGD steps must be a whole number >= 1" in capsys.readouterr().err
