"""Twin-cue latent design: both cues rendered from one latent circle of classes.

Checked against independent computations: the morph outline against a polar-coordinate
reference written here, the circle's similarity structure from the rendered pixels, the design
in every cache key, and learnability of both cues by a small CNN at smoke scale.
"""

from __future__ import annotations

import colorsys
import importlib

import numpy as np
import pytest
import torch

from advlens.data import cues
from advlens.zoo.config import ModelConfig, data_version

tc = importlib.import_module("advlens.data.twin_cue")


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))


def test_deterministic_by_seed_and_design_changes_only_the_cues():
    a = tc.generate("train", "both", 64, 32, seed=5, design="latent")
    b = tc.generate("train", "both", 64, 32, seed=5, design="latent")
    c = tc.generate("train", "both", 64, 32, seed=6, design="latent")
    old = tc.generate("train", "both", 64, 32, seed=5)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["images"], c["images"])
    np.testing.assert_array_equal(a["labels"], old["labels"])  # one layout and labelling
    outside = ~(a["masks"].any(1) | old["masks"].any(1))[:, None].repeat(3, 1)
    np.testing.assert_array_equal(a["images"][outside], old["images"][outside])
    assert not np.array_equal(a["images"], old["images"])


def test_masks_are_exactly_the_cue_pixels_and_the_morph_matches_a_polar_reference():
    rng = np.random.default_rng(1)
    n = 30
    layout = tc.sample_layout(rng, n)
    cls = rng.integers(0, 10, n)
    img, masks = tc.render(cls, cls, layout, design="latent")
    flat, flat_masks = tc.render(cls, cls, layout, design="latent", clutter=False)
    np.testing.assert_array_equal(masks, flat_masks)
    inside = masks.any(1)[:, None].repeat(3, 1)
    np.testing.assert_array_equal(img[inside], flat[inside])
    assert not (masks[:, 0] & masks[:, 1]).any()
    # reference: pixel centre (x + .5, y + .5) in polar coordinates around the centre
    a = cues.MORPH_AMPLITUDE
    for i in range(n):
        cx, cy = layout.centre[i]
        y, x = np.mgrid[0:32, 0:32] + 0.5
        rho = np.hypot(x - cx, y - cy) / layout.radius[i]
        phi = np.arctan2(y - cy, x - cx)
        theta = 2 * np.pi * cls[i] / 10
        edge = (1 + a * (np.cos(theta) * np.cos(2 * phi) + np.sin(theta) * np.cos(3 * phi))) \
            / (1 + a * np.sqrt(2))
        ref = rho <= edge
        # float32 vs float64 rounding may flip a pixel lying exactly on the outline
        assert (ref != masks[i, 0]).sum() <= 1


def test_morph_area_carries_no_class_information():
    # ∫ r(φ)² dφ / 2 is the same for every θ (the harmonics are orthogonal)
    phi = np.linspace(-np.pi, np.pi, 20001)
    areas = [np.trapezoid(cues.morph_radius(np.full_like(phi, t), phi) ** 2, phi) / 2
             for t in cues.latent_angles(np.arange(10))]
    np.testing.assert_allclose(areas, areas[0], rtol=1e-9)


def _mean_iou(k: int, m: int) -> float:
    layout = tc.sample_layout(np.random.default_rng(0), 200)
    a = cues.render_morphs(np.full(200, k), layout.centre, layout.radius, 32)
    b = cues.render_morphs(np.full(200, m), layout.centre, layout.radius, 32)
    return float(((a & b).sum((1, 2)) / (a | b).sum((1, 2))).mean())


def test_both_cues_share_the_circle_near_classes_alike_opposite_classes_apart():
    # shape: overlap falls with circular distance on the latent circle
    ious = [_mean_iou(0, d) for d in range(6)]
    assert all(x > y for x, y in zip(ious, ious[1:], strict=False)), ious
    # grating: hue and orientation follow the angle (reference: colorsys, by hand)
    for k, (hue, orientation, period) in enumerate(cues.LATENT_TEXTURES):
        assert hue == pytest.approx(k / 10) and orientation == pytest.approx(18 * k)
        assert period == cues.LATENT_PERIOD
    rgb = cues.texture_colours(cues.LATENT_TEXTURES)
    np.testing.assert_allclose(rgb[3], colorsys.hsv_to_rgb(0.3, 0.9, 0.95), rtol=1e-6)
    dist = np.linalg.norm(rgb[0] - rgb, axis=1)
    assert dist[1] < dist[3] < dist[5] and dist[9] < dist[7] < dist[5]


def test_cache_key_and_zoo_hash_cover_the_design(monkeypatch):
    s_old = tc.twin_cue("test", "both", n=20)
    s_new = tc.twin_cue("test", "both", n=20, design="latent")
    assert not torch.equal(s_old.images, s_new.images)  # a cache hit would return s_old's
    assert s_new.classes != s_old.classes and s_new.name.endswith("latent")
    assert tc.config("test", "both", 20, 32, 0) == {  # old keys unchanged: old caches reused
        "dataset": "twin-cue", "version": 3, "split": "test", "variant": "both", "n": 20,
        "size": 32, "seed": 0}
    old = ModelConfig("cnn-s", dataset="twin-cue", variant="a-only")
    new = old.replace(twin_design="latent")
    assert new.hash != old.hash and new.name != old.name
    assert data_version("twin-cue", "latent") != data_version("twin-cue")
    before = new.hash, old.hash
    zoo_config = importlib.import_module("advlens.zoo.config")
    monkeypatch.setattr(zoo_config, "TWIN_CUE_LATENT_VERSION", tc.LATENT_VERSION + 1)
    assert new.hash != before[0] and old.hash == before[1]


def test_bad_design_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="design must be one of"):
        tc.twin_cue("test", "both", n=10, design="shared")
    with pytest.raises(ValueError, match="twin_design must be one of"):
        ModelConfig("cnn-s", dataset="twin-cue", variant="both", twin_design="shared")
    with pytest.raises(ValueError, match="only for twin-cue"):
        ModelConfig("cnn-s", twin_design="latent")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["a-only", "b-only"])
def test_each_cue_is_learnable_at_smoke_scale(variant):
    from advlens.features import accuracy
    from advlens.zoo.datasets import dataset_for
    from advlens.zoo.training import train

    torch.manual_seed(0)
    cfg = ModelConfig("cnn-s", dataset="twin-cue", variant=variant, twin_design="latent",
                      n_train=1500, n_test=300, epochs=4, batch_size=32)
    result = train(cfg, dataset_for(cfg, "train"), progress=False)
    test = dataset_for(cfg, "test")
    # chance is 0.1; the randomised cue cannot help, so this is the kept cue being learnt
    assert accuracy(result.model, test.images, test.labels) > 0.5
