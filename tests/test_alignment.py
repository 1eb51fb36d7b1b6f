"""advlens.alignment against independent references: scipy's Spearman (with ties), closed
forms, Harmonization's metrics in numpy, and a float64 numpy transcription of the official
harmonizer loss (own pyramid with explicit TensorFlow-SAME padding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from torch import nn

from advlens import alignment


def _tied(rng: np.random.Generator, shape: tuple[int, ...], levels: int = 5) -> np.ndarray:
    return rng.integers(0, levels, shape).astype(np.float32)


def test_rankdata_averages_ties_like_scipy() -> None:
    rng = np.random.default_rng(0)
    values = _tied(rng, (7, 50), levels=4)
    values[3] = 2.0  # one constant row
    ours = alignment.rankdata(torch.from_numpy(values)).numpy()
    np.testing.assert_allclose(ours, rankdata(values, axis=1), rtol=0, atol=1e-12)


def test_rankdata_ranks_along_the_last_axis_of_any_batch_shape() -> None:
    """(3, 4, 9) values are ranked along their last axis, as scipy's rankdata(axis=-1) (a
    reshape by the second axis passed every 2-D test)."""
    values = _tied(np.random.default_rng(9), (3, 4, 9), levels=4)
    ours = alignment.rankdata(torch.from_numpy(values))
    assert ours.shape == (3, 4, 9)
    np.testing.assert_allclose(ours.numpy(), rankdata(values, axis=-1), rtol=0, atol=1e-12)


def test_spearman_alignment_equals_scipy_per_image_with_ties() -> None:
    rng = np.random.default_rng(1)
    pert = rng.normal(size=(6, 3, 12, 10)).astype(np.float32)
    pert[:, :, :4] = 0.0  # many tied zeros in the mask
    heat = _tied(rng, (6, 12, 10), levels=3)
    rho = alignment.spearman_alignment(torch.from_numpy(pert), torch.from_numpy(heat)).numpy()
    mask = np.abs(pert.mean(axis=1))
    expected = [spearmanr(m.ravel(), h.ravel())[0] for m, h in zip(mask, heat, strict=True)]
    np.testing.assert_allclose(rho, expected, rtol=0, atol=1e-10)


def test_perturbation_proportional_to_map_gives_rho_one() -> None:
    rng = np.random.default_rng(2)
    heat = torch.from_numpy(rng.uniform(size=(4, 1, 9, 9)).astype(np.float32))
    sign = torch.from_numpy(rng.choice([-1.0, 1.0], size=(4, 1, 1, 1)).astype(np.float32))
    pert = (0.3 * heat * sign).expand(4, 3, 9, 9)
    rho = alignment.spearman_alignment(pert, heat)
    torch.testing.assert_close(rho, torch.ones(4, dtype=torch.float64))
    # anti-aligned: |δ| largest where the map is smallest
    assert alignment.spearman_alignment(1.0 - heat, heat).max() < -0.999


def test_an_integer_perturbation_is_aligned_like_its_float_value() -> None:
    """A difference of 8-bit images (int32, or int64 from numpy) gives scipy's ρ of the float
    mask, as an integer heatmap already did (the channel mean refused integer tensors)."""
    rng = np.random.default_rng(6)
    pert = rng.integers(-3, 4, size=(3, 3, 7, 7))
    heat = rng.uniform(size=(3, 7, 7))
    mask = np.abs(pert.mean(axis=1))
    expected = [spearmanr(m.ravel(), h.ravel())[0] for m, h in zip(mask, heat, strict=True)]
    for p in (torch.from_numpy(pert).int(), pert):
        rho = alignment.spearman_alignment(p, torch.from_numpy(heat)).numpy()
        np.testing.assert_allclose(rho, expected, rtol=0, atol=1e-12)
    reduced = alignment.perturbation_mask(torch.from_numpy(pert[:, 0]))
    assert reduced.dtype == torch.float64

def test_constant_inputs_give_nan_and_bad_shapes_are_named() -> None:
    heat = torch.rand(2, 5, 5)
    assert torch.isnan(alignment.spearman_alignment(torch.zeros(2, 3, 5, 5), heat)).all()
    with pytest.raises(ValueError, match="same"):
        alignment.spearman_alignment(torch.zeros(2, 3, 5, 5), torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="heatmap"):
        alignment.spearman_alignment(torch.zeros(2, 3, 5, 5), torch.rand(2, 2, 5, 5))


def test_every_measure_names_an_empty_batch() -> None:
    """harmonization_score, top_k_dice / top_k_iou and harmonizer_loss failed on an empty batch
    with torch's 'cannot reshape tensor of 0 elements' (or returned NaN)."""
    empty = torch.zeros(0, 5, 5)
    for measure in (alignment.harmonization_score, alignment.top_k_dice, alignment.top_k_iou,
                    alignment.harmonizer_loss):
        with pytest.raises(ValueError, match="empty batches"):
            measure(empty, empty)
    with pytest.raises(ValueError, match="empty batches"):
        alignment.spearman_alignment(torch.zeros(0, 3, 5, 5), empty)


