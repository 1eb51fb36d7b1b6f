"""Published checkpoints of the ``paper`` preset: timm ImageNet models and the Salman et al.
(2020) L2-robust ImageNet zoo loadable with ``robustness``.

Loading them is not implemented yet: :func:`checkpoint_path` says which file is needed, and
where (``$ADVLENS_CHECKPOINTS``), so a ``paper`` run fails early with an actionable message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHECKPOINTS_ENV = "ADVLENS_CHECKPOINTS"


@dataclass(frozen=True)
class PaperArch:
    """An architecture of the paper zoo: its family and where its weights come from."""

    family: str
    source: str


# Salman et al. 2020 ("Do adversarially robust ImageNet models transfer better?"), L2 radii.
SALMAN_ARCHS = {
    "resnet18": "resnet", "resnet50": "resnet", "wide_resnet50_2": "resnet",
    "wide_resnet50_4": "resnet", "densenet161": "densenet", "mobilenet_v2": "mobilenet",
    "resnext50_32x4d": "resnet", "shufflenet_v2_x1_0": "shufflenet", "vgg16_bn": "vgg",
}
SALMAN_EPS = (0.0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0)
SALMAN_EPS_ARCHS = ("resnet18", "resnet50", "wide_resnet50_2", "wide_resnet50_4")
# Standard ImageNet classifiers from timm for the scaling law and transfer matrix.
TIMM_ARCHS = {
    "vgg16.tv_in1k": "vgg", "vgg19.tv_in1k": "vgg", "resnet18.tv_in1k": "resnet",
    "resnet50.tv_in1k": "resnet", "resnet101.tv_in1k": "resnet",
    "densenet121.tv_in1k": "densenet", "mobilenetv2_100.ra_in1k": "mobilenet",
    "inception_v3.tv_in1k": "inception", "vit_small_patch16_224.augreg_in21k_ft_in1k": "vit",
    "vit_base_patch16_224.augreg_in21k_ft_in1k": "vit",
    "mixer_b16_224.goog_in21k_ft_in1k": "mixer", "convmixer_768_32.in1k": "convmixer",
}

PAPER_ARCHS: dict[str, PaperArch] = {
    **{name: PaperArch(fam, "robustness") for name, fam in SALMAN_ARCHS.items()},
    **{name: PaperArch(fam, "timm") for name, fam in TIMM_ARCHS.items()},
}


def salman_filename(arch: str, eps: float) -> str:
    """File name of a Salman et al. checkpoint as released (``<arch>_l2_eps<eps>.ckpt``)."""
    return f"{arch}_l2_eps{eps:g}.ckpt"


def checkpoint_paths(names: list[str]) -> list[Path]:
    """Where the paper checkpoints ``names`` are expected (under ``$ADVLENS_CHECKPOINTS``);
    raises FileNotFoundError naming every one that is missing."""
    root = os.environ.get(CHECKPOINTS_ENV)
    if root is None:
        raise FileNotFoundError(
            f"the paper-preset models need checkpoint files ({', '.join(names[:3])}"
            f"{', …' if len(names) > 3 else ''}); set ${CHECKPOINTS_ENV} to the folder holding "
            "the Salman et al. robust ImageNet checkpoints (files such as "
            "'resnet50_l2_eps3.ckpt') and the timm weights (as '<timm name>.pth'), then rerun.")
    paths = [Path(root).expanduser() / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} checkpoint(s) not found in ${CHECKPOINTS_ENV}={root}: "
            f"{', '.join(missing)}. Download them there and rerun.")
    return paths


def checkpoint_path(name: str) -> Path:
    """Where one paper checkpoint is expected (see :func:`checkpoint_paths`)."""
    return checkpoint_paths([name])[0]
