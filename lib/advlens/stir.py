"""STIR, "shared invariance" between two models (Nanda et al., ICML 2022).

``STIR(m2 | m1) = CKA(Rep_m2(X), Rep_m2(X'))``, where ``X'`` is ``X`` inverted through ``m1``
starting from noise seeds: ``X'`` looks the same as ``X`` to ``m1``; STIR asks whether it also
looks the same to ``m2``. The public STIR code returned the CKA of the last batch only; here the
representations of every batch are gathered and CKA is computed once over all ``n`` images.

The inversion is :func:`advlens.inversion.invert` with its defaults, i.e. Jones et al.'s (2000
normalised-momentum steps of 1/8), not the public STIR code's (``constraint="unconstrained"``:
1000 raw-gradient steps of 0.5 on the mean relative loss, ``fake_relu=True`` for most models);
pass ``iterations``/``step_size``/``momentum`` to :func:`stir` to change its length and steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advlens.checks import as_tensor, check_bool, check_images, check_positive_int
from advlens.cka import linear_cka, min_rows
from advlens.features import representation
from advlens.inversion import InversionResult, invert


@dataclass
class StirResult:
    """``value`` = STIR(m2 | m1); ``inverted`` = X inverted through m1 (reusable for other m2)."""

    value: float
    inverted: InversionResult


def noise_seeds(like: Tensor, *, generator: torch.Generator | None = None,
                seed: int = 0) -> Tensor:
    """Uniform [0, 1] noise images with the shape of ``like``: starting points for STIR's
    inversions, already in the image box. The public STIR code starts from Gaussian noise
    (``torch.randn``) by default, which :func:`advlens.inversion.invert` refuses (seeds are
    images in [0, 1]): clamp such seeds to [0, 1] before passing them as ``seeds``."""
    if generator is None:
        generator = torch.Generator().manual_seed(check_positive_int(seed, "seed", least=0))
    return torch.rand(as_tensor(like, "like").shape, generator=generator, dtype=torch.float32)


def stir_score(m2: nn.Module, x: Tensor, x_inverted: Tensor, *, layer: str | None = None,
               debiased: bool = False, batch_size: int = 256) -> float:
    """CKA between ``m2``'s representations of ``x`` and of ``x_inverted`` (all rows at once)."""
    x = check_images(as_tensor(x, "x"), "x")
    x_inverted = check_images(as_tensor(x_inverted, "x_inverted"), "x_inverted")
    if x.shape != x_inverted.shape:
        raise ValueError(f"x and x_inverted must have the same shape; got {tuple(x.shape)} and "
                         f"{tuple(x_inverted.shape)}.")
    a = representation(m2, x, layer, batch_size=batch_size)
    b = representation(m2, x_inverted, layer, batch_size=batch_size)
    return linear_cka(a, b, debiased=debiased)


def stir(m1: nn.Module, m2: nn.Module, x: Tensor, *, seeds: Tensor | None = None,
         generator: torch.Generator | None = None, seed: int = 0, layer1: str | None = None,
         layer2: str | None = None, debiased: bool = False, **invert_kwargs: Any) -> StirResult:
    """STIR(m2 | m1) on images ``x`` (N, C, H, W) in [0, 1].

    ``x`` is inverted through ``m1`` (at ``layer1``) from ``seeds`` (default: uniform noise drawn
    with ``generator``/``seed``) with :func:`advlens.inversion.invert` and ``invert_kwargs``
    (iterations, step_size, batch_size, ...); then linear CKA (``debiased`` optional) compares
    ``m2``'s representations (at ``layer2``) of ``x`` and of the inverted images over all of them.
    """
    x = check_images(as_tensor(x, "x"), "x")
    debiased = check_bool(debiased, "debiased")  # before the inversion, not after it
    least = min_rows(debiased)  # CKA's, checked before the inversion
    if x.shape[0] < least:
        raise ValueError(f"STIR compares representations over the images: it needs at least "
                         f"{least} images{' (debiased CKA)' if debiased else ''}; got "
                         f"{x.shape[0]}.")
    if seeds is None:
        seeds = noise_seeds(x, generator=generator, seed=seed)
    # m2 sees X before the inversion: a misspelt layer2, or an m2 that cannot take x (other
    # input size or dtype), fails at once instead of after the whole inversion through m1
    rep_x = representation(m2, x, layer2)
    inverted = invert(m1, seeds, x, layer=layer1, **invert_kwargs)
    rep_inverted = representation(m2, inverted.images.to(x.dtype), layer2)
    return StirResult(value=linear_cka(rep_x, rep_inverted, debiased=debiased),
                      inverted=inverted)