def test_a_channels_last_perturbation_is_named_as_such() -> None:
    # TensorFlow's (N, H, W, C) layout: the channel mean ran over H, and the error advised
    # resizing the maps
    rng = np.random.default_rng(0)
    nhwc, heat = rng.normal(size=(2, 6, 6, 3)), rng.random((2, 6, 6))
    with pytest.raises(ValueError,
                       match=r"\(2, 6, 6, 3\) looks channels-last.*permute\(0, 3, 1, 2\)"):
        alignment.spearman_alignment(torch.from_numpy(nhwc), torch.from_numpy(heat))
    rho = alignment.spearman_alignment(torch.from_numpy(nhwc).permute(0, 3, 1, 2),
                                       torch.from_numpy(heat)).numpy()
    expected = [spearmanr(np.abs(nhwc[i].mean(-1)).ravel(), heat[i].ravel())[0]
                for i in range(2)]
    np.testing.assert_allclose(rho, expected, rtol=0, atol=1e-12)


def test_harmonization_score_names_maps_of_different_shapes() -> None:
    for other, fix in ((torch.rand(2, 7, 7), "Resize"), (torch.rand(3, 8, 8), "one map per")):
        with pytest.raises(ValueError, match=f"maps and heatmaps must have the same.*{fix}"):
            alignment.harmonization_score(torch.rand(2, 8, 8), other)


@pytest.mark.parametrize("heat_shape", [(1, 16, 16), (1, 1, 16, 16), (2, 16, 16)])
def test_one_images_perturbation_without_its_batch_axis_is_named(heat_shape: tuple) -> None:
    """A (3, H, W) perturbation beside one map said 'Resize the maps to the image size', whose
    size already matched (review); with its batch axis it works."""
    delta, heat = torch.rand(3, 16, 16), torch.rand(*heat_shape)
    with pytest.raises(ValueError, match=r"one image's \(C, H, W\).*perturbation\[None\]"):
        alignment.spearman_alignment(delta, heat)
    if heat_shape[0] == 1:
        assert alignment.spearman_alignment(delta[None], heat).shape == (1,)
    # a grayscale image's (1, H, W) beside several maps too
    with pytest.raises(ValueError, match=r"one image's \(C, H, W\).*perturbation\[None\]"):
        alignment.spearman_alignment(delta[:1], torch.rand(2, 16, 16))


def _np_top(h: np.ndarray, percentile: float) -> np.ndarray:
    return (h > np.percentile(h, 100 - percentile, (0, 1))).astype(np.float32)


def _assert_top_k_is_harmonizations(a: np.ndarray, b: np.ndarray, percentile: float) -> None:
    """top_k_dice / top_k_iou of maps a, b equal Harmonization's dice / intersection_over_union
    (their np.percentile cut) image by image."""
    dice, iou = [], []
    for ha, hb in zip(a, b, strict=True):
        ta, tb = _np_top(ha, percentile), _np_top(hb, percentile)
        dice.append(2.0 * np.sum(ta * tb) / (np.sum(ta + tb) + 1e-9))
        iou.append(np.sum(np.logical_and(ta, tb)) / (np.sum(np.logical_or(ta, tb)) + 1e-9))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(alignment.top_k_dice(ta, tb, percentile).numpy(), dice,
                               atol=1e-12, err_msg=f"percentile {percentile}")
    np.testing.assert_allclose(alignment.top_k_iou(ta, tb, percentile).numpy(), iou,
                               atol=1e-12, err_msg=f"percentile {percentile}")


