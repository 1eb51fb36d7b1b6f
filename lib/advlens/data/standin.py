"""ClickMe's heatmap blur, and ground-truth stand-ins for ClickMe maps built from cue masks.

The Harmonization ClickMe pipeline turns a 256×256 click map into the 224×224 map models are
scored against by: bilinear resize to 64×64, a 10×10 Gaussian kernel with σ = 10 (``SAME``
zero padding; offsets -5..4 as TensorFlow's ``range(-(k-1)//2, (k-1)//2 + 1)`` gives them), and
bilinear resize to 224×224. :func:`clickme_blur` does exactly that for any input and output
size. Scaling to small images: the blur is defined on a 64×64 grid spanning the whole image, so
we keep that grid (resize the mask *to* 64×64, blur with kernel 10 / σ 10, resize to the image
size). The blur therefore covers the same fraction of the image (10/64 ≈ 16 % of its width,
i.e. ≈ 5 px on a 32 px twin-cue image, ≈ 2.5 px on 16 px digits) as on ClickMe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from advlens.data.imageset import ImageSet

GRID = 64
KERNEL = 10
SIGMA = 10.0
_CUE_NAMES = {"a": 0, "b": 1, "stroke": 0}


def gaussian_kernel(size: int = KERNEL, sigma: float = SIGMA) -> Tensor:
    """The (size, size) normalised Gaussian kernel, laid out as TensorFlow's ClickMe kernel."""
    half = (size - 1) // 2
    xs = torch.arange(-(size - 1) // 2, half + 1, dtype=torch.float64)
    ys = torch.arange(half, -(size - 1) // 2 - 1, -1, dtype=torch.float64)
    kernel = torch.exp(-(xs[None, :] ** 2 + ys[:, None] ** 2) / (2 * sigma**2))
    return (kernel / kernel.sum()).float()


def clickme_blur(maps: Tensor, out_size: int | tuple[int, int], *, grid: int = GRID,
                 kernel: int = KERNEL, sigma: float = SIGMA) -> Tensor:
    """Resize (N, 1, H, W) maps to ``grid``², blur like ClickMe, resize to ``out_size``."""
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps must be (N, 1, H, W); got {tuple(maps.shape)}.")
    out = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
    x = F.interpolate(maps.float(), size=(grid, grid), mode="bilinear", align_corners=False)
    before = (kernel - 1) // 2  # TensorFlow SAME padding puts the extra row/column after
    x = F.pad(x, (before, kernel - 1 - before, before, kernel - 1 - before))
    x = F.conv2d(x, gaussian_kernel(kernel, sigma).to(x)[None, None])
    return F.interpolate(x, size=out, mode="bilinear", align_corners=False)


def _normalise_max(maps: Tensor) -> Tensor:
    peak = maps.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-12), maps).clamp_(0.0, 1.0)


def clickme_standin(imageset: ImageSet, cues: Sequence[str | int] | str | int = ("a",), *,
                    grid: int = GRID, kernel: int = KERNEL, sigma: float = SIGMA) -> Tensor:
    """Ground-truth stand-ins for ClickMe maps: (N, 1, H, W) in [0, 1], peak 1 per image.

    The union of the chosen cue masks (twin-cue: "a" = shape, "b" = grating; digits: "a" or
    "stroke" = the stroke mask; or channel indices; one name or index alone is one cue)
    blurred with :func:`clickme_blur` at the image's own size. These are not human maps: they
    mark what the generator made diagnostic.
    """
    if isinstance(cues, str | int):  # one cue: "stroke" is not the cues "s", "t", ...
        cues = (cues,)
    if imageset.masks is None:
        raise ValueError(f"{imageset.name} has no masks; stand-ins need ground-truth masks "
                         "(twin-cue or digits).")
    k = imageset.masks.shape[1]
    channels = []
    for cue in cues:
        idx = _CUE_NAMES.get(cue, -1) if isinstance(cue, str) else int(cue)
        if not 0 <= idx < k:
            raise ValueError(f"unknown cue {cue!r} for {imageset.name} with {k} mask channel(s); "
                             f"use 'a', 'b' or an index < {k}.")
        channels.append(idx)
    if not channels:
        raise ValueError("choose at least one cue, e.g. cues=('a',).")
    union = imageset.masks[:, channels].amax(dim=1, keepdim=True)
    blurred = clickme_blur(union, tuple(imageset.images.shape[-2:]), grid=grid, kernel=kernel,
                           sigma=sigma)
    return _normalise_max(blurred)
