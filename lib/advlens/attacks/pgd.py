"""Projected gradient descent (Madry et al. 2018) in L∞ or L2, and FGSM as its one-step case."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import (
    NonFiniteOutput,
    attack_mode,
    check_finite,
    check_positive,
    finite_rows,
    forward,
    logits_and_grad,
    prepare,
    tqdm_disabled,
)
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import (
    Norm,
    ascent_direction,
    check_norm,
    lp_norms,
    per_sample,
    project_ball,
    random_in_ball,
)
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor, check_bool, check_positive_int

# what the steps ascend: the cross-entropy, or the raw logit (Su et al.'s FGSM / I-FGSM code)
LOSSES = ("ce", "logit")


def check_loss(loss: object) -> str:
    """``loss`` if it is one of :data:`LOSSES`; a ValueError naming it otherwise."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES} ('logit': Su et al.'s code); got "
                         f"{loss!r}.")
    return str(loss)


def pgd(model: nn.Module, x: Tensor, y: Tensor, *, eps: float | Tensor, norm: Norm = "l2",
        steps: int = 10, step_size: float | Tensor | None = None, random_start: bool = False,
        targets: Tensor | None = None, generator: torch.Generator | None = None,
        keep: Literal["last", "any"] = "last", loss: Literal["ce", "logit"] = "ce",
        progress: bool | None = False) -> AttackResult:
    """PGD on the cross-entropy (``loss="ce"``; ``"logit"``: the raw logit, −z_y untargeted or
    +z_t targeted, as Su et al.'s code) within the ``norm`` ball of radius ``eps`` around ``x``.

    Each step: ``x ← x + step_size · d`` with d = sign(g) (L∞) or g/||g||₂ (L2), then projection
    onto the ball (points inside stay where they are; it is not a projection onto the sphere) and
    a clamp to [0, 1]. ``eps`` and ``step_size`` are floats or per-image (N,) tensors;
    ``step_size`` defaults to 2.5·eps/steps. ``random_start`` draws a uniform point of the ball
    with ``generator``.

    Untargeted unless ``targets`` (target classes ≠ ``y``, the true labels) are given.
    ``keep="last"`` returns the last iterate (what
    adversarial training wants); ``keep="any"`` returns, where the last iterate is not adversarial,
    an earlier adversarial iterate if there was one (a stronger robust-accuracy estimate).

    ``progress`` is off by default (PGD mostly runs as an inner loop: adversarial training,
    robust accuracy); None lets tqdm decide. Cost: ``steps`` passes plus one forward-only
    success check.
    """
    norm = check_norm(norm, ("l2", "linf"))
    steps = check_positive_int(steps, "steps")
    random_start = check_bool(random_start, "random_start")  # 'False' would draw a start
    if keep not in ("last", "any"):
        raise ValueError(f"keep must be 'last' or 'any'; got {keep!r}.")
    loss = check_loss(loss)
    check_positive("eps", eps, allow_zero=True)  # before it scales the default step
    if isinstance(eps, (list, tuple)):  # per image as a list: "can't multiply sequence" below
        eps = torch.as_tensor(eps, dtype=torch.float64)
    step = 2.5 * eps / steps if step_size is None else step_size
    check_positive("step_size", step, allow_zero=True)
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        # shapes checked by the names they were passed as (run_pgd's error named "step" for
        # an eps of the wrong shape, from which the step is derived)
        per_sample(eps, x0.shape[0], x0, "eps")
        per_sample(step, x0.shape[0], x0, "step_size")
        start = None
        if random_start:
            start = (x0 + random_in_ball(x0, eps, norm, generator)).clamp(0.0, 1.0)
        xa, success = run_pgd(model, x0, crit, eps=eps, step=step, steps=steps, norm=norm,
                              start=start, keep_any=keep == "any", loss=loss,
                              progress=progress)
    result = AttackResult(xa, lp_norms(xa - x0, norm), success, steps, 1, norm,
                          targets=crit.classes if crit.targeted else None)
    return result.to(home)


