"""Load any classifier for evaluation: a factory, a torchvision model, AutoAttack's example ResNet-18 or a run folder.

``load_model(source, *, weights=None, normalize=None, num_classes=None)`` accepts as ``source``:

- ``"module:function"``: ``function`` in the importable ``module`` (e.g. ``tests.deep.models:tiny``)
  returns an ``nn.Module``; it is called with ``num_classes=K`` when ``num_classes`` is given.
- ``"torchvision:NAME"``: ``torchvision.models.get_model(NAME, weights=None)`` (no download; pass
  ``weights``), e.g. ``torchvision:resnet18``.
- ``"pyautoattack:resnet18"``: the standard CIFAR-10 ResNet-18 shipped in the ``pyautoattack`` wheel
  (``examples/resnet.py`` + ``examples/model_test.pt``; inputs in [0, 1], no normalisation layer); its
  weights file's SHA-256 is checked against ``PYAUTOATTACK_RESNET18_SHA256``.
- anything else: a run folder written by ``deep train`` (or its checkpoint.pt), as ``deep.train.load_run``.

``weights``: a file read with ``torch.load(weights_only=True)`` holding a state_dict, or a dict with the
state_dict under ``state_dict`` / ``model`` / ``model_state_dict``; a ``module.`` prefix on every key
(``nn.DataParallel``) is dropped. Names that do not match the architecture raise a ValueError naming
the missing and unexpected keys.

``normalize``: (mean, std) per channel for models that expect normalised input. The model is wrapped in
:class:`Normalized`, so callers (and attacks) keep feeding images in [0, 1]. ``parse_normalize`` reads
the CLI form.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

PYAUTOATTACK_RESNET18 = "pyautoattack:resnet18"
# sha256 of pyautoattack 0.2.0's examples/model_test.pt (the weights of its CIFAR-10 ResNet-18)
PYAUTOATTACK_RESNET18_SHA256 = "399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7"
_STATE_KEYS = ("state_dict", "model", "model_state_dict")


@dataclass
class LoadedModel:
    """The model (eval mode, CPU unless a run folder says otherwise) and where it came from."""

    model: nn.Module
    source: str
    kind: str                        # "factory" | "torchvision" | "pyautoattack" | "run"
    weights: str | None = None
    weights_sha256: str | None = None
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    recipe: dict[str, Any] | None = field(default=None, repr=False)  # run folders only

    def provenance(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "weights": self.weights,
                "weights_sha256": self.weights_sha256,
                "normalize": None if self.normalize is None else [list(self.normalize[0]), list(self.normalize[1])]}


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for x in [0, 1]; mean and std are per-channel buffers."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        if mean_t.dim() != 1 or mean_t.shape != std_t.shape or mean_t.numel() == 0:
            raise ValueError(f"normalize: mean and std need one value per channel each, "
                             f"got {list(mean)} and {list(std)}")
        finite = bool(torch.isfinite(mean_t).all()) and bool(torch.isfinite(std_t).all())
        if not finite or not bool((std_t > 0).all()):
            raise ValueError(f"normalize: means must be finite and stds finite and > 0, "
                             f"got {list(mean)} and {list(std)}")
        self.model = model
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"normalize has {self.mean.shape[1]} channel(s), input has shape {tuple(x.shape)}")
        return self.model((x - self.mean) / self.std)


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """CLI ``--normalize``: a dataset name (mnist, cifar10, imagenet, ...) or 2·C comma-separated numbers,
    the C means then the C stds ("0.1307,0.3081"; "0.485,0.456,0.406,0.229,0.224,0.225")."""
    from deep.models import normalization

    named = {**normalization._BY_NAME, "imagenet": normalization.IMAGENET}
    key = text.strip().lower()
    if key in named:
        return named[key]
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or len(values) % 2:
        raise ValueError(f"--normalize {text!r}: give a dataset name ({', '.join(sorted(named))}) or 2·C numbers, "
                         "the C means then the C stds, e.g. 0.1307,0.3081")
    half = len(values) // 2
    return tuple(values[:half]), tuple(values[half:])


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ sources
def _from_factory(source: str, num_classes: int | None) -> nn.Module:
    module_name, _, func_name = source.partition(":")
    if not module_name or not func_name.isidentifier():
        raise ValueError(f"model {source!r}: write a factory as 'module:function', e.g. 'mypkg.models:resnet'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model {source!r}: module {module_name!r} does not import: {exc}") from exc
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ValueError(f"model {source!r}: module {module_name!r} has no function {func_name!r}")
    try:
        model = factory() if num_classes is None else factory(num_classes=num_classes)
    except TypeError as exc:
        raise ValueError(f"model {source!r}: calling the factory failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {source!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _from_torchvision(name: str, num_classes: int | None) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models()
    if name not in known:
        raise ValueError(f"torchvision model {name!r} is unknown; known: {', '.join(known)}")
    options = {} if num_classes is None else {"num_classes": num_classes}
    return torchvision.models.get_model(name, weights=None, **options)


def _pyautoattack_example(num_classes: int | None) -> tuple[nn.Module, Path]:
    from deep.packages import PYAUTOATTACK, PYAUTOATTACK_INSTALL, require_package

    require_package(PYAUTOATTACK, needed_for=f"model {PYAUTOATTACK_RESNET18!r}", install=PYAUTOATTACK_INSTALL)
    spec = importlib.util.find_spec(PYAUTOATTACK)
    if spec is None or not spec.submodule_search_locations:  # installed, but not as a package folder
        raise FileNotFoundError(f"model {PYAUTOATTACK_RESNET18!r}: the installed {PYAUTOATTACK!r} has no package "
                                f"folder holding examples/; reinstall it: {PYAUTOATTACK_INSTALL}")
    examples = Path(next(iter(spec.submodule_search_locations))) / "examples"
    if num_classes not in (None, 10):
        raise ValueError(f"model {PYAUTOATTACK_RESNET18!r} is a CIFAR-10 model (10 classes), "
                         f"got num_classes={num_classes}")
    # examples/ is not a package; load its resnet.py by path (the authors' architecture, used as is)
    module_spec = importlib.util.spec_from_file_location("pyautoattack_examples_resnet", examples / "resnet.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ResNet18(), examples / "model_test.pt"


def _state_dict(loaded: Any, path: str) -> Mapping[str, Tensor]:
    if isinstance(loaded, Mapping):
        for key in _STATE_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"weights {path!r} hold no state_dict (a dict of tensors, or one under "
                         f"{' / '.join(_STATE_KEYS)})")
    keys = list(loaded)
    if keys and all(k.startswith("module.") for k in keys):  # saved from nn.DataParallel
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def load_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Load a state_dict file into ``model`` (strict); returns the file's SHA-256."""
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    state = _state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"weights {path!r} do not match the architecture: missing keys {_few(missing)}; "
                         f"unexpected keys {_few(unexpected)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same names, different shapes
        raise ValueError(f"weights {path!r} do not match the architecture: {exc}") from exc
    return sha256_file(path)


