"""What counts as adversarial: misclassification (untargeted) or hitting a target class."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from advlens.attacks.scalars import scalar


@dataclass(frozen=True)
class Criterion:
    """Untargeted (``classes`` = true labels) or targeted (``classes`` = target classes).

    ``largest`` names each label tensor the criterion was built from with its largest value
    (default: ``classes`` itself); every method refuses logits with too few classes for them.
    """

    classes: Tensor
    targeted: bool = False
    largest: tuple[tuple[str, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.largest and self.classes.numel():
            name = "targets" if self.targeted else "y"
            object.__setattr__(self, "largest", ((name, int(self.classes.max())),))

    def check_outputs(self, logits: Tensor) -> None:
        """Raise if a label is not one of the model's classes (logits (N, k)), or if an
        untargeted criterion meets a model of one class (nothing to misclassify as)."""
        k = logits.shape[1]
        if k < 2 and not self.targeted:
            raise ValueError(f"an untargeted attack needs a model of at least 2 classes; this "
                             f"one has {k}. For a binary classifier with one logit z, return "
                             f"two: torch.cat([-z, z], dim=1) / 2 (their margin is z).")
        for name, top in self.largest:
            if top >= k:
                raise ValueError(
                    f"{name} holds the label {top}, outside the model's {k} classes (labels "
                    f"0 to {k - 1}); pass class indices of this model's output.")

    def is_adversarial(self, logits: Tensor) -> Tensor:
        self.check_outputs(logits)
        pred = logits.argmax(1)
        return pred == self.classes if self.targeted else pred != self.classes

    def confidently_adversarial(self, logits: Tensor, margin: Tensor | None = None,
                                tolerance: Tensor | None = None) -> Tensor:
        """Adversarial by more than rounding noise (margin below −64 ulps of the largest logit);
        pass ``margin``, and :meth:`tolerance` of these logits, if already computed.

        Minimal attacks keep only such candidates, so the verdict survives recomputation (another
        batch composition, another kernel) although they end right at the decision boundary.
        """
        margin = self.margin(logits) if margin is None else margin
        # (1 + top)·(−u) is −((1 + top)·u) exactly: the negated tolerance in one op fewer
        return margin < (_ulps(logits, -64) if tolerance is None else tolerance.neg())

    @staticmethod
    def tolerance(logits: Tensor) -> Tensor:
        """The margin (N,) an example must beat to count as confidently adversarial: 64 ulps of
        (1 + the largest |logit|) of its row."""
        return _ulps(logits, 64)

    def margin(self, logits: Tensor) -> Tensor:
        """Per-sample logit margin, negative iff adversarial (ties aside).

        Untargeted: ``z_y - max_{j≠y} z_j``; targeted: ``max_{j≠t} z_j - z_t``. The other classes
        are masked with -inf (not 0), so the margin is right whatever the sign of the logits.
        """
        own, others, other = self._own_and_others(logits)
        return other - own if self.targeted else own - other

    def margin_and_ties(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`margin` (N,) of detached ``logits``, and the (N, k) mask of the runner-up
        classes (the other classes at the largest other logit), for :meth:`margin_backward`."""
        own, others, other = self._own_and_others(logits)
        return other - own if self.targeted else own - other, others == other.unsqueeze(1)

    def margin_backward(self, ties: Tensor, weight: Tensor, *, zero_free: bool = False
                        ) -> Tensor:
        """d(Σ weight·margin)/d logits (N, k), bitwise the gradient autograd takes through
        :meth:`margin`: ±weight at the own class, ∓weight/(number of ties) at each tied
        runner-up (amax's even split), +0 elsewhere; ``ties`` from :meth:`margin_and_ties`.
        ``zero_free``: no weight is ±0 (then there is no −0 to turn into +0).

        Formed by hand, it spares a pass the ~6 autograd nodes of the margin, a noticeable share
        of a small batch's step.
        """
        zero = scalar(0.0, weight.dtype)
        own = -weight if self.targeted else weight
        share = torch.where(ties, own.neg().unsqueeze(1) / ties.sum(1, keepdim=True), zero)
        if not zero_free:
            # autograd divides the negated upstream gradient by the count; adding +0 turns its
            # −0 (from a zero weight) into the +0 that its summation of the two branches leaves
            share.add_(zero)
            own = own.add(zero)
        return share.scatter_(1, self._column, own.unsqueeze(1))

    def unit_margin_backward(self, ties: Tensor, dtype: torch.dtype) -> Tensor:
        """:meth:`margin_backward` for weight 1, d(Σ margin)/d logits, from constants."""
        own = -1.0 if self.targeted else 1.0
        share = torch.where(ties, scalar(-own, dtype) / ties.sum(1, keepdim=True),
                            scalar(0.0, dtype))
        return share.scatter_(1, self._column, own)

    def _own_and_others(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The own-class logit (N,), the logits with the own class at -inf (N, k), and their
        max (N,)."""
        self.check_outputs(logits)
        idx = self._column
        own = logits.gather(1, idx).squeeze(1)
        others = logits.scatter(1, idx, float("-inf"))
        return own, others, others.amax(1)

    def loss(self, logits: Tensor) -> Tensor:
        """Per-sample cross-entropy loss to *ascend*: CE(y) untargeted, -CE(t) targeted."""
        self.check_outputs(logits)
        ce = F.cross_entropy(logits, self._labels, reduction="none")
        return -ce if self.targeted else ce

    def logit_loss(self, logits: Tensor) -> Tensor:
        """Per-sample raw logit to *ascend*: −z_y untargeted, +z_t targeted (Su et al.'s
        FGSM / I-FGSM code, run with ``--use_zvalue``, ascends this instead of the CE)."""
        self.check_outputs(logits)
        own = logits.gather(1, self._column).squeeze(1)
        return own if self.targeted else -own

    @functools.cached_property
    def _column(self) -> Tensor:
        """``classes`` as an (N, 1) index, made once (the margin is taken every attack step)."""
        with torch.inference_mode(False):
            return self._labels[:, None]

    @functools.cached_property
    def _labels(self) -> Tensor:
        """``classes`` as an ordinary tensor, which a graph may save (gather's and the
        cross-entropy's backward do): a clone of an inference tensor (a criterion made in
        inference mode, e.g. by a caller's)."""
        with torch.inference_mode(False):
            return self.classes.clone() if self.classes.is_inference() else self.classes

    def subset(self, mask: Tensor) -> Criterion:
        return Criterion(self.classes[mask], self.targeted, self.largest)


def _ulps(logits: Tensor, count: float) -> Tensor:
    """``count`` ulps of (1 + the largest |logit|) of each row (N,)."""
    # in place and abs().amax() (the maximum vector_norm(inf) takes, faster on CPU): attacks
    # call this every step on small batches, where each extra op costs a noticeable share
    eps = torch.finfo(logits.dtype).eps
    top = logits.detach().abs().amax(1)
    return top.add_(scalar(1.0, logits.dtype)).mul_(scalar(count * eps, logits.dtype))
