"""Tests of advlens.stir: STIR over all batches (not the last one), and its sanity values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlens.stir import noise_seeds, stir, stir_score
from references import numpy_linear_cka, penultimate


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
