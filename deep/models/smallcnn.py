"""SmallCNN of TRADES (Zhang et al. 2019) for MNIST, the model of MART's MNIST experiments:
conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-(head), ReLU, 3×3 valid convolutions, dropout 0.5
after the first fully-connected layer."""
from __future__ import annotations

from torch import nn

from deep.models.base import output_dim


def smallcnn_body(in_shape: tuple[int, int, int], dropout: float = 0.5) -> tuple[nn.Module, int]:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"smallcnn dropout must lie in [0, 1), got {dropout}")
    convs = nn.Sequential(
        nn.Conv2d(in_shape[0], 32, 3), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    if in_shape[1] < 16 or in_shape[2] < 16:
        raise ValueError(f"smallcnn needs images of at least 16×16, got {in_shape}")
    flat = output_dim(convs, in_shape)  # 64·4·4 = 1024 on 28×28
    body = nn.Sequential(
        convs,
        nn.Linear(flat, 200), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(200, 200), nn.ReLU(inplace=True),
    )
    return body, 200
