"""The two cue families of the twin-cue set, rendered vectorised over a batch of images.

Cue A (shape): one of ten filled silhouettes, defined on coordinates normalised by the shape's
radius (``u``, ``v`` in [-1, 1], ``v`` pointing down), so every shape fits the same box and the
box itself carries no class information. Cue B (texture): a square patch of an oriented
sinusoidal grating whose colour, orientation and period depend on the class; the patch outline
is the same for every class.

Two designs map classes to cues:

- ``independent`` (:data:`SHAPES`, :data:`TEXTURES`): ten unrelated silhouettes and ten
  gratings, assigned to the classes independently -- the two cues give the classes unrelated
  similarity structures.
- ``latent``: every class k is one point on a latent circle, angle ``θ_k = 2πk/10``, and both
  cues are rendered from it (:func:`latent_angles`). The shape is a morph whose outline is
  ``r(φ) ∝ 1 + A(cos θ cos 2φ + sin θ cos 3φ)`` (:func:`render_morphs`; its area does not depend
  on θ); the grating's hue is ``θ/2π`` and its orientation ``θ/2`` (:data:`LATENT_TEXTURES`).
  Classes near on the circle are near in both cues, and k and k+5 are the farthest apart in
  both, so the two cues induce one class similarity structure by construction.
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
# the twin-cue classes: one silhouette each (and one grating; one point of the latent circle)
NUM_CLASSES = len(SHAPES)

# Cue B per class: (hue in [0, 1), orientation in degrees, period in pixels at 32 px).
# Classes k and k + 5 share an orientation but differ in period and colour.
TEXTURES: list[tuple[float, float, float]] = [
    (k / 10.0, (k % 5) * 36.0, 3.0 if k < 5 else 5.5) for k in range(NUM_CLASSES)
]


# latent design: the latent circle, the morph amplitude and the gratings read off the circle
LATENT_CLASSES = NUM_CLASSES
MORPH_AMPLITUDE = 0.35
LATENT_PERIOD = 4.0
LATENT_TEXTURES: list[tuple[float, float, float]] = [
    (k / LATENT_CLASSES, k * 180.0 / LATENT_CLASSES, LATENT_PERIOD) for k in range(LATENT_CLASSES)
]


def latent_angles(classes: np.ndarray) -> np.ndarray:
    """The latent-circle angle ``θ_k = 2πk/10`` of each class (radians)."""
    return 2 * np.pi * np.asarray(classes, dtype=np.float64) / LATENT_CLASSES


def morph_radius(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Outline radius of the latent morph at polar angle ``phi`` for class angle ``theta``,
    scaled so the outline never leaves the unit disc."""
    a = MORPH_AMPLITUDE
    r = 1.0 + a * (np.cos(theta) * np.cos(2 * phi) + np.sin(theta) * np.cos(3 * phi))
    return r / (1.0 + a * np.sqrt(2.0))


def texture_colours(textures: list[tuple[float, float, float]] | None = None) -> np.ndarray:
    """(10, 3) RGB colour of each class's grating (default: :data:`TEXTURES`)."""
    table = TEXTURES if textures is None else textures
    return np.array([colorsys.hsv_to_rgb(h, 0.9, 0.95) for h, _, _ in table], dtype=np.float32)


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


def render_morphs(classes: np.ndarray, centres: np.ndarray, radii: np.ndarray,
                  size: int) -> np.ndarray:
    """Boolean (N, size, size) masks of the latent design's morph of ``classes[i]`` centred at
    ``centres[i]`` (x, y) with radius ``radii[i]`` (see :func:`morph_radius`)."""
    coords = np.arange(size, dtype=np.float64) + 0.5
    u = (coords[None, None, :] - centres[:, 0, None, None]) / radii[:, None, None]
    v = (coords[None, :, None] - centres[:, 1, None, None]) / radii[:, None, None]
    theta = latent_angles(classes)[:, None, None]
    return np.hypot(u, v) <= morph_radius(theta, np.arctan2(v, u))


def render_gratings(classes: np.ndarray, phases: np.ndarray, size: int,
                    scale: float, textures: list[tuple[float, float, float]] | None = None
                    ) -> np.ndarray:
    """(N, 3, size, size) full-frame gratings of each image's texture class (cut out by a mask).

    ``scale`` = size / 32 stretches the periods with the image; ``textures`` is the table of
    (hue, orientation in degrees, period) per class (default: :data:`TEXTURES`).
    """
    textures = TEXTURES if textures is None else textures
    table = np.array(textures, dtype=np.float32)
    theta = np.deg2rad(table[classes, 1])
    period = table[classes, 2] * scale
    coords = np.arange(size, dtype=np.float32)
    x = coords[None, None, :]
    y = coords[None, :, None]
    proj = x * np.cos(theta)[:, None, None] + y * np.sin(theta)[:, None, None]
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * proj / period[:, None, None] + phases[:, None, None])
    colour = texture_colours(textures)[classes]  # (N, 3)
    return colour[:, :, None, None] * (0.2 + 0.8 * wave[:, None])
