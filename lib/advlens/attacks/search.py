"""Per-sample budget searches: each image keeps its own interval [lo, hi] of eps.

``hi`` is the smallest budget known to fool the model (inf until one does), ``lo`` the largest
known (or assumed) not to. Every round attacks only the images still searching, as one batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import NonFiniteOutput, forward, tqdm_disabled
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import Norm
from advlens.attacks.result import AttackResult

# attack(images, criterion, eps (n,)) -> (candidates, success); costs (passes, forwards) per round
RoundAttack = Callable[[Tensor, Criterion, Tensor], tuple[Tensor, Tensor]]


class EpsSearch:
    """Per-sample intervals plus the adversarial found at each image's smallest successful eps."""

    def __init__(self, model: nn.Module, x: Tensor, crit: Criterion, norm: Norm, *,
                 lo: float, attack: RoundAttack, cost: tuple[int, int]) -> None:
        self.model, self.x, self.crit = model, x, crit
        self.best = BestAdversarial(x, norm)  # score = eps
        self.lo = torch.full((x.shape[0],), lo, device=x.device, dtype=x.dtype)
        self.attack, self.cost = attack, cost
        self.passes, self.forwards = 0, 1
        # images misclassified before any perturbation need eps = 0 (one forward-only pass)
        clean_adv = crit.is_adversarial(forward(model, x, confirm=True))
        self.best.update(x, clean_adv, torch.zeros_like(self.lo))
        self.lo[clean_adv] = 0.0

    @property
    def hi(self) -> Tensor:
        return self.best.score

    def try_eps(self, eps: Tensor, active: Tensor) -> None:
        """Attack the ``active`` images at their budgets ``eps`` (N,) and narrow their intervals."""
        idx = (active & (self.hi > 0)).nonzero().flatten()
        if idx.numel() == 0:
            return
        e = eps[idx]
        try:
            adv, success = self.attack(self.x[idx], self.crit.subset(idx), e)
        except NonFiniteOutput as error:  # named by their indices in the whole batch
            raise error.reindexed(idx, self.x.shape[0]) from None
        self.best.update(adv, success, e, index=idx)
        self.lo[idx] = torch.where(success, self.lo[idx], torch.maximum(self.lo[idx], e))
        self.passes += self.cost[0]
        self.forwards += self.cost[1]

    def result(self) -> AttackResult:
        result = self.best.result(self.model, self.crit, passes=self.passes,
                                  forwards=self.forwards, eps=self.hi.clone())
        # the final whole-batch check may reject an adversarial kept during the search: its eps
        # must then read "none found" (inf), like its norm; an image it finds misclassified at
        # x itself (none found: its adv is x), though the clean check did not, reads 0
        hi = torch.where(torch.isinf(self.hi), torch.zeros_like(self.hi), self.hi)
        result.eps = torch.where(result.success.to(self.hi.device), hi,
                                 torch.full_like(self.hi, float("inf")))
        return result


def doubling_bisection(search: EpsSearch, *, start: float, tries: int,
                       progress: bool | None = None) -> None:
    """Su et al.: start at ``start``, double until success, then bisect; ``tries`` attacks."""
    everyone = torch.ones_like(search.lo, dtype=torch.bool)
    for _ in tqdm(range(tries), desc="eps search", disable=tqdm_disabled(progress), leave=False):
        eps = torch.where(torch.isinf(search.hi), torch.clamp(2 * search.lo, min=start),
                          (search.lo + search.hi) / 2)
        search.try_eps(eps, everyone)


def bracketed_bisection(search: EpsSearch, *, eps_max: float, eps_mid: float,
                        width_low: float, width_high: float,
                        progress: bool | None = None) -> None:
    """Linsley et al.: try ``eps_max`` (failure = not broken), then ``eps_mid``; bisect the
    bracket [lo, eps_mid] to ``width_low`` or [eps_mid, eps_max] to ``width_high``."""
    everyone = torch.ones_like(search.lo, dtype=torch.bool)
    search.try_eps(torch.full_like(search.lo, eps_max), everyone)
    search.try_eps(torch.full_like(search.lo, eps_mid), torch.isfinite(search.hi))
    bar = tqdm(desc="eps bisection", disable=tqdm_disabled(progress), leave=False)
    while True:
        width = torch.where(search.hi <= eps_mid, width_low, width_high)
        middle = (search.lo + search.hi) / 2
        # a bracket narrower than the float spacing has a midpoint equal to an end: nothing left
        # to narrow (a width below it looped forever)
        active = (torch.isfinite(search.hi) & (search.hi - search.lo > width)
                  & (middle > search.lo) & (middle < search.hi))
        if not active.any():
            break
        search.try_eps(middle, active)
        bar.update()
    bar.close()
