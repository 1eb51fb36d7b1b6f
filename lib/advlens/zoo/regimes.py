"""Training regimes: what a training step feeds the model and which loss it minimises.

- ``standard``: cross-entropy on clean images.
- ``l2-at``: Madry et al. (2018) adversarial training — cross-entropy on L2-PGD adversarial
  examples of radius ``config.eps`` made on the fly by :func:`advlens.attacks.pgd` (random start,
  ``config.attack_steps`` steps of ``attack_step_factor · eps / steps``, the attack run in eval
  mode as ``pgd`` does, so the attack's iterates leave BatchNorm's running statistics alone;
  the training pass that follows, on the adversarial batch only, updates them, as in the
  ``robustness`` library: a robust model's BatchNorm statistics are those of adversarial
  batches, never of clean ones).
- ``harmonized``: the neural harmonizer (Fel et al. 2022): clean cross-entropy plus
  ``config.harmonizer_weight`` · :func:`advlens.alignment.harmonizer_loss` between the model's
  saliency (gradient of the true-class logit, from the same forward pass, differentiable: double
  backpropagation) and the dataset's importance map ``config.importance_map`` (see
  :func:`importance_maps`). The loss and its weight are fields of the config, so the cache hash
  covers them. Unlike the official recipe (label smoothing 0.1, an explicit 1e-5·Σw²/2 —
  ``tf.nn.l2_loss`` — on the weights that are not normalisation or embedding ones) the
  cross-entropy and weight decay stay those of the plain twin, so a harmonized model differs
  from its twin by the harmonizer term only. The saliency is taken with respect to the [0, 1]
  images (the models normalise inside), where the official code takes it with respect to its
  preprocessed input; the maps are the same up to a per-channel factor, but
  ``standardize_cut``'s fixed 1e-5 added to the saliency's standard deviation makes the
  term's size depend on that scale while the saliency is small (a review measured, at
  initialisation on twin-cue cnn-s, a median per-image saliency std of 2.4e-4 against 4.8e-5
  and a harmonizer term of 0.951 against 0.705).

Radii of adversarial training (see :func:`at_radii`): for 16×16×1 digits we use L2 radii
{0.25, 0.5, 1.0}; for other image sizes they scale with sqrt(pixels × channels), the norm of a
perturbation of fixed per-pixel RMS (×sqrt(12) ≈ 3.46 for 32×32×3 twin-cue). ImageNet's
ε = 3 at 224×224×3 is an RMS of 3/sqrt(150528) ≈ 0.008 per pixel value, tiny in absolute terms
but ~10× the median minimal adversarial L2 of a standard ImageNet model. Digits are far more
robust to begin with (a standard digits CNN's median minimal L2 is ~0.8, i.e. RMS 0.05), so we
set the radii relative to that instead: 0.25, 0.5 and 1.0 are ≈ 0.3×, 0.6× and 1.3× the
standard model's median minimal perturbation — mild, medium and strong robustness, the
ordering the papers' robust-zoo comparisons need, while clean accuracy stays high.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlens.alignment import harmonizer_loss, logits_and_saliency
from advlens.checks import check_positive_int
from advlens.data import ImageSet, clickme_standin
from advlens.zoo.config import ModelConfig

# importance map name -> the cue masks clickme_standin blurs into it
MAP_CUES = {"shape": ("a",), "stroke": ("stroke",)}

DIGITS_AT_RADII = (0.25, 0.5, 1.0)
DIGITS_DIM = 16 * 16 * 1


def at_radii(dataset_dim: int = DIGITS_DIM) -> tuple[float, ...]:
    """L2 adversarial-training radii for images of ``dataset_dim`` = C·H·W values: the digits
    radii scaled by sqrt(dataset_dim / 256), rounded to 2 significant digits."""
    scale = math.sqrt(dataset_dim / DIGITS_DIM)
    return tuple(float(f"{r * scale:.2g}") for r in DIGITS_AT_RADII)


@dataclass
class Batch:
    """One training batch: images in [0, 1], labels, ground-truth cue masks if the data has
    them, and the importance maps (N, 1, H, W) a harmonized model is trained against."""

    x: Tensor
    y: Tensor
    masks: Tensor | None = None
    maps: Tensor | None = None


def importance_maps(config: ModelConfig, data: ImageSet) -> Tensor | None:
    """The (N, 1, H, W) importance maps of ``data`` that ``config`` trains against (None unless
    harmonized): ClickMe-like stand-ins from the ground-truth masks (:func:`clickme_standin`,
    the ClickMe blur at the image's size). Twin-cue ``"shape"``: the shape cue's mask (cue A);
    digits ``"stroke"``: the stroke mask. They mark what the generator made diagnostic (or where
    the ink is), not what humans chose."""
    if config.regime != "harmonized":
        return None
    return clickme_standin(data, MAP_CUES[config.importance_map or ""])


def check_trainable(config: ModelConfig) -> None:
    """Raise before any training if ``config`` cannot be trained here."""
    if config.source != "trained":
        raise ValueError(f"{config.name} is a published checkpoint ({config.source}); it is "
                         "loaded, not trained.")
    # checked here, before zoo.build trains anything: at their turn they failed with a
    # ZeroDivisionError / a torch.split error naming no field
    check_positive_int(config.batch_size, f"{config.name}: batch_size")
    if config.regime == "l2-at":
        check_positive_int(config.attack_steps, f"{config.name}: attack_steps (PGD steps per "
                           "adversarial-training batch)")


def training_inputs(model: nn.Module, batch: Batch, config: ModelConfig,
                    generator: torch.Generator) -> Tensor:
    """The images a training step of ``config.regime`` feeds the model."""
    if config.regime != "l2-at":
        return batch.x
    from advlens.attacks import pgd

    result = pgd(model, batch.x, batch.y, eps=config.eps, norm="l2",
                 steps=config.attack_steps,
                 step_size=config.attack_step_factor * config.eps / config.attack_steps,
                 random_start=True, generator=generator)
    return result.adv.detach()


def training_loss(model: nn.Module, batch: Batch, inputs: Tensor,
                  config: ModelConfig) -> tuple[Tensor, Tensor]:
    """(loss, logits) on ``inputs`` (from :func:`training_inputs`): cross-entropy, plus for
    ``harmonized`` ``config.harmonizer_weight`` · the harmonizer term against ``batch.maps``."""
    if config.regime != "harmonized":
        logits = model(inputs)
        return F.cross_entropy(logits, batch.y), logits
    if batch.maps is None:
        raise ValueError(f"{config.name}: a harmonized training batch needs importance maps "
                         "(Batch.maps; see importance_maps).")
    logits, sal = logits_and_saliency(model, inputs, batch.y)
    loss = F.cross_entropy(logits, batch.y) + config.harmonizer_weight * harmonizer_loss(
        sal, batch.maps)
    return loss, logits
