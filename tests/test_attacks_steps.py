"""Second, independent checks of single algorithmic steps: FMN-L∞'s boundary estimate and warm
start, the
I-FGSM step size, the C&W constant search driven end to end, EAD's shrinkage (a prox)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from advlens import attacks
from advlens.attacks.best import BestAdversarial
from advlens.attacks.const_search import const_search
from advlens.attacks.criterion import Criterion
from advlens.attacks.ead import ElasticNetISTA, shrink
from attack_toys import (
    affine_model,
    centre_images,
    l2_distance_to_boundary,
    linf_distance_to_boundary,
)


def test_fmn_linf_boundary_estimate_uses_the_dual_l1_norm() -> None:
    """Binary affine model: the margin's gradient is constant, so the first linear estimate
    margin/||∇margin||₁ is the exact L∞ distance; after 10 steps FMN must be within 10 % of it.
    An estimate over ||∇margin||∞ overshoots by ||g||₁/||g||∞ and does not recover in 10 steps."""
    model, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.15)
    d, y = linf_distance_to_boundary(model, x)
    keep = d > 0.01
    r = attacks.fmn(model, x[keep], y[keep], norm="linf", steps=10)
    assert r.success.all()
    rel = r.norms / d[keep] - 1
    assert float(rel.min()) > -1e-9 and float(rel.max()) < 0.10, rel


def test_fmn_warm_start_begins_at_the_start_and_refines_it() -> None:
    """``start`` is the first iterate: from the clean images FMN is unchanged (bit for bit);
    from an adversarial start 20 % beyond the exact boundary (affine model, L∞) the first pass
    already keeps that start exactly, and 10 steps of eps shrinking from there land within 3 %
    of the exact distance, never inside it."""
    model, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.15)
    d, y = linf_distance_to_boundary(model, x)
    keep = d > 0.01
    x, y, d = x[keep], y[keep], d[keep]
    cold = attacks.fmn(model, x, y, norm="linf", steps=5)
    assert torch.equal(attacks.fmn(model, x, y, norm="linf", steps=5, start=x).adv, cold.adv)
    w = model[1].weight  # binary affine: the margin's gradient is ±(w_y − w_other)
    g = (w[y] - w[1 - y]).view_as(x)
    start = (x - 1.2 * d.view(-1, 1, 1, 1) * g.sign()).clamp(0, 1)
    one = attacks.fmn(model, x, y, norm="linf", steps=1, start=start)
    assert one.success.all() and one.passes == 1
    torch.testing.assert_close(one.norms, 1.2 * d)
    warm = attacks.fmn(model, x, y, norm="linf", steps=10, start=start)
    assert warm.success.all() and warm.cost == 11
    rel = warm.norms / d - 1
    assert float(rel.min()) > -1e-9 and float(rel.max()) < 0.03, rel
    with pytest.raises(ValueError, match="start must have the shape"):
        attacks.fmn(model, x, y, norm="linf", steps=2, start=start[:1])


def test_fmn_per_image_step_sizes_act_image_by_image() -> None:
    """An (N,) ``max_step`` gives each image its own step schedule: each row of one run with
    steps (a, b, a, b, ...) is the row of the run with that one scalar for every image; a wrong
    shape or a nonpositive size is refused with its name."""
    model, x = affine_model(k=3, seed=4), centre_images(8, seed=7, spread=0.15)
    with torch.no_grad():
        y = model(x).argmax(1)
    sizes = torch.tensor([0.3, 0.05] * 4)
    mixed = attacks.fmn(model, x, y, norm="linf", direction="l2", steps=10, max_step=sizes)
    for value in (0.3, 0.05):
        alone = attacks.fmn(model, x, y, norm="linf", direction="l2", steps=10,
                            max_step=value)
        rows = sizes == value
        torch.testing.assert_close(mixed.adv[rows], alone.adv[rows], rtol=1e-5, atol=1e-6)
    other = attacks.fmn(model, x, y, norm="linf", direction="l2", steps=10, max_step=0.05)
    assert not torch.allclose(mixed.adv[::2], other.adv[::2])  # the sizes really differ
    with pytest.raises(ValueError, match=r"max_step must be a number or a tensor of shape \(8,\)"):
        attacks.fmn(model, x, y, norm="linf", steps=2, max_step=sizes[:3])
    with pytest.raises(ValueError, match="max_step must be finite and > 0"):
        attacks.fmn(model, x, y, norm="linf", steps=2, max_step=sizes - 0.1)


class _Recorder(nn.Module):
    """Wraps a model and records every input batch it is evaluated on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(x.detach().clone())
        return self.model(x)


