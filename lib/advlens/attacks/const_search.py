"""The trade-off-constant search of Carlini & Wagner, shared by C&W-L2 and EAD.

Both minimise ``dist(x', x) + c·f(x')`` for a per-image constant c found by binary search; only
the inner solver differs (:class:`Optimiser`).
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import bookkeeping, margin_and_grad, positive_number, tqdm_disabled
from advlens.attacks.criterion import Criterion
from advlens.attacks.scalars import scalar
from advlens.checks import check_positive_int


class ConstSearch:
    """Per-image binary search on the constant c that weighs the misclassification term.

    Success at c lowers the upper bound to c; failure raises the lower bound; c becomes the
    midpoint once an upper bound exists, otherwise it grows tenfold (Carlini & Wagner). Their
    code, from 10 binary steps on, also reruns the last step at the upper bound; not done here.
    """

    def __init__(self, n: int, initial: float, like: Tensor) -> None:
        self.c = torch.full((n,), initial, dtype=like.dtype, device=like.device)
        self.lo = torch.zeros_like(self.c)
        self.hi = torch.full_like(self.c, float("inf"))

    def update(self, success: Tensor) -> None:
        self.hi = torch.where(success, torch.minimum(self.hi, self.c), self.hi)
        self.lo = torch.where(success, self.lo, torch.maximum(self.lo, self.c))
        self.c = torch.where(torch.isfinite(self.hi), (self.lo + self.hi) / 2, self.c * 10)


class Optimiser(Protocol):
    """An inner solver of ``min dist(x', x) + c·f(x')``; one ``step`` = one forward+backward."""

    def reset(self) -> None: ...

    def step(self, c: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Evaluate the current iterate (image, logits, margin, image − x), then update."""
        ...

    # optional: (N,) whether each image's input gradient at the optimiser's first pass was
    # finite (:func:`~advlens.attacks.core.finite_rows`); None before that pass

    def objective(self) -> Tensor:
        """The per-sample objective at the iterate the last ``step`` evaluated (computed only
        when the early abort asks for it)."""
        ...

    def hold(self, stopped: Tensor) -> None:
        """Keep the images ``stopped`` (bool, one per image) where they are for the rest of
        this constant: later steps still evaluate them but leave their state unchanged
        (``reset`` releases them)."""
        ...


def hinge(crit: Criterion, logits: Tensor, kappa: float,
          margin: Tensor | None = None) -> Tensor:
    """C&W's f(): max(margin, −κ); the margin masks the other classes with −inf, so it is
    correct for logits of any sign (torchattacks' masked-with-zero max is not). ``margin``:
    ``crit.margin(logits)`` if already computed."""
    return (crit.margin(logits) if margin is None else margin).clamp_min(-kappa)


