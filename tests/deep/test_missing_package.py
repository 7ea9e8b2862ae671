"""Without pyautoattack (issue 11/12, bad input): asking for AutoAttack's ResNet-18 or an AutoAttack suite
gives one line naming the package to install, before any work. Absence is simulated two ways: the
module cannot be imported (``sys.modules[name] = None``), or its installed metadata is gone."""
from __future__ import annotations

import importlib.metadata

import pytest
import torch
from torch import nn

from deep.packages import PYAUTOATTACK, MissingPackageError, require_package

INSTALL = "pip install pyautoattack==0.2.0"


def tiny_factory() -> nn.Module:
    """A model of the tiny dataset's shape (1x6x6, 3 classes), loaded by `deep eval --model`."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3))


@pytest.fixture(params=["unimportable", "no-metadata"])
def no_pyautoattack(request, monkeypatch):
    if request.param == "unimportable":
        monkeypatch.setitem(__import__("sys").modules, PYAUTOATTACK, None)
    else:
        real = importlib.metadata.version

        def version(name: str) -> str:
            if name == PYAUTOATTACK:
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)

        monkeypatch.setattr(importlib.metadata, "version", version)
    return request.param


def test_require_package_names_the_package_and_the_install_command(no_pyautoattack):
    with pytest.raises(MissingPackageError) as info:
        require_package(PYAUTOATTACK, needed_for="this feature", install="pip install it")
    assert str(info.value) == "this feature needs the package 'pyautoattack', which is not installed: pip install it"
    assert info.value.name == PYAUTOATTACK
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)


def test_require_package_returns_the_installed_version():
    assert require_package(PYAUTOATTACK, needed_for="x", install="y") == importlib.metadata.version(PYAUTOATTACK)
    with pytest.raises(MissingPackageError, match="'no_such_pkg_h3', which is not installed"):
        require_package("no_such_pkg_h3", needed_for="x", install="y")


def test_resnet18_without_pyautoattack(no_pyautoattack):
    from deep.models.external import load_model

    with pytest.raises(MissingPackageError, match=f"model 'pyautoattack:resnet18' needs the package 'pyautoattack', "
                                                  f"which is not installed: {INSTALL}"):
        load_model("pyautoattack:resnet18")


@pytest.mark.parametrize("suite", ["aa-standard", "apgd-ce", "square"])
def test_autoattack_suite_without_pyautoattack_fails_before_any_batch(no_pyautoattack, suite, monkeypatch):
    from deep.evaluation import run

    def no_batches(*args, **kwargs):
        raise AssertionError("evaluate ran batches before refusing the suite")

    monkeypatch.setattr(run, "_run_batches", no_batches)
    x, y = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
    message = r"an AutoAttack suite name \(aa-standard, .*\) needs the package 'pyautoattack'"
    with pytest.raises(MissingPackageError, match=message):
        run.evaluate(tiny_factory(), (x, y), ["fgsm", suite], eps=0.1, progress=False)


@pytest.mark.parametrize("extra", [["--model", "pyautoattack:resnet18", "--attacks", "fgsm"],
                                   ["--model", f"{__name__}:tiny_factory", "--attacks", "aa-standard"]])
def test_cli_reports_one_line(no_pyautoattack, extra, tiny, tmp_path, capsys):
    from deep.cli import main

    code = main(["eval", *extra, "--dataset", tiny, "--eps", "0.1", "--no-progress", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("python -m deep: error: ") and INSTALL in err, err