def test_ifgsm_walks_in_steps_of_eps_over_steps() -> None:
    """On an affine model sign(∇CE) is constant, so the k-th I-FGSM iterate of a try at eps is
    x + k·(eps/steps)·sign(w_j − w_y): the recorded evaluations of the first try (eps =
    start_eps) must sit at L∞ distances 0, eps/steps, ..., (steps − 1)·eps/steps, then eps."""
    base, x = affine_model(k=2, seed=4), centre_images(3, seed=7)
    with torch.no_grad():
        y = base(x).argmax(1)
    model, steps, eps = _Recorder(base), 5, 0.004
    attacks.ifgsm_search(model, x, y, steps=steps, start_eps=eps, tries=1)
    first_try = model.seen[1:1 + steps + 1]  # after the clean check: steps passes, one check
    dist = torch.stack([(s - x).flatten(1).abs().amax(1) for s in first_try])
    expected = torch.tensor([k * eps / steps for k in range(steps)] + [eps], dtype=x.dtype)
    torch.testing.assert_close(dist, expected[:, None].expand_as(dist), atol=1e-12, rtol=0)


class _ThresholdOptimiser:
    """Stands in for an inner solver: image i is adversarial iff c ≥ threshold[i], and only at
    the first iteration of each constant (a later iterate may lose it); records c."""

    def __init__(self, x: Tensor, threshold: Tensor) -> None:
        self.x, self.threshold, self.calls = x, threshold, []

    def reset(self) -> None:
        pass

    def step(self, c: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        self.calls.append(c.clone())
        adv = (c >= self.threshold) & (k == 0)
        logits = torch.stack([(~adv).double(), adv.double()], 1) * 10.0  # class 1 = fooled
        image = self.x + 0.01 * c[:, None]
        return image, logits, logits[:, 0] - logits[:, 1], image - self.x  # margin, delta

    def objective(self) -> Tensor:
        return self.calls[-1]


def test_constant_search_follows_carlini_wagner_on_a_threshold_oracle() -> None:
    """Driven through const_search with an oracle (image i fooled iff c ≥ threshold_i): the
    constants tried must follow C&W's rule (success = at any iteration of that constant): ×10
    until the first success, then the midpoint of the bracket [largest failure, smallest
    success]; each image must keep the example of its smallest successful constant."""
    threshold = torch.tensor([0.003, 0.05, 0.7, 42.0, 1e9], dtype=torch.float64)
    x = torch.zeros(5, 1, dtype=torch.float64)
    opt = _ThresholdOptimiser(x, threshold)
    best = BestAdversarial(x, "l2")
    const_search(nn.Identity(), Criterion(torch.zeros(5, dtype=torch.long)), opt, best,
                 binary_steps=8, steps=2, initial_const=0.01, kappa=0.0, abort_early=False,
                 progress=False)
    tried = torch.stack(opt.calls[::2])  # the constant of each binary step (2 steps each)
    for i, t in enumerate(threshold.tolist()):
        lo, hi, c, successes = 0.0, float("inf"), 0.01, []
        for step in range(8):
            assert float(tried[step, i]) == c, (i, step)
            if c >= t:
                hi, successes = min(hi, c), successes + [c]
            else:
                lo = max(lo, c)
            c = (lo + hi) / 2 if hi < float("inf") else c * 10
        if successes:
            assert lo < t <= hi
            assert float(best.score[i]) == 0.01 * min(successes)
        else:
            assert not bool(best.found[i])


def _prox_by_grid(z: float, x0: float, beta: float) -> float:
    """argmin over u in [0, 1] of ½(u − z)² + β|u − x0|, by a float64 grid (independent)."""
    u = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    return float(u[((u - z) ** 2 / 2 + beta * (u - x0).abs()).argmin()])


def test_shrink_is_the_proximal_step_of_the_l1_term_in_the_box() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.rand(40, generator=g, dtype=torch.float64) * 1.6 - 0.3
    x0 = torch.rand(40, generator=g, dtype=torch.float64)
    beta = 0.07
    out = shrink(z, x0, beta)
    ref = torch.tensor([_prox_by_grid(float(a), float(b), beta)
                        for a, b in zip(z, x0, strict=True)], dtype=torch.float64)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_ista_step_is_a_gradient_step_then_the_threshold() -> None:
    """One ISTA step from x0 on an affine model: the new point is shrink(x0 − lr·∇), with ∇ the
    closed-form gradient c·(w_j − w_y) of the hinge (||δ||₂² has zero gradient at δ = 0)."""
    model, x0 = affine_model(k=2, seed=4), centre_images(3, seed=7)
    with torch.no_grad():
        y = model(x0).argmax(1)
    crit = Criterion(y)
    opt = ElasticNetISTA(model, x0, crit, lr=0.05, beta=0.02, kappa=0.0, steps=10, fista=False)
    c = torch.full((3,), 2.0, dtype=torch.float64)
    opt.step(c, 0)
    w = model[1].weight.detach()
    grad = (c[:, None] * (w[y] - w[1 - y])).view_as(x0)
    z = x0 - 0.05 * grad
    expected = x0 + (z - x0).sign() * ((z - x0).abs() - 0.02).clamp_min(0)
    torch.testing.assert_close(opt.x, expected.clamp(0, 1), atol=1e-12, rtol=0)


def test_ddn_per_image_init_eps_sets_each_first_radius() -> None:
    """Binary affine model, margin loss: the first step goes straight at the boundary, onto the
    sphere of radius init_eps·(1 + γ) — so 1.2·d lands adversarial at 1.26·d, image by image,
    and 0.5·d stays short of it. A tensor of one value is the float, bit for bit."""
    model, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.05)
    d, y = l2_distance_to_boundary(model, x)
    keep = (d > 0.01) & (d < 0.2)
    x, y, d = x[keep], y[keep], d[keep]
    kw = {"steps": 2, "loss": "margin", "gamma_end": None}
    far = attacks.ddn(model, x, y, init_eps=1.2 * d, **kw)
    assert far.success.all()
    torch.testing.assert_close(far.norms, 1.26 * d)
    assert not attacks.ddn(model, x, y, init_eps=0.5 * d, **kw).success.any()
    same = attacks.ddn(model, x, y, init_eps=torch.full_like(d, 0.3), steps=5)
    assert torch.equal(same.adv, attacks.ddn(model, x, y, init_eps=0.3, steps=5).adv)
    with pytest.raises(ValueError, match="init_eps"):
        attacks.ddn(model, x, y, init_eps=torch.zeros_like(d), steps=2)
    with pytest.raises(ValueError, match="init_eps must be a number or a tensor of shape"):
        attacks.ddn(model, x, y, init_eps=d[:2], steps=2)
    with pytest.raises(TypeError, match="init_eps must be a number"):
        attacks.ddn(model, x, y, init_eps="0.5", steps=2)  # type: ignore[arg-type]


