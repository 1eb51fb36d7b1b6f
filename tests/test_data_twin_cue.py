"""Twin-cue set: determinism, exact masks, decorrelated variants, cache behaviour."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from advlens.data.twin_cue import generate, render, sample_layout

# the package re-exports the function twin_cue, which shadows the module's attribute name
tc = importlib.import_module("advlens.data.twin_cue")


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))


def test_shapes_ranges_and_attributes():
    s = tc.twin_cue("test", "both", n=50)
    assert s.images.shape == (50, 3, 32, 32) and s.images.dtype == torch.float32
    assert s.masks.shape == (50, 2, 32, 32)
    assert 0 <= s.images.min() and s.images.max() <= 1
    assert set(torch.unique(s.masks).tolist()) <= {0.0, 1.0}
    assert s.labels.dtype == torch.int64 and len(s.classes) == 10
    assert (s.masks.sum((2, 3)) > 0).all()  # both cues present in every image
    assert not (s.masks[:, 0] * s.masks[:, 1]).any()  # never overlapping
    sub = s.subset([3, 1])
    assert torch.equal(sub.attributes["cue_b_class"], s.attributes["cue_b_class"][[3, 1]])


def test_other_size():
    s = tc.twin_cue("test", "both", n=20, size=48, cache=False)
    assert s.images.shape == (20, 3, 48, 48)
    assert not (s.masks[:, 0] * s.masks[:, 1]).any()


def test_deterministic_for_a_seed_and_different_across_seeds_and_splits():
    a = generate("train", "both", 64, 32, seed=3)
    b = generate("train", "both", 64, 32, seed=3)
    c = generate("train", "both", 64, 32, seed=4)
    d = generate("test", "both", 64, 32, seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["images"], c["images"])
    assert not np.array_equal(a["images"], d["images"])


def test_masks_are_exactly_the_cue_pixels():
    rng = np.random.default_rng(0)
    n = 40
    layout = sample_layout(rng, n)
    cue_a, cue_b = rng.integers(0, 10, n), rng.integers(0, 10, n)
    img, masks = render(cue_a, cue_b, layout)
    flat, flat_masks = render(cue_a, cue_b, layout, clutter=False)
    np.testing.assert_array_equal(masks, flat_masks)
    inside = masks.any(axis=1)[:, None].repeat(3, axis=1)
    # inside the masks the pixels do not depend on the clutter ...
    np.testing.assert_array_equal(img[inside], flat[inside])
    # ... and outside them they are all clutter (differ from the flat background somewhere)
    assert (img[~inside] != flat[~inside]).mean() > 0.9
    # every pixel outside both images' masks is independent of the cue classes
    img2, masks2 = render((cue_a + 1) % 10, (cue_b + 3) % 10, layout)
    outside = ~(masks.any(axis=1) | masks2.any(axis=1))[:, None].repeat(3, axis=1)
    np.testing.assert_array_equal(img[outside], img2[outside])
    # and the cue pixels do change with the class
    assert not np.array_equal(img, img2)


def test_variants_share_everything_but_the_randomised_cue():
    both = tc.twin_cue("test", "both", n=200)
    a_only = tc.twin_cue("test", "a-only", n=200)
    assert torch.equal(both.labels, a_only.labels)
    outside_b = (1 - both.masks[:, 1:2]).bool().expand(-1, 3, -1, -1)
    assert torch.equal(both.images[outside_b], a_only.images[outside_b])
    assert torch.equal(both.masks, a_only.masks)  # B's square patch is class-free


def _agreement(s, key):
    return float((s.attributes[key] == s.labels).float().mean())


def test_variants_decorrelate_the_cues():
    n = 2000
    both = tc.twin_cue("train", "both", n=n, cache=False)
    a_only = tc.twin_cue("train", "a-only", n=n, cache=False)
    b_only = tc.twin_cue("train", "b-only", n=n, cache=False)
    assert _agreement(both, "cue_a_class") == 1.0 and _agreement(both, "cue_b_class") == 1.0
    assert _agreement(a_only, "cue_a_class") == 1.0
    assert _agreement(b_only, "cue_b_class") == 1.0
    # uniform random cue: agreement ~ 0.1 (binomial s.d. 0.0067 at n = 2000)
    assert abs(_agreement(a_only, "cue_b_class") - 0.1) < 0.03
    assert abs(_agreement(b_only, "cue_a_class") - 0.1) < 0.03
    # the random cue classes are themselves balanced over the 10 classes
    counts = np.bincount(a_only.attributes["cue_b_class"].numpy(), minlength=10)
    assert counts.min() > 0.07 * n and counts.max() < 0.13 * n
    # labels are exactly balanced
    assert np.bincount(both.labels.numpy(), minlength=10).tolist() == [n // 10] * 10


def _patch_features(s, channel):
    """Mean and s.d. of each colour channel inside one cue mask (per image)."""
    m = s.masks[:, channel:channel + 1]
    area = m.sum((2, 3))
    mean = (s.images * m).sum((2, 3)) / area
    var = ((s.images - mean[..., None, None]) ** 2 * m).sum((2, 3)) / area
    return torch.cat([mean, var.sqrt()], dim=1).double()


def _shape_features(s, channel, half=8):
    """Grey pixels of a fixed window centred on the cue's mask centroid (per image)."""
    m = s.masks[:, channel]
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cy = ((m * ys).sum((1, 2)) / m.sum((1, 2))).round().long()
    cx = ((m * xs).sum((1, 2)) / m.sum((1, 2))).round().long()
    grey = torch.nn.functional.pad(s.images.mean(1), (half,) * 4)
    return torch.stack([grey[i, y:y + 2 * half + 1, x:x + 2 * half + 1].flatten()
                        for i, (y, x) in enumerate(zip(cy.tolist(), cx.tolist(), strict=True))]
                       ).double()


