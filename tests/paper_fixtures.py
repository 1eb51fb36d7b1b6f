"""Small files in the real formats of the ``paper`` preset: timm/torchvision state dicts,
robustness-library checkpoints, an ImageNet-style ImageFolder, a zoo manifest.

The networks are tiny and random (timm's ``test_*`` configs, torchvision's smallest nets), their
heads refitted to the stand-in images so that they classify some correctly; what is real is the
file layout, so loading them back exercises the published-model path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from advlens.data import ImageSet
from data_writers import write_cifar, write_png, write_stl


def write_imagefolder(root: Path, n_classes: int = 6, per_class: int = 4, side: int = 40,
                      seed: int = 0) -> Path:
    """``root/val/n0000000k/img_j.png``: random RGB images, one folder per class."""
    rng = np.random.default_rng(seed)
    for k in range(n_classes):
        for j in range(per_class):
            write_png(root / "val" / f"n{k:08d}" / f"img_{j}.png",
                      rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
    return root


def fit_head(network: nn.Module, data: ImageSet, mean: tuple, std: tuple) -> nn.Module:
    """Refit the final linear layer of a random ``network`` so that it classifies a random half
    of ``data`` (ridge regression of one-hot labels on the penultimate features; other classes
    get a bias of -10): a stand-in that is right on some images (as the attack suite needs) and
    wrong on others (the scaling law takes the log of the error)."""
    from advlens.features import final_linear, representation
    from advlens.zoo.published import NormalizedClassifier

    data = data.subset(torch.randperm(len(data))[:len(data) // 2])  # right on about half
    feats = representation(NormalizedClassifier(network, mean, std), data.images).double()
    centred = feats - feats.mean(0)
    scale = centred.norm(dim=1).mean().clamp_min(1e-12)
    onehot = torch.nn.functional.one_hot(data.labels, data.num_classes).double()
    gram = centred.T @ centred / scale**2 + 1e-3 * torch.eye(feats.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, centred.T @ (onehot - onehot.mean(0))).T / scale**2
    head = final_linear(network)[1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        k = data.num_classes
        head.weight[:k] = 10 * weight.float()
        head.bias[:k] = 10 * (onehot.mean(0) - weight @ feats.mean(0)).float()
    return network


def write_clickme(root: Path, n_classes: int = 6, per_class: int = 4, side: int = 40,
                  seed: int = 1) -> Path:
    """Per-image ClickMe ``.npz`` files (image H×W×3 uint8, heatmap H×W, label): random images
    with a blob-shaped human-map stand-in, labels 0..n_classes-1."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side]
    for k in range(n_classes):
        for j in range(per_class):
            cy, cx = rng.uniform(0.2 * side, 0.8 * side, 2)
            heat = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 * side**2))
            np.savez(root / f"img_{k}_{j}.npz",
                     image=rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
                     heatmap=heat.astype(np.float32), label=np.int64(k))
    return root


def write_timm(folder: Path, name: str, *, fmt: str = "pth", seed: int = 0,
               fit: ImageSet | None = None, **kwargs: object) -> tuple[Path, nn.Module]:
    """A random timm ``name`` saved as a plain state dict (``.pth``) or ``.safetensors``
    (its head refitted to ``fit`` when given, see :func:`fit_head`)."""
    import timm

    torch.manual_seed(seed)
    network = timm.create_model(name, pretrained=False, **kwargs).eval()
    if fit is not None:
        fit_head(network, fit, network.pretrained_cfg["mean"], network.pretrained_cfg["std"])
    path = folder / f"{name}.{fmt}"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    else:
        torch.save(network.state_dict(), path)
    return path, network