def penalised(model: nn.Module, x: Tensor, x0: Tensor, crit: Criterion, c: Tensor,
              kappa: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One forward+backward of the objective ``||x − x0||₂² + c·f(x)`` (f: :func:`hinge`;
    value: :func:`penalised_value`): detached logits, the gradient with respect to x, the margin
    and x − x0.

    Bitwise what autograd gives through that expression: the margin's part by
    :func:`margin_and_grad` (weight c where the hinge is active, as clamp_min's backward), plus
    the distance's 2(x − x0) (added with alpha=2: doubling is exact, so a fused multiply-add
    rounds as the separate product and sum do).
    """
    logits, margin, grad = margin_and_grad(
        model, x, crit, lambda m: torch.where(m >= scalar(-kappa, m.dtype), c, 0.0))
    delta = x - x0
    return logits, grad.add_(delta, alpha=2), margin, delta


def penalised_value(crit: Criterion, logits: Tensor, margin: Tensor, delta: Tensor, c: Tensor,
                    kappa: float) -> Tensor:
    """``||δ||₂² + c·f(x)`` per sample, from :func:`penalised`'s results."""
    return delta.pow(2).flatten(1).sum(1) + c * hinge(crit, logits, kappa, margin)


def is_adversarial_with_confidence(crit: Criterion, logits: Tensor, kappa: float,
                                   margin: Tensor | None = None) -> Tensor:
    margin = crit.margin(logits) if margin is None else margin
    if kappa == 0:
        return crit.confidently_adversarial(logits, margin)
    return margin <= -kappa


# how the early abort judges a stall: "batch" -- the batch's summed objective (Carlini & Wagner's
# l2_attack.py); "every" -- each image's own, the constant stopping only once every image
# stalled (Su et al.'s l2_attack.py and l1_attack.py: np.all(l > prev*.9999) on per-image
# losses, over a batch); "image" -- each image stops alone when its own objective stalls, held
# where it is while the others go on: the same code run one image at a time, as Su et al.'s
# commands did (--attack_batch_size=1), so an image's result does not depend on its batch
AbortRule = Literal["batch", "every", "image"]
ABORT_RULES: tuple[str, ...] = ("batch", "every", "image")


def check_abort_rule(abort_rule: object) -> AbortRule:
    """``abort_rule`` if it is one of :data:`ABORT_RULES`; a ValueError naming it otherwise."""
    if abort_rule not in ABORT_RULES:
        raise ValueError(f"abort_rule must be one of {ABORT_RULES} ('batch': Carlini & Wagner's "
                         "code; 'every': Su et al.'s over a batch; 'image': theirs one image at "
                         f"a time, as they ran it); got {abort_rule!r}.")
    return abort_rule  # type: ignore[return-value]


def held_rows(stopped: Tensor) -> Tensor | None:
    """The row indices of the images ``stopped`` marks, for an :class:`Optimiser`'s ``hold``
    (None when none is)."""
    return stopped.nonzero().flatten() if bool(stopped.any()) else None


def const_search(model: nn.Module, crit: Criterion, opt: Optimiser, best: BestAdversarial, *,
                 binary_steps: int, steps: int, initial_const: float, kappa: float,
                 abort_early: bool, progress: bool | None,
                 abort_rule: AbortRule = "batch") -> int:
    """Run ``opt`` for ``steps`` iterations at each of ``binary_steps`` constants per image,
    keeping each image's best adversarial in ``best``. Abort early: every steps/10 iterations,
    stop this constant when the batch objective fell by less than 0.01 % (``abort_rule``
    "batch"), or when every image's own objective did ("every"); with "image" each image whose
    own objective did is held (``opt.hold``; no later step of this constant counts for it) and
    the constant ends once all are. The candidate of the step that aborts is kept (the codes
    drop it). Returns the passes."""
    with bookkeeping():  # (the passes leave it)
        consts = ConstSearch(crit.classes.shape[0], initial_const, best.x)
        passes = 0
        check_every = max(steps // 10, 1)
        bar = tqdm(total=binary_steps * steps, desc="C&W-type search",
                   disable=tqdm_disabled(progress), leave=False)
        for _ in range(binary_steps):
            opt.reset()
            found = torch.zeros_like(consts.c, dtype=torch.bool)
            active = torch.ones_like(found)  # "image": not yet held
            previous = float("inf")
            for k in range(steps):
                candidate, logits, margin, delta = opt.step(consts.c, k)
                passes += 1
                is_adv = is_adversarial_with_confidence(crit, logits, kappa, margin)
                if abort_rule == "image":
                    is_adv &= active
                best.update(candidate, is_adv, delta=delta)
                found |= is_adv
                bar.update()
                if abort_early and k % check_every == 0:
                    # C&W's hinge max(margin + κ, 0) ≥ 0, not ours max(margin, −κ) (the same
                    # gradient): on a negative total the 0.01 % test would never fire
                    losses = opt.objective().add_(consts.c * kappa)
                    total = float(losses.sum()) if abort_rule == "batch" else losses
                    stalled = torch.as_tensor(total > previous * 0.9999)
                    if abort_rule == "image" and not bool(stalled.all()):
                        active &= ~stalled
                        opt.hold(~active)
                        stalled = ~active
                    if bool(stalled.all()):
                        bar.update(steps - k - 1)
                        break
                    previous = total
            consts.update(found)
        bar.close()
        first = getattr(opt, "first_grad_finite", None)  # (an optimiser may not note it)
        if first is not None:  # refused at the confirming forward where not finite
            best.watch_rows(first)
    return passes


def check_search_settings(binary_steps: int, steps: int, initial_const: float, lr: float,
                          kappa: float) -> tuple[float, float, float]:
    """Refuse settings no constant search can run with (counts < 1, non-positive c or lr, more
    than one value of c, lr or κ); returns (initial_const, lr, kappa) as floats."""
    check_positive_int(binary_steps, "binary_steps")
    check_positive_int(steps, "steps")
    return (positive_number("initial_const", initial_const), positive_number("lr", lr),
            positive_number("kappa", kappa, allow_zero=True))
