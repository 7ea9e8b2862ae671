"""Models, data and checks shared by the deep.attacks tests (test_attacks_linear/_mlp/_settings.py).

For a linear classifier z = Wx + b and a point whose ε-ball stays inside [0, 1] (images in [0.3, 0.7],
ε < 0.3, so the box never clips), the exact robust set is: x is robust iff it is classified correctly
and every margin z_y − z_j exceeds ε‖w_y − w_j‖₁ (ℓ∞) or ε‖w_y − w_j‖₂ (ℓ2); ``closed_form_robust``
computes it. The ``mlp`` fixture (a trained ``MLP``, once per module) lives in tests/deep/conftest.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


SHAPE = (1, 4, 4)  # 16 input dimensions: tiny and fast
D = 16


class LinearNet(nn.Module):
    """ImageClassifier shape: features = flatten (identity), head = nn.Linear."""

    def __init__(self, num_classes: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(D, num_classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(num_classes, D, generator=g))
            self.head.bias.copy_(0.5 * torch.randn(num_classes, generator=g))

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Small nonlinear net with BatchNorm and Dropout (train/eval mode matters)."""

    def __init__(self, num_classes: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(D, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(32, num_classes)
        self.seen_training: list[bool] = []

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        self.seen_training.append(self.training)
        return self.head(self.features(x))


def interior_data(n: int, num_classes: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(n, *SHAPE, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return x, y


def closed_form_robust(model: LinearNet, x: Tensor, y: Tensor, eps: float, norm: str) -> Tensor:
    """Bool [N]: the exact ℓp robustness of a linear classifier (no box clipping)."""
    w = model.head.weight.detach()
    z = model(x).detach()
    q = 1 if norm == "linf" else 2
    robust = torch.ones(len(y), dtype=torch.bool)
    for j in range(w.shape[0]):
        margin = z.gather(1, y[:, None]).squeeze(1) - z[:, j]
        dual = (w[y] - w[j]).norm(p=q, dim=1)
        robust &= (y == j) | (margin > eps * dual)
    return robust


def correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model.eval()(x).argmax(1) == y


def train_mlp(num_classes: int = 4, seed: int = 0) -> tuple[MLP, Tensor, Tensor]:
    """Gaussian blobs in [0, 1]^16; a few hundred Adam steps give a near-perfect tiny classifier."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.2 + 0.6 * torch.rand(num_classes, D, generator=g)
    y = torch.randint(0, num_classes, (256,), generator=g)
    x = (centres[y] + 0.05 * torch.randn(256, D, generator=g)).clamp(0, 1).view(-1, *SHAPE)
    model = MLP(num_classes, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x, y


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def full_box_data(n: int = 64) -> tuple[Tensor, Tensor]:
    """Images touching 0 and 1 so that box clipping is active."""
    g = torch.Generator().manual_seed(9)
    x = torch.rand(n, *SHAPE, generator=g)
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    return x, torch.randint(0, 4, (n,), generator=g)


def assert_in_ball_and_box(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).flatten(1)
    dist = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert dist.max() <= eps + 1e-6