def test_dice_iou_and_score_match_harmonization_metrics() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(5, 16, 16)).astype(np.float32)
    b = (a + rng.normal(scale=0.5, size=a.shape)).astype(np.float32)
    dice, iou, rho = [], [], []
    for ha, hb in zip(a, b, strict=True):
        ta, tb = _np_top(ha, 10), _np_top(hb, 10)
        dice.append(2.0 * np.sum(ta * tb) / (np.sum(ta + tb) + 1e-9))
        iou.append(np.sum(np.logical_and(ta, tb)) / (np.sum(np.logical_or(ta, tb)) + 1e-9))
        rho.append(spearmanr(ha.ravel(), hb.ravel())[0])
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    np.testing.assert_allclose(alignment.top_k_dice(ta, tb).numpy(), dice, atol=1e-12)
    np.testing.assert_allclose(alignment.top_k_iou(ta, tb).numpy(), iou, atol=1e-12)
    score = alignment.harmonization_score(ta, tb)
    assert score["spearman"] == pytest.approx(np.mean(rho), abs=1e-10)
    assert score["score"] == pytest.approx(np.mean(rho) / 0.6575315343478081, abs=1e-12)
    assert score["dice"] == pytest.approx(np.mean(dice)) and score["iou"] == pytest.approx(
        np.mean(iou))


def test_top_k_masks_cut_at_numpys_percentile_for_every_whole_percentile() -> None:
    """The cut is np.percentile(h, 100 − p), whose fraction is (100 − p)/100: 1 − p/100 is
    0.09999999999999998 at p = 90, and on 17 × 23 maps ((n − 1)·q = 39 exactly) that put the
    cut just below the 40th largest pixel, one pixel more on top than Harmonization's."""
    rng = np.random.default_rng(5)
    a, b = rng.uniform(size=(2, 3, 17, 23))
    for percentile in (10, 20, 50, 80, 90, 93):
        _assert_top_k_is_harmonizations(a, b, percentile)


def test_top_k_percentile_of_one_element_is_read_as_its_number() -> None:
    """A percentile given as a (1,) array or tensor is that number (np.percentile of a (1,)
    q cut every row against a (1, N, 1) array: masks of shape (1, N, HW), Dice 0)."""
    rng = np.random.default_rng(2)
    a, b = (torch.from_numpy(rng.uniform(size=(3, 6, 6)).astype(np.float32)) for _ in range(2))
    expected = alignment.top_k_dice(a, b, 10.0)
    for percentile in (np.array([10.0]), torch.tensor([10.0]), np.float64(10.0)):
        np.testing.assert_array_equal(alignment.top_k_dice(a, b, percentile).numpy(),
                                      expected.numpy())
    assert alignment.harmonization_score(a, b, percentile=np.array([10.0]))["dice"] == (
        pytest.approx(float(expected.mean())))


def test_top_k_masks_cut_in_float32_as_harmonization() -> None:
    """Harmonization takes np.percentile of float32 maps in float32: where the two
    order statistics around the cut are adjacent float32 values, its interpolation rounds to
    the upper one, and the 3,000 pixels tied at it are not in the top set (a float64 cut, as
    ours was, lies between them and kept them: Dice 0.098 against Harmonization's 0.057)."""
    n = 224 * 224
    v = np.linspace(0, 1, n, dtype=np.float32)
    k = int(0.9 * (n - 1))
    upper = np.nextafter(v[k], np.float32(2))
    v[k + 1:k + 3001] = upper
    rng = np.random.default_rng(0)
    a = rng.permutation(v).reshape(1, 224, 224)
    b = rng.random((1, 224, 224)).astype(np.float32)
    assert np.percentile(a[0], 90) == upper  # the case: the float32 cut is the upper value
    _assert_top_k_is_harmonizations(a, b, 10)
    assert int(alignment.top_k_dice(torch.from_numpy(a), torch.from_numpy(b))[0] * 1e3) == 56


