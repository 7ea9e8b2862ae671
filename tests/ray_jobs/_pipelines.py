"""Spec data shared by the ray_jobs tests that run the real deep kinds end to end."""
from __future__ import annotations

from typing import Any


def tiny_pipeline() -> dict[str, Any]:
    """[IL]'s chain at tiny size: train an MLP on 512 MNIST images -> construct D_det (128 images, 5
    steps) -> train on it -> evaluate FGSM on 100 test images."""
    base = {"model": "mlp", "method": "standard", "epochs": 1, "batch_size": 64, "lr": 0.05, "eval_n": 100}
    return {"stages": {
        "train": {"kind": "train", "config": {**base, "first_n": 512}, "grid": {"dataset": ["mnist"]}},
        "make": {"kind": "construct", "needs": {"source": "train"},
                 "config": {"n": 128, "eps": 2.0, "step": 0.4, "steps": 5},
                 "grid": {"dataset": ["mnist"], "construct": ["det"]}},
        "retrain": {"kind": "train", "needs": {"dataset": "make"}, "config": base,
                    "grid": {"dataset": ["mnist"], "_construct": ["det"]}},
        "eval": {"kind": "eval", "needs": {"model": "retrain"},
                 "config": {"first_n": 100, "suite": ["fgsm"], "eps": 0.1, "norm": "linf"},
                 "grid": {"dataset": ["mnist"], "_construct": ["det"]}},
    }}
