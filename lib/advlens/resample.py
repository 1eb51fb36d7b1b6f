"""Images and importance maps resampled to a model's input side (a published model evaluated at
another size than the images: ``inception_v3`` at 299 beside 224-pixel images).

Bicubic as torchvision's ``Resize`` of tensors without antialiasing (Keys' cubic, a = −0.75,
half-pixel centres), the call Linsley et al.'s code makes on ClickMe images and heatmaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor
from torchvision import transforms

from advlens.checks import as_tensor, check_positive_int

Size = int | tuple[int, int]  # a side (square) or (height, width)


def model_sides(sides: Mapping[str, Size | None] | None, models: Iterable[str]
                ) -> dict[str, Size | None]:
    """``sides`` (model name -> input side, or None) as a dict, every name one of ``models``'
    (a misspelt name was silently ignored: its model ran at the images' own side)."""
    sides = dict(sides or {})
    names = list(models)
    unknown = [name for name in sides if name not in names]
    if unknown:
        raise ValueError(f"sides names no model {unknown}; the models are {names}.")
    return sides


def _hw(size: Size) -> tuple[int, int]:
    """(height, width) of a side or pair, each an int >= 1 (a string, a float or 0 failed
    inside torch or torchvision, naming neither)."""
    sides = tuple(size) if isinstance(size, tuple | list) else (size, size)
    if len(sides) != 2:
        raise ValueError(f"side must be an int or a (height, width) pair; got {size!r}.")
    height, width = (check_positive_int(s, "side", allowed="an int >= 1 or a (height, width) "
                                        "pair of them") for s in sides)
    return height, width


def _resize(x: Tensor, size: Size) -> Tensor:
    resize = transforms.Resize(_hw(size), transforms.InterpolationMode.BICUBIC, antialias=False)
    return resize(x)


def images_to_side(x: Tensor, side: Size | None) -> Tensor:
    """Images (N, C, H, W) in [0, 1] resampled to ``side``×``side`` (or to (height, width)),
    clamped to [0, 1] (the cubic overshoots at edges); ``x`` itself where ``side`` is None or
    already its size."""
    x = as_tensor(x, "x")
    if side is None or tuple(x.shape[-2:]) == _hw(side):
        return x
    return _resize(x, side).clamp(0.0, 1.0)


def maps_to_side(maps: Tensor, side: int | None) -> Tensor:
    """Importance maps (N, [K,] H, W) resampled to ``side``×``side`` (as (N, K, side, side)) and
    min-max normalised each on its own (per image and map), as Linsley et al.'s ``main.py`` does
    (their ``img_normalize`` after the bicubic ``Resize``; per batch there, which leaves each
    map's ranks the same):
    the cubic's negative ringing beside a map's zero background ranks below that background, as
    in their Spearman alignment (clipped at 0 it tied with it: ρ 0.003-0.005 higher at 224 ->
    299). Integer maps (8-bit heatmaps) are resampled in float32, as :mod:`advlens.alignment`
    takes them. A constant map (blank or not) has no range to normalise: it comes back all
    zero, its Spearman alignment undefined as at its own side. ``maps`` itself where ``side``
    is None or already their side."""
    maps = as_tensor(maps, "maps")
    if side is None or tuple(maps.shape[-2:]) == _hw(side):
        return maps
    if maps.ndim < 3 or maps.shape[0] == 0:  # (torch's len() or reshape named neither)
        raise ValueError(f"maps must be a non-empty (N, [K,] H, W) batch; got shape "
                         f"{tuple(maps.shape)}.")
    maps = maps.reshape(len(maps), -1, *maps.shape[-2:])
    if not maps.is_floating_point():  # resized in uint8, its values were rounded and the
        maps = maps.float()  # ringing below a zero background clipped to it
    resized = _resize(maps, side)
    # each map of each image on its own (over an image's K maps at once, a blank map beside a
    # drawn one came back a flat non-zero, and a faint one was squashed by its neighbour)
    per_map = (*resized.shape[:2], 1, 1)
    low = resized.flatten(2).amin(2).view(per_map)
    shifted = resized - low
    peak = shifted.flatten(2).amax(2)
    # a range of any size is stretched to [0, 1] (a floor of 1e-12 left a map of range 1e-13 at
    # [0, 0.1]); one of zero (a constant map, or one whose resize is) stays at 0
    peak = torch.where(peak > 0, peak, 1.0)
    # the resize of a constant map is that constant up to rounding (its weights sum to 1), which
    # the normalisation stretched to [0, 1]: noise with ranks, aligned as if it were a map
    flat = maps.flatten(2)
    constant = (flat.amax(2) == flat.amin(2)).view(per_map)
    return (shifted / peak.view(per_map)).masked_fill(constant, 0.0)
