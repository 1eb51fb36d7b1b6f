"""Second, independent checks of single algorithmic steps: FMN-L∞'s boundary estimate and warm
start, the
I-FGSM step size, the C&W constant search driven end to end, EAD's shrinkage (a prox)."""

from __future__ import annotations

import math

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
    closed_form_point,
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



def test_fmn_takes_per_image_step_sizes_as_numpy_arrays() -> None:
    """An (N,) NumPy array of step sizes (what run_batched cuts per image) acts as the tensor
    does; it crashed in the step's in-place multiply."""
    import numpy as np

    model, x = affine_model(k=3, seed=4), centre_images(4, seed=7, spread=0.15)
    with torch.no_grad():
        y = model(x).argmax(1)
    sizes = np.array([0.3, 0.05, 0.3, 0.05])
    as_tensor = attacks.fmn(model, x, y, norm="linf", steps=5, max_step=torch.from_numpy(sizes))
    for kw in ({"max_step": sizes}, {"max_step": sizes, "min_step": sizes / 100},
               {"max_step": 0.3, "min_step": sizes / 100}):
        r = attacks.fmn(model, x, y, norm="linf", steps=5, **kw)
        want = attacks.fmn(model, x, y, norm="linf", steps=5,
                           **{k: torch.as_tensor(v) for k, v in kw.items()})
        assert torch.equal(r.adv, want.adv), kw
    assert torch.equal(attacks.fmn(model, x, y, norm="linf", steps=5, max_step=sizes).adv,
                       as_tensor.adv)

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
    with pytest.raises(TypeError, match="init_eps must be a number.*got True"):
        attacks.ddn(model, x, y, init_eps=True, steps=2)  # a flag is no radius (True == 1)


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


def test_ddn_linear_start_leaves_an_image_on_the_boundary_at_init_eps() -> None:
    """Logits (s, −s), s = Σx − 8: the grey 0.5 image has margin exactly 0 (a tie: not
    adversarial, no linearised distance), so linear_start leaves its eps at init_eps = 1 and the
    first step crosses at radius 1.05 (a cap at the distance 0 froze it at x, never fooled);
    from there eps shrinks by 1 − γ while adversarial, 1.05·0.95^4 at the 5th step."""

    class Tie(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            s = x.flatten(1).sum(1, keepdim=True) - 8.0
            return torch.cat([s, -s], 1)

    x = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    r = attacks.ddn(Tie(), x, torch.tensor([0]), init_eps=1.0, steps=6, loss="margin",
                    gamma_end=None, linear_start=True)
    assert bool(r.success.all())
    torch.testing.assert_close(r.norms, torch.tensor([1.05 * 0.95**4], dtype=torch.float64))


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


@pytest.mark.parametrize("attack", ["fmn-l2", "fmn-linf", "ddn"])
def test_colour_images_are_attacked_like_their_grey_view(attack: str) -> None:
    """Images of 4 channels (a batch of 6: neither 1 nor the channel count) through a flattening
    model are the same inputs as their (1, 4, 4) view: the results must agree bit for bit (a
    per-image state sized by the channels, not the batch, broke only these)."""
    model, grey = affine_model(k=3, seed=4), centre_images(6, seed=7, spread=0.15)
    with torch.no_grad():
        y = model(grey).argmax(1)
    colour = grey.reshape(6, 4, 2, 2)
    run = {"fmn-l2": lambda x: attacks.fmn(model, x, y, steps=10),
           "fmn-linf": lambda x: attacks.fmn(model, x, y, norm="linf", steps=10),
           "ddn": lambda x: attacks.ddn(model, x, y, steps=10)}[attack]
    a, b = run(grey), run(colour)
    assert b.adv.shape == colour.shape and b.success.any()
    assert torch.equal(b.adv.reshape(grey.shape), a.adv) and torch.equal(b.norms, a.norms)


def test_fmn_step_defaults_are_the_documented_ones() -> None:
    """Documented defaults: max_step 1 for g/||g||₂ steps (L2, and L∞ with direction="l2"), 0.1
    for sign steps (L∞), min_step max_step/100; an (N,) max_step with a float min_step acts
    image by image (the float is every image's min_step)."""
    model, x = affine_model(k=3, seed=4), centre_images(6, seed=7, spread=0.15)
    with torch.no_grad():
        y = model(x).argmax(1)
    for kw, size in (({}, 1.0), ({"norm": "linf"}, 0.1),
                     ({"norm": "linf", "direction": "l2"}, 1.0)):
        default = attacks.fmn(model, x, y, steps=8, **kw)
        explicit = attacks.fmn(model, x, y, steps=8, max_step=size, min_step=size / 100, **kw)
        assert torch.equal(default.adv, explicit.adv), kw
    sizes = torch.tensor([0.3, 0.05] * 3, dtype=x.dtype)
    mixed = attacks.fmn(model, x, y, norm="linf", steps=8, max_step=sizes, min_step=0.01)
    for value in (0.3, 0.05):
        alone = attacks.fmn(model, x, y, norm="linf", steps=8, max_step=value, min_step=0.01)
        rows = sizes == value
        torch.testing.assert_close(mixed.adv[rows], alone.adv[rows], rtol=1e-12, atol=1e-12)


def test_fmn_linf_published_estimate_is_foolboxs_fmn() -> None:
    """``overshoot=False`` (the published boundary estimate) with normalised-gradient steps is
    foolbox's LInfFMNAttack (Pintor et al.'s reference code) step for step: on a small ReLU net
    in float64, 30 steps, every image ends at the same L∞ norm (its point may differ only
    between points of equal norm). With the 1 + γ overshoot the norms differ."""
    import sys
    from pathlib import Path

    sys.path.append(str(Path(__file__).resolve().parents[1] / ".peers"))
    fb = pytest.importorskip("foolbox")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 5)).double().eval()
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    theirs, _, _ = fb.attacks.LInfFMNAttack(steps=30)(fb.PyTorchModel(model, bounds=(0, 1)),
                                                      x, y, epsilons=None)
    with torch.no_grad():
        assert bool((model(theirs).argmax(1) != y).all())
    their_norms = (theirs - x).flatten(1).abs().amax(1)
    ours = attacks.fmn(model, x, y, norm="linf", steps=30, direction="l2", overshoot=False)
    torch.testing.assert_close(ours.norms, their_norms, rtol=1e-12, atol=1e-14)
    overshot = attacks.fmn(model, x, y, norm="linf", steps=30, direction="l2")
    assert not torch.allclose(overshot.norms, their_norms, rtol=1e-6)


