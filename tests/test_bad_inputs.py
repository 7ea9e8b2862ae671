"""The bad-input table (issue 13 item 5): every user error gives a clear message.

API cases (a call, the exception type, a substring of the message) run in the default suite. The
command-line cases of tests/bad_input_cases.py run in one slow test: two worker processes run them
through the entry points' error wrapper; a case passes when it exits with the expected status and one
clean stderr line holding the expected text. The pass rate is printed; at least 98% must pass.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bad_input_cases import CASES, expand, make_files

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "deep"))  # the tiny dataset shared with the deep tests
from _tiny import write_tiny_npz  # noqa: E402
PASS_RATE = 0.98


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(1 * 6 * 6, 3))


def _x() -> torch.Tensor:
    return torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))


_Y = torch.tensor([0, 1, 2, 0])


def _pgd(**kw: Any):
    from deep.attacks import PGD

    return PGD(_model(), **kw)


def _attack(x: Any = None, y: Any = None, model: nn.Module | None = None, **kw: Any):
    from deep.attacks import PGD

    atk = PGD(model or _model(), eps=0.1, steps=1, **kw)
    return atk(_x() if x is None else x, _Y if y is None else y)


def _split(x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> SimpleNamespace:
    return SimpleNamespace(x=_x() if x is None else x, y=_Y if y is None else y)


def _evaluate(suite: Any = ("fgsm",), **kw: Any):
    from deep.evaluate import evaluate

    kw = {"eps": 0.1, "progress": False, **kw}
    return evaluate(_model(), _split(), suite, **kw)


def _recipe(**kw: Any):
    from deep.train import Recipe

    return Recipe.from_dict(kw)  # the flat recipe.json layout


def _parse_eps(v: Any):
    from deep.units import parse_eps

    return parse_eps(v)


def _check_eps(v: Any, norm: str):
    from deep.units import check_eps

    return check_eps(v, norm)


def _parse_attack(name: Any, **kw: Any):
    from deep.attacks.registry import parse_attack

    return parse_attack(name, **kw)


def _load_split(name: str, split: str = "train", **kw: Any):
    from deep.data import load_split

    return load_split(name, split, **kw)


class _NaNModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] * float("nan")  # depends on x, so the attack gets a gradient


class _TupleModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _model()

    def forward(self, x: torch.Tensor):
        return self.inner(x), x


Call = Callable[[SimpleNamespace], Any]
# (id, call, exception type, substring of the message)
API_CASES: list[tuple[str, Call, type[BaseException], str]] = [
    # ---------------------------------------------------------------- ε strings and limits
    ("eps 8/0", lambda f: _parse_eps("8/0"), ValueError, "divides by zero"),
    ("eps -1", lambda f: _parse_eps("-1"), ValueError, "'-1' must be a finite number >= 0"),
    ("eps abc", lambda f: _parse_eps("abc"), ValueError, "'abc' is not a number"),
    ("eps nan", lambda f: _parse_eps("nan"), ValueError, "'nan'"),
    ("eps inf", lambda f: _parse_eps(float("inf")), ValueError, "inf"),
    ("eps 8/255/3", lambda f: _parse_eps("8/255/3"), ValueError, "8/255/3"),
    ("eps empty", lambda f: _parse_eps(""), ValueError, "''"),
    ("eps bool", lambda f: _parse_eps(True), ValueError, "True"),
    ("eps list", lambda f: _parse_eps([1]), ValueError, "list"),
    ("eps linf 2", lambda f: _check_eps(2, "linf"), ValueError, "[0, 1]"),
    ("eps linf 1e30", lambda f: _check_eps(1e30, "linf"), ValueError, "[0, 1]"),
    ("eps l2 1e9", lambda f: _check_eps(1e9, "l2"), ValueError, "out of range for norm 'l2'"),
    ("eps norm l3", lambda f: _check_eps(0.1, "l3"), ValueError, "'l3'"),
    # ------------------------------------------------------------------------ attack names
    ("attack magic", lambda f: _parse_attack("magic", eps=0.1), ValueError, "'magic'"),
    ("attack pgd-abc", lambda f: _parse_attack("pgd-abc", eps=0.1), ValueError, "pgd-abc"),
    ("attack pgd-99999999999", lambda f: _parse_attack("pgd-99999999999", eps=0.1), ValueError, "99999999999"),
    ("attack pgd-10x0", lambda f: _parse_attack("pgd-10x0", eps=0.1), ValueError, "pgd-10x0"),
    ("attack pgd-10x100000", lambda f: _parse_attack("pgd-10x100000", eps=0.1), ValueError, "100000"),
    ("attack None", lambda f: _parse_attack(None, eps=0.1), ValueError, "None"),
    ("attack empty", lambda f: _parse_attack("", eps=0.1), ValueError, "''"),
    ("attack cw-", lambda f: _parse_attack("cw-", eps=0.1), ValueError, "cw-"),
    # --------------------------------------------------------------------- attack objects
    ("PGD eps -1", lambda f: _pgd(eps=-1), ValueError, "eps"),
    ("PGD eps nan", lambda f: _pgd(eps=float("nan")), ValueError, "eps"),
    ("PGD eps inf", lambda f: _pgd(eps=float("inf")), ValueError, "eps"),
    ("PGD eps str", lambda f: _pgd(eps="0.1"), ValueError, "eps"),
    ("PGD alpha -1", lambda f: _pgd(eps=0.1, alpha=-1.0), ValueError, "alpha"),
    ("PGD steps -1", lambda f: _pgd(eps=0.1, steps=-1), ValueError, "steps"),
    ("PGD steps 1.5", lambda f: _pgd(eps=0.1, steps=1.5), ValueError, "steps"),
    ("PGD steps huge", lambda f: _pgd(eps=0.1, steps=99_999_999_999), ValueError, "steps"),
    ("PGD restarts 0", lambda f: _pgd(eps=0.1, restarts=0), ValueError, "restarts"),
    ("PGD norm l3", lambda f: _pgd(eps=0.1, norm="l3"), ValueError, "'l3'"),
    ("PGD loss hinge", lambda f: _pgd(eps=0.1, loss="hinge"), ValueError, "hinge"),
    ("PGD model None", lambda f: __import__("deep.attacks", fromlist=["PGD"]).PGD(None, eps=0.1), ValueError,
     "model"),
    ("FGSM eps -1", lambda f: __import__("deep.attacks", fromlist=["FGSM"]).FGSM(_model(), eps=-1), ValueError,
     "eps"),
    ("attack x 3-D", lambda f: _attack(x=_x()[:, 0]), ValueError, "x"),
    ("attack x > 1", lambda f: _attack(x=_x() + 2), ValueError, "[0, 1]"),
    ("attack x nan", lambda f: _attack(x=torch.full((4, 1, 6, 6), float("nan"))), ValueError, "x"),
    ("attack x int", lambda f: _attack(x=torch.zeros(4, 1, 6, 6, dtype=torch.uint8)), ValueError, "uint8"),
    ("attack x float64", lambda f: _attack(x=_x().double()), ValueError, "float64"),
    ("attack y float", lambda f: _attack(y=_Y.float()), ValueError, "float32"),
    ("attack y length", lambda f: _attack(y=_Y[:2]), ValueError, "y"),
    ("attack y out of range", lambda f: _attack(y=torch.tensor([0, 1, 2, 7])), ValueError, "7"),
    ("attack y negative", lambda f: _attack(y=torch.tensor([0, 1, 2, -1])), ValueError, "-1"),
    ("attack NaN logits", lambda f: _attack(model=_NaNModel()), ValueError, "logits"),
    ("attack bf16 model", lambda f: _attack(model=_model().to(torch.bfloat16)), ValueError, "bfloat16"),
    ("attack tuple output", lambda f: _attack(model=_TupleModel()), ValueError, "tuple"),
    # ------------------------------------------------------------------------------ evaluate
    ("evaluate unknown attack", lambda f: _evaluate(["magic"]), ValueError, "'magic'"),
    ("evaluate suite str", lambda f: _evaluate("fgsm"), ValueError, "suite"),
    ("evaluate duplicate", lambda f: _evaluate(["fgsm", "fgsm"]), ValueError, "suite"),
    ("evaluate eps -1", lambda f: _evaluate(eps=-1), ValueError, "eps"),
    ("evaluate eps 8/0", lambda f: _evaluate(eps="8/0"), ValueError, "divides by zero"),
    ("evaluate norm l3", lambda f: _evaluate(norm="l3"), ValueError, "'l3'"),
    ("evaluate batch 0", lambda f: _evaluate(batch_size=0), ValueError, "batch_size"),
    ("evaluate batch -1", lambda f: _evaluate(batch_size=-1), ValueError, "batch_size"),
    ("evaluate split dict", lambda f: __import__("deep.evaluate", fromlist=["evaluate"]).evaluate(
        _model(), {"x": _x()}, ["fgsm"], eps=0.1), ValueError, "split"),
    ("evaluate empty split", lambda f: __import__("deep.evaluate", fromlist=["evaluate"]).evaluate(
        _model(), _split(_x()[:0], _Y[:0]), ["fgsm"], eps=0.1), ValueError, "empty"),
    ("evaluate NaN logits", lambda f: __import__("deep.evaluate", fromlist=["evaluate"]).evaluate(
        _NaNModel(), _split(), ["fgsm"], eps=0.1, progress=False), ValueError, "logits"),
    # -------------------------------------------------------------------------------- recipe
    ("recipe epochs 0", lambda f: _recipe(epochs=0), ValueError, "recipe.epochs"),
    ("recipe epochs str", lambda f: _recipe(epochs="3"), ValueError, "recipe.epochs"),
    ("recipe batch 0", lambda f: _recipe(batch_size=0), ValueError, "recipe.batch_size"),
    ("recipe lr 0", lambda f: _recipe(lr=0.0), ValueError, "recipe.lr"),
    ("recipe lr nan", lambda f: _recipe(lr=math.nan), ValueError, "recipe.lr"),
    ("recipe momentum 1", lambda f: _recipe(momentum=1.0), ValueError, "recipe.momentum"),
    ("recipe eps -1", lambda f: _recipe(eps=-1.0), ValueError, "recipe.eps"),
    ("recipe eps inf", lambda f: _recipe(eps=math.inf), ValueError, "recipe.eps"),
    ("recipe method", lambda f: _recipe(method="magic"), ValueError, "magic"),
    ("recipe model", lambda f: _recipe(model="resnet1000"), ValueError, "recipe.model"),
    ("recipe dataset", lambda f: _recipe(dataset="nope"), ValueError, "recipe.dataset"),
    ("recipe norm", lambda f: _recipe(norm="l3"), ValueError, "l3"),
    ("recipe schedule", lambda f: _recipe(schedule="warp"), ValueError, "warp"),
    ("recipe seed -1", lambda f: _recipe(seed=-1), ValueError, "recipe.seed"),
    ("recipe subset+first_n", lambda f: _recipe(subset=5, first_n=5), ValueError, "first_n"),
    ("recipe unknown field", lambda f: __import__("deep.train", fromlist=["Recipe"]).Recipe.from_dict(
        {"colour": 1}), ValueError, "colour"),
    ("recipe from list", lambda f: __import__("deep.train", fromlist=["Recipe"]).Recipe.from_dict([1]),
     ValueError, "dict"),
    # ---------------------------------------------------------------------------------- data
    ("load_split unknown", lambda f: _load_split("nope"), ValueError, "'nope'"),
    ("load_split split val", lambda f: _load_split(f.tiny, "val"), ValueError, "val"),
    ("load_split npz missing", lambda f: _load_split(f"npz:{f.files['missing']}"), FileNotFoundError, "nope"),
    ("load_split npz corrupt", lambda f: _load_split(f.files["corrupt_npz"]), ValueError, "corrupt.npz"),
    ("load_split npz truncated", lambda f: _load_split(f.files["truncated_npz"]), ValueError, "truncated.npz"),
    ("load_split subset 0", lambda f: _load_split(f.tiny, subset=0), ValueError, "subset"),
    ("load_split first_n -1", lambda f: _load_split(f.tiny, first_n=-1), ValueError, "first_n"),
    ("load_split dir missing", lambda f: _load_split(f"dir:{f.files['missing']}"), FileNotFoundError, "nope"),
    ("load_split name int", lambda f: _load_split(3), ValueError, "dataset name"),
    # ------------------------------------------------------------------------- runs and files
    ("load_run missing", lambda f: _load_run(f.files["missing"]), FileNotFoundError, "nope"),
    ("load_run empty dir", lambda f: _load_run(f.files["dir"]), FileNotFoundError, "empty"),
    ("load_run garbage", lambda f: _load_run(f.files["garbage_run"]), ValueError, "checkpoint.pt"),
    ("load_run text file", lambda f: _load_run(f.files["file"]), ValueError, "f.txt"),
    ("load_run pickled object", lambda f: _load_run(f.files["evil_run"]), ValueError,
     "holds Python objects other than tensors"),
    ("read_json torn", lambda f: _io().read_json(f.files["bad_json"]), ValueError, "bad.json"),
    ("read_json missing", lambda f: _io().read_json(f.files["missing"]), FileNotFoundError, "nope"),
    ("output_lock on a file", lambda f: _enter(_io().output_lock(f.files["file"], "test")), ValueError,
     "is an existing file"),
    ("construct kind", lambda f: _construct(f, "fancy"), ValueError, "fancy"),
    ("construct missing run", lambda f: _construct(f, "rand", source_run=f.files["missing"]), FileNotFoundError,
     "nope"),
    ("construct n 0", lambda f: _construct(f, "rand", n=0), ValueError, "n"),
    ("construct eps -1", lambda f: _construct(f, "rand", eps=-1.0), ValueError, "eps"),
    ("import_madrylab missing", lambda f: _madrylab("import_madrylab", f.files["missing"], f.files["missing"] + "2"),
     FileNotFoundError, "nope"),
    ("export_madrylab not constructed", lambda f: _madrylab("export_madrylab", f.files["dir"],
                                                            f.files["missing"] + "3"), ValueError, "no provenance.json"),
    # -------------------------------------------------------------------------------- theory
    ("TradeoffModel p 2", lambda f: _theory("tradeoff").TradeoffModel(p=2.0, eta=0.1, d=10), ValueError, "p"),
    ("TradeoffModel p nan", lambda f: _theory("tradeoff").TradeoffModel(p=math.nan, eta=0.1, d=10), ValueError, "p"),
    ("TradeoffModel eta 0", lambda f: _theory("tradeoff").TradeoffModel(p=0.9, eta=0.0, d=10), ValueError, "eta"),
    ("TradeoffModel d 0", lambda f: _theory("tradeoff").TradeoffModel(p=0.9, eta=0.1, d=0), ValueError, "d"),
    ("TradeoffModel d float", lambda f: _theory("tradeoff").TradeoffModel(p=0.9, eta=0.1, d=2.5), ValueError, "d"),
    ("bound p 0.2", lambda f: _theory("tradeoff").robust_accuracy_bound(0.9, 0.2), ValueError, "p"),
    ("gaussian sample n 0", lambda f: _theory("gaussian").sample([1.0, 0.0], np.eye(2), 0, 0), ValueError, "n"),
    ("gaussian sample sigma", lambda f: _theory("gaussian").sample([1.0, 0.0], -np.eye(2), 5, 0), ValueError,
     "sigma"),
    ("gaussian sample mu nan", lambda f: _theory("gaussian").sample([math.nan, 0.0], np.eye(2), 5, 0), ValueError,
     "mu"),
    ("gaussian robust eps -1", lambda f: _theory("gaussian").robust_parameters([1.0, 0.0], np.eye(2), -1.0),
     ValueError, "eps"),
    ("linear shift eps -1", lambda f: _theory("linear").max_linear_shift(np.ones(3), -1.0), ValueError, "eps"),
    ("linear table ns 0", lambda f: _theory("linear").linear_shift_table([0], 0.1), ValueError, "n"),
]


def _io():
    from deep import io

    return io


def _enter(cm: Any) -> None:
    with cm:
        pass


def _load_run(path: str):
    from deep.train import load_run

    return load_run(path)


def _construct(f: SimpleNamespace, kind: str, **kw: Any):
    from deep.construct import construct_dataset

    args = {"source_run": f.run, "dataset": f.tiny, "out_dir": f.files["missing"] + "-construct", "n": 4,
            "steps": 1, "progress": False, **kw}
    return construct_dataset(kind, **args)


def _madrylab(name: str, src: str, out: str):
    import deep.construct as construct

    return getattr(construct, name)(src, out)


def _theory(module: str):
    import importlib

    return importlib.import_module(f"theory.{module}")


# --------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def run(tiny: str, tmp_path_factory) -> Path:
    from deep.cli import main

    out = tmp_path_factory.mktemp("runs") / "logreg"
    assert main(["train", "--dataset", tiny, "--model", "logreg", "--epochs", "1", "--batch-size", "32",
                 "--eval-n", "8", "--eval-steps", "1", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def files(tiny: str, run: Path, tmp_path_factory) -> dict[str, str]:
    return make_files(tmp_path_factory.mktemp("bad"), tiny, run)


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(case, tiny: str, run: Path, files: dict[str, str]) -> None:
    _, call, error, message = case
    fx = SimpleNamespace(tiny=tiny, run=str(run), files=files)
    with pytest.raises(error) as info:
        call(fx)
    text = str(info.value)
    assert message in text, text
    assert "Traceback" not in text and len(text) < 600


def test_table_size() -> None:
    assert len(API_CASES) + len(CASES) >= 150
    assert len({c[0] for c in API_CASES}) == len(API_CASES)


def clean_failure(case: tuple[str, str, int, str], values: dict[str, str], code: int, stderr: str) -> str | None:
    """Why a CLI case is not handled cleanly, or None when it is."""
    _, _, want_code, want = case
    want = want.format(**values) if "{" in want else want
    lines = [line for line in stderr.splitlines() if line.strip() and ": note: " not in line]
    if code != want_code:
        return f"exit {code}, wanted {want_code}: {stderr.strip()[-300:]!r}"
    if "Traceback" in stderr:
        return f"traceback: {stderr.strip()[-300:]!r}"
    if want_code != 0 and len(lines) != 1:
        return f"{len(lines)} stderr lines: {stderr.strip()[-300:]!r}"
    if want not in stderr:
        return f"message lacks {want!r}: {stderr.strip()!r}"
    return None


def _run_worker(jobs: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]), "ADVFEAT_PROGRESS": "0"}
    env.pop("ADVFEAT_DEBUG", None)
    proc = subprocess.run([sys.executable, str(TESTS / "bad_input_cases.py")], input=json.dumps(jobs),
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_cli_bad_inputs(files: dict[str, str], tmp_path: Path) -> None:
    jobs = [(c[0], expand(c[1], files, tmp_path / f"out{i}")) for i, c in enumerate(CASES)]
    halves = [list(range(0, len(jobs), 2)), list(range(1, len(jobs), 2))]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda idx: _run_worker([jobs[i] for i in idx]), halves))
    by_index = {i: r for half, res in zip(halves, results) for i, r in zip(half, res)}
    assert len(by_index) == len(CASES)
    failures = []
    for i, case in enumerate(CASES):
        why = clean_failure(case, files, by_index[i]["code"], by_index[i]["stderr"])
        if why is not None:
            failures.append(f"[{i}] {case[0]} {case[1]}: {why}")
    failures += _entry_point_failures(tmp_path)
    rate = 1 - len(failures) / len(CASES)
    print(f"\nbad-input table (CLI): {len(CASES) - len(failures)}/{len(CASES)} clean ({100 * rate:.1f}%)")
    print("\n".join(failures))
    assert rate >= PASS_RATE, "\n".join(failures)



def _entry_point_failures(tmp_path: Path) -> list[str]:
    """The real ``python -m`` entry points give the same one-line errors (one subprocess each)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ADVFEAT_DEBUG", None)
    checks = [("deep", ["eval", "--checkpoint", str(tmp_path / "none"), "--eps", "0.1", "--out", str(tmp_path / "o")],
               "none"),
              ("theory", ["tradeoff", "--d", "0"], "d must be an integer >= 1"),
              ("ray_jobs", ["run", "no-such-spec", "--dry-run"], "no-such-spec"),
              ("figures", ["theory", "--samples", "abc"], "--samples")]
    failures = []
    for module, argv, want in checks:
        proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, env=env, cwd=REPO)
        if not (proc.returncode == 2 and want in proc.stderr and proc.stderr.count("\n") == 1):
            failures.append(f"python -m {module} {' '.join(argv)}: exit {proc.returncode}: {proc.stderr[-300:]!r}")
    return failures
