"""deep.models: every family's shapes and representation size, normalisation inside the model,
hand-counted architectures, input checks, and default normalisation against the real data."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from deep.data import load_split
from deep.models import MODEL_NAMES, ImageClassifier, build_model, default_normalization

torch.set_num_threads(2)

# cheap configurations of every family for the fast suite: (name, options, in_shape, feature dim)
TINY = [
    ("logreg", {}, (1, 6, 6), 36),
    ("mlp", {"hidden": (8, 5)}, (3, 6, 6), 5),
    ("maxout", {"hidden": (8, 6), "pieces": 3}, (1, 6, 6), 6),
    ("rbf", {"units": 5}, (1, 6, 6), 5),
    ("smallcnn", {}, (1, 28, 28), 200),
    ("cifar-cnn", {}, (1, 28, 28), 256),
    ("cifar-cnn", {"widths": (4, 8)}, (3, 6, 6), 8),
    ("resnet18", {}, (3, 4, 4), 512),
    ("preact-resnet18", {}, (1, 4, 4), 512),
    ("wrn-34-10", {"depth": 10, "widen": 1}, (3, 8, 8), 64),
    ("vgg16", {}, (3, 4, 4), 512),
    ("densenet", {"blocks": (1, 2), "growth": 4}, (3, 8, 8), (8 + 4) // 2 + 2 * 4),
    ("inception", {}, (3, 16, 16), 336),
]
FULL = [("resnet50", 2048), ("wrn-34-10", 640), ("densenet", 1024), ("resnet18", 512),
        ("preact-resnet18", 512), ("vgg16", 512), ("inception", 336)]


def test_model_names_are_the_contract():
    assert set(MODEL_NAMES) == {"logreg", "mlp", "maxout", "rbf", "smallcnn", "cifar-cnn", "resnet18", "resnet50",
                                "preact-resnet18", "wrn-34-10", "vgg16", "densenet", "inception"}
    assert {n for n, *_ in TINY} | {n for n, _ in FULL} == set(MODEL_NAMES)


@pytest.mark.parametrize("name,opts,shape,dim", TINY, ids=[f"{t[0]}-{t[2]}" for t in TINY])
def test_shapes_and_features(name, opts, shape, dim):
    torch.manual_seed(0)
    m = build_model(name, num_classes=7, in_shape=shape, **opts)
    assert isinstance(m, ImageClassifier)
    x = torch.rand(2, *shape)
    m.eval()
    with torch.no_grad():
        f = m.features(x)
        out = m(x)
    assert f.shape == (2, dim) and out.shape == (2, 7)
    assert torch.allclose(out, m.head(f), atol=1e-6)
    assert m.head.in_features == dim and m.head.out_features == 7
    if _count(m) < 1_000_000:  # the big families' backward is too slow for the fast suite here
        m.train()
        m(x).sum().backward()  # differentiable in train mode (BatchNorm with batch 2)
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("name,dim", FULL)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_full_size_models(name, dim, shape):
    m = build_model(name, num_classes=10, in_shape=shape).eval()
    with torch.no_grad():
        assert m.features(torch.rand(2, *shape)).shape == (2, dim)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_smallcnn_is_the_trades_architecture():
    m = build_model("smallcnn", num_classes=10, in_shape=(1, 28, 28))
    conv = lambda i, o: i * o * 9 + o  # noqa: E731
    fc = lambda i, o: i * o + o  # noqa: E731
    # 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4: 64·4·4 = 1024 inputs to fc200
    expected = conv(1, 32) + conv(32, 32) + conv(32, 64) + conv(64, 64) + fc(1024, 200) + fc(200, 200) + fc(200, 10)
    assert _count(m) == expected
    assert any(isinstance(mod, torch.nn.Dropout) and mod.p == 0.5 for mod in m.modules())


def test_cifar_cnn_parameter_count():
    m = build_model("cifar-cnn", num_classes=10, in_shape=(3, 32, 32))
    widths = [3, 32, 64, 128, 256]
    convs = sum(a * b * 9 + 2 * b for a, b in zip(widths, widths[1:]))  # conv (no bias) + BN affine
    assert _count(m) == convs + 256 * 10 + 10


def test_resnet18_and_wrn_parameter_counts_match_the_literature():
    # ResNet-18 with the CIFAR stem: 11.17M (MEASURED.md: 11.2M); ResNet-50: 23.5M; WRN-34-10: 46.2M
    assert round(_count(build_model("resnet18", num_classes=10, in_shape=(3, 32, 32))) / 1e6, 2) == 11.17
    assert round(_count(build_model("resnet50", num_classes=10, in_shape=(3, 32, 32))) / 1e6, 1) == 23.5
    assert round(_count(build_model("wrn-34-10", num_classes=10, in_shape=(3, 32, 32))) / 1e6, 1) == 46.2


def test_logreg_is_affine_in_normalised_pixels():
    mean, std = (0.2, 0.4, 0.6), (0.5, 0.25, 2.0)
    m = build_model("logreg", num_classes=3, in_shape=(3, 2, 2), mean=mean, std=std)
    x = torch.rand(4, 3, 2, 2)
    mu = torch.tensor(mean).view(1, 3, 1, 1)
    sd = torch.tensor(std).view(1, 3, 1, 1)
    by_hand = ((x - mu) / sd).flatten(1) @ m.head.weight.T + m.head.bias
    assert torch.allclose(m(x), by_hand, atol=1e-6)


def test_normalisation_lives_inside_the_model():
    torch.manual_seed(1)
    mean, std = (0.3,), (0.2,)
    m = build_model("cifar-cnn", num_classes=4, in_shape=(1, 8, 8), mean=mean, std=std).eval()
    ident = build_model("cifar-cnn", num_classes=4, in_shape=(1, 8, 8)).eval()
    weights = {k: v for k, v in m.state_dict().items() if k not in ("mean", "std")}
    ident.load_state_dict(weights, strict=False)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(m(x), ident((x - 0.3) / 0.2), atol=1e-5)
        before = m(x).clone()
        m.mean.fill_(0.6)
        assert not torch.allclose(m(x), before)
    # mean/std are buffers: they travel with the state_dict through a weights-only round trip
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert float(state["mean"].flatten()[0]) == pytest.approx(0.6) and float(state["std"].flatten()[0]) == pytest.approx(0.2)


def test_input_shape_checks():
    m = build_model("cifar-cnn", num_classes=10, in_shape=(3, 32, 32))
    with pytest.raises(ValueError, match=r"expects input \[N, 3, 32, 32\], got \(2, 1, 32, 32\)"):
        m(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="got \\(2, 3, 28, 28\\)"):
        m.features(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="got \\(3, 32, 32\\)"):
        m(torch.rand(3, 32, 32))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "resnet1000"}, "known models: logreg"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_shape": (3, 32)}, "in_shape"),
        ({"in_shape": (3, 0, 32)}, "in_shape"),
        ({"mean": (0.1, 0.2)}, "mean must have 1 or 3"),
        ({"std": (0.0,)}, "std must be > 0"),
        ({"std": (float("nan"),)}, "finite"),
        ({"widths": ()}, "widths"),
        ({"bogus_option": 3}, "bad options"),
    ],
)
def test_build_model_errors(kwargs, match):
    args = {"name": "cifar-cnn", "num_classes": 10, "in_shape": (3, 32, 32)} | kwargs
    name = args.pop("name")
    with pytest.raises(ValueError, match=match):
        build_model(name, **args)


@pytest.mark.parametrize("name,opts,match", [
    ("smallcnn", {"in_shape": (1, 8, 8)}, "16×16"),
    ("inception", {"in_shape": (3, 8, 8)}, "15×15"),
    ("wrn-34-10", {"depth": 12}, "6n \\+ 4"),
    ("mlp", {"hidden": ()}, "hidden"),
    ("densenet", {"growth": 0}, "growth"),
])
def test_family_option_errors(name, opts, match):
    args = {"num_classes": 10, "in_shape": (3, 32, 32)} | opts
    with pytest.raises(ValueError, match=match):
        build_model(name, **args)


def test_seeded_construction_is_reproducible():
    torch.manual_seed(5)
    a = build_model("smallcnn", num_classes=10, in_shape=(1, 28, 28))
    torch.manual_seed(5)
    b = build_model("smallcnn", num_classes=10, in_shape=(1, 28, 28))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_default_normalization_matches_the_real_data(data_root):
    for name in ("mnist", "fashion-mnist"):
        x = load_split(name, "train", data_root=data_root).x
        mean, std = default_normalization(name)
        assert float(x.mean()) == pytest.approx(mean[0], abs=5e-4)
        assert float(x.std()) == pytest.approx(std[0], abs=5e-4)
    # CIFAR-10's per-channel statistics, estimated on the 5k real subset
    x = load_split("cifar10-subset", "train", data_root=data_root).x
    mean, std = default_normalization("cifar10-subset")
    assert np.allclose(x.mean((0, 2, 3)).numpy(), mean, atol=0.01)
    assert np.allclose(x.transpose(0, 1).flatten(1).std(1).numpy(), std, atol=0.01)
    assert default_normalization("cifar10") == default_normalization("cifar10-subset")


def test_default_normalization_other_names(tmp_path):
    assert default_normalization("npz:/some/file.npz") == ((0.0,), (1.0,))
    assert default_normalization("restricted-imagenet:64") == default_normalization("restricted-imagenet")
    (tmp_path / "shards").mkdir()
    (tmp_path / "provenance.json").write_text(json.dumps({"source_dataset": "mnist", "num_classes": 10}))
    assert default_normalization(str(tmp_path)) == default_normalization("mnist")
    assert default_normalization(f"dir:{tmp_path}") == default_normalization("mnist")
    m = build_model("logreg", num_classes=10, in_shape=(1, 28, 28), mean=default_normalization("mnist")[0],
                    std=default_normalization("mnist")[1])
    assert float(m.mean.flatten()[0]) == pytest.approx(0.1307) and math.isclose(float(m.std.flatten()[0]), 0.3081, rel_tol=1e-6)
