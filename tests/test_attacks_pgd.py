"""Fixed-budget attacks: PGD (L2 / L∞) and FGSM."""

from __future__ import annotations

import pytest
import torch

from advlens.attacks import AttackResult, Criterion, fgsm, pgd
from advlens.attacks.norms import lp_norms, project_ball, random_in_ball
from attack_toys import (
    affine_model,
    centre_images,
    l2_distance_to_boundary,
    random_images,
    tiny_cnn,
)


def _check_result(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, r: AttackResult,
                  targets: torch.Tensor | None = None) -> None:
    assert r.adv.shape == x.shape and r.adv.dtype == x.dtype
    assert float(r.adv.min()) >= 0.0 and float(r.adv.max()) <= 1.0
    torch.testing.assert_close(r.norms, lp_norms(r.adv - x, r.norm))
    with torch.no_grad():
        pred = model.eval()(r.adv).argmax(1)
    expected = pred == targets if targets is not None else pred != y
    assert torch.equal(r.success, expected)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_respects_ball_box_and_reports_truthfully(norm: str) -> None:
    model, x = tiny_cnn(), random_images(16)
    y = torch.arange(16) % 3
    eps = 0.5 if norm == "l2" else 0.03
    r = pgd(model, x, y, eps=eps, norm=norm, steps=5, random_start=True,
            generator=torch.Generator().manual_seed(0))
    assert float(r.norms.max()) <= eps * (1 + 1e-5)
    _check_result(model, x, y, r)
    assert r.passes == 5 and r.forwards == 1


def test_projection_is_a_ball_not_a_sphere() -> None:
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(6, 1, 4, 4, generator=g)
    norms = lp_norms(delta, "l2")
    eps = norms.clone()
    eps[:3] *= 2.0  # first three strictly inside: must not move
    eps[3:] *= 0.5  # last three outside: land on the sphere
    out = project_ball(delta, eps, "l2")
    torch.testing.assert_close(out[:3], delta[:3])
    torch.testing.assert_close(lp_norms(out[3:], "l2"), eps[3:])
    # the last three keep their direction
    cos = torch.nn.functional.cosine_similarity(out[3:].flatten(1), delta[3:].flatten(1))
    torch.testing.assert_close(cos, torch.ones(3))
    # PGD with tiny steps stays strictly inside the ball (a sphere projection would not)
    model, x = tiny_cnn(), random_images(8)
    r = pgd(model, x, torch.zeros(8, dtype=torch.long), eps=1.0, steps=3, step_size=0.01)
    assert float(r.norms.max()) <= 0.03 + 1e-6


