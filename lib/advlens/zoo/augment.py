"""Training-time data augmentation of the zoo (``ModelConfig.augment``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "crop-flip")
CROP_PADDING = 4  # pixels of zeros on each side before the random crop (torchvision's padding=4)


def random_crop_flip(x: Tensor, generator: torch.Generator, *,
                     padding: int = CROP_PADDING) -> Tensor:
    """Each image of ``x`` (N, C, H, W) zero-padded by ``padding`` on every side, cropped back to
    H×W at a random offset, and mirrored left-right with probability 1/2: torchvision's
    ``RandomCrop(H, padding)`` then ``RandomHorizontalFlip()`` (the CIFAR recipe of Liang et
    al.'s ``train_clf.py``), drawn per image from ``generator`` (a CPU generator), batched.

    Returns a new tensor on x's device; the padding is 0 in [0, 1] pixel space (black), as
    torchvision pads before normalising.
    """
    n, _, h, w = x.shape
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    rows = top[:, None] + torch.arange(h, device=x.device)  # (N, H)
    ahead = torch.arange(w, device=x.device)
    cols = left[:, None] + torch.where(flip[:, None], ahead.flip(0), ahead)  # (N, W)
    padded = F.pad(x, (padding,) * 4)
    index = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[index, channel, rows[:, None, :, None], cols[:, None, None, :]]


def augment(x: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """``x`` augmented by ``kind`` (one of :data:`AUGMENTATIONS`; ``"none"`` returns x)."""
    if kind == "none":
        return x
    if kind == "crop-flip":
        return random_crop_flip(x, generator)
    raise ValueError(f"augment must be one of {AUGMENTATIONS}; got {kind!r}.")
