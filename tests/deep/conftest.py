"""Fixtures shared by the deep tests: the tiny npz dataset and single-threaded torch."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from _tiny import write_tiny_npz


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The deep.data name of a fresh tiny npz dataset (see ``_tiny.write_tiny_npz``), one per module."""
    return write_tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run ~50x faster on one thread when the 2 shared cores are busy (measured).

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the thread count is restored after
    the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