def check_l2_scale(eps: float | Tensor, step: float | Tensor, x0: Tensor) -> None:
    """Refuse an L2 ``eps`` or step so large that a perturbation's squared norm overflows in
    ``x0``'s dtype: the projection then divides by inf and zeroes every perturbation (an eps of
    1e20 attacked nothing). Every image of the [0, 1] box lies within sqrt(d) of ``x0``, so an
    eps of sqrt(d) already leaves the ball no bound on where a step can land."""
    d = x0[0].numel()
    limit = (torch.finfo(x0.dtype).max / d) ** 0.5 / 4
    for name, value in (("eps", eps), ("step_size", step)):
        largest = float(torch.as_tensor(value, dtype=torch.float64).max())
        if largest > limit:
            raise ValueError(
                f"{name} = {largest:.3g} is too large for {x0.dtype} arithmetic: an L2 norm "
                f"that size overflows, and the projection would zero every perturbation. "
                f"Every image in [0, 1] lies within sqrt(d) = {d ** 0.5:.4g} of x, so any eps "
                f"from there up leaves the attack unbounded; pass at most {limit:.3g}.")


def run_pgd(model: nn.Module, x0: Tensor, crit: Criterion, *, eps: float | Tensor,
            step: float | Tensor, steps: int, norm: Norm, start: Tensor | None = None,
            keep_any: bool = False, confident: bool = False,
            loss: Literal["ce", "logit"] = "ce",
            progress: bool | None = False) -> tuple[Tensor, Tensor]:
    """The PGD loop on validated inputs inside :func:`attack_mode`; ``eps`` and ``step`` may be
    per-sample (N,) tensors. Returns (adversarial candidates, success); costs ``steps`` passes
    and one forward-only pass. ``confident``: success only beyond rounding
    (:meth:`Criterion.confidently_adversarial`), as the minimal searches keep their examples.
    ``loss``: the objective ascended, :meth:`Criterion.loss` (``"ce"``) or
    :meth:`Criterion.logit_loss` (``"logit"``)."""
    objective = crit.loss if loss == "ce" else crit.logit_loss
    n = x0.shape[0]
    if norm == "l2":  # here, not in pgd(): ifgsm_search and minimal_eps_pgd call this directly
        check_l2_scale(eps, step, x0)
    step_t = per_sample(step, n, x0, "step")
    # eps as an (N,) tensor once: a number would be checked and converted at every step's
    # projection (a dozen small ops and two host syncs a step)
    eps = per_sample(eps, n, x0, "eps").reshape(n)
    xa = x0 if start is None else start
    earlier = BestAdversarial(x0, norm) if keep_any else None
    grad_ok = None  # (N,) the first pass's gradient was finite (checked with the last forward)
    for _ in tqdm(range(steps), desc=f"PGD-{norm}", disable=tqdm_disabled(progress),
                  leave=False):
        logits, _, grad = logits_and_grad(model, xa, lambda z, _x: objective(z))
        if grad_ok is None:
            grad_ok = finite_rows(grad)
        if earlier is not None:
            earlier.update(xa, crit.confidently_adversarial(logits))
        delta = project_ball(xa + step_t * ascent_direction(grad, norm) - x0, eps, norm)
        xa = (x0 + delta).clamp(0.0, 1.0)
    logits = forward(model, xa)
    try:  # one host sync: NaN logits here (an all-NaN adversarial read as a success) or a NaN
        check_finite(logits, grad_ok=grad_ok, points=xa)  # first gradient (L∞: sign 0, unmoved)
    except NonFiniteOutput:
        check_finite(forward(model, x0))  # (only here) the logits at x itself, if they are NaN
        raise
    success = crit.confidently_adversarial(logits) if confident else crit.is_adversarial(logits)
    if earlier is not None:
        use = ~success & earlier.found
        xa = torch.where(use.view(-1, *([1] * (x0.ndim - 1))), earlier.adv, xa)
        success = success | use
    return xa.detach(), success


def fgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: Norm = "linf",
         targets: Tensor | None = None, loss: Literal["ce", "logit"] = "ce",
         progress: bool | None = False) -> AttackResult:
    """Fast gradient (sign) method (Goodfellow et al. 2015): one step of size ``eps`` up ``loss``
    (see :func:`pgd`).

    ``norm="linf"`` is FGSM proper (``x + eps·sign(g)``); ``"l2"`` is the fast gradient method
    (``x + eps·g/||g||``). One pass plus one forward-only check.
    """
    return pgd(model, x, y, eps=eps, norm=norm, steps=1, step_size=eps, targets=targets,
               loss=loss, progress=progress)
