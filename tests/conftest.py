"""Shared test configuration: the slow-test gate and the data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real offline data (../shared/data, or $ADVFEAT_DATA); tests needing it skip if absent."""
    root = Path(os.environ.get("ADVFEAT_DATA", SHARED_DATA))
    if not (root / "MNIST").is_dir():
        pytest.skip(f"real data not found at {root}")
    return root
