"""A float64 bicubic resampler written out (the reference for :mod:`advlens.resample`)."""

from __future__ import annotations

import numpy as np


def bicubic_up(image: np.ndarray, side: int | tuple[int, int], a: float = -0.75) -> np.ndarray:
    """Separable bicubic upsampling written out in float64 (Keys' kernel with a = −0.75, half-
    pixel centres, edge pixels repeated): the reference for torchvision's tensor Resize.
    ``side``: a square's side or (height, width)."""
    height, width = (side, side) if isinstance(side, int) else side

    def weights(n_in: int, side: int) -> np.ndarray:
        out = np.zeros((side, n_in))
        for i in range(side):
            u = (i + 0.5) * n_in / side - 0.5
            base = int(np.floor(u))
            for k in range(base - 1, base + 3):
                t = abs(u - k)
                w = ((a + 2) * t - (a + 3)) * t * t + 1 if t <= 1 else \
                    ((a * t - 5 * a) * t + 8 * a) * t - 4 * a if t < 2 else 0.0
                out[i, min(max(k, 0), n_in - 1)] += w
        return out

    rows, cols = weights(image.shape[-2], height), weights(image.shape[-1], width)
    return np.einsum("ih,...hw,jw->...ij", rows, image, cols)
