"""Zoo architectures: shapes on both datasets, the penultimate representation on every family,
no hook leaks, modes restored, no module called twice, seeded initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens.features import final_linear, representation
from advlens.zoo.architectures import ARCHS, DATASET_SHAPES, FAMILIES, Normalize, build_model

# the smallest architecture of each family
SMALLEST = {family: next(a for a, s in ARCHS.items() if s.family == family)
            for family in FAMILIES}


def _images(dataset: str, n: int = 5, seed: int = 0) -> torch.Tensor:
    channels, size = DATASET_SHAPES[dataset]
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _with_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.normalize.set_stats(x)
    return model


def test_six_families_registered() -> None:
    assert set(FAMILIES) >= {"mlp", "cnn", "vgg", "resnet", "vit", "convmixer"}


@pytest.mark.parametrize("dataset", sorted(DATASET_SHAPES))
@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_forward_shape_and_head_last(family: str, dataset: str) -> None:
    model = build_model(SMALLEST[family], dataset).eval()
    x = _images(dataset)
    assert model(x).shape == (5, 10)
    name, head = final_linear(model)
    assert name == "head" and head is model.head
    assert list(dict(model.named_children())) == ["normalize", "body", "head"]


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_representation_is_body_output_and_leaves_no_hooks(family: str) -> None:
    x = _images("digits", 7)
    model = _with_stats(build_model(SMALLEST[family], "digits"), x).eval()
    rep = representation(model, x)
    with torch.no_grad():
        manual = model.body((x - model.normalize.mean) / model.normalize.std)
        logits = model(x)
    assert rep.shape == (7, model.feature_dim)
    torch.testing.assert_close(rep, manual, rtol=0, atol=1e-6)
    # the representation is exactly what the head consumes
    torch.testing.assert_close(model.head(rep), logits, rtol=1e-5, atol=1e-5)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_representation_in_eval_mode_and_train_mode_restored(family: str) -> None:
    x = _images("twin-cue", 6)
    model = _with_stats(build_model(SMALLEST[family], "twin-cue"), x)
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        model.train()
        model(x)  # move BatchNorm running stats away from their initial values
    model.train()
    rep = representation(model, x)
    assert all(m.training for m in model.modules())
    model.eval()
    with torch.no_grad():
        expected = model.features(x)
    torch.testing.assert_close(rep, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", sorted(SMALLEST))
def test_no_module_called_twice(family: str) -> None:
    model = build_model(SMALLEST[family], "digits").eval()
    calls: dict[str, int] = {}
    handles = [m.register_forward_hook(
        lambda _m, _a, _o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
        for name, m in model.named_modules()]
    with torch.no_grad():
        model(_images("digits"))
    for h in handles:
        h.remove()
    assert max(calls.values()) == 1, {k: v for k, v in calls.items() if v > 1}
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_seeded_init_is_reproducible_and_private() -> None:
    state = torch.get_rng_state()
    a = build_model("vit-xs", "digits", seed=3).state_dict()
    b = build_model("vit-xs", "digits", seed=3).state_dict()
    c = build_model("vit-xs", "digits", seed=4).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])


def test_normalize_matches_per_channel_stats() -> None:
    x = _images("twin-cue", 50).double()
    norm = Normalize(3).double()
    norm.set_stats(x)
    out = norm(x)
    for c in range(3):
        channel = out[:, c].flatten()
        assert abs(float(channel.mean())) < 1e-9
        assert abs(float(channel.std()) - 1.0) < 1e-9


def test_width_spread_within_families() -> None:
    params = {a: sum(p.numel() for p in build_model(a, "digits").parameters())
              for a in ("mlp-xs", "mlp-xl", "cnn-xs", "cnn-xl")}
    assert params["mlp-xl"] > 10 * params["mlp-xs"]
    assert params["cnn-xl"] > 100 * params["cnn-xs"]


def test_unknown_arch_and_dataset_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("no-such-arch", "digits")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_model("cnn-xs", "imagenet")


@pytest.mark.parametrize("arch, params", [
    # Liang et al.'s models/resnet.py (res_net18 / res_net50, 10 classes) and models/fc.py:
    # 11,173,962 and 23,520,842 parameters (the CIFAR ResNets' well-known counts); fcnet
    # 3072·1176 + 1176 + 1176·400 + 400 + 400·120 + 120 + 120·84 + 84 + 84·10 + 10
    ("resnet18-cifar", 11_173_962), ("resnet50-cifar", 23_520_842),
    ("fcnet", 3072 * 1176 + 1176 + 1176 * 400 + 400 + 400 * 120 + 120 + 120 * 84 + 84
     + 84 * 10 + 10),
    # le_net (their exp1/models/lenet.py): unpadded convs, 16·5·5 inputs to its first layer
    ("lenet", 3 * 6 * 25 + 6 + 6 * 16 * 25 + 16 + 16 * 5 * 5 * 120 + 120 + 120 * 84 + 84
     + 84 * 10 + 10),
])
def test_liang_architectures_are_theirs(arch: str, params: int) -> None:
    model = build_model(arch, "cifar10")
    assert sum(p.numel() for p in model.parameters()) == params
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_cifar_resnet_keeps_a_32_pixel_image_at_4x4_in_its_last_stage() -> None:
    """Their stem (3×3, stride 1, no max-pool): 32 → 32 → 16 → 8 → 4; torchvision's ImageNet stem
    left 1×1 (the reason the CIFAR variant exists)."""
    sides = {}
    for arch in ("resnet18-cifar", "tv-resnet18"):
        model = build_model(arch, "cifar10").eval()
        hook = model.body.layer4.register_forward_hook(
            lambda _m, _i, out, arch=arch: sides.__setitem__(arch, tuple(out.shape[2:])))
        model(torch.rand(1, 3, 32, 32))
        hook.remove()
    assert sides == {"resnet18-cifar": (4, 4), "tv-resnet18": (1, 1)}
    stem = build_model("resnet18-cifar", "cifar10").body.conv1
    assert (stem.kernel_size, stem.stride, stem.padding) == ((3, 3), (1, 1), (1, 1))
