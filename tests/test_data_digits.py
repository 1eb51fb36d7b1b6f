"""Digits: shapes, range, the fixed stratified split, stroke masks, resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from advlens.data import digits
from advlens.data.digits import split_indices


def test_shapes_and_range():
    train, test = digits("train"), digits("test")
    assert train.images.shape == (1400, 1, 16, 16) and test.images.shape == (397, 1, 16, 16)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    for s in (train, test):
        assert float(s.images.min()) == 0.0 and float(s.images.max()) == 1.0
    assert train.classes == [str(d) for d in range(10)]


def test_split_is_fixed_disjoint_complete_and_stratified():
    idx = split_indices()
    assert len(np.intersect1d(idx["train"], idx["test"])) == 0
    assert sorted(np.concatenate([idx["train"], idx["test"]]).tolist()) == list(range(1797))
    y = load_digits().target
    train_counts = np.bincount(y[idx["train"]], minlength=10)
    all_counts = np.bincount(y, minlength=10)
    assert np.abs(train_counts - all_counts * 1400 / 1797).max() <= 1  # stratified
    np.testing.assert_array_equal(digits("test").labels.numpy(), y[idx["test"]])


def test_native_size_is_the_raw_data_over_16():
    raw = load_digits()
    s = digits("all", size=8)
    np.testing.assert_allclose(s.images[:, 0].numpy(), raw.images / 16.0, atol=1e-7)


def test_upsampling_preserves_the_mean_intensity_roughly():
    small, big = digits("test", size=8), digits("test", size=32)
    assert big.images.shape[-1] == 32
    np.testing.assert_allclose(big.images.mean((1, 2, 3)), small.images.mean((1, 2, 3)),
                               atol=0.03)


def test_stroke_masks():
    s = digits("test")
    assert s.masks.shape == (397, 1, 16, 16)
    assert torch.equal(s.masks, (s.images > 0.3).float())
    frac = s.masks.mean((1, 2, 3))
    assert (frac > 0.1).all() and (frac < 0.8).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        digits("validation")
    with pytest.raises(ValueError, match="size"):
        digits("train", size=4)
    with pytest.raises(ValueError, match="size"):
        digits("train", size=16.0)


def test_numpy_integer_size():
    assert torch.equal(digits("test", size=np.int64(16)).images, digits("test", size=16).images)
