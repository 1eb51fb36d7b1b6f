"""The zoo of each preset: ``advlens.zoo.spec(preset) -> list[ModelConfig]``.

- ``smoke``: a handful of tiny models trained for 2 epochs (the whole build takes seconds).
- ``laptop``: the real comparison on the embedded data. Digits: all six families, MLP and CNN
  at five widths each (test errors spread from < 1 % to ~25 % for the Su et al. scaling law),
  L2 adversarial training at radii {0.25, 0.5, 1.0} (see :mod:`advlens.zoo.regimes`) for four
  families (MLP, CNN, VGG, ResNet), a second seed for some. Twin-cue: one CNN (``cnn-s``)
  trained on the a-only (2 seeds), b-only (2 seeds) and both variants (≥ 95 % test accuracy
  each). Harmonized twins (:mod:`advlens.zoo.regimes`): twin-cue ``both`` CNN, VGG and ResNet
  models and their copies harmonized to the shape cue; digits MLP, CNN, VGG and ResNet
  harmonized to the strokes. The first build takes minutes on a 2-core CPU; later runs load
  the cache.
- ``paper``: the published checkpoints (timm ImageNet models and the Salman et al. robust
  ResNets/WRNs, or the models of a manifest at ``$ADVLENS_PAPER_ZOO``); they are not trained
  here and loading them needs ``$ADVLENS_CHECKPOINTS`` (:mod:`advlens.zoo.paper`).
"""

from __future__ import annotations

from advlens.presets import DIGITS_AT_EPOCHS, DIGITS_EPOCHS, PRESET_NAMES
from advlens.zoo.config import ModelConfig
from advlens.zoo.paper import paper_configs
from advlens.zoo.regimes import DIGITS_AT_RADII

# The harmonized regime per dataset. Twin-cue: the official weight 1.0 against the shape cue.
# Digits: 0.1 against the strokes -- in a pilot (cnn-s, 8 epochs on 600 digits) weight 1.0 let
# the term swamp the cross-entropy (test accuracy 0.62 -> 0.20); 0.1 kept it near its twin.
HARMONIZED = {"twin-cue": {"regime": "harmonized", "harmonizer_weight": 1.0,
                           "importance_map": "shape"},
              "digits": {"regime": "harmonized", "harmonizer_weight": 0.1,
                         "importance_map": "stroke"}}

def _smoke() -> list[ModelConfig]:
    small = {"epochs": 2, "batch_size": 32}  # small batches: more steps for the same cost
    digits = [ModelConfig(arch, **small) for arch in
              ("mlp-s", "cnn-s", "vgg-xs", "resnet8-xs", "vit-xs", "convmixer-xs")]
    robust = [ModelConfig("cnn-s", regime="l2-at", eps=0.5, attack_steps=2, **small)]
    twin = [ModelConfig("cnn-s", dataset="twin-cue", variant=v, n_train=500, n_test=200,
                        **small) for v in ("a-only", "b-only", "both")]
    harmonized = [twin[-1].replace(**HARMONIZED["twin-cue"]),
                  digits[1].replace(**HARMONIZED["digits"])]
    return digits + robust + twin + harmonized


def _laptop() -> list[ModelConfig]:
    # standard models at their epochs (presets.DIGITS_EPOCHS: measured near their plateau)
    models = [ModelConfig(a, epochs=n) for a, n in DIGITS_EPOCHS.items()]
    models += [ModelConfig(a, seed=1, epochs=DIGITS_EPOCHS[a])
               for a in ("mlp-m", "cnn-m", "vgg-xs", "resnet8-xs")]
    # L2 adversarial training (3 PGD steps, random start) at three radii for four families
    robust = ("mlp-l", "cnn-m", "vgg-xs", "resnet8-xs")
    models += [ModelConfig(a, regime="l2-at", eps=eps, epochs=DIGITS_AT_EPOCHS,
                           attack_steps=3) for a in robust for eps in DIGITS_AT_RADII]
    models += [ModelConfig("cnn-m", regime="l2-at", eps=0.5, seed=1,
                           epochs=DIGITS_AT_EPOCHS, attack_steps=3)]
    # twin-cue: one CNN, trained on each variant (>= 95 % test accuracy on its own variant)
    twin = {"dataset": "twin-cue", "epochs": 7}
    models += [ModelConfig("cnn-s", variant="a-only", seed=s, **twin) for s in (0, 1)]
    models += [ModelConfig("cnn-s", variant="b-only", seed=s, **twin) for s in (0, 1)]
    models += [ModelConfig("cnn-s", variant="both", **twin)]
    # harmonized twins (Linsley et al.'s arrows): twin-cue "both" models of three families and
    # their harmonized copies trained against the shape-cue stand-in maps; digits models of four
    # families harmonized against the stroke maps (plain twins above)
    plain_both = [models[-1]] + [ModelConfig(a, variant="both", **twin)
                                 for a in ("vgg-xs", "resnet8-xs")]
    models += plain_both[1:]
    models += [c.replace(**HARMONIZED["twin-cue"]) for c in plain_both]
    models += [ModelConfig(a, epochs=DIGITS_EPOCHS[a], **HARMONIZED["digits"])
               for a in ("mlp-m", "cnn-m", "vgg-xs", "resnet8-xs")]
    return models


def _paper() -> list[ModelConfig]:
    return paper_configs()


def spec(preset: str) -> list[ModelConfig]:
    """The model configs of ``preset`` ("smoke", "laptop" or "paper"), names unique."""
    makers = {"smoke": _smoke, "laptop": _laptop, "paper": _paper}
    if preset not in makers:
        raise ValueError(f"unknown zoo preset {preset!r}; choose one of "
                         f"{', '.join(PRESET_NAMES)}.")
    configs = makers[preset]()
    names = [c.name for c in configs]
    if len(set(names)) != len(names):  # pragma: no cover - guards edits of this module
        raise AssertionError(f"zoo preset {preset!r} repeats names: {names}")
    return configs