# --- the harmonizer loss, transcribed from serre-lab/Harmonization in float64 numpy ----------

def _np_standardize_cut(h: np.ndarray) -> np.ndarray:
    mean = h.mean(axis=(1, 2), keepdims=True)
    std = np.sqrt(((h - mean) ** 2).mean(axis=(1, 2), keepdims=True))  # population std
    return np.maximum((h - mean) / (std + 1e-5), 0.0)


def _np_downsample(h: np.ndarray) -> np.ndarray:
    """tf.nn.conv2d(stride 2, padding SAME) with the normalised 5×5 binomial kernel, by loops."""
    k1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = np.outer(k1, k1) / 256.0
    n, height, width = h.shape
    out_h, out_w = -(-height // 2), -(-width // 2)
    pad_h = max((out_h - 1) * 2 + 5 - height, 0)
    pad_w = max((out_w - 1) * 2 + 5 - width, 0)
    top, left = pad_h // 2, pad_w // 2  # TF puts the odd extra pixel after
    padded = np.zeros((n, height + pad_h, width + pad_w))
    padded[:, top:top + height, left:left + width] = h
    out = np.zeros((n, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            out[:, i, j] = (padded[:, 2 * i:2 * i + 5, 2 * j:2 * j + 5] * kernel).sum(axis=(1, 2))
    return out


def _np_harmonizer(sal: np.ndarray, heat: np.ndarray, tokens: np.ndarray,
                   levels: int = 5, peak: np.ndarray | None = None) -> float:
    """``peak``: the saliency's standardised peak held at this value (tf.stop_gradient's
    constant, for finite differences); default: taken from ``sal``."""
    s, h = _np_standardize_cut(sal), _np_standardize_cut(heat)
    peak = s.max(axis=(1, 2), keepdims=True) if peak is None else peak
    h = h / (h.max(axis=(1, 2), keepdims=True) + 1e-6) * (peak + 1e-6)
    ps, ph = [s], [h]
    for _ in range(levels):
        ps.append(_np_downsample(ps[-1]))
        ph.append(_np_downsample(ph[-1]))
    return float(np.mean([np.mean((ps[i] - ph[i]) ** 2 * tokens[:, None, None])
                          for i in range(levels)]))


@pytest.mark.parametrize("shape", [(4, 32, 32), (3, 17, 23), (2, 16, 16)])
def test_harmonizer_loss_equals_float64_transcription(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    sal = rng.normal(size=shape)
    heat = rng.uniform(size=shape) ** 3
    tokens = rng.uniform(0.0, 2.0, size=shape[0])
    ours = alignment.harmonizer_loss(torch.from_numpy(sal), torch.from_numpy(heat),
                                     torch.from_numpy(tokens))
    assert ours.dtype == torch.float64
    assert float(ours) == pytest.approx(_np_harmonizer(sal, heat, tokens), rel=1e-12)


def test_harmonizer_loss_gradient_holds_the_saliency_peak_constant() -> None:
    """The official loss rescales the heatmap by ``tf.stop_gradient`` of the saliency's peak:
    the gradient in the saliency is the finite difference of the float64 transcription with that
    peak held at its value (central differences, every pixel)."""
    rng = np.random.default_rng(7)
    sal = rng.normal(size=(2, 8, 8))
    heat = rng.uniform(size=(2, 8, 8)) ** 3
    tokens = np.array([1.0, 0.5])
    peak = _np_standardize_cut(sal).max(axis=(1, 2), keepdims=True)
    expected = np.zeros_like(sal)
    step = 1e-6
    for index in np.ndindex(sal.shape):
        up, down = sal.copy(), sal.copy()
        up[index] += step
        down[index] -= step
        expected[index] = (_np_harmonizer(up, heat, tokens, peak=peak)
                           - _np_harmonizer(down, heat, tokens, peak=peak)) / (2 * step)
    s = torch.from_numpy(sal).requires_grad_(True)
    alignment.harmonizer_loss(s, torch.from_numpy(heat), torch.from_numpy(tokens)).backward()
    np.testing.assert_allclose(s.grad.numpy(), expected, rtol=1e-5, atol=1e-9)


def test_pyramid_and_standardize_cut_on_odd_non_square_maps() -> None:
    """Odd sides (TF SAME's extra pixel after) and N unlike H and W (a per-map mean that lost
    its axes broadcast against the width): both survived mutation testing on 16 × 16 maps."""
    maps = np.random.default_rng(0).random((3, 17, 9))
    levels = alignment.pyramid(torch.from_numpy(maps), levels=2)
    np.testing.assert_allclose(levels[1].numpy(), _np_downsample(maps), rtol=0, atol=1e-12)
    np.testing.assert_allclose(levels[2].numpy(), _np_downsample(_np_downsample(maps)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(alignment.standardize_cut(torch.from_numpy(maps)).numpy(),
                               _np_standardize_cut(maps), rtol=0, atol=1e-12)
    # eps = 0 is allowed (maps that are not constant need none)
    centred = maps - maps.mean(axis=(1, 2), keepdims=True)
    plain = np.maximum(centred / np.sqrt((centred ** 2).mean(axis=(1, 2), keepdims=True)), 0)
    np.testing.assert_allclose(alignment.standardize_cut(torch.from_numpy(maps), eps=0.0).numpy(),
                               plain, rtol=0, atol=1e-12)


def test_pyramid_same_padding_sizes() -> None:
    sizes = [tuple(level.shape[1:]) for level in alignment.pyramid(torch.zeros(1, 32, 17))]
    assert sizes == [(32, 17), (16, 9), (8, 5), (4, 3), (2, 2), (1, 1)]


def test_harmonizer_loss_zero_for_matching_maps_and_gradient_skips_peak() -> None:
    heat = torch.rand(3, 16, 16, dtype=torch.float64)
    assert float(alignment.harmonizer_loss(2.0 * heat + 1.0, heat)) < 1e-10
    sal = torch.randn(3, 16, 16, dtype=torch.float64, requires_grad=True)
    alignment.harmonizer_loss(sal, heat).backward()
    assert sal.grad is not None and torch.isfinite(sal.grad).all()
    with pytest.raises(ValueError, match="tokens"):
        alignment.harmonizer_loss(sal, heat, torch.ones(2))


class _Linear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def test_saliency_of_a_linear_model_is_its_weight_row() -> None:
    weight = torch.randn(4, 2 * 5 * 5)
    model = _Linear(weight)
    x, y = torch.rand(3, 2, 5, 5), torch.tensor([0, 3, 1])
    expected = weight[y].reshape(3, 2, 5, 5).mean(dim=1)
    torch.testing.assert_close(alignment.saliency(model, x, y), expected)
    assert model.weight.requires_grad and model.training  # flags restored
    s = alignment.saliency(model, x, y, create_graph=True)
    torch.testing.assert_close(s, expected)
    s.square().sum().backward()  # differentiable in the parameters (double backprop)
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0
    # Harmonization's evaluation map (Xplique's Saliency): the largest |gradient| over channels
    largest = weight[y].reshape(3, 2, 5, 5).abs().amax(dim=1)
    torch.testing.assert_close(alignment.saliency(model, x, y, channels="max-abs"), largest)
    assert not torch.allclose(largest, expected.abs())  # two channels: not |mean|
    with pytest.raises(ValueError, match="channels must be one of"):
        alignment.saliency(model, x, y, channels="max")


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
def test_saliency_inside_a_callers_inference_mode_is_the_weight_row(mode: type) -> None:
    """Inside the caller's ``inference_mode()`` (images and labels made there are inference
    tensors) or ``no_grad()``, saliency still takes its gradient (inference mode failed with
    "element 0 of tensors does not require grad"): the linear model's weight row, as outside."""
    weight = torch.randn(4, 2 * 5 * 5)
    model = _Linear(weight)
    x, y = torch.rand(3, 2, 5, 5), torch.tensor([0, 3, 1])
    expected = weight[y].reshape(3, 2, 5, 5)
    with mode():
        mean = alignment.saliency(model, x.clone(), y.clone())
        largest = alignment.saliency(model, x.clone(), y.tolist(), channels="max-abs")
    torch.testing.assert_close(mean, expected.mean(dim=1))
    torch.testing.assert_close(largest, expected.abs().amax(dim=1))
    assert model.weight.requires_grad and model.training and model.weight.grad is None


def test_saliency_made_in_inference_mode_is_an_ordinary_tensor_a_loss_can_target() -> None:
    """A map made inside the caller's ``inference_mode()`` is the target of a differentiable
    saliency loss (a harmonization-style loss against a reference model's maps): it was an
    inference tensor, and the loss's backward failed ("Inference tensors cannot be saved for
    backward"), unlike invert's and the probes' results. The gradient is the closed form
    d/dW mean((W[y] - T)²) of a linear model."""
    weight = torch.randn(4, 1 * 5 * 5)
    reference, student = _Linear(torch.randn(4, 25)), _Linear(weight)
    x, y = torch.rand(3, 1, 5, 5), torch.tensor([0, 3, 1])
    with torch.inference_mode():
        target = alignment.saliency(reference, x, y)
    assert not target.is_inference()
    student.weight.requires_grad_(True)
    loss = torch.nn.functional.mse_loss(alignment.saliency(student, x, y, create_graph=True),
                                        target)
    loss.backward()
    rows = weight[y] - target.reshape(3, 25)
    expected = torch.zeros_like(weight).index_add_(0, y, 2 * rows / rows.numel())
    torch.testing.assert_close(student.weight.grad, expected)


def test_dice_and_iou_of_tied_maps_take_pixels_strictly_above_the_percentile() -> None:
    """ClickMe-like maps, mostly zero with plateaus: the (100 − p)-th percentile is itself a
    map value, and Harmonization's ``dice``/``intersection_over_union`` keep the pixels
    strictly above it (``>``; with ``>=`` a mostly-zero map would keep every pixel)."""
    rng = np.random.default_rng(8)
    a = np.where(rng.uniform(size=(4, 16, 16)) < 0.85, 0.0,
                 rng.integers(1, 4, size=(4, 16, 16))).astype(np.float32)
    b = np.where(rng.uniform(size=(4, 16, 16)) < 0.95, 0.0, 1.0).astype(np.float32)
    b[0, :4, :4] = 2.0  # one map whose plateau straddles the percentile
    for percentile in (10.0, 20.0):
        _assert_top_k_is_harmonizations(a, b, percentile)


def test_harmonization_score_counts_the_images_where_rho_is_undefined() -> None:
    rng = np.random.default_rng(5)
    a = rng.uniform(size=(4, 8, 8))
    b = a + rng.normal(scale=0.5, size=a.shape)
    a[1] = 0.0  # a zero gradient: ρ is NaN for this image
    score = alignment.harmonization_score(torch.from_numpy(a), torch.from_numpy(b))
    rho = [spearmanr(a[i].ravel(), b[i].ravel())[0] for i in (0, 2, 3)]
    assert score["n_undefined"] == 1
    assert score["spearman"] == pytest.approx(np.mean(rho), abs=1e-12)


def test_logits_and_saliency_are_differentiable_in_the_parameters() -> None:
    """A harmonizer step differentiates through the saliency: for a linear model the map is the
    channel mean of the true class's weight row, so the parameter gradient of a loss on it is
    that of the closed form (autograd on the weight directly)."""
    weight = torch.randn(4, 2 * 5 * 5, dtype=torch.float64)
    model = _Linear(weight.clone())
    x, y = torch.rand(3, 2, 5, 5, dtype=torch.float64), torch.tensor([0, 3, 0])
    logits, sal = alignment.logits_and_saliency(model, x, y)
    torch.testing.assert_close(logits, x.flatten(1) @ weight.T)
    (sal.square().sum() + logits.sum()).backward()
    w = weight.clone().requires_grad_(True)
    expected = w[y].reshape(3, 2, 5, 5).mean(dim=1)
    torch.testing.assert_close(sal.detach(), expected.detach())
    (expected.square().sum() + (x.flatten(1) @ w.T).sum()).backward()
    torch.testing.assert_close(model.weight.grad, w.grad)


def test_saliency_names_a_model_that_returns_a_tuple() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.fc(x.flatten(1)), x

    x = torch.rand(3, 1, 2, 2)
    for create_graph in (False, True):
        with pytest.raises(TypeError, match=r"returned a tuple.*model\(x\)\[0\]"):
            alignment.saliency(Pair(), x, torch.tensor([0, 1, 0]), create_graph=create_graph)


def test_perturbation_mask_is_the_absolute_channel_mean() -> None:
    """The mask itself (not only its ranks): |mean over channels| of an (N, C, H, W)
    perturbation, |δ| of an (N, H, W) one, against numpy in float64 (a channel *sum* has the
    same ranks, so the Spearman tests could not tell it apart)."""
    rng = np.random.default_rng(11)
    pert = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(alignment.perturbation_mask(torch.from_numpy(pert)).numpy(),
                               np.abs(pert.mean(axis=1)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(alignment.perturbation_mask(torch.from_numpy(pert[:, 0])).numpy(),
                               np.abs(pert[:, 0]), rtol=0, atol=0)


def test_harmonization_score_scores_dice_and_iou_at_its_percentile() -> None:
    rng = np.random.default_rng(12)
    a = rng.uniform(size=(3, 12, 12))
    b = a + rng.normal(scale=0.5, size=a.shape)
    score = alignment.harmonization_score(torch.from_numpy(a), torch.from_numpy(b),
                                          percentile=30.0)
    dice, iou = [], []
    for ha, hb in zip(a, b, strict=True):
        ta, tb = _np_top(ha, 30.0).astype(np.float64), _np_top(hb, 30.0).astype(np.float64)
        dice.append(2.0 * np.sum(ta * tb) / (np.sum(ta + tb) + 1e-9))
        iou.append(np.sum(np.logical_and(ta, tb)) / (np.sum(np.logical_or(ta, tb)) + 1e-9))
    assert score["dice"] == pytest.approx(np.mean(dice), abs=1e-10)
    assert score["iou"] == pytest.approx(np.mean(iou), abs=1e-10)
    default = alignment.harmonization_score(torch.from_numpy(a), torch.from_numpy(b))
    assert default["dice"] != pytest.approx(score["dice"])  # the percentile matters here


def test_top_k_of_float64_maps_keeps_their_precision() -> None:
    """float64 maps whose values differ only below float32's resolution (a float64 saliency):
    the top pixels are numpy's float64 ones, not a float32 rounding's (all ties there)."""
    rng = np.random.default_rng(13)
    a = 1.0 + rng.permuted(np.tile(np.arange(100.0), (2, 1)), axis=1).reshape(2, 10, 10) * 1e-12
    b = 1.0 + (a - 1.0) * rng.uniform(1.0, 3.0, size=(2, 10, 10))  # much the same order
    assert np.unique(a.astype(np.float32)).size == 1  # one value in float32
    dice = []
    for ha, hb in zip(a, b, strict=True):
        ta, tb = _np_top(ha, 10).astype(np.float64), _np_top(hb, 10).astype(np.float64)
        dice.append(2.0 * np.sum(ta * tb) / (np.sum(ta + tb) + 1e-9))
    ours = alignment.top_k_dice(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ours, dice, rtol=0, atol=1e-10)
    assert (_np_top(a[0], 10).sum(), _np_top(b[0], 10).sum()) == (10, 10)
    assert min(dice) > 0.3


def test_levels_and_percentiles_out_of_range_are_refused() -> None:
    """levels = 0 averages no pyramid level (torch.stack of nothing failed unexplained); a
    percentile of 0 or 100 keeps no pixel or (nearly) all: both named."""
    maps = torch.rand(2, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="levels must be an int >= 1; got 0"):
        alignment.harmonizer_loss(maps, maps, levels=0)
    for percentile in (0.0, 100.0):
        for measure in (alignment.top_k_dice, alignment.top_k_iou):
            with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\)"):
                measure(maps, maps, percentile)
