"""advlens.resample: images and maps at a model's input side, against a float64 bicubic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.resample import images_to_side, maps_to_side
from resample_reference import bicubic_up


@pytest.mark.parametrize("side_in, side_out", [(16, 21), (21, 16), (224 // 8, 299 // 8)])
def test_images_to_side_is_keys_bicubic_clamped(side_in: int, side_out: int) -> None:
    x = torch.rand(2, 3, side_in, side_in, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64)
    got = images_to_side(x, side_out)
    assert got.shape == (2, 3, side_out, side_out) and got.dtype == x.dtype
    np.testing.assert_allclose(got.numpy(), np.clip(bicubic_up(x.numpy(), side_out), 0, 1),
                               atol=1e-10)


def test_images_to_side_takes_a_height_and_width() -> None:
    """A (height, width) size: rows resampled to the height, columns to the width (a swapped
    pair gave a (width, height) image), from a non-square image too."""
    x = torch.rand(2, 3, 9, 14, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = images_to_side(x, (13, 19))
    assert got.shape == (2, 3, 13, 19)
    np.testing.assert_allclose(got.numpy(), np.clip(bicubic_up(x.numpy(), (13, 19)), 0, 1),
                               atol=1e-10)
    assert images_to_side(x, (9, 14)) is x


def test_images_and_maps_at_their_own_side_are_returned_as_they_are() -> None:
    x, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    assert images_to_side(x, None) is x and images_to_side(x, 8) is x
    assert maps_to_side(maps, None) is maps and maps_to_side(maps, 8) is maps


def test_maps_to_side_min_max_normalises_each_map_as_linsley_et_al() -> None:
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = maps_to_side(maps, 11)
    assert got.shape == (3, 1, 11, 11)
    ref = bicubic_up(maps.numpy()[:, None], 11)
    ref -= ref.reshape(3, -1).min(1)[:, None, None, None]
    ref /= ref.reshape(3, -1).max(1)[:, None, None, None]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)


def test_maps_to_side_ranks_the_ringing_below_a_zero_background() -> None:
    """A map with a zero background: the bicubic's negative ringing beside its blob ranks below
    the background, as in Linsley et al.'s main.py (Resize, then min-max normalise); the
    Spearman alignment against any mask equals scipy's on the unclipped resize."""
    from scipy.stats import spearmanr

    maps = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    maps[0, 0, 5:9, 6:11] = 1.0
    plain = bicubic_up(maps.numpy(), 23)
    assert plain.min() < -1e-3  # ringing below the zero background
    got = maps_to_side(maps, 23)
    assert got.min() == 0.0 and got.max() == 1.0
    back = got.numpy() * (plain.max() - plain.min()) + plain.min()  # undo the min-max
    np.testing.assert_allclose(back, plain, atol=1e-12)
    # ranked alike (ties at float rounding merged): the same Spearman against any mask
    mask = np.random.default_rng(0).random((23, 23)).ravel()
    want = spearmanr(mask, np.round(plain.ravel(), 9))[0]
    assert abs(spearmanr(mask, np.round(back.ravel(), 9))[0] - want) < 1e-12
    below = plain.ravel() < -1e-9  # the ringing: below the background, not tied with it
    assert below.any() and got.numpy().ravel()[below].max() < got.numpy().ravel()[
        np.abs(plain.ravel()) < 1e-12].min()


def test_a_blank_map_resampled_stays_zero() -> None:
    """A blank map (an image nobody clicked on) has no range to normalise: it comes back all
    zero (every bicubic output is a weighted sum of zeros), not 0/0 = NaN."""
    for dtype in (torch.float32, torch.float64):
        got = maps_to_side(torch.zeros(2, 8, 8, dtype=dtype), 11)
        assert got.shape == (2, 1, 11, 11)
        assert torch.equal(got, torch.zeros_like(got))


