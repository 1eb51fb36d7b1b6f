"""Per-sample "keep the best adversarial" bookkeeping shared by every minimal attack."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advlens.attacks.core import forward
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import Norm, lp_norms
from advlens.attacks.result import AttackResult


class BestAdversarial:
    """For each image of a batch, the adversarial with the smallest score seen so far.

    The score is the perturbation's norm by default; eps searches pass the budget instead
    (smallest successful eps), EAD its decision rule's norm.
    """

    def __init__(self, x: Tensor, norm: Norm) -> None:
        self.x = x
        self.norm: Norm = norm
        self.adv = x.clone()
        self.score = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)
        self._rows = (-1, *([1] * (x.ndim - 1)))  # an (N,) mask viewed against images
        # a CPU 0-dim tensor: a Python inf would be converted to one at every call
        self._inf = torch.tensor(float("inf"), dtype=x.dtype)

    @property
    def found(self) -> Tensor:
        # != inf rather than isfinite (one op, not several): a score is never NaN or −inf
        return self.score != self._inf

    def update(self, candidate: Tensor, is_adv: Tensor, score: Tensor | None = None,
               index: Tensor | None = None, delta: Tensor | None = None) -> Tensor:
        """Keep ``candidate`` where it is adversarial with a smaller score; returns that mask.

        ``index`` (optional) says which images of the batch the candidates belong to;
        ``delta``: candidate − x, if already computed (for the default score).
        """
        x = self.x if index is None else self.x[index]
        if score is None:
            score = lp_norms(candidate - x if delta is None else delta, self.norm)
        if index is None:  # every image: a select, without the host sync of nonzero()
            better = is_adv & (score < self.score)
            self.score = torch.where(better, score, self.score)
            self.adv = torch.where(better.view(self._rows), candidate, self.adv)
            return better
        better = is_adv & (score < self.score[index])
        rows = better.nonzero().flatten()
        if rows.numel():  # copy only the improved images
            target = index[rows]
            self.score[target] = score[rows]
            self.adv[target] = candidate[rows]
        return better

    def result(self, model: nn.Module, criterion: Criterion, *, passes: int, forwards: int,
               eps: Tensor | None = None) -> AttackResult:
        """Confirm the kept examples with one forward pass (counted) and package them.

        Images with no confirmed adversarial get ``adv = x`` and ``norms = inf``.
        """
        success = self.found & criterion.is_adversarial(forward(model, self.adv))
        keep = success.view(-1, *([1] * (self.x.ndim - 1)))
        adv = torch.where(keep, self.adv, self.x).detach()
        norms = torch.where(success, lp_norms(adv - self.x, self.norm),
                            torch.full_like(self.score, float("inf")))
        targets = criterion.classes if criterion.targeted else None
        return AttackResult(adv, norms, success, passes, forwards + 1, self.norm, eps, targets)
