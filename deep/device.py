"""Device choice in one place: CUDA when present, else the CPU. Nothing else calls ``.cuda()``."""
from __future__ import annotations

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
