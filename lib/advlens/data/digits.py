"""scikit-learn's handwritten digits (embedded, offline) as an :class:`ImageSet`.

1,797 grey 8×8 images with intensities 0–16, upsampled to ``size``×``size`` (bilinear,
antialiased) and scaled into [0, 1]. The split is fixed: a stratified split with
``sklearn.model_selection.train_test_split(test_size=397, stratify=labels, random_state=0)``
gives 1,400 training and 397 test images (class proportions preserved). ``masks`` (K = 1) are
the strokes: upsampled pixels brighter than ``STROKE_THRESHOLD``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from advlens.checks import check_positive_int
from advlens.data.imageset import ImageSet
from advlens.data.transforms import resize

N_TEST = 397
SPLIT_SEED = 0
STROKE_THRESHOLD = 0.3
CLASSES = [str(d) for d in range(10)]
SPLITS = ("train", "test", "all")
N_ALL = 1797  # scikit-learn's digits
SPLIT_SIZES = {"train": N_ALL - N_TEST, "test": N_TEST, "all": N_ALL}


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def split_indices() -> dict[str, np.ndarray]:
    """The fixed stratified train/test indices into the 1,797 digits (sorted)."""
    from sklearn.model_selection import train_test_split

    _, labels = _raw()
    train, test = train_test_split(np.arange(len(labels)), test_size=N_TEST, stratify=labels,
                                   random_state=SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


def digits(split: str = "train", size: int = 16) -> ImageSet:
    """The digits ``split`` ("train": 1,400 images, "test": 397, "all": 1,797) at ``size``×``size``.

    One channel; ``masks`` (N, 1, size, size) marks the stroke pixels (intensity > 0.3).
    """
    if split not in SPLITS:
        raise ValueError(f"digits split must be 'train', 'test' or 'all'; got {split!r}.")
    size = check_positive_int(size, "digits size", least=8,
                              allowed="an int >= 8 (the images are 8×8)")
    images, labels = _raw()
    idx = np.arange(len(labels)) if split == "all" else split_indices()[split]
    x = resize(torch.from_numpy(images[idx]).unsqueeze(1), size)
    masks = (x > STROKE_THRESHOLD).float()
    return ImageSet(images=x.contiguous(), labels=torch.from_numpy(labels[idx]), masks=masks,
                    classes=list(CLASSES), name=f"digits-{split}-{size}px")
