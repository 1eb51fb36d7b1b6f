"""Per-sample "keep the best adversarial" bookkeeping shared by every minimal attack."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advlens.attacks.core import check_finite, finite_rows, forward
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
        # (N,) whether each image's input gradient at the attack's first pass was finite
        self.grad_finite: Tensor | None = None

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

    def watch(self, grad: Tensor) -> None:
        """Note which images' input gradient ``grad`` (N, ...) at the attack's first pass is
        finite, without a host sync: :meth:`result` refuses the others (a NaN gradient moved an
        iterate to NaN, where nothing is adversarial: the image read as not fooled)."""
        self.watch_rows(finite_rows(grad))

    def watch_rows(self, finite: Tensor) -> None:
        """:meth:`watch` for the mask (N,) it takes, :func:`finite_rows` of the gradient."""
        self.grad_finite = finite if self.grad_finite is None else self.grad_finite & finite

    def result(self, model: nn.Module, criterion: Criterion, *, passes: int, forwards: int,
               eps: Tensor | None = None) -> AttackResult:
        """Confirm the kept examples with one forward pass (counted) and package them.

        Images with no confirmed adversarial get ``adv = x`` and ``norms = inf``; an image
        none was found for is judged at x itself (its ``adv``): one misclassified there (by a
        tie of its logits, say, never *confidently* adversarial) is a success at norm 0, as
        :class:`AttackResult` defines success and the eps searches count it. Refuses
        (:class:`~advlens.attacks.core.NonFiniteOutput`, one host sync) images whose logits
        there, or whose first pass's input gradient (:meth:`watch`), are NaN or ±inf.
        """
        logits = forward(model, self.adv)
        check_finite(logits, grad_ok=self.grad_finite)
        # (where none was found, self.adv is x: is x itself misclassified?)
        success = criterion.is_adversarial(logits)
        keep = success.view(-1, *([1] * (self.x.ndim - 1)))
        adv = torch.where(keep, self.adv, self.x).detach()
        norms = torch.where(success, lp_norms(adv - self.x, self.norm),
                            torch.full_like(self.score, float("inf")))
        targets = criterion.classes if criterion.targeted else None
        return AttackResult(adv, norms, success, passes, forwards + 1, self.norm, eps, targets)
