"""Third-party packages that only some features need (today: ``pyautoattack``), checked before use.

A feature that needs such a package calls :func:`require_package` before doing any work, so a missing
package is reported at once (not after an hour of clean evaluation) and in one line naming the
package and the command that installs it. :class:`MissingPackageError` is a ``ModuleNotFoundError``
(what Python code expects of a missing module) and a ``ValueError`` (what every command line of the
project reports as a user error in one line, deep/cli/errors.py).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util

PYAUTOATTACK = "pyautoattack"
# pyproject.toml pins it (the resume notes and the example weights' sha256 are 0.2.0's)
PYAUTOATTACK_INSTALL = "pip install pyautoattack==0.2.0 (or reinstall this package: pip install -e .)"


class MissingPackageError(ModuleNotFoundError, ValueError):
    """A feature asked for needs a package that is not installed."""


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None  # None also when sys.modules[package] is None
    except (ImportError, ValueError):  # a broken parent package, or a module object without __spec__
        return False


def require_package(package: str, *, needed_for: str, install: str) -> str:
    """The installed version of ``package``; MissingPackageError saying what needs it (``needed_for``)
    and how to install it (``install``) when it is not importable or has no installed metadata."""
    if _importable(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    raise MissingPackageError(f"{needed_for} needs the package {package!r}, which is not installed: {install}",
                              name=package)