def test_l1_and_linf_projection_against_references() -> None:
    g = torch.Generator().manual_seed(1)
    delta = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64)
    out = project_ball(delta, 0.1, "linf")
    torch.testing.assert_close(out, delta.clamp(-0.1, 0.1))
    eps = torch.tensor([0.5, 1.0, 2.0, 100.0, 3.0], dtype=torch.float64)
    out = project_ball(delta, eps, "l1")
    # reference: bisection on the soft threshold θ with ||soft(δ, θ)||₁ = eps
    for i in range(5):
        d = delta[i].flatten()
        if d.abs().sum() <= eps[i]:
            torch.testing.assert_close(out[i].flatten(), d)
            continue
        lo, hi = 0.0, float(d.abs().max())
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if (d.abs() - mid).clamp_min(0).sum() > eps[i] else (lo, mid)
        ref = d.sign() * (d.abs() - lo).clamp_min(0)
        torch.testing.assert_close(out[i].flatten(), ref)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_start_is_in_ball_and_seeded(norm: str) -> None:
    like = torch.zeros(200, 1, 4, 4)
    a = random_in_ball(like, 0.3, norm, torch.Generator().manual_seed(3))
    b = random_in_ball(like, 0.3, norm, torch.Generator().manual_seed(3))
    c = random_in_ball(like, 0.3, norm, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(lp_norms(a, norm).max()) <= 0.3 + 1e-6
    # uniform in the ball: L2 radii are not all on the sphere (median radius = 0.3·0.5^(1/16))
    if norm == "l2":
        med = float(lp_norms(a, norm).median())
        assert abs(med - 0.3 * 0.5 ** (1 / 16)) < 0.01


def test_pgd_on_affine_model_breaks_exactly_beyond_the_boundary() -> None:
    model, x = affine_model(k=2), centre_images(12)
    d, y = l2_distance_to_boundary(model, x)
    assert float(d.max()) < 0.2  # the box cannot bind (pixels 0.45..0.55, steps along w)
    below = pgd(model, x, y, eps=0.97 * float(d.min()), steps=20)
    assert not below.success.any()
    r = [pgd(model, x[i:i + 1], y[i:i + 1], eps=1.03 * float(d[i]), steps=20) for i in range(12)]
    assert all(bool(ri.success.all()) for ri in r)


def test_targeted_pgd_hits_the_target() -> None:
    model, x = affine_model(k=5, seed=2), centre_images(10)
    with torch.no_grad():
        y = model(x).argmax(1)
    targets = (y + 1) % 5
    r1 = pgd(model, x, y, eps=5.0, steps=30, targets=targets)
    _check_result(model, x, y, r1, targets)
    assert r1.success.all() and torch.equal(r1.targets, targets)
    with pytest.raises(TypeError, match="targeted"):  # one convention: targets given or not
        pgd(model, x, targets, eps=5.0, steps=30, targeted=True)  # type: ignore[call-arg]


def test_fgsm_is_one_signed_step() -> None:
    model, x = affine_model(k=2), centre_images(4)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = fgsm(model, x, y, eps=0.01)
    w = model[1].weight
    direction = (w[1 - y] - w[y]).sign().view(4, 1, 4, 4)
    torch.testing.assert_close(r.adv, x + 0.01 * direction)
    assert r.passes == 1
    torch.testing.assert_close(r.norms, torch.full((4,), 0.01, dtype=torch.float64))


def test_pgd_keep_any_succeeds_where_some_iterate_did() -> None:
    """keep="any" succeeds exactly where the last iterate is adversarial or an earlier one was
    confidently so; iterate k is the last iterate of a k-step run (no random start), so the
    reference is built from separate runs, not from the loop under test."""
    model, x = tiny_cnn(seed=1), random_images(32, seed=5)
    y = torch.arange(32) % 3
    kw = {"eps": 0.1, "step_size": 0.1, "norm": "linf"}  # steps as large as the ball
    last = pgd(model, x, y, steps=10, keep="last", **kw)
    anyr = pgd(model, x, y, steps=10, keep="any", **kw)
    crit = Criterion(y)
    iterates = [x] + [pgd(model, x, y, steps=k, **kw).adv for k in range(1, 10)]
    with torch.no_grad():  # in eval mode, as the attack runs the model
        earlier = torch.stack([crit.confidently_adversarial(model.eval()(it))
                               for it in iterates])
    assert torch.equal(anyr.success, last.success | earlier.any(0))
    assert bool((anyr.success & ~last.success).any()), "this setup must exercise keep='any'"
    _check_result(model, x, y, anyr)


def test_modes_restored_and_bad_inputs_refused() -> None:
    model, x = tiny_cnn(), random_images(4)
    model.train()
    model[0].weight.requires_grad_(True)
    y = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():  # the attack still gets gradients
        r = pgd(model, x, y, eps=0.1, steps=2)
    assert r.passes == 2
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x * 2, y, eps=0.1)
    with pytest.raises(ValueError, match="same|equal the true label"):
        pgd(model, x, y, eps=0.1, targets=y)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, eps=0.1, norm="l3")
    with pytest.raises(ValueError, match="shape"):
        pgd(model, x, y[:3], eps=0.1)


@pytest.mark.parametrize(("kw", "named"), [
    ({"eps": torch.full((4, 1, 1, 1), 0.1)}, "eps"), ({"eps": torch.full((3,), 0.1)}, "eps"),
    ({"eps": 0.1, "step_size": torch.full((3,), 0.01)}, "step_size")])
def test_a_per_image_budget_of_the_wrong_shape_is_named(kw: dict[str, object], named: str) -> None:
    """The error names the argument passed (it named ``step``, derived from eps)."""
    model, x = tiny_cnn().eval(), random_images(4)
    with pytest.raises(ValueError, match=rf"^{named} must be a number or a tensor of shape \(4,\)"):
        pgd(model, x, torch.zeros(4, dtype=torch.long), steps=2, **kw)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_default_step_is_two_and_a_half_eps_over_steps(norm: str) -> None:
    """Without ``step_size`` (the zoo's robust-accuracy check), the first step has the
    documented length 2.5·eps/steps along the closed-form cross-entropy gradient of an affine
    model, Wᵀ(softmax(z) − onehot(y)): the second pass sees x + step·d (d = g/||g||₂ or sign g)."""
    model, x = affine_model(k=3, seed=5), centre_images(4)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    eps, steps = 0.2 if norm == "l2" else 0.02, 10
    pgd(model, x, y, eps=eps, norm=norm, steps=steps)
    w = model[1].weight.detach()
    p = torch.softmax(z, 1) - torch.nn.functional.one_hot(y, 3).double()
    g = (p @ w).reshape(x.shape)
    d = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) if norm == "l2" else g.sign()
    torch.testing.assert_close(seen[1], x + 2.5 * eps / steps * d, rtol=0, atol=1e-12)


def test_random_l2_start_of_a_single_image_is_uniform_in_its_ball() -> None:
    """One image (a batch of 1, as when attacking one picture): the radius of a uniform point
    in a d-ball of radius eps has P(r <= t·eps) = t^d, so its median is eps·0.5^(1/d)
    (closed form; d = 4 pixels here), and its direction is uniform (mean ≈ 0)."""
    like = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    draws = torch.cat([random_in_ball(like, 0.3, "l2", torch.Generator().manual_seed(s))
                       for s in range(2000)])
    radii = lp_norms(draws, "l2")
    assert float(radii.max()) <= 0.3 + 1e-12
    assert abs(float(radii.median()) - 0.3 * 0.5 ** (1 / 4)) < 0.02
    assert float(draws.flatten(1).mean(0).abs().max()) < 0.02
