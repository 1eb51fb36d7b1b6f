"""Zoo architectures for 16×16×1 digits and 32×32×3 twin-cue (and CIFAR-10 / STL-10) images.

Every zoo model is a :class:`ZooNet`: ``normalize`` (per-dataset mean/std buffers) → ``body``
(returns a flat (N, D) feature vector) → ``head`` (the final ``nn.Linear``, registered last).
So ``advlens.features.representation(model, x)`` — the input of the last ``nn.Linear`` — is
``model.body(model.normalize(x))`` for every family. No activation is in-place, and but for the
torchvision-built ResNets (``resnet18-cifar``, ``resnet50-cifar``, ``tv-resnet*``: a block calls
its one ``relu`` module two or three times) no module is called twice in a forward pass, so hooks
on any submodule see what that module computed (on those ResNets, hook blocks, not ``relu``).

Families (six), each at several widths/depths so test errors spread:
``mlp`` (fully connected), ``cnn`` (small LeNet-like conv net), ``vgg`` (3×3 conv pairs + BN + a
hidden FC layer), ``resnet`` (CIFAR-style ResNet-8/14/20 with BasicBlocks), ``vit`` (timm
``VisionTransformer``, patch 4, mean-pooled tokens) and ``convmixer`` (Trockman & Kolter).
Conv nets downsample until the map is 4×4, so one architecture serves both image sizes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advlens.rng import seeded

NUM_CLASSES = 10


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` with the statistics held as buffers (saved in the
    state dict); set them from the training images with :meth:`set_stats`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    @torch.no_grad()
    def set_stats(self, images: Tensor) -> None:
        """Set mean/std per channel from a batch of [0, 1] images (N, C, H, W)."""
        self.mean.copy_(images.mean(dim=(0, 2, 3)).view_as(self.mean))
        self.std.copy_(images.std(dim=(0, 2, 3)).clamp_min(1e-3).view_as(self.std))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ZooNet(nn.Module):
    """Normalize → body → linear head. Takes unnormalised [0, 1] images, returns logits."""

    def __init__(self, body: nn.Module, feature_dim: int, channels: int,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.normalize = Normalize(channels)
        self.body = body
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The penultimate representation (N, D): the head's input."""
        return self.body(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _stages(size: int) -> int:
    """Number of 2× downsamplings that bring a ``size``×``size`` map to 4×4."""
    if size < 4 or size & (size - 1):
        raise ValueError(f"zoo conv nets need a power-of-two image size >= 4; got {size}.")
    return int(math.log2(size // 4))


def mlp(channels: int, size: int, *, width: int, depth: int = 2) -> tuple[nn.Module, int]:
    """``depth`` hidden layers of ``width`` units with ReLU."""
    layers: list[nn.Module] = [nn.Flatten()]
    d_in = channels * size * size
    for _ in range(depth):
        layers += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    return nn.Sequential(*layers), width


def cnn(channels: int, size: int, *, width: int) -> tuple[nn.Module, int]:
    """Conv-ReLU-maxpool blocks doubling the width down to 4×4, then global average pooling
    (2 blocks on 16×16 digits, 3 on 32×32 twin-cue)."""
    layers: list[nn.Module] = []
    c_in, c_out = channels, width
    for _ in range(_stages(size)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c_in, c_out = c_out, 2 * c_out
    layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.ReLU(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


def vgg(channels: int, size: int, *, width: int, hidden: int = 128) -> tuple[nn.Module, int]:
    """VGG-style stages of two 3×3 conv-BN-ReLU layers and a max-pool, then a hidden FC layer
    on the flattened 4×4 map (like VGG's classifier)."""
    layers: list[nn.Module] = []
    c_in, c_out = channels, width
    for _ in range(_stages(size)):
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        layers.append(nn.MaxPool2d(2))
        c_out *= 2
    layers += [nn.Flatten(), nn.Linear(c_in * 16, hidden), nn.ReLU()]
    return nn.Sequential(*layers), hidden


class BasicBlock(nn.Module):
    """ResNet BasicBlock (He et al. 2016) with its own ReLU modules (none shared or in-place)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


def resnet(channels: int, size: int, *, blocks: int, width: int = 16) -> tuple[nn.Module, int]:
    """CIFAR-style ResNet-(6·blocks+2): a 3×3 stem, three stages of ``blocks`` BasicBlocks at
    widths (w, 2w, 4w) with strides (1, 2, 2), global average pooling."""
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU()]
    c_in = width
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for i in range(blocks):
            layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


def vit(channels: int, size: int, *, dim: int, depth: int, heads: int,
        patch: int = 4) -> tuple[nn.Module, int]:
    """timm ``VisionTransformer`` without its head (``num_classes=0``): patch ``patch``, no
    class token, mean-pooled tokens followed by LayerNorm (``global_pool="avg"``)."""
    from timm.models.vision_transformer import VisionTransformer

    body = VisionTransformer(img_size=size, patch_size=patch, in_chans=channels, num_classes=0,
                             global_pool="avg", class_token=False, embed_dim=dim, depth=depth,
                             num_heads=heads, mlp_ratio=2.0)
    return body, dim


class _Residual(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return x + self.inner(x)


def convmixer(channels: int, size: int, *, dim: int, depth: int, kernel: int = 5,
              patch: int = 2) -> tuple[nn.Module, int]:
    """ConvMixer (Trockman & Kolter 2022): patch embedding, then ``depth`` blocks of a residual
    depthwise conv and a pointwise conv, each followed by GELU and BatchNorm."""
    layers: list[nn.Module] = [nn.Conv2d(channels, dim, patch, stride=patch), nn.GELU(),
                               nn.BatchNorm2d(dim)]
    for _ in range(depth):
        layers += [
            _Residual(nn.Sequential(nn.Conv2d(dim, dim, kernel, groups=dim, padding="same"),
                                    nn.GELU(), nn.BatchNorm2d(dim))),
            nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim),
        ]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), dim


def lenet(channels: int, size: int) -> tuple[nn.Module, int]:
    """LeNet-5 (LeCun et al. 1998) as Liang et al.'s ``le_net`` (their ``models/lenet.py``):
    two unpadded 5×5 conv-ReLU-maxpool stages (6 and 16 maps; 5×5 maps left from 32×32, 1×1
    from 16×16), then fully connected 120 → 84 with ReLU (their experiment B)."""
    side = ((size - 4) // 2 - 4) // 2
    body = nn.Sequential(nn.Conv2d(channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16 * side * side, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU())
    return body, 84


def alexnet(channels: int, size: int) -> tuple[nn.Module, int]:
    """AlexNet for small images (the CIFAR variant: five 3×3 conv layers of 64-192-384-256-256
    maps, three max-pools, fully connected 1024 → 512 with ReLU)."""
    side = size // 8
    widths = (channels, 64, 192, 384, 256, 256)
    layers: list[nn.Module] = []
    for i in range(5):
        layers += [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1), nn.ReLU()]
        if i in (0, 1, 4):
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(256 * side * side, 1024), nn.ReLU(), nn.Linear(1024, 512),
               nn.ReLU()]
    return nn.Sequential(*layers), 512


def torchvision_resnet(channels: int, size: int, *, depth: int) -> tuple[nn.Module, int]:
    """torchvision's ResNet-18/50 (ImageNet stem) without its ``fc`` (an Identity), the first conv
    taking ``channels``. Its ReLUs are made not in-place, but unlike the other bodies a block
    calls its one ``relu`` module twice (three times in ResNet-50's Bottleneck): hook blocks, not
    their ``relu``."""
    import torchvision

    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    net.conv1 = nn.Conv2d(channels, 64, 7, stride=2, padding=3, bias=False)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net, dim


def cifar_resnet(channels: int, size: int, *, depth: int) -> tuple[nn.Module, int]:
    """ResNet-18/50 of the CIFAR variant that Liang et al.'s code trains on 32×32 images
    (``res_net18`` / ``res_net50`` of their ``models/resnet.py``): torchvision's ResNet with a
    3×3 stride-1 stem and no max-pool, so a 32×32 image is 4×4 at the last stage (1×1 with the
    ImageNet stem of :func:`torchvision_resnet`). Without its ``fc``; hook blocks, not ``relu``."""
    net, dim = torchvision_resnet(channels, size, depth=depth)
    net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision
    net.maxpool = nn.Identity()
    return net, dim


def fcnet(channels: int, size: int) -> tuple[nn.Module, int]:
    """Liang et al.'s ``fcnet`` (their ``models/fc.py``): fully connected layers of 1176, 400,
    120 and 84 units with ReLU (then the head)."""
    widths = (channels * size * size, 1176, 400, 120, 84)
    layers: list[nn.Module] = [nn.Flatten()]
    for d_in, d_out in itertools.pairwise(widths):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    return nn.Sequential(*layers), widths[-1]


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: its family and a builder ``(channels, size) -> (body, D)``."""

    family: str
    make_body: Callable[[int, int], tuple[nn.Module, int]]
    description: str


def _spec(family: str, fn: Callable[..., tuple[nn.Module, int]], description: str,
          **kw: int) -> ArchSpec:
    return ArchSpec(family, lambda c, s: fn(c, s, **kw), description)


ARCHS: dict[str, ArchSpec] = {
    **{f"mlp-{k}": _spec("mlp", mlp, f"MLP, 2 hidden layers of {w}", width=w)
       for k, w in (("xs", 16), ("s", 32), ("m", 64), ("l", 128), ("xl", 256))},
    **{f"cnn-{k}": _spec("cnn", cnn, f"CNN, base width {w}", width=w)
       for k, w in (("xs", 4), ("s", 8), ("m", 16), ("l", 32), ("xl", 64))},
    **{f"vgg-{k}": _spec("vgg", vgg, f"VGG-like, base width {w}", width=w)
       for k, w in (("xs", 4), ("s", 8), ("m", 16))},
    **{f"resnet{6 * b + 2}": _spec("resnet", resnet, f"ResNet-{6 * b + 2}, width 16", blocks=b)
       for b in (1, 2, 3)},
    "resnet8-xs": _spec("resnet", resnet, "ResNet-8, width 4", blocks=1, width=4),
    "vit-xs": _spec("vit", vit, "ViT, dim 32, depth 2, 2 heads", dim=32, depth=2, heads=2),
    "vit-s": _spec("vit", vit, "ViT, dim 64, depth 4, 4 heads", dim=64, depth=4, heads=4),
    "convmixer-xs": _spec("convmixer", convmixer, "ConvMixer, dim 32, depth 2", dim=32, depth=2),
    "convmixer-s": _spec("convmixer", convmixer, "ConvMixer, dim 64, depth 4", dim=64, depth=4),
    # Liang et al.'s experiment-B architectures (the paper preset of notebook 04)
    "fcnet": _spec("mlp", fcnet, "fcnet: MLP, hidden layers of 1176, 400, 120, 84"),
    "lenet": _spec("cnn", lenet, "LeNet-5"),
    "alexnet": _spec("cnn", alexnet, "AlexNet (CIFAR variant)"),
    "resnet18-cifar": _spec("resnet", cifar_resnet, "ResNet-18 (CIFAR stem)", depth=18),
    "resnet50-cifar": _spec("resnet", cifar_resnet, "ResNet-50 (CIFAR stem)", depth=50),
    "tv-resnet18": _spec("resnet", torchvision_resnet, "torchvision ResNet-18", depth=18),
    "tv-resnet50": _spec("resnet", torchvision_resnet, "torchvision ResNet-50", depth=50),
}
FAMILIES = tuple(dict.fromkeys(spec.family for spec in ARCHS.values()))

DATASET_SHAPES = {"digits": (1, 16), "twin-cue": (3, 32), "cifar10": (3, 32), "stl10": (3, 32)}


def build_model(arch: str, dataset: str, *, seed: int = 0,
                num_classes: int = NUM_CLASSES) -> ZooNet:
    """A freshly initialised :class:`ZooNet` for ``dataset`` (a key of :data:`DATASET_SHAPES`:
    "digits", "twin-cue", "cifar10" or "stl10").

    Initialisation draws from a private RNG seeded with ``seed`` (the global RNG state is
    saved and restored), so the same seed gives identical weights without touching the caller's
    random state — timm initialises through the global RNG, hence :func:`advlens.rng.seeded`.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; registered: {sorted(ARCHS)}.")
    if dataset not in DATASET_SHAPES:
        raise ValueError(f"unknown dataset {dataset!r}; zoo datasets: {sorted(DATASET_SHAPES)}.")
    channels, size = DATASET_SHAPES[dataset]
    with seeded(seed):
        body, dim = ARCHS[arch].make_body(channels, size)
        return ZooNet(body, dim, channels, num_classes)