def _few(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit]) or "none"
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_model(source: str, *, weights: str | os.PathLike | None = None,
               normalize: tuple[Sequence[float], Sequence[float]] | None = None,
               num_classes: int | None = None, device: torch.device | str | None = None) -> LoadedModel:
    """The model a source names (see the module docstring), in eval mode on ``device`` (default: CPU;
    a run folder: as ``deep.train.load_run``)."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"model source must be a non-empty string, got {source!r}")
    bad_count = isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    if num_classes is not None and bad_count:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    recipe, sha = None, None
    if source == PYAUTOATTACK_RESNET18:
        kind = "pyautoattack"
        model, default_weights = _pyautoattack_example(num_classes)
        if weights is None:
            sha = sha256_file(default_weights)
            if sha != PYAUTOATTACK_RESNET18_SHA256:
                raise ValueError(f"{default_weights} has sha256 {sha}, expected {PYAUTOATTACK_RESNET18_SHA256} "
                                 "(pyautoattack 0.2.0's file); reinstall pyautoattack==0.2.0")
            weights = default_weights
    elif source.startswith("torchvision:"):
        kind, model = "torchvision", _from_torchvision(source.partition(":")[2], num_classes)
    elif ":" in source and not Path(source).exists():
        kind, model = "factory", _from_factory(source, num_classes)
    else:
        if weights is not None:
            raise ValueError(f"model {source!r} is a run folder, which carries its own weights; drop weights")
        from deep.runfolder import load_run

        kind = "run"
        model, recipe = load_run(source, device=device)
    if weights is not None:
        sha = load_weights(model, weights)
    if normalize is not None:
        model = Normalized(model, *normalize)
    if device is not None:
        model = model.to(device)
    model.eval()
    stats = None if normalize is None else (tuple(map(float, normalize[0])), tuple(map(float, normalize[1])))
    return LoadedModel(model, source, kind, None if weights is None else str(weights), sha, stats, recipe)