def test_fmn_defaults_are_foolboxs() -> None:
    """The number of steps and γ default to foolbox's FMN (Pintor et al.'s reference code)."""
    import inspect
    import sys
    from pathlib import Path

    sys.path.append(str(Path(__file__).resolve().parents[1] / ".peers"))
    fmn_peer = pytest.importorskip("foolbox.attacks.fast_minimum_norm")
    theirs = inspect.signature(fmn_peer.FMNAttackLp.__init__).parameters
    ours = inspect.signature(attacks.fmn).parameters
    assert ours["steps"].default == theirs["steps"].default
    assert ours["gamma"].default == theirs["gamma"].default


@pytest.mark.parametrize(("ours_name", "theirs_name", "pairs"), [
    ("ddn", "decoupled_direction_norm.ddn",
     {"steps": "steps", "gamma": "γ", "init_eps": "init_norm"}),
    ("alma", "augmented_lagrangian.alma",
     {"steps": "num_steps", "lr": "lr_init", "lr_reduction": "lr_reduction", "mu": "μ_init",
      "rho": "ρ_init", "check_every": "check_steps", "tau": "τ", "rho_growth": "γ",
      "alpha": "α", "tolerance": "logit_tolerance"}),
])
def test_ddn_and_alma_defaults_are_adv_libs(ours_name: str, theirs_name: str,
                                            pairs: dict[str, str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """DDN's and ALMA's published defaults, read from adv-lib (Rony et al.'s own code)."""
    import importlib
    import inspect
    import sys
    import types
    from pathlib import Path

    sys.path.append(str(Path(__file__).resolve().parents[1] / ".peers"))
    if "visdom" not in sys.modules:  # adv-lib imports it for its optional plots only
        monkeypatch.setitem(sys.modules, "visdom", types.ModuleType("visdom"))
    pytest.importorskip("adv_lib")
    module, name = theirs_name.rsplit(".", 1)
    theirs = inspect.signature(
        getattr(importlib.import_module(f"adv_lib.attacks.{module}"), name)).parameters
    ours = inspect.signature(getattr(attacks, ours_name)).parameters
    for mine, other in pairs.items():
        assert ours[mine].default == theirs[other].default, (mine, other)


def test_fmn_l2_radii_follow_the_eps_rule() -> None:
    """Binary affine model: every FMN-L2 step points straight at the boundary and is longer
    than eps moves, so iterate k lies on the sphere of radius eps_k. From the clean image the
    rule gives eps₁ = d(1 + γ₀) (the exact linear estimate, overshot), then eps·(1 − γ) (capped
    by the best norm) while adversarial (radius > d) and eps·(1 + γ) while not — the recorded
    radii must follow it, computed here from the closed-form d."""
    base, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.15)
    d, y = l2_distance_to_boundary(base, x)
    keep = (d > 0.02) & (d < 0.3)
    x, y, d = x[keep], y[keep], d[keep]
    model, steps = _Recorder(base), 8
    r = attacks.fmn(model, x, y, steps=steps)
    radii = torch.stack([(s - x).flatten(1).norm(dim=1) for s in model.seen[-steps - 1:-1]])
    eps, best, expected = d.clone(), torch.full_like(d, math.inf), [torch.zeros_like(d)]
    for i in range(steps - 1):
        gamma = 0.001 + (0.05 - 0.001) * (1 + math.cos(math.pi * i / steps)) / 2
        adv = expected[-1] > d
        best = torch.where(adv, torch.minimum(best, expected[-1]), best)
        if i == 0:
            eps = d * (1 + gamma)  # nothing found at the clean image: the linear estimate
        else:
            eps = torch.where(adv, torch.minimum(eps * (1 - gamma), best), eps * (1 + gamma))
        expected.append(eps)
    torch.testing.assert_close(radii, torch.stack(expected), rtol=1e-9, atol=1e-12)
    assert torch.equal(r.norms, torch.where(radii > d, radii, math.inf).amin(0))


def test_ddn_ce_margin_switches_loss_after_the_switch_fraction() -> None:
    """``"ce-margin"`` takes the cross-entropy's steps for the first ``switch``·steps passes:
    its iterates are those of ``loss="ce"`` up to and including the first margin step's
    input, and differ after it; switch 1 is "ce" and switch 0 is "margin" (bit for bit)."""
    base, x = affine_model(k=3, seed=4), centre_images(6, seed=7, spread=0.15)
    with torch.no_grad():
        y = base(x).argmax(1)
    seen = {}
    for loss in ("ce", "ce-margin"):
        model = _Recorder(base)
        attacks.ddn(model, x, y, steps=8, loss=loss, switch=0.5)
        seen[loss] = model.seen[-9:-1]  # the 8 iterates (before the confirming forward)
    for k in range(5):  # iterates 0..4 come from the 4 CE steps
        assert torch.equal(seen["ce"][k], seen["ce-margin"][k]), k
    assert not torch.equal(seen["ce"][5], seen["ce-margin"][5])
    for switch, loss in ((1.0, "ce"), (0.0, "margin")):
        mixed = attacks.ddn(base, x, y, steps=6, loss="ce-margin", switch=switch)
        assert torch.equal(mixed.adv, attacks.ddn(base, x, y, steps=6, loss=loss).adv), loss


@pytest.mark.parametrize("loss", ["ce", "ce-margin"])
def test_ddn_moves_where_the_cross_entropy_saturates(loss: str) -> None:
    """Logits scaled by 100 leave every minimal distance as it was, but saturate the softmax:
    at several clean images the cross-entropy's input gradient is below 1e-12 (0 in float32),
    a direction DDN cannot normalise. Published DDN's code steps at random there; ours stayed
    at x (loss "ce": nothing found) or, from the switch, started the margin far from the
    boundary (3-5× the minimum). Now such images descend the margin, to the closed form."""
    model = affine_model(k=2, seed=4, scale=100.0).float()
    x = centre_images(8, seed=7, spread=0.15).float()
    d, y = l2_distance_to_boundary(model, x)
    assert bool((closed_form_point(model, x, "l2").clamp(0, 1) == closed_form_point(
        model, x, "l2")).all()), "test set-up: the box binds"
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(xg), y, reduction="sum"), xg)
    assert int((g.flatten(1).norm(dim=1) < 1e-12).sum()) >= 4, "test set-up: not saturated"
    r = attacks.ddn(model, x, y, steps=200, loss=loss)
    assert bool(r.success.all())
    rel = r.norms.double() / d - 1
    assert float(rel.min()) > -1e-5 and float(rel.max()) < 1e-3, rel


