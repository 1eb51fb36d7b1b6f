"""Tests of advlens.stir: STIR over all batches (not the last one), and its sanity values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens.inversion import invert
from advlens.stir import noise_seeds, stir, stir_score
from references import numpy_debiased_cka, numpy_linear_cka, penultimate


def tiny_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
        nn.Linear(54, 10), nn.ReLU(), nn.Linear(10, 3)).eval()


def test_stir_uses_every_batch_not_the_last() -> None:
    m1, m2 = tiny_cnn(0), tiny_cnn(1)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    res = stir(m1, m2, x, iterations=30, batch_size=4, progress=False)
    a, b = penultimate(m2, x), penultimate(m2, res.inverted.images)
    assert res.value == pytest.approx(numpy_linear_cka(a, b), abs=1e-9)
    last_batch_only = numpy_linear_cka(a[-4:], b[-4:])
    assert abs(res.value - last_batch_only) > 1e-3
    # the inversion does not depend on the batch size, so neither does STIR (up to rounding)
    whole = stir(m1, m2, x, iterations=30, batch_size=16, progress=False)
    assert whole.value == pytest.approx(res.value, abs=1e-3)


def other_cnn(seed: int) -> nn.Module:
    """Another architecture, with modules "3" and "4" too (so swapped layer names still run)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 7), nn.Tanh(), nn.Linear(7, 3)).eval()


def test_stir_inverts_through_m1_and_scores_with_m2() -> None:
    """STIR(m2 | m1) = CKA(Rep_m2(X), Rep_m2(X')) with X' = X inverted through m1 (PROTOCOLS §1),
    each model at its own layer: the inversion is rerun by hand and CKA computed in numpy."""
    m1, m2 = tiny_cnn(0), other_cnn(1)
    layer1, layer2 = "4", "3"  # m1: Linear(54, 10) output; m2: the flattened 16 pooled features
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    seeds = noise_seeds(x, seed=5)
    kw = {"iterations": 25, "step_size": 0.1, "batch_size": 5, "progress": False}
    res = stir(m1, m2, x, seeds=seeds, layer1=layer1, layer2=layer2, **kw)
    by_hand = invert(m1, seeds, x, layer=layer1, **kw)
    assert torch.equal(res.inverted.images, by_hand.images)
    assert torch.equal(res.inverted.loss, by_hand.loss)
    with torch.no_grad():
        a, b = m2[:4](x).double().numpy(), m2[:4](by_hand.images).double().numpy()
    assert res.value == pytest.approx(numpy_linear_cka(a, b), abs=1e-9)


def test_stir_of_a_model_with_itself_is_high_and_deterministic() -> None:
    m = tiny_cnn(3)
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    res = stir(m, m, x, iterations=150, progress=False)
    assert res.value > 0.95
    assert (res.inverted.loss < 0.1).all()
    again = stir(m, m, x, iterations=150, progress=False)
    assert again.value == res.value
    # the seeds are noise, not the images themselves
    seeds = noise_seeds(x, seed=0)
    assert seeds.shape == x.shape and not torch.equal(seeds, x)
    assert stir(m, m, x, seeds=seeds, iterations=150, progress=False).value == res.value


def test_stir_score_checks_shapes() -> None:
    m = tiny_cnn(0)
    x = torch.rand(8, 1, 8, 8)
    with pytest.raises(ValueError, match="same shape"):
        stir_score(m, x, x[:4])


def test_stir_score_defaults_to_the_biased_cka() -> None:
    m = other_cnn(2)
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    expected = numpy_linear_cka(penultimate(m, x), penultimate(m, y))
    assert stir_score(m, x, y, batch_size=3) == pytest.approx(expected, rel=1e-6)


def test_stir_score_debiased_is_the_unbiased_hsic_cka() -> None:
    """debiased=True: linear CKA with Song et al.'s unbiased HSIC, written out in numpy on the
    penultimate representations (it differs from the biased value on these 10 images)."""
    m = other_cnn(2)
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    a, b = penultimate(m, x), penultimate(m, y)

    expected = numpy_debiased_cka(a, b)
    assert abs(expected - numpy_linear_cka(a, b)) > 0.05
    assert stir_score(m, x, y, debiased=True, batch_size=3) == pytest.approx(expected, rel=1e-6)


def test_stir_takes_exactly_the_fewest_images_cka_takes() -> None:
    """Two images: centred, each representation is rank one, so linear CKA is 1 (closed form).
    Debiased CKA needs four: three are refused before inverting, four are taken."""
    m1, m2 = tiny_cnn(0), other_cnn(1)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    kw = {"iterations": 3, "progress": False}
    assert stir(m1, m2, x[:2], **kw).value == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 4 images"):
        stir(m1, m2, x[:3], debiased=True, **kw)
    res = stir(m1, m2, x, debiased=True, **kw)
    assert res.value == stir_score(m2, x, res.inverted.images, debiased=True)
