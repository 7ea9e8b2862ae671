"""The toy task, source model and build call shared by the deep.construct tests
(test_construct_kinds/_resume/_formats.py). The ``trained`` fixture (``train_source_model()``, once per
module) lives in tests/deep/conftest.py.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from deep.construct import build_from_tensors, read_provenance


SHAPE = (1, 4, 4)
D = 16
C = 3


class TinyNet(nn.Module):
    """ImageClassifier shape: features = a small ReLU layer, head = linear."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(D, 12), nn.ReLU())
        self.head = nn.Linear(12, C)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def make_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Classes differ by which quarter of the image is bright; plus noise. Values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = 0.35 + 0.1 * torch.rand(n, *SHAPE, generator=g)
    for k in range(C):
        x[y == k, 0, k, :] += 0.3
    return x.clamp(0, 1), y


def train_source_model() -> tuple[TinyNet, Tensor, Tensor]:
    """A TinyNet fitted to 120 examples of ``make_data`` (the source model of every toy build)."""
    x, y = make_data(120, seed=1)
    model = TinyNet(seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.95  # the source model learnt the task
    return model, x, y


def build(tmp_path, kind, trained, name="out", **kw):
    model, x, y = trained
    kw = {"eps": 1.0, "step": 0.1, "steps": 20, "seed": 3, "batch_size": 16, "shard_size": 40,
          "progress": False, "num_classes": C,
          "source": {"source_dataset": "toy", "source_split": "train"}, **kw}
    out = tmp_path / name
    prov = build_from_tensors(kind, model, x, y, out, **kw)
    return out, prov


def shard_arrays(out) -> list[dict[str, np.ndarray]]:
    prov = read_provenance(out)
    res = []
    for name in prov["shards"]:
        with np.load(out / name, allow_pickle=False) as z:
            res.append({k: z[k] for k in z.files if k != "seconds"})
    return res
