"""The threat models each dataset is conventionally evaluated at: one table, used wherever a default ε is needed.

``CONVENTIONAL_EPS[(family, norm)]`` is ε in pixel units. Sources: MNIST / Fashion-MNIST ℓ∞ 0.3
(Madry et al. 2018's MNIST challenge), CIFAR-10 ℓ∞ 8/255 and ℓ2 0.5 (Madry et al.; RobustBench),
MNIST ℓ2 2.0 (Tsipras et al. 2019), Restricted ImageNet ℓ∞ 4/255 and ℓ2 3.0 (Ilyas et al. 2019's
robust models). Datasets outside the table (npz files, constructed directories) have no convention.
Torch-free, so CLI and spec parsing stay cheap.
"""
from __future__ import annotations

CONVENTIONAL_EPS: dict[tuple[str, str], float] = {
    ("mnist", "linf"): 0.3, ("mnist", "l2"): 2.0,
    ("fashion-mnist", "linf"): 0.3, ("fashion-mnist", "l2"): 2.0,
    ("cifar10", "linf"): 8 / 255, ("cifar10", "l2"): 0.5,
    ("restricted-imagenet", "linf"): 4 / 255, ("restricted-imagenet", "l2"): 3.0,
}
_FAMILY = {"cifar10-subset": "cifar10"}  # a subset keeps its parent's convention


def dataset_family(dataset: str) -> str:
    """The table's key for a dataset name: ``restricted-imagenet:128`` -> ``restricted-imagenet``."""
    base = str(dataset).split(":", 1)[0] if str(dataset).startswith("restricted-imagenet") else str(dataset)
    return _FAMILY.get(base, base)


def conventional_eps(dataset: str, norm: str) -> float | None:
    """The conventional ε of ``dataset`` under ``norm`` ("linf" | "l2"); None when there is none."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    return CONVENTIONAL_EPS.get((dataset_family(dataset), norm))
