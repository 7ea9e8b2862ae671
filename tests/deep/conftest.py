"""Fixtures shared by the deep tests: the tiny npz dataset, single-threaded torch, and the small trained
models of the attack tests (``mlp``) and the construct tests (``trained``)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import torch
from torch import Tensor

from _linear_attacks import MLP, correct, train_mlp
from _tiny import write_tiny_npz

if TYPE_CHECKING:
    from _construct_toy import TinyNet


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


@pytest.fixture(scope="module")
def mlp() -> tuple[MLP, Tensor, Tensor]:
    """A near-perfect tiny MLP on Gaussian blobs and its training data (``_linear_attacks.train_mlp``)."""
    model, x, y = train_mlp()
    assert correct(model, x, y).float().mean() > 0.95
    return model, x, y


@pytest.fixture(scope="module")
def trained() -> tuple[TinyNet, Tensor, Tensor]:
    """The construct tests' source model and its toy data (``_construct_toy.train_source_model``)."""
    from _construct_toy import train_source_model  # imports deep.construct: only where it is used

    return train_source_model()
