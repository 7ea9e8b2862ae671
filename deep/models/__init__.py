"""Image classifiers by name, each owning its normalisation and exposing ``features`` (docs/DESIGN.md).

``build_model(name, num_classes=K, in_shape=(C, H, W), mean=..., std=..., **family_options)``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from deep.models.base import ImageClassifier, check_in_shape
from deep.models.cifar_cnn import cifar_cnn_body
from deep.models.linear import logreg_body, mlp_body
from deep.models.maxout import maxout_body
from deep.models.normalization import default_normalization
from deep.models.densenet import densenet_body
from deep.models.inception import inception_body
from deep.models.rbf import rbf_body
from deep.models.resnet import preact_resnet18_body, resnet18_body, resnet50_body
from deep.models.smallcnn import smallcnn_body
from deep.models.vgg import vgg16_body
from deep.models.wide_resnet import wide_resnet_body

BodyBuilder = Callable[..., tuple[nn.Module, int]]

_BODIES: dict[str, BodyBuilder] = {
    "logreg": logreg_body,
    "mlp": mlp_body,
    "maxout": maxout_body,  # Goodfellow et al. 2015's MNIST net
    "rbf": rbf_body,  # Goodfellow et al. 2015 §7's shallow RBF network
    "smallcnn": smallcnn_body,
    "cifar-cnn": cifar_cnn_body,
    "resnet18": resnet18_body,
    "resnet50": resnet50_body,
    "preact-resnet18": preact_resnet18_body,
    "wrn-34-10": wide_resnet_body,
    "vgg16": vgg16_body,
    "densenet": densenet_body,
    "inception": inception_body,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BODIES)


def model_option_names(name: str) -> tuple[str, ...]:
    """The keyword options the family ``name`` takes besides the input shape (``build_model``'s ``kwargs``)."""
    if name not in _BODIES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    params = list(inspect.signature(_BODIES[name]).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def build_model(
    name: str,
    *,
    num_classes: int,
    in_shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs,
) -> ImageClassifier:
    """A fresh classifier of the named family; ``kwargs`` go to the family (e.g. ``hidden`` for mlp).

    mean/std default to the identity (0, 1); pass ``default_normalization(dataset)`` for the usual.
    """
    if name not in _BODIES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    shape = check_in_shape(in_shape)
    try:
        body, dim = _BODIES[name](shape, **kwargs)
    except TypeError as exc:  # an option the family does not take
        raise ValueError(f"model {name!r}: bad options {sorted(kwargs)}: {exc}") from exc
    return ImageClassifier(body, dim, num_classes=num_classes, in_shape=shape, mean=mean, std=std)


__all__ = ["ImageClassifier", "MODEL_NAMES", "build_model", "default_normalization", "model_option_names"]
