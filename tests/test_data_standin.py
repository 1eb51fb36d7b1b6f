"""ClickMe blur (known output on an impulse) and the ground-truth stand-ins for ClickMe maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.data import clickme_blur, clickme_standin, digits, twin_cue


def _tf_kernel(size=10, sigma=10.0):
    """TensorFlow's ClickMe kernel written out: x offsets -5..4 left to right, y 4..-5 down."""
    xs = np.arange(-5, 5)
    ys = np.arange(4, -6, -1)
    k = np.exp(-(xs[None, :] ** 2 + ys[:, None] ** 2) / (2 * sigma**2))
    return k / k.sum()


def test_blur_of_an_impulse_is_the_flipped_kernel():
    impulse = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    impulse[0, 0, 32, 32] = 1.0
    out = clickme_blur(impulse, 64)[0, 0].double().numpy()
    # SAME cross-correlation, padding 4 before / 5 after: out[p, q] = sum in[p+i-4, q+j-4] K[i, j]
    # so an impulse at (32, 32) gives out[36 - i, 36 - j] = K[i, j]
    expected = _tf_kernel()[::-1, ::-1]
    np.testing.assert_allclose(out[27:37, 27:37], expected, rtol=1e-5)
    assert out.sum() == pytest.approx(1.0, rel=1e-5)
    assert out[:27].sum() == 0 and out[37:].sum() == 0
    assert np.unravel_index(out.argmax(), out.shape) == (32, 31)  # TF's kernel is off-centre


def test_blur_keeps_a_constant_map_in_the_interior():
    const = torch.ones(1, 1, 256, 256)
    out = clickme_blur(const, 224)
    assert out.shape == (1, 1, 224, 224)
    np.testing.assert_allclose(out[0, 0, 40:-40, 40:-40].numpy(), 1.0, rtol=1e-5)


def test_twin_cue_standins(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    s = twin_cue("test", "both", n=20)
    a = clickme_standin(s, ("a",))
    b = clickme_standin(s, ("b",))
    ab = clickme_standin(s, ("a", "b"))
    for maps in (a, b, ab):
        assert maps.shape == (20, 1, 32, 32)
        assert maps.min() >= 0 and torch.allclose(maps.amax((1, 2, 3)), torch.ones(20))
    # each stand-in puts its mass on its own cue
    mass_a_in_a = (a * s.masks[:, :1]).sum((1, 2, 3)) / a.sum((1, 2, 3))
    mass_a_in_b = (a * s.masks[:, 1:]).sum((1, 2, 3)) / a.sum((1, 2, 3))
    assert (mass_a_in_a > 2 * mass_a_in_b).all()
    # blurred: the map spreads beyond the mask
    assert ((a > 0.05) & (s.masks[:, :1] == 0)).any()
    with pytest.raises(ValueError, match="cue"):
        clickme_standin(s, ("c",))


def test_digit_standins_follow_the_strokes():
    s = digits("test").subset(slice(0, 16))
    maps = clickme_standin(s, ("stroke",))
    assert maps.shape == (16, 1, 16, 16)
    inside = (maps * s.masks).sum((1, 2, 3)) / s.masks.sum((1, 2, 3))
    outside = (maps * (1 - s.masks)).sum((1, 2, 3)) / (1 - s.masks).sum((1, 2, 3))
    assert (inside > outside).all()
    no_masks = type(s)(images=s.images, labels=s.labels, masks=None, classes=s.classes,
                       name="nomask")
    with pytest.raises(ValueError, match="no masks"):
        clickme_standin(no_masks)


def test_one_cue_given_alone_is_that_cue_not_its_letters(tmp_path, monkeypatch):
    """``cues="stroke"`` was iterated letter by letter ("unknown cue 's'"), ``cues=1`` raised
    "'int' object is not iterable" and ``cues="ab"`` silently meant both cues."""
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    d = digits("test").subset(slice(0, 4))
    s = twin_cue("test", "both", n=4)
    # reference: the one mask channel blurred and scaled to peak 1, written out here
    for data, cue, channel in ((d, "stroke", 0), (s, 1, 1), (s, "b", 1)):
        blurred = clickme_blur(data.masks[:, channel:channel + 1], tuple(data.images.shape[-2:]))
        ref = blurred / blurred.amax((1, 2, 3), keepdim=True)
        torch.testing.assert_close(clickme_standin(data, cue), ref)
    with pytest.raises(ValueError, match="unknown cue 'ab'"):
        clickme_standin(s, "ab")