def test_ddn_linear_start_caps_the_first_radius_at_the_linearised_distance() -> None:
    """Binary affine model: the linearised distance is exact, so from init_eps = 1 (5–100× too
    far) the first step lands at d·(1 + γ), image by image; it only caps: from 0.5·d the first
    radius stays 0.5·d·(1 + γ), short of the boundary; a misclassified image (margin ≤ 0, no
    estimate) keeps init_eps. It needs the margin's gradient at the first step."""
    model, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.05)
    d, y = l2_distance_to_boundary(model, x)
    keep = (d > 0.01) & (d < 0.2)
    x, y, d = x[keep], y[keep], d[keep]
    kw = {"steps": 2, "loss": "margin", "gamma_end": None, "linear_start": True}
    near = attacks.ddn(model, x, y, init_eps=1.0, **kw)
    assert near.success.all()
    torch.testing.assert_close(near.norms, 1.05 * d)
    assert not attacks.ddn(model, x, y, init_eps=0.5 * d, **kw).success.any()
    without = attacks.ddn(model, x, y, init_eps=1.0, steps=2, loss="margin", gamma_end=None)
    assert bool((without.norms > 2 * d).all())  # without: on the sphere of 1.05 (box-clipped)
    wrong = y.clone()
    wrong[0] = 1 - wrong[0]  # misclassified: adversarial at x, eps shrinks from init_eps
    r = attacks.ddn(model, x, wrong, init_eps=1.0, **kw)
    assert float(r.norms[0]) == 0.0 and torch.equal(r.norms[1:], near.norms[1:])
    for loss in ("ce", "ce-margin"):
        with pytest.raises(ValueError, match="linear_start needs the margin"):
            attacks.ddn(model, x, y, loss=loss, linear_start=True)


class _Plateau:
    """An optimiser stuck on a plateau: the same (non-adversarial) iterate and objective every
    step; the objective is ours, max(margin, −κ) weighted by c, which is negative where C&W's
    max(margin + κ, 0) is zero."""

    def __init__(self, x: torch.Tensor, crit: Criterion, value: float) -> None:
        self.x, self.crit, self.value = x, crit, value

    def reset(self) -> None:
        pass

    def step(self, c: torch.Tensor, k: int):
        logits = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        return self.x, logits, self.crit.margin(logits), self.x - self.x

    def objective(self) -> torch.Tensor:
        return torch.tensor([self.value], dtype=torch.float64)


@pytest.mark.parametrize("value", [12.6, -0.004, -4.9])  # ours is >= -c·κ = -5
def test_early_abort_fires_on_a_plateau_whatever_the_sign_of_our_objective(value: float) -> None:
    """C&W abort a constant when the (non-negative) objective fell by < 0.01 % over steps/10;
    a negative plateau (κ > 0) ran all its steps before."""
    x = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    crit = Criterion(torch.tensor([0]))
    passes = const_search(nn.Identity(), crit, _Plateau(x, crit, value), BestAdversarial(x, "l2"),
                          binary_steps=1, steps=1000, initial_const=10.0, kappa=0.5,
                          abort_early=True, progress=False)
    assert passes == 101  # checked at 0 and 100: no fall, stop
