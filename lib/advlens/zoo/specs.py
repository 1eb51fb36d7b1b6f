"""The zoo of each preset: ``advlens.zoo.spec(preset) -> list[ModelConfig]``.

- ``smoke``: a handful of tiny models trained for 2 epochs (the whole build takes seconds).
- ``laptop``: the real comparison on the embedded data. Digits: every family at several widths
  or depths (test errors spread from ~1 % to ~15 % for the Su et al. scaling law), L2
  adversarial training at radii {0.25, 0.5, 1.0} for four families (CNN, VGG, ResNet, MLP),
  a second seed for some. Twin-cue: one CNN trained on the a-only (2 seeds), b-only (2 seeds)
  and both variants (≥ 95 % test accuracy each).
- ``paper``: the published checkpoints (timm ImageNet models and the Salman et al. robust
  ResNets/WRNs); they are not trained here and loading them needs ``$ADVLENS_CHECKPOINTS``.
"""

from __future__ import annotations

from advlens.zoo.config import ModelConfig
from advlens.zoo.paper import (
    SALMAN_ARCHS,
    SALMAN_EPS,
    SALMAN_EPS_ARCHS,
    TIMM_ARCHS,
    salman_filename,
)
from advlens.zoo.regimes import DIGITS_AT_RADII

PRESETS = ("smoke", "laptop", "paper")


def _smoke() -> list[ModelConfig]:
    digits = [ModelConfig(arch, epochs=2) for arch in
              ("mlp-s", "cnn-s", "vgg-xs", "resnet8-xs", "vit-xs", "convmixer-xs")]
    robust = [ModelConfig("cnn-s", regime="l2-at", eps=0.5, epochs=2, attack_steps=2)]
    twin = [ModelConfig("cnn-s", dataset="twin-cue", variant=v, epochs=2, n_train=500,
                        n_test=200) for v in ("a-only", "b-only")]
    return digits + robust + twin


def _laptop() -> list[ModelConfig]:
    std = {"epochs": 30}
    models = [ModelConfig(f"mlp-{k}", **std) for k in ("xs", "s", "m", "l", "xl")]
    models += [ModelConfig(f"cnn-{k}", **std) for k in ("xs", "s", "m", "l", "xl")]
    models += [ModelConfig(a, **std) for a in ("vgg-s", "vgg-m", "resnet8", "resnet14")]
    models += [ModelConfig("vit-xs", epochs=40), ModelConfig("vit-s", epochs=40, lr=1e-3)]
    models += [ModelConfig(a, **std) for a in ("convmixer-xs", "convmixer-s")]
    models += [ModelConfig(a, seed=1, **std) for a in ("mlp-m", "cnn-m", "vgg-s", "resnet8")]
    models += [ModelConfig(a, regime="l2-at", eps=eps, **std)
               for a in ("cnn-m", "vgg-s", "resnet8", "mlp-l") for eps in DIGITS_AT_RADII]
    models += [ModelConfig("cnn-m", regime="l2-at", eps=0.5, seed=1, **std)]
    twin = {"dataset": "twin-cue", "epochs": 12}
    models += [ModelConfig("cnn-m", variant="a-only", seed=s, **twin) for s in (0, 1)]
    models += [ModelConfig("cnn-m", variant="b-only", seed=s, **twin) for s in (0, 1)]
    models += [ModelConfig("cnn-m", variant="both", **twin)]
    return models


def _paper() -> list[ModelConfig]:
    common = {"dataset": "imagenet", "epochs": 0}
    models = [ModelConfig(name, source="timm", checkpoint=name, **common) for name in TIMM_ARCHS]
    for arch in SALMAN_ARCHS:
        for eps in SALMAN_EPS if arch in SALMAN_EPS_ARCHS else (0.0, 3.0):
            regime = "l2-at" if eps > 0 else "standard"
            models.append(ModelConfig(arch, regime=regime, eps=eps, source="robustness",
                                      checkpoint=salman_filename(arch, eps), **common))
    return models


def spec(preset: str) -> list[ModelConfig]:
    """The model configs of ``preset`` ("smoke", "laptop" or "paper"), names unique."""
    makers = {"smoke": _smoke, "laptop": _laptop, "paper": _paper}
    if preset not in makers:
        raise ValueError(f"unknown zoo preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    configs = makers[preset]()
    names = [c.name for c in configs]
    if len(set(names)) != len(names):  # pragma: no cover - guards edits of this module
        raise AssertionError(f"zoo preset {preset!r} repeats names: {names}")
    return configs
