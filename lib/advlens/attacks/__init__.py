"""Adversarial attacks, batched and device-agnostic, all returning :class:`AttackResult`.

Fixed budget: :func:`fgsm`, :func:`pgd`.
Inputs are unnormalised images in [0, 1] (refused otherwise); models are run in eval mode
with their modes restored. ``passes`` counts batched forward+backward passes and ``forwards``
batched forward-only passes.
"""

from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import lp_norms, project_ball
from advlens.attacks.pgd import fgsm, pgd
from advlens.attacks.result import AttackResult

__all__ = ["AttackResult", "Criterion", "fgsm", "lp_norms", "pgd", "project_ball"]
