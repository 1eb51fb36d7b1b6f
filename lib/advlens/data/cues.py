"""The two cue families of the twin-cue set, rendered vectorised over a batch of images.

Cue A (shape): one of ten filled silhouettes, defined on coordinates normalised by the shape's
radius (``u``, ``v`` in [-1, 1], ``v`` pointing down), so every shape fits the same box and the
box itself carries no class information. Cue B (texture): a square patch of an oriented
sinusoidal grating whose colour, orientation and period depend on the class; the patch outline
is the same for every class.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable

import numpy as np

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # apex at the top (v = -1), base at v = 0.8 spanning |u| <= 0.95
    return (v <= 0.8) & (np.abs(u) <= 0.95 * (v + 1.0) / 1.8)


SHAPES: dict[str, Shape] = {
    "circle": lambda u, v: u**2 + v**2 <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "triangle": _triangle,
    "plus": lambda u, v: ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0))
    | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0)),
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "ring": lambda u, v: (u**2 + v**2 <= 1.0) & (u**2 + v**2 >= 0.5**2),
    "vbars": lambda u, v: (np.abs(v) <= 0.95) & (np.abs(u) >= 0.3) & (np.abs(u) <= 0.85),
    "frame": lambda u, v: (np.maximum(np.abs(u), np.abs(v)) <= 0.85)
    & (np.maximum(np.abs(u), np.abs(v)) >= 0.45),
    "hbars": lambda u, v: (np.abs(u) <= 0.95) & (np.abs(v) >= 0.3) & (np.abs(v) <= 0.85),
    "triangle-down": lambda u, v: _triangle(u, -v),
}
SHAPE_NAMES = list(SHAPES)

# Cue B per class: (hue in [0, 1), orientation in degrees, period in pixels at 32 px).
# Classes k and k + 5 share an orientation but differ in period and colour.
TEXTURES: list[tuple[float, float, float]] = [
    (k / 10.0, (k % 5) * 36.0, 3.0 if k < 5 else 5.5) for k in range(10)
]


def texture_colours() -> np.ndarray:
    """(10, 3) RGB colour of each class's grating."""
    return np.array([colorsys.hsv_to_rgb(h, 0.9, 0.95) for h, _, _ in TEXTURES], dtype=np.float32)


def render_shapes(classes: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                  size: int) -> np.ndarray:
    """Boolean (N, size, size) masks of shape ``classes[i]`` centred at ``centres[i]`` (x, y)."""
    coords = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    u = (coords[None, None, :] - centres[:, 0, None, None]) / radii[:, None, None]
    v = (coords[None, :, None] - centres[:, 1, None, None]) / radii[:, None, None]
    u, v = np.broadcast_arrays(u, v)
    masks = np.zeros((len(classes), size, size), dtype=bool)
    for k, fn in enumerate(SHAPES.values()):
        idx = np.flatnonzero(classes == k)
        if idx.size:
            masks[idx] = fn(u[idx], v[idx])
    return masks


def render_gratings(classes: np.ndarray, phases: np.ndarray, size: int,
                    scale: float) -> np.ndarray:
    """(N, 3, size, size) full-frame gratings of each image's texture class (cut out by a mask).

    ``scale`` = size / 32 stretches the periods with the image.
    """
    table = np.array(TEXTURES, dtype=np.float32)
    theta = np.deg2rad(table[classes, 1])
    period = table[classes, 2] * scale
    coords = np.arange(size, dtype=np.float32)
    x = coords[None, None, :]
    y = coords[None, :, None]
    proj = x * np.cos(theta)[:, None, None] + y * np.sin(theta)[:, None, None]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * proj / period[:, None, None] + phases[:, None, None])
    colour = texture_colours()[classes]  # (N, 3)
    return colour[:, :, None, None] * (0.2 + 0.8 * wave[:, None])
