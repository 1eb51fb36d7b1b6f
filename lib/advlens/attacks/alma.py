"""ALMA, the augmented Lagrangian adversarial attack (Rony et al., ICCV 2021), for L2.

Minimise ``||δ||₂`` subject to ``c(x + δ) < 0``, where c is the difference-of-logits ratio (the
margin over the spread of the top logits, positive while the image is classified correctly), by
gradient steps on the augmented Lagrangian ``||δ||₂ + P₂(c; ρ, μ)``: the penalty parameter ρ
grows while the constraint stops improving, the multiplier μ follows the penalty's derivative as
an exponential moving average, and δ moves by RMSProp with momentum, its learning rate decaying
exponentially from each image's first adversarial on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import (
    attack_mode,
    bookkeeping,
    check_start,
    graph_input,
    input_grad,
    model_logits,
    positive_number,
    prepare,
    tqdm_disabled,
)
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import _TINY, lp_norms
from advlens.attacks.result import AttackResult
from advlens.attacks.scalars import scalar
from advlens.checks import as_tensor, check_positive_int


def p2_penalty(c: Tensor, rho: Tensor, mu: Tensor) -> Tensor:
    """The P2 penalty-Lagrangian of Birgin et al. used by ALMA (C² at c = 0).

    ``μc + μρc² + ρ²c³/6`` for c ≥ 0, ``μc / (1 − ρc)`` for c < 0.
    """
    neg = c.clamp(max=0)
    return torch.where(c >= 0, mu * c + mu * rho * c**2 + rho**2 * c**3 / 6,
                       mu * c / (1 - rho * neg))


def p2_derivative(c: Tensor, rho: Tensor, mu: Tensor,
                  coefficients: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """dP₂/dc in closed form: ``μ + 2μρc + ρ²c²/2`` for c ≥ 0, ``μ / (1 − ρc)²`` for c < 0,
    formed as ``a·μ + b`` (:func:`p2_coefficients`; pass them, computed once, for several μ)."""
    a, b = p2_coefficients(c, rho) if coefficients is None else coefficients
    return torch.addcmul(b, a, mu)


def p2_coefficients(c: Tensor, rho: Tensor) -> tuple[Tensor, Tensor]:
    """dP₂/dc is affine in μ: ``a·μ + b`` with a = 1 + 2ρc, b = (ρc)²/2 for c ≥ 0 and
    a = 1/(1 − ρc)², b = 0 for c < 0 (ρ > 0). Why: ALMA takes the derivative at two μ each step
    (the multiplier's update, then the step), and one addcmul each is a dozen small ops fewer
    on a small batch."""
    rc = rho * c
    positive = rc.clamp(min=0)
    one = scalar(1, c.dtype)
    # (2ρc as ρc + ρc: the same, exactly)
    a = torch.where(c >= scalar(0, c.dtype), (positive + positive).add_(one),
                    (one - rc.clamp(max=0)).pow_(-2))
    return a, positive.square_().mul_(scalar(0.5, c.dtype))


def logit_ratio(crit: Criterion, logits: Tensor, tolerance: float,
                margin: Tensor | None = None, scale: Tensor | None = None) -> Tensor:
    """The constraint: (margin + tolerance) / spread, negative iff adversarial by more than
    ``tolerance``.

    The spread is z₍₁₎ − z₍₃₎ (untargeted) or z₍₁₎ − (z₍₃₎ + z₍₄₎)/2 (targeted), the sorted logits
    of Croce & Hein's DLR, so the constraint does not change when the logits are scaled. Models
    with fewer classes than that divide by ``scale`` (N,) instead, a constant per image (ALMA
    takes :func:`fixed_scale` of its first logits; None: the plain margin). ``margin``:
    ``crit.margin(logits)`` if already computed.
    """
    margin = crit.margin(logits) if margin is None else margin
    margin = margin + scalar(tolerance, margin.dtype)
    top = _top(crit, logits)
    if top is None:
        return margin if scale is None else margin / scale
    return margin / _spread(crit, top.values)


def fixed_scale(crit: Criterion, logits: Tensor) -> Tensor | None:
    """Where the logits are too few for the DLR spread (2 classes untargeted, 3 targeted), a
    constant spread per image: the largest |logit| of ``logits`` (the first step's) + 1e-8, so
    that the constraint does not change when the logits are scaled either (the plain margin
    made ALMA's penalty and steps depend on the logits' size: 17.7× the minimal distance at 300
    steps on a 2-class model whose logits were ×100, 1.2× at ×1). Not the margin itself: an
    image starting near the boundary divided by its small margin took a first step far past
    it (154× the distance at a starting margin of 0.02). None where the spread exists."""
    if _top(crit, logits) is not None:
        return None
    return logits.abs().amax(1) + 1e-8


def logit_ratio_and_grad(crit: Criterion, logits: Tensor, tolerance: float,
                         scale: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The margin and :func:`logit_ratio` (N,) of detached ``logits``, and the ratio's gradient
    with respect to them (N, k): bitwise what autograd takes through :func:`logit_ratio`, formed
    by hand as :meth:`Criterion.margin_backward` is."""
    margin, ties = crit.margin_and_ties(logits)
    shifted = margin + scalar(tolerance, margin.dtype)
    top = _top(crit, logits)
    if top is None:
        if scale is None:
            return margin, shifted, crit.margin_backward(ties, torch.ones_like(margin))
        return margin, shifted / scale, crit.margin_backward(ties, 1 / scale)
    spread = _spread(crit, top.values)
    ratio = shifted / spread
    # no zero weight: 1/spread > 0 for finite float32/64 logits (the spread is at least 1e-8)
    grad = crit.margin_backward(ties, spread.reciprocal(), zero_free=True)
    # the quotient rule's −(n/d)/d reaches the largest logit as is and the low ones negated
    # (halved when two are averaged); no logit gets more than two nonzero parts (own or runner-up,
    # and one top place), so adding them in any order is autograd's sum
    # (d_spread is −ratio/spread, and its negation that quotient itself: one op fewer)
    quotient = ratio / spread
    d_spread = quotient.neg()
    if crit.targeted:
        half = quotient / 2
        cols, parts = top.indices[:, [0, 2, 3]], torch.stack([d_spread, half, half], 1)
    else:  # columns 0 and 2 by a slice: a view, where a list index copies
        cols, parts = top.indices[:, ::2], torch.stack([d_spread, quotient], 1)
    return margin, ratio, grad.scatter_add_(1, cols, parts)


def _top(crit: Criterion, logits: Tensor) -> torch.return_types.topk | None:
    """The top logits the spread needs (3 untargeted, 4 targeted); None for fewer classes."""
    need = 4 if crit.targeted else 3
    return None if logits.shape[1] < need else logits.topk(need, dim=1)


def _spread(crit: Criterion, top: Tensor) -> Tensor:
    """z₍₁₎ − z₍₃₎ (untargeted) or z₍₁₎ − (z₍₃₎ + z₍₄₎)/2 (targeted), from the sorted top logits."""
    low = top[:, 2] if not crit.targeted else (top[:, 2] + top[:, 3]) / 2
    return top[:, 0] - low + scalar(1e-8, top.dtype)


def alma(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 1000,
         targets: Tensor | None = None, lr: float = 0.1, lr_reduction: float = 0.01,
         mu: float = 1.0, rho: float = 1.0, check_every: int = 10, tau: float = 0.95,
         rho_growth: float = 1.2, alpha: float = 0.9, tolerance: float = 1e-4,
         start: Tensor | None = None, progress: bool | None = None) -> AttackResult:
    """ALMA-L2 with the published defaults (Rony et al. 2021, penalty P2); the constraint is
    :func:`logit_ratio` (the DLR spread; on models of too few classes for it, a constant per
    image, :func:`fixed_scale`).

    Parameters
    ----------
    steps: forward+backward passes.
    lr, lr_reduction: RMSProp learning rate; once an image is first adversarial (at step s), its
        rate decays as ``lr · lr_reduction^((i − s)/(steps − s))``.
    mu, rho: initial multiplier and penalty parameter.
    check_every, tau, rho_growth: every ``check_every`` steps, ρ of an image not yet adversarial
        whose constraint did not fall below ``tau`` × its previous checked value grows by
        ``rho_growth``.
    alpha: moving-average weight of μ and of RMSProp's squared gradients and momentum, in
        (0, 1).
    tolerance: added to the margin, so the constraint asks for a margin below −tolerance.
    start: optional starting images (N, ...) in [0, 1] (e.g. another attack's output).
    Every setting but ``start`` and ``targets`` is one number for the whole batch.

    Returns
    -------
    AttackResult with each image's smallest-L2 adversarial iterate. Cost: ``steps`` passes + one
    confirming forward.
    """
    steps, check_every = check_positive_int(steps, "steps"), check_positive_int(check_every,
                                                                               "check_every")
    # one number each: an (N,) mu, rho or alpha failed inside torch, an alpha > 1 drove
    # RMSProp's average negative (its square root NaN: no image fooled, silently)
    lr, lr_reduction, mu, rho, tau, rho_growth, alpha = (
        positive_number(name, value) for name, value in
        (("lr", lr), ("lr_reduction", lr_reduction), ("mu", mu), ("rho", rho), ("tau", tau),
         ("rho_growth", rho_growth), ("alpha", alpha)))
    if alpha >= 1:
        raise ValueError(f"alpha, a moving-average weight, must be < 1; got {alpha}.")
    tolerance = positive_number("tolerance", tolerance, allow_zero=True)
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        n = x0.shape[0]
        best = BestAdversarial(x0, "l2")
        delta = torch.zeros_like(x0) if start is None else check_start(start, x0) - x0
        square_avg, momentum = torch.ones_like(x0), torch.zeros_like(x0)
        mu_t = torch.full((n,), mu, dtype=x0.dtype, device=x0.device)
        rho_t = torch.full_like(mu_t, rho)
        found = torch.zeros_like(mu_t, dtype=torch.bool)  # adversarial at an earlier step
        # each image's learning rate, and the factor it decays by per step once found (1 before):
        # found at step s, its rate at step i is lr · lr_reduction^((i − s)/(steps − s)), formed
        # as a running product (ops on the (N,) state cost as much as on images at small
        # batches); in float32 it drifts from that power by a relative 2e-5 in 1,000 steps (not
        # float64: MPS has none)
        step_lr, shrink = torch.full_like(mu_t, lr), torch.ones_like(mu_t)
        previous = torch.zeros_like(mu_t)
        rows = (-1, *([1] * (x0.ndim - 1)))  # an (N,) tensor viewed against images
        zero, alpha_t, eps_t = (scalar(v, x0.dtype) for v in (0, alpha, 1e-8))
        with bookkeeping():
            for i in tqdm(range(steps), desc="ALMA", disable=tqdm_disabled(progress), leave=False):
                with torch.inference_mode(False):  # an ordinary tensor: the pass needs no copy
                    xa = x0 + delta
                with torch.inference_mode(False):  # the pass; the rest is bookkeeping
                    xv = graph_input(xa)
                    out = model_logits(model, xv)
                logits = out.detach()
                if i == 0:
                    scale = fixed_scale(crit, logits)
                margin, c, dc = logit_ratio_and_grad(crit, logits, tolerance, scale)
                with torch.inference_mode(False):
                    grad = input_grad(out, xv, dc)
                if i == 0:
                    best.watch(grad)
                    previous = c
                elif (i + 1) % check_every == 0:
                    stalled = c >= tau * previous
                    stalled &= ~found
                    rho_t = torch.where(stalled, rho_t * rho_growth, rho_t)
                    previous = c
                coefficients = p2_coefficients(c, rho_t)
                if i > 0:
                    mu_t = torch.lerp(mu_t, p2_derivative(c, rho_t, mu_t, coefficients),
                                      1 - alpha).clamp_(1e-6, 1e12)
                is_adv = crit.confidently_adversarial(logits, margin) & (c < zero)
                delta_norm = lp_norms(delta, "l2")
                best.update(xa, is_adv, score=delta_norm)
                step_lr.mul_(shrink)
                shrink = torch.where(is_adv > found, lr_reduction ** (1 / (steps - i)), shrink)
                found |= is_adv
                # ∇(||δ||₂ + P₂(c)) = δ/||δ|| + P₂'(c)·∇c  (the first step: the penalty alone)
                g = grad.mul_(p2_derivative(c, rho_t, mu_t, coefficients).view(rows))
                if i > 0:  # + δ/||δ||₂ (unit_l2's floor) in one op: addcdiv's value 1 is exact
                    g.addcdiv_(delta, delta_norm.clamp_min(_TINY).view(rows))
                square_avg.mul_(alpha_t).addcmul_(g, g, value=1 - alpha)
                momentum.mul_(alpha_t).addcdiv_(g, square_avg.sqrt().add_(eps_t))
                # xa is x0 + delta: the same sum the update starts from
                delta = torch.addcmul(xa, momentum, step_lr.view(rows), value=-1).clamp_(
                    0.0, 1.0).sub_(x0)
        result = best.result(model, crit, passes=steps, forwards=0)
    return result.to(home)