def write_robustness(folder: Path, arch: str, eps: float, *, num_classes: int = 1000,
                     mean: tuple[float, ...] = (0.485, 0.456, 0.406),
                     std: tuple[float, ...] = (0.229, 0.224, 0.225), seed: int = 0,
                     extra: dict | None = None, fit: ImageSet | None = None
                     ) -> tuple[Path, nn.Module]:
    """A checkpoint as the robustness library writes one (with ``dill``): ``{'model':
    AttackerModel state dict under DataParallel's 'module.' prefix (the classifier, the
    attacker's copy, the normaliser's buffers), 'optimizer', 'schedule', 'epoch'}``."""
    import dill

    from advlens import compat

    torch.manual_seed(seed)
    network = compat.robustness_architecture(arch, num_classes).eval()
    if fit is not None:
        fit_head(network, fit, mean, std)
    state = {}
    for key, value in network.state_dict().items():
        state[f"module.model.{key}"] = value
        state[f"module.attacker.model.{key}"] = value.clone()
    for prefix in ("module.normalizer.", "module.attacker.normalize."):
        state[prefix + "new_mean"] = torch.tensor(mean).view(3, 1, 1)
        state[prefix + "new_std"] = torch.tensor(std).view(3, 1, 1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    checkpoint = {"model": state, "optimizer": optimizer.state_dict(), "schedule": None,
                  "epoch": 90, **(extra or {})}
    path = folder / f"{arch}_l2_eps{eps:g}.ckpt"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path, pickle_module=dill)
    return path, network


def write_torchvision(folder: Path, arch: str, *, seed: int = 0) -> tuple[Path, nn.Module]:
    """A random torchvision ``arch`` as a state dict saved from DataParallel ('module.' keys)."""
    import torchvision

    torch.manual_seed(seed)
    network = torchvision.models.get_model(arch, weights=None).eval()
    path = folder / f"{arch}-random.pth"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, path)
    return path, network


# The stand-in paper zoo: two tiny timm models (standard) and two
# torchvision-defined architectures saved by robustness at eps 0 and 3 (the Salman et al. form),
# evaluated at 64 px (their manifest input size) to keep the tests fast.
SIDE = 64
STANDIN_TIMM = {"test_resnet": "resnet", "test_convnext": "convnext"}
STANDIN_ROBUST = {"shufflenet_v2_x0_5": "shufflenet", "mobilenet_v3_small": "mobilenet"}


def write_paper_zoo(root: Path) -> dict[str, str]:
    """Checkpoints, a manifest, an ImageFolder and ClickMe ``.npz`` files under ``root`` (the
    heads fitted on both image sets), and CIFAR-10/STL-10 folders; returns the environment
    variables that point the ``paper`` preset at them."""
    from advlens.data import clickme, imagefolder

    weights = root / "checkpoints"
    write_imagefolder(root / "imagenet")
    write_clickme(root / "clickme")
    folder = imagefolder(root / "imagenet", "val", size=SIDE, progress=False)
    maps = clickme(root / "clickme", size=SIDE, progress=False)
    fit = ImageSet(torch.cat([folder.images, maps.images]),
                   torch.cat([folder.labels, maps.labels]), None, folder.classes, "stand-ins")
    models = []
    for i, (name, family) in enumerate(STANDIN_TIMM.items()):
        path, _ = write_timm(weights, name, seed=i, fit=fit)
        # evaluated as the robustness stand-ins (not as timm's test_* configs say: 0.95)
        models.append({"arch": name, "source": "timm", "family": family,
                       "checkpoint": path.name, "input_size": SIDE,
                       "interpolation": "bilinear", "crop_pct": 0.875})
    for i, (arch, family) in enumerate(STANDIN_ROBUST.items()):
        for eps in (0.0, 3.0):
            path, _ = write_robustness(weights, arch, eps, seed=10 + i + int(eps), fit=fit)
            models.append({"arch": arch, "source": "robustness", "family": family,
                           "checkpoint": path.name, "eps": eps, "input_size": SIDE})
    manifest = root / "paper_zoo.json"
    manifest.write_text(json.dumps({"models": models}, indent=1))
    write_cifar(root / "cifar", train_per_batch=40, n_test=40)  # notebook 04's CIFAR-10 -> STL-10
    write_stl(root / "stl", n=40)
    return {"ADVLENS_CIFAR10": str(root / "cifar"), "ADVLENS_STL10": str(root / "stl"),
            "ADVLENS_CHECKPOINTS": str(weights), "ADVLENS_PAPER_ZOO": str(manifest),
            "ADVLENS_IMAGENET": str(root / "imagenet"), "ADVLENS_CLICKME": str(root / "clickme")}
