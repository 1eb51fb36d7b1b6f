"""Fast Adaptive Boundary attack (Croce & Hein 2020), L∞, one gradient pass per step."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import (
    attack_mode,
    check_positive,
    check_start,
    logits_and_grad,
    prepare,
    tqdm_disabled,
)
from advlens.attacks.norms import lp_norms
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor

_TINY = 1e-12


def project_linf_hyperplane_box(w: Tensor, c: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Per sample, the smallest-L∞ δ with ``w·δ = c`` and ``lo ≤ δ ≤ hi`` (lo ≤ 0 ≤ hi).

    Parameters
    ----------
    w: (N, ...) hyperplane normals.
    c: (N,) right-hand sides.
    lo, hi: (N, ...) box bounds on δ (for an image x in [0, 1]: −x and 1 − x).

    Returns
    -------
    δ (N, ...): ``clip(t·sign(w·c), lo, hi)`` with the smallest t ≥ 0 that reaches ``w·δ = c``;
    where no δ in the box reaches it, the box corner that comes nearest.
    """
    shape = w.shape
    w, lo, hi = w.flatten(1), lo.flatten(1), hi.flatten(1)
    direction = w.sign() * c.sign()[:, None]
    # w·clip(t·direction, lo, hi) = sign(c) Σ |w_i| min(t, b_i): piecewise linear in t, bending
    # at the distances b_i to the box face that coordinate moves towards
    b = torch.where(direction > 0, hi, -lo).clamp_min(0)
    a = w.abs() * direction.abs()
    b_sorted, order = b.sort(dim=1)
    a_sorted = a.gather(1, order)
    below = (a_sorted * b_sorted).cumsum(1) - a_sorted * b_sorted  # Σ_{j<k} a_j b_j
    above = a_sorted.flip(1).cumsum(1).flip(1)  # Σ_{j≥k} a_j
    reach = below + b_sorted * above  # Σ_i a_i min(b_k, b_i), nondecreasing in k
    target = c.abs()[:, None]
    k = (reach < target).sum(1, keepdim=True).clamp_max(w.shape[1] - 1)  # first k reaching it
    t = (target - below.gather(1, k)) / above.gather(1, k).clamp_min(_TINY)
    delta = torch.minimum(torch.maximum(t * direction, lo), hi)
    return delta.view(shape)


def fab(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 100,
        targets: Tensor | None = None, alpha_max: float = 0.1, eta: float = 1.05,
        beta: float = 0.9, start: Tensor | None = None,
        progress: bool | None = None) -> AttackResult:
    """FAB-L∞ (Croce & Hein 2020): linearise the decision boundary at the current point, step to
    the boundary's minimal-L∞ projection (in the box [0, 1]) biased towards the projection of
    the original image, overshoot by ``eta``; once adversarial, pull back towards the original.

    Per step: z_{k+1} = clip((1 − α)(x_k + η δ_k) + α(x₀ + η δ₀), 0, 1), δ_k and δ₀ the
    projections of x_k and x₀ onto the linearised boundary {margin(z_k) + ∇margin·(x − z_k) =
    −tolerance} ∩ box, α = min(||δ_k|| / (||δ_k|| + ||δ₀||), ``alpha_max``); x_k = z_k, or
    x₀ + β(z_k − x₀) where z_k is (confidently) adversarial. Defaults as published.

    Differences from the published FAB, each for one gradient pass per step: the boundary is the
    logit margin's (:class:`Criterion`: true class against the current runner-up, or the target
    against the rest), where untargeted FAB takes the nearest of all classes' boundaries (one
    gradient per class); the pulled-back point is projected onto z_k's linearisation, where FAB
    checks z_k with a forward pass and linearises again there; the boundary aimed at is the
    acceptance one (:meth:`Criterion.tolerance`): iterates converge onto the boundary they aim
    at, and on {margin = 0} none would be accepted.

    Parameters
    ----------
    steps: gradient passes.
    targets: target classes for a targeted attack; untargeted if None.
    alpha_max, eta, beta: the bias towards x₀, the overshoot, the pull-back factor.
    start: (N, ...) first point in [0, 1] (default: x).
    progress: tqdm bar (None: on only in a terminal).

    Returns
    -------
    AttackResult (``norm="linf"``) with each image's smallest adversarial iterate; cost:
    ``steps`` passes + one confirming forward.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}.")
    for name, value in (("alpha_max", alpha_max), ("eta", eta), ("beta", beta)):
        check_positive(name, value)
    if alpha_max > 1 or beta > 1:
        raise ValueError(f"alpha_max and beta must be <= 1; got {alpha_max}, {beta}.")
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        best = BestAdversarial(x0, "linf")
        z = x0 if start is None else check_start(start, x0)
        for i in tqdm(range(steps), desc="FAB-linf", disable=tqdm_disabled(progress),
                      leave=False):
            logits, margin, grad = logits_and_grad(model, z, lambda out, _x: crit.margin(out))
            is_adv = crit.confidently_adversarial(logits, margin)
            margin = margin + crit.tolerance(logits)  # aim at the acceptance boundary
            best.update(z, is_adv)
            if i == steps - 1:
                break  # the next point would never be evaluated
            pull = is_adv.view(-1, *([1] * (x0.ndim - 1)))
            xk = torch.where(pull, x0 + beta * (z - x0), z)
            # the linearised boundary: margin + grad·(x − z) = 0, i.e. grad·δ = c at x; x_k's
            # and x₀'s projections in one batch (one sort)
            both = torch.cat([xk, x0])
            g2 = torch.cat([grad, grad])
            c = -margin.repeat(2) - (g2 * (both - torch.cat([z, z]))).flatten(1).sum(1)
            dk, d0 = project_linf_hyperplane_box(g2, c, -both, 1 - both).chunk(2)
            nk, n0 = lp_norms(dk, "linf"), lp_norms(d0, "linf")
            alpha = (nk / (nk + n0).clamp_min(_TINY)).clamp_max(alpha_max)
            alpha = alpha.view(-1, *([1] * (x0.ndim - 1)))
            z = ((1 - alpha) * (xk + eta * dk) + alpha * (x0 + eta * d0)).clamp(0.0, 1.0)
        result = best.result(model, crit, passes=steps, forwards=0)
    return result.to(home)
