"""The hand-formed gradients (Criterion.margin_backward, core.margin_and_grad, the C&W/EAD
objective, ALMA's logit ratio) against autograd through the plain expressions, bit for bit: ties
among the runners-up, zero and negative weights, targeted and untargeted, float32 and float64."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from advlens.attacks.alma import logit_ratio, logit_ratio_and_grad
from advlens.attacks.const_search import hinge, penalised, penalised_value
from advlens.attacks.core import logits_and_grad, margin_and_grad
from advlens.attacks.criterion import Criterion
from attack_toys import random_images, tiny_cnn


def _bits(t: Tensor) -> Tensor:
    """The raw bits, so that +0 and −0 differ."""
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def _random_logits(seed: int, dtype: torch.dtype, targeted: bool, ties: bool = True
                   ) -> tuple[torch.Generator, Tensor, Criterion]:
    """64 rows of 2–11 logits and a criterion on random labels. With ``ties``: half-integer
    logits, many ties among the runners-up (amax splits their gradient); else Gaussian."""
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(2, 12, (1,), generator=g))
    logits = (torch.randint(-3, 4, (64, k), generator=g) * 0.5).to(dtype)
    if not ties:
        logits = torch.randn(64, k, generator=g, dtype=dtype)
    return g, logits, Criterion(torch.randint(0, k, (64,), generator=g), targeted)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("targeted", [False, True])
def test_margin_backward_is_autograds_gradient_bit_for_bit(dtype: torch.dtype,
                                                           targeted: bool) -> None:
    for seed in range(40):
        g, logits, crit = _random_logits(seed, dtype, targeted)
        weight = torch.randn(64, generator=g, dtype=dtype)
        weight[::3], weight[1::7] = 0.0, -0.0
        z = logits.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad((crit.margin(z) * weight).sum(), z)
        margin, ties = crit.margin_and_ties(logits)
        assert torch.equal(_bits(margin), _bits(crit.margin(logits)))
        assert torch.equal(_bits(crit.margin_backward(ties, weight)), _bits(expected))
        (unit,) = torch.autograd.grad(crit.margin(z).sum(), z)
        assert torch.equal(_bits(crit.unit_margin_backward(ties, dtype)), _bits(unit))


def _setup(dtype: torch.dtype) -> tuple[torch.nn.Module, Tensor, Criterion]:
    model = tiny_cnn(seed=1, k=5).to(dtype).eval()
    x = random_images(16, seed=2, dtype=dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, Criterion(y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_margin_and_grad_matches_logits_and_grad(dtype: torch.dtype) -> None:
    model, x, crit = _setup(dtype)
    expected = logits_and_grad(model, x, lambda z, _x: crit.margin(z))
    for got, want in zip(margin_and_grad(model, x, crit), expected, strict=True):
        assert torch.equal(_bits(got), _bits(want))


@pytest.mark.parametrize("kappa", [0.0, 0.3])
def test_penalised_matches_autograd_of_the_objective(kappa: float) -> None:
    model, x, crit = _setup(torch.float32)
    x0 = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    c = torch.linspace(0.0, 3.0, x.shape[0])  # c = 0 and inactive hinges: zero weights

    def objective(z: Tensor, xv: Tensor) -> Tensor:
        return (xv - x0).pow(2).flatten(1).sum(1) + c * hinge(crit, z, kappa)

    logits, value, grad = logits_and_grad(model, x, objective)
    got_logits, got_grad, margin, delta = penalised(model, x, x0, crit, c, kappa)
    assert torch.equal(_bits(got_logits), _bits(logits))
    assert torch.equal(_bits(got_grad), _bits(grad))
    assert torch.equal(_bits(margin), _bits(crit.margin(logits)))
    assert torch.equal(delta, x - x0)
    got_value = penalised_value(crit, logits, margin, delta, c, kappa)
    assert torch.equal(_bits(got_value), _bits(value))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("targeted", [False, True])
def test_alma_constraint_gradient_is_autograds_bit_for_bit(dtype: torch.dtype,
                                                           targeted: bool) -> None:
    for seed in range(40):
        # k from 2: fewer classes than 3 or 4 take the plain margin; odd seeds without ties
        g, logits, crit = _random_logits(seed, dtype, targeted, ties=seed % 2 == 0)
        z = logits.clone().requires_grad_(True)
        ratio = logit_ratio(crit, z, 1e-4)
        (expected,) = torch.autograd.grad(ratio.sum(), z)
        margin, got_ratio, got = logit_ratio_and_grad(crit, logits, 1e-4)
        assert torch.equal(_bits(margin), _bits(crit.margin(logits)))
        assert torch.equal(_bits(got_ratio), _bits(ratio.detach()))
        assert torch.equal(_bits(got), _bits(expected))