def test_ddn_takes_a_single_step() -> None:
    model, x = affine_model(k=2, seed=4), centre_images(4, seed=7)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = attacks.ddn(model, x, y, steps=1)
    assert r.passes == 1 and r.cost == 2
    assert torch.equal(r.adv, x) and not r.success.any()  # only the clean image was checked
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        attacks.ddn(model, x, y, steps=0)


def test_ddn_warm_start_sets_eps_at_the_start_distance() -> None:
    """Binary affine model, margin loss, constant γ: from a start 20 % beyond the boundary along
    its normal, the first pass keeps the start (norm 1.2·d) and eps begins at that distance, so
    the next iterate lies on the sphere 1.2·d·(1 − γ), still adversarial; an image started at
    x itself (distance 0) begins at init_eps instead, as in a cold run."""
    model, x = affine_model(k=2, seed=4), centre_images(20, seed=7, spread=0.05)
    d, y = l2_distance_to_boundary(model, x)
    keep = (d > 0.01) & (d < 0.2)
    x, y, d = x[keep], y[keep], d[keep]
    w = model[1].weight.detach()
    normal = (w[1 - y] - w[y]).view_as(x)  # the margin descends along it
    unit = normal / normal.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    start = x + 1.2 * d.view(-1, 1, 1, 1) * unit
    kw = {"loss": "margin", "gamma_end": None}
    one = attacks.ddn(model, x, y, steps=1, start=start, **kw)
    torch.testing.assert_close(one.norms, 1.2 * d)
    two = attacks.ddn(model, x, y, steps=2, start=start, **kw)
    assert two.success.all()
    torch.testing.assert_close(two.norms, 1.2 * 0.95 * d)
    start[0] = x[0]
    cold = attacks.ddn(model, x[:1], y[:1], steps=3, **kw)
    warm = attacks.ddn(model, x, y, steps=3, start=start, **kw)
    assert torch.equal(warm.adv[:1], cold.adv) and torch.equal(warm.norms[:1], cold.norms)


