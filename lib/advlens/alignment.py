"""Alignment of perturbations and saliency with importance maps (Linsley et al. 2023; Fel et al.
2022's neural harmonizer). Tensors in, tensors out, batched, on any device.

- :func:`spearman_alignment`: per-image Spearman ρ between ``|mean over channels of δ|`` and a
  map (ranks with ties averaged, as ``scipy.stats.rankdata``), the Adversarial-Alignment measure.
- :func:`saliency`: gradient of the true-class logit w.r.t. the input, mean over channels (the
  map the harmonizer aligns).
- :func:`harmonization_score`, :func:`top_k_dice`, :func:`top_k_iou`: Harmonization's
  evaluation (``evaluation/metrics.py``).
- :func:`harmonizer_loss`: the neural harmonizer's term (``training/loss.py``, ``pyramid.py``).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advlens.checks import (
    as_tensor,
    check_bool,
    check_images,
    check_labels,
    check_positive_int,
    frozen,
    images_for,
    model_device,
    model_output,
    one_number,
    positive_number,
)

# ClickMe's inter-participant Spearman ceiling (Fel et al. 2022), to the digits of the official
# evaluation (Harmonization's HUMAN_SPEARMAN_CEILING; printed rounded as 0.65753)
HUMAN_CEILING = 0.6575315343478081
PYRAMID_LEVELS = 5
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _maps(x: Tensor | object, name: str) -> Tensor:
    """(N, H, W) from (N, H, W) or (N, 1, H, W)."""
    t = as_tensor(x, name)  # type: ignore[arg-type]
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W); got {tuple(t.shape)}.")
    if not t.is_floating_point():
        t = t.float()
    return t


def _finite(maps: Tensor, name: str) -> None:
    """Refuse maps holding NaN or inf: a top-k mask or a mean over images would take them in
    silently (a NaN map's Dice read 0 and was averaged in)."""
    bad = ~torch.isfinite(maps).flatten(1).all(dim=1)
    if bool(bad.any()):
        images = bad.nonzero().flatten().tolist()
        raise ValueError(f"{name} hold NaN or inf in image(s) {images[:10]}"
                         f"{' …' if len(images) > 10 else ''}; pass finite maps (e.g. "
                         "torch.nan_to_num, or leave those images out).")


def _same_shape(a: Tensor, b: Tensor, names: str) -> None:
    if a.shape != b.shape:
        fix = ("Resize the maps to the image size first." if a.shape[1:] != b.shape[1:] else
               "Give one map per image.")
        raise ValueError(f"{names} must have the same (N, H, W) shape; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}. {fix}")
    if a.shape[0] == 0:  # torch's reshape(0, -1) error did not say what was wrong
        raise ValueError(f"{names} are empty batches; pass at least one image.")


def rankdata(values: Tensor) -> Tensor:
    """Ranks (1..M) along the last axis with ties given their average rank, like
    ``scipy.stats.rankdata(method="average")`` row by row; float64, batched, any device; a row
    holding a NaN is all NaN (scipy's default ``nan_policy="propagate"``)."""
    values = _rows(values, "values")
    flat = values.reshape(-1, values.shape[-1])
    n, m = flat.shape
    sorted_vals, order = flat.sort(dim=1, stable=True)
    new_group = torch.ones_like(sorted_vals, dtype=torch.bool)
    new_group[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    group = new_group.cumsum(dim=1) - 1 + m * torch.arange(n, device=flat.device)[:, None]
    position = torch.arange(1, m + 1, device=flat.device, dtype=torch.float64).expand(n, m)
    total = torch.zeros(n * m, device=flat.device, dtype=torch.float64)
    count = torch.zeros_like(total)
    total.scatter_add_(0, group.flatten(), position.flatten())
    count.scatter_add_(0, group.flatten(), torch.ones_like(position).flatten())
    average = (total / count.clamp_min(1))[group]
    ranks = torch.empty_like(average)
    ranks.scatter_(1, order, average)
    ranks = ranks.masked_fill(flat.isnan().any(dim=1, keepdim=True), float("nan"))
    return ranks.reshape(values.shape)


def _rows(x: Tensor, name: str) -> Tensor:
    """``x`` (a tensor or NumPy array) with at least one row of at least one value; torch's
    reshape of a 0-dim or empty one named neither the argument nor its shape."""
    x = as_tensor(x, name)
    if x.ndim == 0 or x.numel() == 0:
        raise ValueError(f"{name} must hold at least one row of values; got shape "
                         f"{tuple(x.shape)}.")
    return x


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Per-row Spearman ρ of (N, ...) tensors (flattened per row); NaN where a row is constant
    or holds a NaN (as ``scipy.stats.spearmanr``)."""
    a, b = _rows(a, "a"), _rows(b, "b")
    if a.shape[0] != b.shape[0] or a[0].numel() != b[0].numel():
        raise ValueError(f"a and b must hold the same number of rows of the same size; got "
                         f"shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    ra = rankdata(a.reshape(a.shape[0], -1))
    rb = rankdata(b.reshape(b.shape[0], -1))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    return (ra * rb).sum(1) / (ra.square().sum(1) * rb.square().sum(1)).sqrt()


def perturbation_mask(perturbation: Tensor) -> Tensor:
    """``|mean over channels|`` of an (N, C, H, W) perturbation: the map compared to the human
    one (Linsley et al.); an (N, H, W) input is taken as already reduced (absolute value). An
    integer perturbation (a difference of 8-bit images) is taken in float64."""
    p = as_tensor(perturbation, "perturbation")
    if p.ndim == 4 and p.dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64):
        # (an (N, H, W) map is a magnitude already: |a - b| of unsigned images is fine)
        raise ValueError(f"perturbation is {p.dtype}: a difference of unsigned images has "
                         "already wrapped around (3 - 5 reads 254); take it in a signed type, "
                         "e.g. adv.int() - x.int(), or as floats.")
    if not p.is_floating_point():  # the channel mean needs floats; float64 holds the ints exactly
        p = p.double()
    if p.ndim == 4:
        p = p.mean(dim=1)
    if p.ndim != 3:
        raise ValueError("perturbation must be (N, C, H, W) or (N, H, W); "
                         f"got {tuple(p.shape)}.")
    return p.abs()


def spearman_alignment(perturbation: Tensor, heatmap: Tensor) -> Tensor:
    """Per-image Spearman ρ between a perturbation and an importance map.

    Parameters
    ----------
    perturbation : (N, C, H, W) ``adv − x`` (or an (N, H, W) map, taken in absolute value).
    heatmap : (N, H, W) or (N, 1, H, W) importance map (ClickMe, or a stand-in).

    Returns
    -------
    (N,) float64 ρ of ``|mean over channels of perturbation|`` against ``heatmap``, ranks with
    ties averaged (min-max normalising the map, as the paper does, leaves ranks unchanged).
    NaN for an image whose mask or map is constant (e.g. a zero perturbation) or holds a NaN.
    """
    given = tuple(as_tensor(perturbation, "perturbation").shape)
    mask = perturbation_mask(perturbation)
    heat = _maps(heatmap, "heatmap").to(mask.device)
    if len(given) == 4 and mask.shape != heat.shape and given[1:3] == tuple(heat.shape[1:]):
        raise ValueError(f"perturbation {given} looks channels-last (N, H, W, C) beside heatmaps "
                         f"{tuple(heat.shape)}; pass it as (N, C, H, W): "
                         "perturbation.permute(0, 3, 1, 2).")
    if (len(given) == 3 and given[0] in (1, 3) and given[0] != heat.shape[0]
            and given[1:] == tuple(heat.shape[1:])):
        # one image's (C, H, W) perturbation was read as C maps of one channel each; the
        # message said to resize maps whose size already matched
        raise ValueError(f"perturbation {given} looks like one image's (C, H, W) beside "
                         f"{heat.shape[0]} heatmap(s) {tuple(heat.shape)}; give it its batch "
                         "axis: perturbation[None] (N, C, H, W).")
    _same_shape(mask, heat, "perturbation and heatmap")
    return spearman(mask, heat)


def saliency(model: nn.Module, x: Tensor, y: Tensor, *, create_graph: bool = False,
             channels: str = "mean") -> Tensor:
    """Gradient of the true-class logit w.r.t. the input, reduced over channels: (N, H, W).

    ``channels="mean"``: the harmonizer's map (``d(Σ logits · onehot)/d images``, then the
    signed channel mean), what its loss trains. ``channels="max-abs"``: the largest |gradient|
    over channels, the map Harmonization's ClickMe evaluation scores (Xplique's ``Saliency``);
    for one channel it is ``|mean|``. The gradient is taken with respect to the [0, 1] images
    ``x``; Harmonization takes it with respect to the mean/std-normalised input the network
    sees, which for a model that normalises inside (``NormalizedClassifier``) is this gradient
    times each channel's std: the mean map differs by those factors per channel, and the
    max-abs map can pick another channel (measured on an ImageNet-normalised toy: 0.75 % of
    pixels, per-image Spearman against a map moved by at most 1.3e-3). With ``create_graph``
    the result stays differentiable in the parameters (for training; the model is then used
    in its current mode); otherwise the model runs in eval mode with parameter gradients off,
    and the map is detached; it may then be called inside a caller's ``torch.no_grad()`` or
    ``torch.inference_mode()`` (the map is an ordinary tensor, usable as the target of a
    differentiable saliency loss).
    """
    if channels not in _CHANNEL_REDUCTIONS:
        raise ValueError(f"channels must be one of {_CHANNEL_REDUCTIONS}; got {channels!r}.")
    create_graph = check_bool(create_graph, "create_graph")  # 'False' skipped check_images
    x = as_tensor(x, "x")
    y = check_labels(y, x.shape[0], "y")
    x = images_for(model, x)
    if create_graph:
        grad = _input_grad(model, x, y, create_graph=True)[1]
        return _reduce_channels(grad, channels)
    check_images(x, "x")
    # its own gradient, also inside a caller's no_grad() or inference_mode()
    with frozen(model), torch.inference_mode(False), torch.enable_grad():
        grad = _input_grad(model, x, y)[1]
        # reduced here: outside, in a caller's inference_mode(), the map was an inference
        # tensor, which autograd refuses to save (a loss against it failed in backward)
        return _reduce_channels(grad, channels).detach()


_CHANNEL_REDUCTIONS = ("mean", "max-abs")


def _reduce_channels(grad: Tensor, channels: str) -> Tensor:
    return grad.mean(dim=1) if channels == "mean" else grad.abs().amax(dim=1)


def _twice_differentiable_attention(create_graph: bool) -> contextlib.AbstractContextManager:
    """With ``create_graph``, attention (``F.scaled_dot_product_attention``, timm's fused
    attention) as its matrix products: the flash kernels it picks otherwise (CPU and CUDA) have
    no double backward, and a harmonizer step on a ViT failed ("derivative for
    aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented")."""
    if not create_graph:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


def _input_grad(model: nn.Module, x: Tensor, y: Tensor, *,
                create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """(logits, d(true-class logit)/d x (N, C, H, W)) from one forward pass (with
    ``create_graph``, one that can be differentiated twice), on the model's device."""
    # an inference tensor (made in a caller's inference_mode) can neither require a gradient
    # nor be saved for the backward pass (gather saves its index): ordinary copies of them
    inputs = ((x.clone() if x.is_inference() else x.detach()).to(model_device(model))
              .requires_grad_(True))
    with _twice_differentiable_attention(create_graph):
        logits = model_output(model, inputs)
    # out-of-range labels: named here (gather's index error, a device-side assert on CUDA)
    y = check_labels(y, logits.shape[0], "y", classes=logits.shape[1]).to(logits.device)
    picked = logits.gather(1, (y.clone() if y.is_inference() else y)[:, None]).sum()
    (grad,) = torch.autograd.grad(picked, inputs, create_graph=create_graph)
    return logits, grad


def logits_and_saliency(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass in the model's current mode: (logits, saliency), both differentiable in
    the parameters (what a harmonizer training step needs: cross-entropy on the same logits)."""
    logits, grad = _input_grad(model, x, y, create_graph=True)
    return logits, grad.mean(dim=1)


def _validated_pair(a: Tensor, b: Tensor, names: tuple[str, str], pair: str
                    ) -> tuple[Tensor, Tensor]:
    """Two sets of maps as (N, H, W) tensors on ``a``'s device, refused unless of one shape
    and finite."""
    a, b = _maps(a, names[0]), _maps(b, names[1]).to(a.device)
    _same_shape(a, b, pair)
    _finite(a, names[0])
    _finite(b, names[1])
    return a, b


def _percentile(percentile: float) -> float:
    p = one_number("percentile", percentile)  # (a string failed on "<"; a (1,) array cut
    if not 0 < p < 100:                         # per row of a (1, N, 1) mask)
        raise ValueError(f"percentile must be in (0, 100); got {percentile}.")
    return p


def _top(h: Tensor, p: float) -> Tensor:
    """Each map's pixels strictly above its (100 − p)-th percentile, (N, H·W) booleans."""
    # np.percentile in the maps' own precision, as Harmonization's metrics take it on
    # float32 maps: its float32 interpolation can land on the upper of two adjacent values,
    # where a float64 cut lies between them (every pixel tied at the upper one then falls
    # out of the top set). float64 maps keep their precision (Harmonization casts them to
    # float32, which ties values that differ below its resolution); half precision: float32
    flat = h.detach().reshape(h.shape[0], -1)
    flat = (flat if flat.dtype in (torch.float32, torch.float64) else flat.float()).cpu()
    values = flat.numpy()
    cut = np.percentile(values, 100 - p, axis=1, keepdims=True)
    return torch.from_numpy(values > cut).to(h.device)


def _dice(ta: Tensor, tb: Tensor) -> Tensor:
    return 2.0 * (ta & tb).sum(1).double() / (ta.sum(1) + tb.sum(1) + 1e-9)


def _iou(ta: Tensor, tb: Tensor) -> Tensor:
    return (ta & tb).sum(1).double() / ((ta | tb).sum(1).double() + 1e-9)


_HEATMAP_PAIR = (("heatmaps_a", "heatmaps_b"), "the two sets of heatmaps")


def top_k_dice(heatmaps_a: Tensor, heatmaps_b: Tensor, percentile: float = 10.0) -> Tensor:
    """Per-image Sørensen–Dice of the top ``percentile`` % pixels of each map (strictly above
    the (100 − percentile)-th percentile, linear interpolation), as Harmonization's ``dice``
    on float32 maps; float64 maps keep their precision (Harmonization casts them to float32,
    which ties values that differ below its resolution)."""
    a, b = _validated_pair(heatmaps_a, heatmaps_b, *_HEATMAP_PAIR)
    p = _percentile(percentile)
    return _dice(_top(a, p), _top(b, p))


def top_k_iou(heatmaps_a: Tensor, heatmaps_b: Tensor, percentile: float = 10.0) -> Tensor:
    """Per-image intersection over union of the top ``percentile`` % pixels (as
    Harmonization's ``intersection_over_union``)."""
    a, b = _validated_pair(heatmaps_a, heatmaps_b, *_HEATMAP_PAIR)
    p = _percentile(percentile)
    return _iou(_top(a, p), _top(b, p))


def harmonization_score(maps: Tensor, heatmaps: Tensor, *, percentile: float = 10.0
                        ) -> dict[str, float]:
    """Harmonization's alignment summary of model maps against importance maps.

    Returns ``spearman`` (mean per-image ρ over the images where ρ is defined), ``score`` (that
    ÷ the ClickMe human ceiling :data:`HUMAN_CEILING` = 0.65753), ``dice`` and ``iou`` (means of
    :func:`top_k_dice` / :func:`top_k_iou` over every image), and ``n_undefined``: the images
    left out of the mean ρ because a map is constant (e.g. a zero gradient), where ρ is NaN.
    Harmonization's ``np.mean`` makes the whole mean NaN then; here they are counted instead.
    Maps are compared as given (pass ``saliency(..., channels="max-abs")`` for Harmonization's
    saliency map), float64 maps in their own precision for ρ too (Harmonization casts them to
    float32 first, which ties values that differ below its resolution: ρ can differ, or be
    NaN there where a map becomes constant). The ``score`` is meaningful only against real
    ClickMe maps: the ceiling is the agreement between ClickMe participants, and means nothing
    for stand-in maps.
    """
    m, h = _validated_pair(maps, heatmaps, ("maps", "heatmaps"), "maps and heatmaps")
    p = _percentile(percentile)
    rho = spearman(m, h)
    mean_rho = float(torch.nanmean(rho))
    top_m, top_h = _top(m, p), _top(h, p)  # (one cut per map serves both overlaps)
    return {"spearman": mean_rho, "score": mean_rho / HUMAN_CEILING,
            "dice": float(_dice(top_m, top_h).mean()), "iou": float(_iou(top_m, top_h).mean()),
            "n_undefined": int(rho.isnan().sum())}


def standardize_cut(maps: Tensor, eps: float = 1e-5) -> Tensor:
    """ReLU((h − mean) / (std + eps)) per (N, H, W) map, population std (Harmonization)."""
    maps, eps = _maps(maps, "maps"), positive_number("eps", eps, allow_zero=True)
    mean = maps.mean(dim=(1, 2), keepdim=True)
    std = maps.std(dim=(1, 2), keepdim=True, correction=0)
    return torch.relu((maps - mean) / (std + eps))


def _same_pad(size: int, kernel: int = 5, stride: int = 2) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (before, after) of one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pyramid(maps: Tensor, levels: int = PYRAMID_LEVELS) -> list[Tensor]:
    """Gaussian pyramid of (N, H, W) maps: level 0 = the maps, then ``levels`` times a 5×5
    binomial blur ([1,4,6,4,1]ᵀ[1,4,6,4,1]/256) with stride 2 and TensorFlow SAME zero padding
    (Harmonization's ``pyramidal_representation``); returns ``levels + 1`` tensors."""
    maps, levels = _maps(maps, "maps"), check_positive_int(levels, "levels", least=0)
    k1 = torch.tensor(_BINOMIAL, dtype=maps.dtype, device=maps.device)
    kernel = (k1[:, None] * k1[None, :] / k1.sum() ** 2)[None, None]
    out, x = [maps], maps[:, None]
    for _ in range(levels):
        top, bottom = _same_pad(x.shape[-2])
        left, right = _same_pad(x.shape[-1])
        x = F.conv2d(F.pad(x, (left, right, top, bottom)), kernel, stride=2)
        out.append(x[:, 0])
    return out


def harmonizer_loss(saliency_maps: Tensor, heatmaps: Tensor, tokens: Tensor | None = None, *,
                    levels: int = PYRAMID_LEVELS) -> Tensor:
    """The neural harmonizer's alignment term (Fel et al. 2022), as the official code computes it.

    Parameters
    ----------
    saliency_maps : (N, H, W) model saliency (:func:`saliency` with ``create_graph=True``).
    heatmaps : (N, H, W) or (N, 1, H, W) importance maps.
    tokens : (N,) per-image weights (1 = the image has a map); default all ones.
    levels : pyramid downsamplings (Harmonization: 5).

    Returns
    -------
    Scalar: both maps go through ``standardize_cut`` (zero mean, *population* std + 1e-5, then
    ReLU); the heatmap is rescaled to the saliency's peak, ``h / (max h + 1e-6) · (max s +
    1e-6)`` with the saliency peak taken without gradient; both are expanded in a Gaussian
    :func:`pyramid` (5×5 binomial, stride 2, TF SAME padding: 1 before and 2 after on even sizes);
    per level the token-weighted mean of squared differences over (N, h, w); the result is the
    mean over levels 0 … ``levels − 1`` (level 0 = full resolution; the last, coarsest level the
    pyramid builds is not used, as in ``pyramidal_mse_with_tokens``).
    """
    s = _maps(saliency_maps, "saliency_maps")
    h = _maps(heatmaps, "heatmaps").to(device=s.device, dtype=s.dtype)
    _same_shape(s, h, "saliency_maps and heatmaps")
    levels = check_positive_int(levels, "levels")
    w = torch.ones(s.shape[0], device=s.device, dtype=s.dtype) if tokens is None else \
        as_tensor(tokens, "tokens").to(device=s.device, dtype=s.dtype)
    if w.shape != (s.shape[0],):
        raise ValueError(f"tokens must have shape ({s.shape[0]},); got {tuple(w.shape)}.")
    s = standardize_cut(s)
    h = standardize_cut(h)
    h_max = h.amax(dim=(1, 2), keepdim=True) + 1e-6
    s_max = s.detach().amax(dim=(1, 2), keepdim=True) + 1e-6
    h = h / h_max * s_max
    ps, ph = pyramid(s, levels), pyramid(h, levels)
    per_level = [((a - b).square() * w[:, None, None]).mean() for a, b in
                 zip(ps[:levels], ph[:levels], strict=True)]
    return torch.stack(per_level).mean()
