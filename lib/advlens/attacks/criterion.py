"""What counts as adversarial: misclassification (untargeted) or hitting a target class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Criterion:
    """Untargeted (``classes`` = true labels) or targeted (``classes`` = target classes)."""

    classes: Tensor
    targeted: bool = False

    def is_adversarial(self, logits: Tensor) -> Tensor:
        pred = logits.argmax(1)
        return pred == self.classes if self.targeted else pred != self.classes

    def confidently_adversarial(self, logits: Tensor, margin: Tensor | None = None) -> Tensor:
        """Adversarial by more than rounding noise (margin below −64 ulps of the largest logit);
        pass ``margin`` if it is already computed.

        Minimal attacks keep only such candidates, so the verdict survives recomputation (another
        batch composition, another kernel) although they end right at the decision boundary.
        """
        margin = self.margin(logits) if margin is None else margin
        tol = 64 * torch.finfo(logits.dtype).eps * (1 + logits.detach().abs().amax(1))
        return margin < -tol

    def margin(self, logits: Tensor) -> Tensor:
        """Per-sample logit margin, negative iff adversarial (ties aside).

        Untargeted: ``z_y - max_{j≠y} z_j``; targeted: ``max_{j≠t} z_j - z_t``. The other classes
        are masked with -inf (not 0), so the margin is right whatever the sign of the logits.
        """
        idx = self.classes[:, None]
        own = logits.gather(1, idx).squeeze(1)
        other = logits.scatter(1, idx, float("-inf")).amax(1)
        return other - own if self.targeted else own - other

    def loss(self, logits: Tensor) -> Tensor:
        """Per-sample cross-entropy loss to *ascend*: CE(y) untargeted, -CE(t) targeted."""
        ce = F.cross_entropy(logits, self.classes, reduction="none")
        return -ce if self.targeted else ce

    def subset(self, mask: Tensor) -> Criterion:
        return Criterion(self.classes[mask], self.targeted)