def test_a_constant_map_resampled_is_blank_and_its_alignment_undefined() -> None:
    """A constant map that is not blank (a uniform map, full coverage) has no range either: the
    bicubic of a constant is that constant (Keys' weights sum to 1), so it comes back all zero,
    its Spearman alignment NaN as at its own side (its resize's rounding noise, ~1e-8, was
    stretched to [0, 1]: 21 levels, ρ 0.002). A map beside it keeps its own normalisation."""
    from advlens.alignment import spearman_alignment

    maps = torch.full((2, 24, 24), 0.3)
    maps[1, 5:9, 6:11] = 1.0
    got = maps_to_side(maps, 31)
    assert torch.equal(got[0], torch.zeros_like(got[0]))
    ref = bicubic_up(maps[1:].double().numpy()[:, None], 31)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(got[1:].double().numpy(), ref, atol=1e-6)
    pert = torch.rand(2, 3, 31, 31, generator=torch.Generator().manual_seed(3))
    rho = spearman_alignment(pert, got)
    assert rho[0].isnan() and not rho[1].isnan()
    assert spearman_alignment(pert[:1], torch.full((1, 31, 31), 0.3))[0].isnan()


def test_an_integer_map_is_resampled_in_floats() -> None:
    """An 8-bit heatmap is resampled as its float values (it was resized in uint8: rounded, and
    the ringing below its zero background clipped to it: 0.09 off the float64 reference)."""
    g = torch.Generator().manual_seed(1)
    maps = (torch.rand(2, 16, 16, generator=g) * 255).round().to(torch.uint8)
    maps[:, :, :8] = 0
    got = maps_to_side(maps, 23)
    assert got.dtype == torch.float32 and got.shape == (2, 1, 23, 23)
    ref = bicubic_up(maps.double().numpy()[:, None], 23)
    ref -= ref.reshape(2, -1).min(1)[:, None, None, None]
    ref /= ref.reshape(2, -1).max(1)[:, None, None, None]
    np.testing.assert_allclose(got.double().numpy(), ref, atol=1e-5)


def test_maps_of_several_channels_are_resampled_and_normalised_each_on_its_own() -> None:
    """(N, K, H, W) maps come back (N, K, side, side), each map of each image resampled and
    min-max normalised on its own, as it would be alone (a reshape to one channel per image
    passed every (N, 1, H, W) test; a min-max over an image's K maps together gave a blank map
    beside a drawn one a flat 0.079, and squashed a faint map into [0.078, 0.088])."""
    maps = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4),
                      dtype=torch.float64)
    maps[1, 1] *= 0.01  # a faint map beside two others
    got = maps_to_side(maps, 11)
    assert got.shape == (2, 3, 11, 11)
    ref = bicubic_up(maps.numpy(), 11)
    ref -= ref.reshape(2, 3, -1).min(2)[:, :, None, None]
    ref /= ref.reshape(2, 3, -1).max(2)[:, :, None, None]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)
    for k in range(3):
        np.testing.assert_allclose(got[:, k:k + 1].numpy(),
                                   maps_to_side(maps[:, k], 11).numpy(), atol=1e-12)
    drawn_and_blank = torch.zeros(1, 2, 8, 8)
    drawn_and_blank[0, 0, 2:6, 2:6] = 1.0
    got = maps_to_side(drawn_and_blank, 12)
    assert got[0, 0].min() == 0.0 and got[0, 0].max() == 1.0
    assert torch.equal(got[0, 1], torch.zeros(12, 12))


def test_three_dimensional_maps_at_their_own_side_are_returned_as_they_are() -> None:
    maps = torch.rand(2, 8, 8)
    assert maps_to_side(maps, 8) is maps


@pytest.mark.parametrize("scale", [1.0, 1e-13, 1e-30])
def test_min_max_normalisation_does_not_depend_on_the_maps_scale(scale: float) -> None:
    """Min-max normalisation is scale-free: a map of range 1e-13 is stretched to [0, 1] like
    any other (a 1e-12 floor on the range left it at [0, 0.1]), against the float64 bicubic."""
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = maps_to_side(maps * scale, 11)
    ref = bicubic_up(maps.numpy()[:, None], 11)
    ref -= ref.reshape(2, -1).min(1)[:, None, None, None]
    ref /= ref.reshape(2, -1).max(1)[:, None, None, None]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9)


def test_a_varying_map_whose_resize_is_constant_comes_back_zero_not_nan() -> None:
    """Resampled to one pixel, any map is constant: no range to stretch, so 0 (not 0/0)."""
    maps = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(6))
    got = maps_to_side(maps, 1)
    assert got.shape == (2, 1, 1, 1) and torch.equal(got, torch.zeros_like(got))
