"""Small units of the attacks against independent references: Lp geometry (norms), the
criterion's verdicts and margins, and the keep-the-best bookkeeping."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from advlens.attacks import scalars
from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import cosine
from advlens.attacks.criterion import Criterion
from advlens.attacks.scalars import scalar


def _reference_best(x: torch.Tensor, rounds: list[tuple[torch.Tensor, torch.Tensor,
                                                        torch.Tensor]]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep-the-best by a plain loop: image i takes a candidate iff adversarial and strictly
    smaller in score than what it holds (the first of equal scores stays)."""
    adv, score = x.clone(), [float("inf")] * len(x)
    for cand, is_adv, s in rounds:
        for i in range(len(x)):
            if bool(is_adv[i]) and float(s[i]) < score[i]:
                adv[i], score[i] = cand[i], float(s[i])
    return adv, torch.tensor(score, dtype=x.dtype)


def test_best_adversarial_keeps_the_first_of_equal_scores_on_colour_images() -> None:
    """RGB images (N ≠ channels), scores with ties, both update paths (every image, and an
    ``index`` of some), against the loop: one score per image, strictly smaller replaces."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 2, 2, generator=g, dtype=torch.float64)
    rounds = []
    for _ in range(4):
        cand = torch.rand(x.shape, generator=g, dtype=torch.float64)
        is_adv = torch.rand(5, generator=g) < 0.7
        score = torch.randint(1, 3, (5,), generator=g).double()  # many ties
        rounds.append((cand, is_adv, score))
    expected_adv, expected_score = _reference_best(x, rounds)
    for by_index in (False, True):
        best = BestAdversarial(x, "l2")
        assert best.score.shape == (5,) and not best.found.any()
        for cand, is_adv, score in rounds:
            if by_index:  # two calls on halves of the batch, as the eps searches do
                for idx in (torch.tensor([0, 2, 4]), torch.tensor([1, 3])):
                    kept = best.update(cand[idx], is_adv[idx], score[idx], index=idx)
                    assert kept.shape == idx.shape
            else:
                before = best.score.clone()
                kept = best.update(cand, is_adv, score)
                assert torch.equal(kept, is_adv & (score < before))
        assert torch.equal(best.score, expected_score), by_index
        assert torch.equal(best.adv, expected_adv), by_index


def test_targeted_loss_is_the_negated_cross_entropy_of_the_target() -> None:
    """The loss an attack ascends: CE(y) untargeted, −CE(t) targeted, against a float64
    log-sum-exp by hand."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, 5, (8,), generator=g)
    ce = torch.logsumexp(logits, 1) - logits[torch.arange(8), labels]
    torch.testing.assert_close(Criterion(labels).loss(logits), ce, rtol=1e-12, atol=0)
    torch.testing.assert_close(Criterion(labels, True).loss(logits), -ce, rtol=1e-12, atol=0)


def test_confidently_adversarial_means_strictly_below_minus_64_ulps() -> None:
    """Logits (1 − 2⁻⁴⁵, 1) for class 0: the margin is exactly −2⁻⁴⁵ = −64 ulps of (1 + 1),
    the tolerance itself — adversarial, but not *below* it; a hair more is."""
    tol = 64 * torch.finfo(torch.float64).eps * 2
    assert tol == 2.0 ** -45
    logits = torch.tensor([[1 - tol, 1.0], [1 - 2 * tol, 1.0]], dtype=torch.float64)
    crit = Criterion(torch.tensor([0, 0]))
    assert crit.margin(logits).tolist() == [-tol, -2 * tol]
    assert crit.is_adversarial(logits).tolist() == [True, True]
    assert crit.confidently_adversarial(logits).tolist() == [False, True]
    expected = torch.full((2,), tol, dtype=torch.float64)
    torch.testing.assert_close(Criterion.tolerance(logits), expected, rtol=0, atol=0)


def test_confidence_threshold_is_64_ulps_of_one_plus_the_top_logit() -> None:
    """Margins of exactly 64 and 65 ulps of (1 + top) = 2 (64·2⁻⁵¹, 65·2⁻⁵¹; exact in float64):
    the first is the threshold itself (not below it), the second is beyond."""
    m = torch.tensor([64.0, 65.0], dtype=torch.float64) * 2.0 ** -51
    logits = torch.stack([1 - m, torch.ones_like(m)], 1)
    crit = Criterion(torch.tensor([0, 0]))
    assert torch.equal(crit.margin(logits), -m)
    assert crit.confidently_adversarial(logits).tolist() == [False, True]


