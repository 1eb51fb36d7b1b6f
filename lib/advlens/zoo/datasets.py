"""The images a zoo config trains and is tested on (from :mod:`advlens.data`)."""

from __future__ import annotations

import torch

from advlens.data import ImageSet, digits, select_classes, twin_cue
from advlens.zoo.architectures import DATASET_SHAPES
from advlens.zoo.config import ModelConfig

REAL = ("cifar10", "stl10")


def _real(dataset: str, split: str, size: int) -> ImageSet:
    """CIFAR-10 or STL-10 (resized to ``size``) from ``$ADVLENS_CIFAR10`` / ``$ADVLENS_STL10``
    or the default folder under ``data/`` (:func:`advlens.data.sources.require`)."""
    from advlens.data import load
    from advlens.data.sources import require

    kw = require(dataset, {})
    return load(dataset, split, **kw, **({"size": size} if dataset == "stl10" else {}))


def dataset_for(config: ModelConfig, split: str) -> ImageSet:
    """The ``split`` ("train"/"test") of ``config``'s data, cut to ``n_train``/``n_test``.

    Digits (and CIFAR-10 / STL-10) subsets are a permutation drawn from ``data_seed`` (the split
    itself is fixed);
    twin-cue subsets are generated at that size with ``data_seed``. With ``classes``, the images
    of those classes are then kept, relabelled 0..k-1 in the order given.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    if config.classes is not None:
        return select_classes(dataset_for(config.replace(classes=None), split),
                              list(config.classes))
    n = config.n_train if split == "train" else config.n_test
    channels, size = DATASET_SHAPES[config.dataset]
    if config.dataset == "twin-cue":
        return twin_cue(split, variant=config.variant or "both", n=n, size=size,
                        seed=config.data_seed, design=config.twin_design)
    data = (_real(config.dataset, split, size) if config.dataset in REAL
            else digits(split, size=size))
    if n is None or n >= len(data):
        return data
    generator = torch.Generator().manual_seed(config.data_seed)
    return data.subset(torch.randperm(len(data), generator=generator)[:n].sort().values)
