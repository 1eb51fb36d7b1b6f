"""Defects of the attack API found by a review (session 30), each pinned by a test that failed
before its fix: FMN-L2 stuck short of a boundary the [0, 1] box pushes out, budgets too small to
fool anything, non-finite logits or gradients misreported, tied clean logits read as not fooled,
per-image lists not cut by run_batched."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from advlens import attacks
from attack_toys import random_images, tiny_cnn


# ------------------------------------------------------------------ FMN-L2 where the box binds
def _box_bound_problem(n: int = 8) -> tuple[nn.Sequential, Tensor, Tensor]:
    """A 2-class affine model in float64 and images whose pixels lie near 0 or 1: the nearest
    boundary point of the unconstrained problem lies outside the box, so the minimal adversarial
    in the box saturates pixels and lies farther."""
    g = torch.Generator().manual_seed(3)
    lin = nn.Linear(36, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 36, generator=g, dtype=torch.float64) * 0.06)
        lin.bias.copy_(torch.randn(2, generator=g, dtype=torch.float64) * 0.1)
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64)
    x = (x > 0.5).double() * 0.96 + 0.02 * torch.rand(x.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _box_minimum_l2(model: nn.Sequential, x: Tensor, y: Tensor) -> Tensor:
    """The exact smallest L2 perturbation δ with x + δ in [0, 1] that brings the 2-class affine
    model's margin to 0: δ_i = clip(−λ·w_i, −x_i, 1 − x_i), λ ≥ 0 by bisection (the KKT point
    of a convex problem); inf where the box does not reach the boundary."""
    lin = model[1]
    w = (lin.weight[y] - lin.weight[1 - y]).detach()  # the margin's gradient (N, 36)
    m = (lin(x.flatten(1)).gather(1, y[:, None])[:, 0]
         - lin(x.flatten(1)).gather(1, (1 - y)[:, None])[:, 0]).detach()
    f = x.flatten(1)

    def delta(lam: Tensor) -> Tensor:
        return torch.clamp(-lam[:, None] * w, -f, 1 - f)

    lo, hi = torch.zeros_like(m), torch.full_like(m, 1e6)
    reachable = (m + (w * delta(hi)).sum(1)) < 0
    for _ in range(200):
        mid = (lo + hi) / 2
        crossed = (m + (w * delta(mid)).sum(1)) <= 0
        hi, lo = torch.where(crossed, mid, hi), torch.where(crossed, lo, mid)
    return torch.where(reachable, delta(hi).norm(dim=1), torch.full_like(m, float("inf")))


def test_fmn_l2_reaches_a_boundary_that_the_box_pushes_out() -> None:
    """FMN's eps before an image is found is the linear estimate ||δ|| + margin/||∇||, which
    ignores the box: where the clamp into [0, 1] cut the steps short, its fixed point lay short
    of the boundary and the image was never found (here 3 of 8 images at 100 and at 999 steps;
    the published estimate, overshoot=False, 8 of 8; minimal_l2 below 20 passes, FMN-L2 alone,
    5 of 8). Every image must be found, near the box-constrained minimum."""
    model, x, y = _box_bound_problem()
    exact = _box_minimum_l2(model, x, y)
    assert bool(torch.isfinite(exact).all())
    for result in (attacks.fmn(model, x, y, steps=100),
                   attacks.fmn(model, x, y, steps=100, overshoot=False),
                   attacks.minimal_l2(model, x, y, budget=19)):
        assert bool(result.success.all()), result.norms
        ratio = result.norms / exact
        assert float(ratio.min()) >= 1 - 1e-9 and float(ratio.max()) <= 1.02, ratio


def test_fmn_l2_is_unchanged_where_the_box_never_binds() -> None:
    """The box rule floors eps only where the clamp cut a step: images in the middle of the box
    on an affine model (no clamp) end at the exact unconstrained minimum, as before."""
    model, _, _ = _box_bound_problem()
    x = 0.5 + 0.02 * (torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(5),
                                 dtype=torch.float64) - 0.5)
    with torch.no_grad():
        y = model(x).argmax(1)
    exact = _box_minimum_l2(model, x, y)
    result = attacks.fmn(model, x, y, steps=100)
    assert bool(((result.adv > 0) & (result.adv < 1)).all())  # the box never reached
    torch.testing.assert_close(result.norms, exact, rtol=1e-3, atol=0)


# ------------------------------------------------------------------------- smallest budgets
def _affine(k: int) -> tuple[nn.Sequential, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(36, k)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, 36, generator=g))
        lin.bias.copy_(torch.randn(k, generator=g) * 0.1)
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


SMALLEST = [("l2", "auto", 4), ("l2", "fmn", 3), ("l2", "ddn", 3), ("l2", "alma", 3),
            ("l2", "fab", 3), ("l2", "cw", 7), ("linf", "auto", 4), ("linf", "fmn", 3),
            ("linf", "fab", 3)]


@pytest.mark.parametrize(("norm", "method", "least"), SMALLEST)
def test_each_methods_smallest_budget_can_fool_an_image(norm: str, method: str,
                                                        least: int) -> None:
    """FMN, DDN, ALMA (and C&W) test an iterate at the start of the next step, so one step
    tested x alone: at the smallest budgets allowed (auto 3, fmn / ddn / alma 2, cw 4) no
    correctly classified image was ever fooled. The smallest budget must fool some; one pass
    less is refused, naming the minimum and the method (fab's minimum, 3, is unchanged)."""
    model, x, y = _affine(10)
    entry = attacks.minimal_l2 if norm == "l2" else attacks.minimal_linf
    result = entry(model, x, y, method=method, budget=least)
    assert result.cost <= least
    assert int(result.success.sum()) > 0
    with pytest.raises(ValueError, match=f"budget must be >= {least} passes for "
                                         f"method='{method}'"):
        entry(model, x, y, method=method, budget=least - 1)


# ------------------------------------------------------------------ non-finite model outputs
class _PerImageStandardised(nn.Module):
    """Standardises each image, (x − mean)/scale: ``by="std"`` (no epsilon) gives NaN logits on
    a constant image; ``by="norm"`` (||x − mean||₂ + 1e-3) finite logits but a NaN gradient
    there (the square root's derivative at 0)."""

    def __init__(self, by: str) -> None:
        super().__init__()
        self.by = by
        self.inner = tiny_cnn(seed=0, k=4)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        centred = flat - flat.mean(1, keepdim=True)
        if self.by == "std":
            scale = flat.std(1, keepdim=True)
        else:
            scale = centred.pow(2).sum(1, keepdim=True).sqrt() + 1e-3
        return self.inner((centred / scale).view_as(x))


def _blank_at_1(by: str) -> tuple[nn.Module, Tensor, Tensor]:
    model = _PerImageStandardised(by).eval()
    x = random_images(4, seed=4)
    x[1] = 0.5  # constant: std 0
    with torch.no_grad():
        y = model(x).argmax(1).nan_to_num().clamp(0, 3)  # (argmax of NaN: any class)
    return model, x, y


NON_FINITE_CALLS = {
    "pgd": lambda m, x, y: attacks.pgd(m, x, y, eps=0.3, steps=3),
    "fgsm": lambda m, x, y: attacks.fgsm(m, x, y, eps=0.1),
    "minimal_l2": lambda m, x, y: attacks.minimal_l2(m, x, y, budget=30),
    "minimal_l2-fmn": lambda m, x, y: attacks.minimal_l2(m, x, y, budget=10),
    "minimal_linf": lambda m, x, y: attacks.minimal_linf(m, x, y, budget=30),
    "fab": lambda m, x, y: attacks.fab(m, x, y, norm="l2", steps=10),
    "alma": lambda m, x, y: attacks.alma(m, x, y, steps=5),
    "cw": lambda m, x, y: attacks.cw_l2(m, x, y, steps=3, binary_steps=2),
    "ead": lambda m, x, y: attacks.ead(m, x, y, steps=3, binary_steps=2),
    "ifgsm_search": lambda m, x, y: attacks.ifgsm_search(m, x, y, tries=3),
    "minimal_eps_pgd": lambda m, x, y: attacks.minimal_eps_pgd(m, x, y),
}


@pytest.mark.parametrize("by", ["std", "norm"])
@pytest.mark.parametrize("name", sorted(NON_FINITE_CALLS))
def test_non_finite_logits_or_gradients_are_refused_naming_the_images(name: str,
                                                                     by: str) -> None:
    """A model giving NaN logits on an image made pgd return an all-NaN adversarial with
    success True, the minimal attacks report inf, the searches 'broken at eps 0'; a NaN input
    gradient (finite logits) left the image unmoved or NaN, read as not fooled. Each must be
    refused, naming the image and the remedy."""
    model, x, y = _blank_at_1(by)
    what = "model's logits are NaN" if by == "std" else "gradient of the model's logits"
    with pytest.raises(ValueError, match=rf"1 of 4 images \(at indices 1\): the {what}.*epsilon"):
        NON_FINITE_CALLS[name](model, x, y)


def test_run_batched_names_a_non_finite_image_by_its_index_in_the_whole_set() -> None:
    model, x, y = _blank_at_1("norm")
    x, y = torch.cat([x[2:], x]), torch.cat([y[2:], y])  # the blank image at index 3
    with pytest.raises(ValueError, match=r"1 of 6 images \(at indices 3\)"):
        attacks.run_batched(attacks.fmn, model, x, y, batch_size=2, steps=3)
    with pytest.raises(ValueError, match=r"1 of 6 images \(at indices 3\)"):
        attacks.run_batched(attacks.ifgsm_search, model, x, y, batch_size=6, tries=2)


def test_logits_of_minus_infinity_are_refused_but_not_by_choose_targets() -> None:
    """Log-probabilities that underflow to −inf made the acceptance tolerance (64 ulps of the
    largest |logit|) inf: no point was ever adversarial, every image read 'not fooled'. The
    attacks refuse them, naming the remedy; choose_targets, which only ranks, takes them."""
    base = tiny_cnn(seed=2, k=3).eval()
    x = random_images(4, seed=1)

    class Underflowing(nn.Module):
        def forward(self, z: Tensor) -> Tensor:
            out = torch.log_softmax(base(z), 1)
            low = out.argmin(1, keepdim=True)  # the least likely class underflows
            return out.scatter(1, low, float("-inf")) + 0 * out

    model = Underflowing()
    with torch.no_grad():
        y = model(x).argmax(1)
    for run in (lambda: attacks.pgd(model, x, y, eps=0.5, steps=3),
                lambda: attacks.minimal_l2(model, x, y, budget=20),
                lambda: attacks.fmn(model, x, y, norm="linf", steps=5)):
        with pytest.raises(ValueError, match=r"4 of 4 images .*logits are NaN or inf.*log of 0"):
            run()
    assert bool((attacks.choose_targets(model, x, y, "top-2") != y).all())


# ---------------------------------------------------------------------- tied clean logits
def test_an_image_misclassified_at_x_by_a_tie_is_fooled_at_norm_0() -> None:
    """A bias-free ReLU net on a black image: every logit 0, argmax class 0 ≠ y = 3. Never
    *confidently* adversarial (its margin is 0), the minimal attacks reported it not fooled
    (success False, inf) while pgd and the searches said fooled at 0; AttackResult.success is
    "adv misclassified, confirmed by the final forward": success at norm 0, adv = x."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 64, 10, bias=False)).eval()
    x = torch.zeros(2, 1, 8, 8)
    x[1] = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = torch.tensor([3, int(model(x[1:]).argmax(1)[0])])
        assert model(x[:1]).abs().max() == 0
    for name, run in (("minimal_l2", lambda: attacks.minimal_l2(model, x, y, budget=30)),
                      ("minimal_linf", lambda: attacks.minimal_linf(model, x, y, budget=30)),
                      ("ddn", lambda: attacks.ddn(model, x, y, steps=10)),
                      ("fmn", lambda: attacks.fmn(model, x, y, steps=10)),
                      ("alma", lambda: attacks.alma(model, x, y, steps=10)),
                      ("fab", lambda: attacks.fab(model, x, y, steps=10)),
                      ("cw", lambda: attacks.cw_l2(model, x, y, steps=5, binary_steps=2)),
                      ("ifgsm_search", lambda: attacks.ifgsm_search(model, x, y, tries=2))):
        r = run()
        assert bool(r.success[0]) and float(r.norms[0]) == 0.0, name
        assert torch.equal(r.adv[0], x[0]), name


# ------------------------------------------------------------------ run_batched and lists
def test_run_batched_cuts_per_image_lists_and_tuples() -> None:
    """A per-image list (pgd(eps=[...]), fmn(max_step=[...])) was passed whole to each chunk
    and refused with the chunk's size ("a tensor of shape (2,)")."""
    model, x = tiny_cnn(seed=3).eval(), random_images(5, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
    eps = [0.1, 0.2, 0.3, 0.4, 0.5]
    whole = attacks.run_batched(attacks.pgd, model, x, y, batch_size=2,
                                eps=torch.tensor(eps, dtype=torch.float64), steps=3)
    for listed in (eps, tuple(eps)):
        chunked = attacks.run_batched(attacks.pgd, model, x, y, batch_size=2, eps=listed,
                                      steps=3)
        assert torch.equal(chunked.adv, whole.adv)
    steps = [0.1, 0.2, 0.3, 0.4, 0.5]
    listed = attacks.run_batched(attacks.fmn, model, x, y, batch_size=2, steps=4, max_step=steps)
    tensor = attacks.run_batched(attacks.fmn, model, x, y, batch_size=2, steps=4,
                                 max_step=torch.tensor(steps, dtype=torch.float64))
    assert torch.equal(listed.adv, tensor.adv)