def _nearest_centroid_accuracy(f_train, y_train, f_test, y_test):
    centroids = torch.stack([f_train[y_train == k].mean(0) for k in range(10)])
    pred = torch.cdist(f_test, centroids).argmin(1)
    return float((pred == y_test).float().mean())


@pytest.mark.parametrize("randomised, channel, features", [
    ("a-only", 1, _patch_features), ("b-only", 0, _shape_features)])
def test_randomised_cue_region_predicts_the_label_at_chance(randomised, channel, features):
    accs = {}
    for variant in ("both", randomised):
        train = tc.twin_cue("train", variant, n=2000, cache=False)
        test = tc.twin_cue("test", variant, n=1000, cache=False)
        accs[variant] = _nearest_centroid_accuracy(features(train, channel), train.labels,
                                                   features(test, channel), test.labels)
    assert accs["both"] > 0.6  # the classifier reads the cue when it carries the label ...
    assert accs[randomised] < 0.16  # ... and is at chance (0.1) when it is randomised


def test_cache_hit_and_corrupt_cache_regenerated(tmp_path, monkeypatch):
    first = tc.twin_cue("test", "a-only", n=30)
    files = list((tmp_path / "twin_cue").glob("*.npz"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(tc, "generate", boom)
    again = tc.twin_cue("test", "a-only", n=30)
    assert torch.equal(first.images, again.images)
    monkeypatch.undo()
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))

    files[0].write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        regenerated = tc.twin_cue("test", "a-only", n=30)
    assert torch.equal(first.images, regenerated.images)
    again = tc.twin_cue("test", "a-only", n=30)  # rewritten cache is valid again
    assert torch.equal(first.images, again.images)


def test_checksum_mismatch_regenerated(tmp_path):
    from advlens.data.arraycache import load_arrays

    first = tc.twin_cue("test", "both", n=20)
    path = next((tmp_path / "twin_cue").glob("*.npz"))
    with np.load(path) as data:
        payload = {k: data[k] for k in data.files}
    payload["labels"] = (payload["labels"] + 1) % 10  # tampered, checksum left as it was
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **payload)
    with pytest.raises(ValueError, match="checksum"):
        load_arrays(path)
    with pytest.warns(RuntimeWarning, match="checksum"):
        again = tc.twin_cue("test", "both", n=20)
    assert torch.equal(first.labels, again.labels)


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        tc.twin_cue("train", "c-only", n=10)
    with pytest.raises(ValueError, match="split"):
        tc.twin_cue("val", "both", n=10)
    with pytest.raises(ValueError, match="size"):
        tc.twin_cue("train", "both", n=10, size=16)
    # the raw generator refuses them too (a misspelt variant was generated as "both")
    with pytest.raises(ValueError, match="variant must be one of"):
        generate("train", "a_only", 10, 32, 0)
    with pytest.raises(ValueError, match="split must be one of"):
        generate("val", "both", 10, 32, 0)
    with pytest.raises(ValueError, match="design must be one of"):
        generate("train", "both", 10, 32, 0, design="shared")


def test_cached_sets_of_different_seeds_differ(tmp_path):
    """With the cache on, seed 2 must not be served seed 1's file: the key holds the seed."""
    one = tc.twin_cue("test", "both", n=16, seed=1)
    two = tc.twin_cue("test", "both", n=16, seed=2)
    assert not torch.equal(one.images, two.images)
    assert len(list((tmp_path / "twin_cue").glob("*.npz"))) == 2
    assert torch.equal(two.images, tc.twin_cue("test", "both", n=16, seed=2, cache=False).images)
    assert torch.equal(one.images, tc.twin_cue("test", "both", n=16, seed=1).images)  # cache hit
    keys = [tc.config("test", "both", 16, 32, seed) for seed in (1, 2)]
    assert keys[0] != keys[1] and {k["seed"] for k in keys} == {1, 2}


def test_numpy_integer_arguments_are_ints(tmp_path):
    """n, size and seed from NumPy (e.g. ``for seed in np.arange(3)``) give the same set, cached."""
    got = tc.twin_cue("test", "both", n=np.int64(12), size=np.int64(32), seed=np.int64(3))
    assert torch.equal(got.images, tc.twin_cue("test", "both", n=12, seed=3, cache=False).images)
    with pytest.raises(ValueError, match="seed"):
        tc.twin_cue("test", "both", n=12, seed=-1)
