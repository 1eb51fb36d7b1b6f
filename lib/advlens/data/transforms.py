"""Image resizing shared by the loaders (all on (N, C, H, W) float tensors in [0, 1])."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of (N, C, h, w) to ``size``, kept in [0, 1]."""
    out_size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == out_size:
        return images.clone()
    out = F.interpolate(images, size=out_size, mode="bilinear", align_corners=False,
                        antialias=True)
    return out.clamp_(0.0, 1.0)
