"""The twin-cue set: ten classes, each carrying two distinct class-correlated cues.

Cue A is a filled shape (:data:`advlens.data.cues.SHAPES`, near-white with a faint random
tint, radius 6.5–8 px at 32 px) and cue B an oriented grating patch (10×10 px at 32 px;
class-specific colour, orientation and period), placed at random, never overlapping, on a
background of low-contrast clutter (grey level, smooth colour noise, pixel noise and one soft
blob) that carries no class information. Both cues are pasted opaquely last, so ``masks``
(N, 2, H, W) are exactly the pixels of cue A and cue B, and every pixel outside them is
independent of both cue classes.

Variants (the confound of Jones et al.: two correlated features a model may use either of):

- ``both``: i.i.d. data; cue A and cue B both show the label.
- ``a-only``: cue B's class is drawn uniformly at random, independent of the label.
- ``b-only``: cue A's class is drawn uniformly at random.

Designs (how classes map to cues, :mod:`advlens.data.cues`):

- ``independent`` (generator version :data:`GENERATOR_VERSION`): ten unrelated silhouettes and
  ten gratings. Measured: the two cues then give the classes different geometries in a trained
  network (class-mean CKA 0.19-0.25 across cues), so a-only and b-only models look dissimilar
  even on i.i.d. data -- there is no confound for inverted data to remove.
- ``latent`` (version :data:`LATENT_VERSION`): every class is a point on one latent circle and
  both cues are rendered from it (a shape morph and a grating whose hue and orientation follow
  the angle), so classes that are near in one cue are near in the other -- the assumption behind
  Jones et al.'s argument (cats and dogs differ from trucks in ears *and* tails).

For one (seed, split, n, size) the three variants share labels, layout and clutter and differ
only inside the randomised cue's mask (the designs share the layout and clutter too). Generated
arrays are cached under ``advlens.paths.data_dir()/twin_cue/<config-hash>.npz`` (checksummed,
rebuilt if corrupt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from advlens.checks import check_positive_int
from advlens.data import cues
from advlens.data.arraycache import cached_arrays
from advlens.data.imageset import ImageSet
from advlens.io import config_hash
from advlens.paths import data_dir

GENERATOR_VERSION = 3
LATENT_VERSION = 1
DESIGNS = ("independent", "latent")
SPLITS = ("train", "test")
VARIANTS = ("both", "a-only", "b-only")
DEFAULT_N = {"train": 6000, "test": 1000}
NUM_CLASSES = cues.NUM_CLASSES
CLASSES = [f"{k}:{name}/{int(tex[1])}deg-{'fine' if tex[2] < 4 else 'coarse'}"
           for k, (name, tex) in enumerate(zip(cues.SHAPE_NAMES, cues.TEXTURES, strict=True))]
LATENT_CLASS_NAMES = [f"{k}:latent{round(360 * k / NUM_CLASSES)}deg" for k in range(NUM_CLASSES)]


def design_version(design: str) -> str:
    """The generator version of ``design``, e.g. ``"3"`` or ``"latent-1"`` (cache keys)."""
    check_design(design)
    return str(GENERATOR_VERSION) if design == "independent" else f"latent-{LATENT_VERSION}"


def check_design(design: str) -> None:
    """Raise a ValueError naming the designs unless ``design`` is one of them."""
    if design not in DESIGNS:
        raise ValueError(f"twin_cue design must be one of {DESIGNS}; got {design!r}.")


def check_args(split: str, variant: str, design: str) -> None:
    """Raise a ValueError naming the choices unless ``split``, ``variant`` and ``design`` are
    known (an unknown variant would otherwise be generated as ``both``)."""
    if split not in SPLITS:
        raise ValueError(f"twin_cue split must be one of {SPLITS}; got {split!r}.")
    if variant not in VARIANTS:
        raise ValueError(f"twin_cue variant must be one of {VARIANTS}; got {variant!r}.")
    check_design(design)


@dataclass
class Layout:
    """Everything random about a batch of twin-cue images except the two cue classes."""

    size: int
    radius: np.ndarray  # (N,) shape radius in pixels
    centre: np.ndarray  # (N, 2) shape centre (x, y) in pixels
    patch: np.ndarray  # (N, 2) top-left (x, y) of the grating patch, integer pixels
    patch_side: int
    phase: np.ndarray  # (N,) grating phase
    shape_colour: np.ndarray  # (N, 3)
    background: np.ndarray  # (N, 3, H, W) clutter, already rendered

    def __len__(self) -> int:
        return len(self.radius)


def sample_layout(rng: np.random.Generator, n: int, size: int = 32,
                  n_clutter: int = 1) -> Layout:
    """Draw positions, colours and clutter for ``n`` images (vectorised; rejection sampling of
    non-overlapping cue boxes with a one-pixel gap)."""
    scale = size / 32.0
    side = max(3, round(10 * scale))
    radius = rng.uniform(6.5, 8.0, n).astype(np.float32) * scale
    centre = np.empty((n, 2), np.float32)
    patch = np.empty((n, 2), np.int64)
    todo = np.arange(n)
    for _ in range(1000):
        r = radius[todo, None]
        centre[todo] = rng.uniform(r + 0.5, size - r - 0.5, (todo.size, 2))
        patch[todo] = rng.integers(1, size - side, (todo.size, 2), endpoint=True)
        lo_a, hi_a = centre[todo] - r, centre[todo] + r
        lo_b, hi_b = patch[todo], patch[todo] + side
        overlap = ((hi_a + 1 > lo_b) & (hi_b + 1 > lo_a)).all(axis=1)
        todo = todo[overlap]
        if todo.size == 0:
            break
    else:  # pragma: no cover - only reachable for absurd sizes
        raise ValueError(f"cannot place both cues without overlap at size {size}; use size >= 24.")
    # near-white shapes with a faint random tint: a strong edge in every channel, no class colour
    hue = rng.uniform(0, 1, n)
    sat = rng.uniform(0.0, 0.2, n)
    val = rng.uniform(0.85, 1.0, n)
    shape_colour = _hsv_to_rgb(hue, sat, val)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    background = _clutter(rng, n, size, n_clutter)
    return Layout(size, radius, centre, patch, side, phase, shape_colour, background)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


def _clutter(rng: np.random.Generator, n: int, size: int, n_clutter: int) -> np.ndarray:
    """Class-free background: grey level + tint, smooth colour noise, pixel noise, soft blobs."""
    grey = rng.uniform(0.3, 0.6, (n, 1, 1, 1)) + rng.normal(0, 0.04, (n, 3, 1, 1))
    coarse = torch.from_numpy(rng.normal(0, 1, (n, 3, 4, 4)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).numpy()
    bg = (grey.astype(np.float32) + 0.06 * smooth
          + 0.02 * rng.standard_normal((n, 3, size, size), dtype=np.float32))
    coords = np.arange(size, dtype=np.float32) + 0.5
    for _ in range(n_clutter):
        cx, cy = rng.uniform(0, size, (2, n, 1, 1)).astype(np.float32)
        sigma = rng.uniform(2.0, 4.0, (n, 1, 1)).astype(np.float32) * size / 32.0
        colour = rng.uniform(0, 1, (n, 3, 1, 1)).astype(np.float32)
        alpha = rng.uniform(0.3, 0.5, (n, 1, 1, 1)).astype(np.float32)
        d2 = (coords[None, None, :] - cx) ** 2 + (coords[None, :, None] - cy) ** 2
        w = alpha * np.exp(-d2 / (2 * sigma**2))[:, None]
        bg = bg * (1 - w) + colour * w
    return np.clip(bg, 0.0, 1.0).astype(np.float32)


def render(cue_a: np.ndarray, cue_b: np.ndarray, layout: Layout, *,
           clutter: bool = True, design: str = "independent") -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, H, W) and bool masks (N, 2, H, W) for the given cue classes.

    ``clutter=False`` renders the cues on a flat mid-grey background (for checks and figures);
    ``design`` picks the cue families (see the module docstring).
    """
    check_design(design)
    size, n = layout.size, len(layout)
    shapes = cues.render_shapes if design == "independent" else cues.render_morphs
    mask_a = shapes(cue_a, layout.centre, layout.radius, size)
    coords = np.arange(size)
    px, py = layout.patch[:, 0, None], layout.patch[:, 1, None]
    in_x = (coords[None, :] >= px) & (coords[None, :] < px + layout.patch_side)
    in_y = (coords[None, :] >= py) & (coords[None, :] < py + layout.patch_side)
    mask_b = in_y[:, :, None] & in_x[:, None, :]
    if clutter:
        img = layout.background.copy()
    else:
        img = np.full((n, 3, size, size), 0.5, np.float32)
    img = np.where(mask_a[:, None], layout.shape_colour[:, :, None, None], img)
    textures = cues.TEXTURES if design == "independent" else cues.LATENT_TEXTURES
    grating = cues.render_gratings(cue_b, layout.phase, size, size / 32.0, textures)
    img = np.where(mask_b[:, None], grating, img)
    images = np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    return images, np.stack([mask_a, mask_b], axis=1)


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split),)))


