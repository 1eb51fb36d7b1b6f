"""Decoupled Direction and Norm (Rony et al. 2019): a fast minimal-L2 attack."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import (
    attack_mode,
    bookkeeping,
    check_positive,
    check_start,
    cosine,
    graph_input,
    input_grad,
    linearised_l2_distance,
    logits_and_grad,
    margin_and_grad,
    model_logits,
    positive_number,
    prepare,
    tqdm_disabled,
)
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import _TINY, lp_norms, per_sample, unit_l2  # (unit_l2's floor)
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor, check_bool, check_positive_int

GAMMA = 0.05  # the published γ: eps moves by 5 % a step


def ddn(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 100,
        targets: Tensor | None = None, init_eps: float | Tensor = 1.0, gamma: float = GAMMA,
        gamma_end: float | None = 0.001, max_step: float = 1.0, min_step: float = 0.01,
        loss: Literal["ce", "margin", "ce-margin"] = "ce-margin", switch: float = 0.5,
        start: Tensor | None = None, linear_start: bool = False,
        progress: bool | None = None) -> AttackResult:
    """DDN: step along the normalised cross-entropy gradient (size cosine-annealed from
    ``max_step`` to ``min_step``), then put the perturbation on the sphere of radius eps, where
    each image's eps shrinks by (1 − γ) while it is adversarial and grows by (1 + γ) while not.

    γ is cosine-annealed from ``gamma`` to ``gamma_end`` (``None``: constant γ, as published),
    which lets eps settle closer to the boundary. Eps moves by a factor (1 ± γ) per step, so
    reaching a boundary at distance d takes about |ln(d/init_eps)|/γ steps; ``init_eps`` may be
    an (N,) tensor, e.g. the norms another attack found (the scale of each image's boundary);
    the other settings are one number for the whole batch, ``gamma`` and ``gamma_end`` below 1.

    ``loss="ce"`` ascends the cross-entropy (published DDN); ``"margin"`` descends the logit
    margin, whose gradient points straight at the runner-up class's boundary of a locally
    linear model (the cross-entropy's mixes every class in, so CE-DDN settles a few % off the
    exact minimum of an affine multi-class model); ``"ce-margin"`` (default) uses the
    cross-entropy for the first ``switch`` fraction of steps (it finds better basins on the
    benchmark CNN) and the margin for the rest (exact convergence). Each image keeps its
    smallest-L2 adversarial iterate. ``start`` (N, ...) in [0, 1] warm-starts the iterate there,
    each image's eps at its distance from x (``init_eps`` where that is 0): a refinement of
    another attack's output. ``linear_start`` (with ``loss="margin"``) caps each image's eps, at
    the first step, at the linearised distance to the boundary, ||δ|| + margin/||∇margin||₂
    (FMN's estimate; the first iterate lands at it times 1 + γ), so that an image whose boundary
    lies far below ``init_eps`` does not spend its steps shrinking eps; with a ``start`` it
    changes nothing (eps is then already ||δ||).
    Where the cross-entropy's gradient vanishes (a saturated softmax: its norm, about
    e^(−margin)·||∇margin||₂, below 1e-12, from a logit margin of about 30; exactly 0 in float32
    from about 100), its direction cannot be normalised and the iterate stayed at x; published
    DDN's code steps in a random direction there. Here such an image, found at the step where
    it happens, descends the margin from its next step on, as after the switch: deterministic,
    and the margin's gradient does not vanish.
    Cost: ``steps`` passes + one confirming forward.
    """
    steps = check_positive_int(steps, "steps")
    if isinstance(init_eps, bool) or not isinstance(init_eps, (numbers.Real, Tensor)):
        raise TypeError(f"init_eps must be a number or an (N,) tensor; got {init_eps!r}.")
    check_positive("init_eps", init_eps)
    # one number each: an (N,) max_step or min_step scaled the step along the images' last axis
    gamma, max_step, min_step = (positive_number(name, value) for name, value in
                                 (("gamma", gamma), ("max_step", max_step), ("min_step", min_step)))
    gamma_end = (gamma if gamma_end is None
                 else positive_number("gamma_end", gamma_end, allow_zero=True))
    if gamma >= 1 or gamma_end >= 1:  # (1 − γ)·eps <= 0: a radius of 0, or a negative one
        raise ValueError(f"gamma and gamma_end must be < 1 (eps shrinks by the factor 1 − γ); "
                         f"got {gamma} and {gamma_end}.")
    if loss not in ("ce", "margin", "ce-margin"):
        raise ValueError(f"loss must be 'ce', 'margin' or 'ce-margin'; got {loss!r}.")
    try:  # (a 0-dim tensor too)
        fraction = positive_number("switch", switch, allow_zero=True)
    except (TypeError, ValueError):
        fraction = math.nan
    if isinstance(switch, bool) or not fraction <= 1:
        raise ValueError(f"switch must be a fraction of the steps in [0, 1]; got {switch!r}.")
    switch = fraction
    linear_start = check_bool(linear_start, "linear_start")
    if linear_start and loss != "margin":
        raise ValueError("linear_start needs the margin's gradient at the first step: pass "
                         f"loss='margin' (got loss={loss!r}).")
    first_margin = {"ce": steps, "margin": 0, "ce-margin": int(switch * steps)}[loss]
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        best = BestAdversarial(x0, "l2")
        worst = lp_norms(torch.maximum(x0, 1 - x0), "l2")  # no image in the box is farther
        eps = per_sample(init_eps, x0.shape[0], worst, "init_eps").detach().clone()
        xa = x0
        if start is not None:
            xa = check_start(start, x0)
            size = lp_norms(xa - x0, "l2")
            eps = torch.where(size > 0, size, eps)

        def ce(z: Tensor, _x: Tensor) -> Tensor:
            return crit.loss(z)

        # images whose cross-entropy gradient vanished: they descend the margin instead. On the
        # CPU the plain pass serves until one is (asking costs a host sync on a GPU, more than
        # the few element-wise ops of the rerouted pass there)
        stuck = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        any_stuck = x0.device.type != "cpu"
        with bookkeeping():
            for i in tqdm(range(steps), desc="DDN", disable=tqdm_disabled(progress), leave=False):
                on_margin = i >= first_margin
                if on_margin:  # ascend −margin (the step's sign below), no autograd graph
                    logits, margin, grad = margin_and_grad(model, xa, crit)
                elif any_stuck:
                    logits, margin, grad = _ce_and_grad(model, xa, crit, stuck)
                else:
                    logits, _, grad = logits_and_grad(model, xa, ce)
                    margin = None
                if i == 0:
                    best.watch(grad)
                is_adv = crit.confidently_adversarial(logits, margin)
                delta = xa - x0
                size = lp_norms(delta, "l2")
                best.update(xa, is_adv, size)
                if linear_start and margin is not None and i == 0:  # (it implies the margin loss)
                    reach = linearised_l2_distance(margin, grad)
                    eps = torch.where(reach > 0, torch.minimum(eps, size + reach), eps)
                g = cosine(i, steps, gamma, gamma_end)
                eps = torch.minimum(torch.where(is_adv, eps * (1 - g), eps * (1 + g)), worst)
                # in place on fresh temporaries; a negated size is exactly the step along the
                # negated gradient (one image-sized op fewer than negating it)
                step_size = cosine(i, steps, max_step, min_step)
                norms = lp_norms(grad, "l2")
                if not on_margin and (any_stuck or float(norms.min()) < _TINY):
                    stuck |= norms < _TINY  # (a direction unit_l2 cannot normalise)
                    any_stuck = True
                delta = (unit_l2(grad, norms.clamp_min(_TINY))
                         .mul_(-step_size if on_margin else step_size).add_(delta))
                delta = unit_l2(delta).mul_(eps.view(-1, *([1] * (x0.ndim - 1))))
                with torch.inference_mode(False):  # an ordinary tensor: the pass needs no copy
                    xa = (x0 + delta).clamp_(0.0, 1.0)
        result = best.result(model, crit, passes=steps, forwards=0)
    return result.to(home)


def _ce_and_grad(model: nn.Module, x: Tensor, crit: Criterion,
                 stuck: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One forward+backward pass: detached logits, the margin (N,), and d(Σ CE)/dx, the
    cross-entropy to ascend (:meth:`Criterion.loss`), except that an image of ``stuck`` (N,)
    gets −d(margin)/dx. The cross-entropy's gradient is taken with respect to the logits first,
    then through the model: bitwise what autograd gives through both at once."""
    with torch.inference_mode(False):
        xv = graph_input(x)
        out = model_logits(model, xv)
        (dz,) = torch.autograd.grad(crit.loss(out).sum(), out)
    logits = out.detach()
    margin, ties = crit.margin_and_ties(logits)
    dz = torch.where(stuck[:, None], crit.unit_margin_backward(ties, dz.dtype).neg_(), dz)
    with torch.inference_mode(False):
        grad = input_grad(out, xv, dz)
    return logits, margin, grad
