"""Zoo seeds for seed sweeps: a preset's zoo retrained from other training seeds.

``reseed(configs, k)`` shifts every model's training seed by ``SEED_STRIDE · k`` (``k = 0``
leaves the zoo as it is cached), so zoo ``k`` never shares a model with zoo ``k' ≠ k`` even where
a preset already trains seeds 0 and 1 of one architecture; published checkpoints stay as they
are. :func:`base_seed` maps a shifted seed back to the preset's own (0, 1, ...), the seed a
notebook selects and prints (:func:`seeds_of`, :func:`preset_seed`).
"""

from __future__ import annotations

from collections.abc import Iterable

from advlens.zoo.config import ModelConfig

SEED_STRIDE = 100


def _check(zoo_seed: int) -> None:
    if isinstance(zoo_seed, bool) or not isinstance(zoo_seed, int) or zoo_seed < 0:
        raise ValueError(f"zoo_seed must be a non-negative integer; got {zoo_seed!r}.")


def reseed(configs: Iterable[ModelConfig], zoo_seed: int) -> list[ModelConfig]:
    """``configs`` with every training seed shifted by ``SEED_STRIDE · zoo_seed``; published
    checkpoints (``source`` other than ``"trained"``) kept as they are: their weights cannot be
    retrained, and a relabelled copy only had its accuracy measured again under a new key.

    Parameters: ``configs`` (a preset's zoo or part of it), ``zoo_seed`` (0, 1, 2, ...).
    Returns: the shifted configs (new cache keys unless ``zoo_seed`` is 0).
    """
    _check(zoo_seed)
    configs = list(configs)
    too_big = [c.name for c in configs if c.source == "trained" and c.seed >= SEED_STRIDE]
    if too_big:
        raise ValueError(f"configs {too_big} already use seeds >= {SEED_STRIDE}; reseed only "
                         "the preset's own configs.")
    return [c.replace(seed=c.seed + SEED_STRIDE * zoo_seed) if c.source == "trained" else c
            for c in configs]


def shifted(seed: int, zoo_seed: int) -> int:
    """The training seed that the preset's ``seed`` becomes in zoo ``zoo_seed``."""
    _check(zoo_seed)
    return seed + SEED_STRIDE * zoo_seed


def seeds_of(seed: int, zoo_seed: int) -> list[int]:
    """The seeds that the preset's model of seed ``seed`` has in zoo ``zoo_seed``, for
    ``Zoo.select(seed=...)``: :func:`shifted` for a model trained here, ``seed`` itself for a
    published checkpoint (:func:`reseed` keeps those; no trained model of a zoo ``zoo_seed ≥ 1``
    has a seed below ``SEED_STRIDE``)."""
    return [shifted(seed, zoo_seed)] + ([seed] if zoo_seed else [])


def preset_seed(config: ModelConfig, zoo_seed: int) -> int:
    """The preset's own seed of a model of zoo ``zoo_seed``: :func:`base_seed` of a model
    trained here, the seed of a published checkpoint as it is."""
    return config.seed if config.source != "trained" else base_seed(config.seed, zoo_seed)


def base_seed(seed: int, zoo_seed: int) -> int:
    """Inverse of :func:`shifted`: the preset's own seed of a model of zoo ``zoo_seed``."""
    base = seed - SEED_STRIDE * zoo_seed
    if not 0 <= base < SEED_STRIDE:
        raise ValueError(f"seed {seed} is not a model of zoo seed {zoo_seed}.")
    return base
