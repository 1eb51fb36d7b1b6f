"""The result every attack returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from advlens.attacks.norms import Norm


@dataclass
class AttackResult:
    """Adversarial examples and their bookkeeping, one row per input image.

    - ``adv`` (N, C, H, W) in [0, 1]; where an attack failed, see ``norms``.
    - ``norms`` (N,): ``||adv - x||`` in the attack's ``norm`` (pixel range of width 1).
      Fixed-budget attacks (FGSM, PGD) report it for every image. Minimal-perturbation attacks
      (DDN, FMN, C&W, EAD, eps searches) return ``adv = x`` and ``norms = inf`` where no adversarial
      was found, so an average over all images can never silently include failures.
    - ``success`` (N,) bool: ``adv`` is misclassified (untargeted) or classified as the target
      (targeted), confirmed by a final forward pass on the returned batch.
    - ``passes``: batched forward+backward passes (gradient evaluations) spent on the batch.
    - ``forwards``: batched forward-only passes (success checks, line searches). A forward-only
      pass costs roughly a third of a forward+backward one; ``cost`` counts it as a full pass.
    - ``eps`` (N,) or None: for eps searches, each image's smallest successful budget (inf = not
      broken within the search range).
    - ``targets`` (N,) or None: the target classes of a targeted attack.
    """

    adv: Tensor
    norms: Tensor
    success: Tensor
    passes: int
    forwards: int = 0
    norm: Norm = "l2"
    eps: Tensor | None = None
    targets: Tensor | None = None

    def __len__(self) -> int:
        return int(self.success.shape[0])

    @property
    def cost(self) -> int:
        """Passes plus forward-only passes, each counted as a full pass (an upper bound)."""
        return self.passes + self.forwards

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if len(self) else float("nan")

    def successful_norms(self) -> Tensor:
        """Norms of the successful examples only (the distortion protocol of Su et al.)."""
        return self.norms[self.success]

    def to(self, device: torch.device | str) -> AttackResult:
        """A copy with every tensor moved to ``device``."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)
        return AttackResult(move(self.adv), move(self.norms), move(self.success), self.passes,
                            self.forwards, self.norm, move(self.eps), move(self.targets))

    @staticmethod
    def concat(results: list[AttackResult]) -> AttackResult:
        """Join results of consecutive chunks of one image set (passes add up)."""
        if not results:
            raise ValueError("concat needs at least one AttackResult.")
        norms = {r.norm for r in results}
        if len(norms) != 1:
            raise ValueError(f"cannot concatenate results measured in different norms {norms}.")

        def cat(name: str) -> Tensor | None:
            values = [getattr(r, name) for r in results]
            if all(v is None for v in values):
                return None
            if any(v is None for v in values):
                raise ValueError(f"some results have {name!r} and some do not.")
            return torch.cat(values)

        return AttackResult(cat("adv"), cat("norms"), cat("success"),
                            sum(r.passes for r in results), sum(r.forwards for r in results),
                            results[0].norm, cat("eps"), cat("targets"))