def test_a_criterion_is_immutable_and_its_constants_can_be_saved_by_autograd() -> None:
    """Its label column is cached, so it must not change after it is built; the shared scalar
    constants are ordinary tensors even when first made in inference mode (a graph may save
    them: inference tensors cannot be saved for backward)."""
    crit = Criterion(torch.tensor([0, 1]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        crit.classes = torch.tensor([1, 0])  # type: ignore[misc]
    scalars._cached.cache_clear()
    with torch.inference_mode():
        first = scalar(3.0, torch.float64)
    assert not first.is_inference()
    z = torch.ones(2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad((z * scalar(3.0, torch.float64)).sum(), z)
    assert grad.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_cached_number_gives_the_bits_the_python_number_gives(dtype: torch.dtype) -> None:
    """scalar(v, dtype) in place of v: the same bits in every op the attacks use it in, for
    numbers that round differently in float32 and float64, overflow float32 or are subnormal
    there, and for operands that are NaN, ±inf, ±0 and subnormal."""
    gen = torch.Generator().manual_seed(0)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-40, -1e-45,
                            3.4e38, 1.0, 0.5], dtype=torch.float64)
    t = torch.cat([torch.randn(200, generator=gen, dtype=torch.float64) * 10, special]).to(dtype)
    for v in (0.9, 0.999, 1 / 3, 1e-8, 0.5, 1, 2, 0, -0.0, 1e-40, 1e300, -7.25e-5):
        n = scalar(v, dtype)
        assert n.dtype == dtype and n.ndim == 0
        pairs = [(t + v, t + n), (t - v, t - n), (v - t, n - t), (t * v, t * n),
                 (t / v if v else t, t / n if v else t), (t >= v, t >= n), (t < v, t < n),
                 (t.clone().mul_(v), t.clone().mul_(n)), (t.clone().add_(v), t.clone().add_(n))]
        for py, cached in pairs:
            assert py.dtype == cached.dtype
            if py.is_floating_point():
                py, cached = py.view(torch.uint8), cached.view(torch.uint8)
            assert torch.equal(py, cached), (v, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_confidently_adversarial_with_the_tolerance_given_is_the_same_verdict(dtype: torch.dtype
                                                                              ) -> None:
    """margin < −tolerance, the tolerance computed once by the caller, is the verdict the
    criterion reaches on its own, at margins on both sides of −64 ulps and right at it."""
    torch.manual_seed(0)
    logits = (torch.randn(400, 6) * torch.logspace(-3, 3, 400)[:, None]).to(dtype)
    crit = Criterion(torch.randint(0, 6, (400,)))
    tolerance = crit.tolerance(logits)
    margin = crit.margin(logits)
    for m in (margin, -tolerance, torch.nextafter(-tolerance, torch.zeros_like(tolerance)),
              torch.nextafter(-tolerance, -torch.ones_like(tolerance))):
        expected = crit.confidently_adversarial(logits, m)
        assert torch.equal(crit.confidently_adversarial(logits, m, tolerance), expected)
    assert not crit.confidently_adversarial(logits, -tolerance, tolerance).any()
    assert crit.confidently_adversarial(
        logits, torch.nextafter(-tolerance, -torch.ones_like(tolerance)), tolerance).all()


def test_a_cached_number_is_a_cpu_float_whatever_the_default_device() -> None:
    """Made on the CPU under another default device (a CPU scalar works beside tensors on any
    device); an integer dtype, which would truncate the number, is refused."""
    scalars._cached.cache_clear()
    with torch.device("meta"):
        assert scalar(0.125, torch.float32).device.type == "cpu"
    with pytest.raises(TypeError, match="floating"):
        scalar(0.5, torch.int64)


def test_a_cached_number_keeps_the_sign_of_zero() -> None:
    """0.0 == -0.0 and they hash alike: a cache keyed on the value alone would hand one out
    for the other (1/x is then +inf for -inf)."""
    scalars._cached.cache_clear()
    assert not scalar(0.0, torch.float32).signbit()
    assert scalar(-0.0, torch.float32).signbit()
    assert not scalar(0.0, torch.float32).signbit()


@pytest.mark.parametrize("n", [1, 2, 7])
def test_cosine_schedule_runs_from_start_at_0_to_end_at_n(n: int) -> None:
    """end + (start − end)(1 + cos(π i/n))/2 (the closed form, by hand): start at i = 0, end at
    i = n, their mean half way, for a schedule of one step too."""
    for i in range(n + 1):
        ref = 0.25 + (2.0 - 0.25) * (1 + math.cos(math.pi * i / n)) / 2
        assert math.isclose(cosine(i, n, 2.0, 0.25), ref, rel_tol=1e-12)
    assert cosine(0, n, 2.0, 0.25) == 2.0 and math.isclose(cosine(n, n, 2.0, 0.25), 0.25)