class _FlipsAfter(nn.Module):
    """Logits (±100, u·x) with u a ±1 pattern: class 0 for the first ``calls`` evaluations,
    class 1 for every later one, wherever the input; the margin's gradient is −u throughout."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls, self.count = calls, 0
        self.u = torch.tensor([1.0, -1.0] * 8, dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        self.count += 1
        own = torch.full((x.shape[0],), 100.0 if self.count <= self.calls else -100.0,
                          dtype=x.dtype)
        return torch.stack([own, x.flatten(1) @ self.u], 1)


def test_ddn_eps_stops_growing_at_the_farthest_point_of_the_box() -> None:
    """From x = 0.5 every DDN step points along u/4 (unit L2 over 16 pixels), so iterate k is
    x + min(eps_k, 2)·u/4 (2 = the distance to the farthest corner, where the box clips). While
    not adversarial eps grows by (1 + γ), but never beyond 2: once the model flips (call 21)
    it shrinks by (1 − γ) from 2, not from wherever unchecked growth would have taken it."""
    x = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    model, steps, flip = _Recorder(_FlipsAfter(20)), 30, 20
    r = attacks.ddn(model, x, torch.tensor([0]), steps=steps, loss="margin", gamma_end=None)
    radii = torch.stack([(s - x).flatten(1).norm(dim=1)[0] for s in model.seen[:steps]])
    eps, expected = 1.0, [0.0]
    for i in range(steps - 1):
        eps = min(eps * 1.05, 2.0) if i < flip else eps * 0.95
        expected.append(min(eps, 2.0))
    torch.testing.assert_close(radii, torch.tensor(expected, dtype=torch.float64), rtol=1e-9,
                               atol=1e-12)
    assert r.success.all() and float(r.norms[0]) == pytest.approx(expected[-1], rel=1e-9)
