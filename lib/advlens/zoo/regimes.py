"""Training regimes: what a training step feeds the model and which loss it minimises.

- ``standard``: cross-entropy on clean images.
- ``l2-at``: Madry et al. (2018) adversarial training — cross-entropy on L2-PGD adversarial
  examples of radius ``config.eps`` made on the fly by :func:`advlens.attacks.pgd` (random start,
  ``config.attack_steps`` steps of ``attack_step_factor · eps / steps``, the attack run in eval
  mode as ``pgd`` does, so BatchNorm statistics come from clean batches only).
- ``harmonized``: clean cross-entropy plus registered extra loss terms (the neural harmonizer
  of Fel et al. 2022, which aligns saliency with human/ground-truth maps). The term is added by
  the alignment code with :func:`register_loss_term`; until then training it raises
  ``NotImplementedError``.

Any regime can carry extra loss terms: ``register_loss_term(regime, term)`` with
``term(model, batch, logits, config) -> scalar tensor``. Regime hyper-parameters (e.g. a loss
weight) go in ``config.regime_params`` so they are part of the cache hash.

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
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlens.zoo.config import REGIMES, ModelConfig

DIGITS_AT_RADII = (0.25, 0.5, 1.0)
DIGITS_DIM = 16 * 16 * 1


def at_radii(dataset_dim: int = DIGITS_DIM) -> tuple[float, ...]:
    """L2 adversarial-training radii for images of ``dataset_dim`` = C·H·W values: the digits
    radii scaled by sqrt(dataset_dim / 256), rounded to 2 significant digits."""
    scale = math.sqrt(dataset_dim / DIGITS_DIM)
    return tuple(float(f"{r * scale:.2g}") for r in DIGITS_AT_RADII)


@dataclass
class Batch:
    """One training batch: images in [0, 1], labels, and ground-truth cue masks if the data has
    them (twin-cue; the stand-in for ClickMe maps that a harmonizing loss would use)."""

    x: Tensor
    y: Tensor
    masks: Tensor | None = None


LossTerm = Callable[[nn.Module, Batch, Tensor, ModelConfig], Tensor]

_EXTRA_TERMS: dict[str, list[LossTerm]] = {regime: [] for regime in REGIMES}


def register_loss_term(regime: str, term: LossTerm) -> LossTerm:
    """Add ``term(model, batch, logits, config) -> scalar`` to every training step of
    ``regime`` (usable as a decorator via ``functools.partial``); returns ``term``.

    Changing a registered term changes what a config trains to: bump
    ``advlens.zoo.config.TRAINING_CODE_VERSION`` or add a ``regime_params`` entry.
    """
    if regime not in _EXTRA_TERMS:
        raise ValueError(f"unknown regime {regime!r}; regimes: {list(_EXTRA_TERMS)}.")
    _EXTRA_TERMS[regime].append(term)
    return term


def remove_loss_term(regime: str, term: LossTerm) -> None:
    """Undo :func:`register_loss_term`."""
    _EXTRA_TERMS[regime].remove(term)


def loss_terms(regime: str) -> tuple[LossTerm, ...]:
    """The extra loss terms registered for ``regime``."""
    return tuple(_EXTRA_TERMS[regime])


def check_trainable(config: ModelConfig) -> None:
    """Raise before any training if ``config``'s regime cannot be trained yet."""
    if config.source != "trained":
        raise ValueError(f"{config.name} is a published checkpoint ({config.source}); it is "
                         "loaded, not trained.")
    if config.regime == "harmonized" and not _EXTRA_TERMS["harmonized"]:
        raise NotImplementedError(
            f"cannot train {config.name}: the 'harmonized' regime needs the harmonizer loss, "
            "which the alignment module provides (not implemented yet). Register it with "
            "advlens.zoo.regimes.register_loss_term('harmonized', term).")


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
    """(loss, logits) on ``inputs`` (from :func:`training_inputs`): cross-entropy plus every
    extra term registered for ``config.regime``."""
    logits = model(inputs)
    loss = F.cross_entropy(logits, batch.y)
    for term in _EXTRA_TERMS[config.regime]:
        loss = loss + term(model, batch, logits, config)
    return loss, logits
