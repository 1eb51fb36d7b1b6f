"""Per-sample "keep the best adversarial" bookkeeping shared by every minimal attack."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advlens.attacks.core import forward
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import Norm, lp_norms
from advlens.attacks.result import AttackResult


class BestAdversarial:
    """Smallest-norm adversarial found so far for each image of a batch."""

    def __init__(self, x: Tensor, norm: Norm) -> None:
        self.x = x
        self.norm: Norm = norm
        self.adv = x.clone()
        self.norms = torch.full((x.shape[0],), float("inf"), device=x.device, dtype=x.dtype)

    @property
    def found(self) -> Tensor:
        return torch.isfinite(self.norms)

    def update(self, candidate: Tensor, is_adv: Tensor, norms: Tensor | None = None) -> Tensor:
        """Keep ``candidate`` where it is adversarial and smaller; returns that mask."""
        if norms is None:
            norms = lp_norms(candidate - self.x, self.norm)
        better = is_adv & (norms < self.norms)
        self.norms = torch.where(better, norms, self.norms)
        self.adv = torch.where(better.view(-1, *([1] * (self.x.ndim - 1))), candidate, self.adv)
        return better

    def result(self, model: nn.Module, criterion: Criterion, *, passes: int, forwards: int,
               eps: Tensor | None = None) -> AttackResult:
        """Confirm the kept examples with one forward pass and package them.

        Images with no (confirmed) adversarial get ``adv = x`` and ``norms = inf``.
        """
        success = self.found & criterion.is_adversarial(forward(model, self.adv))
        keep = success.view(-1, *([1] * (self.x.ndim - 1)))
        adv = torch.where(keep, self.adv, self.x)
        norms = torch.where(success, lp_norms(adv - self.x, self.norm),
                            torch.full_like(self.norms, float("inf")))
        targets = criterion.classes if criterion.targeted else None
        return AttackResult(adv.detach(), norms.detach(), success, passes, forwards + 1,
                            self.norm, eps, targets)