def generate(split: str, variant: str, n: int, size: int, seed: int,
             design: str = "independent") -> dict[str, np.ndarray]:
    """The raw arrays of one twin-cue set (no caching); see :func:`twin_cue`."""
    check_args(split, variant, design)
    rng = _rng(seed, split)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int64)
    random_classes = rng.integers(0, NUM_CLASSES, (2, n)).astype(np.int64)
    cue_a = random_classes[0] if variant == "b-only" else labels
    cue_b = random_classes[1] if variant == "a-only" else labels
    layout = sample_layout(rng, n, size)
    images, masks = render(cue_a, cue_b, layout, design=design)
    return {"images": images, "masks": masks, "labels": labels,
            "cue_a_class": cue_a.copy(), "cue_b_class": cue_b.copy()}


def config(split: str, variant: str, n: int, size: int, seed: int,
           design: str = "independent") -> dict[str, object]:
    """The cache key of one twin-cue set (the independent design keeps its version-3 keys)."""
    key: dict[str, object] = {"dataset": "twin-cue", "version": GENERATOR_VERSION,
                              "split": split, "variant": variant, "n": n, "size": size,
                              "seed": seed}
    if design != "independent":
        key.update(design=design, version=design_version(design))
    return key


def twin_cue(split: str = "train", variant: str = "both", n: int | None = None, size: int = 32,
             seed: int = 0, *, design: str = "independent", cache: bool = True) -> ImageSet:
    """The twin-cue ``split`` of ``variant`` ("both", "a-only", "b-only"), RGB ``size``×``size``.

    ``design``: "independent" (unrelated cue per class, the original bench) or "latent" (both
    cues rendered from one latent circle, so they share the classes' similarity structure).

    ``n`` defaults to 6,000 (train) / 1,000 (test). Deterministic given ``seed``; train and test
    use different derived seeds. ``masks[:, 0]`` = cue A pixels, ``masks[:, 1]`` = cue B pixels;
    ``attributes`` hold ``cue_a_class`` and ``cue_b_class``.
    """
    check_args(split, variant, design)
    # NumPy integers become ints here: the cache's JSON metadata cannot hold them
    n = check_positive_int(DEFAULT_N[split] if n is None else n, "twin_cue n")
    size = check_positive_int(size, "twin_cue size", least=24)
    seed = check_positive_int(seed, "twin_cue seed", least=0)
    cfg = config(split, variant, n, size, seed, design)
    path = data_dir() / "twin_cue" / f"{config_hash(cfg)}.npz"
    arrays = cached_arrays(path, lambda: generate(split, variant, n, size, seed, design), cfg,
                           use_cache=cache)
    return ImageSet(
        images=torch.from_numpy(arrays["images"].astype(np.float32) / 255.0),
        labels=torch.from_numpy(arrays["labels"].astype(np.int64)),
        masks=torch.from_numpy(arrays["masks"].astype(np.float32)),
        classes=list(CLASSES if design == "independent" else LATENT_CLASS_NAMES),
        name=f"twin-cue-{variant}-{split}" + ("" if design == "independent" else f"-{design}"),
        attributes={k: torch.from_numpy(arrays[k].astype(np.int64))
                    for k in ("cue_a_class", "cue_b_class")},
    )
