"""Adversarial attacks, batched and device-agnostic, all returning :class:`AttackResult`.

- Fixed budget: :func:`fgsm`, :func:`pgd` (L2 / L∞).
- Su et al.: :func:`ifgsm_search` / :func:`fgsm_search` (per-image eps search), :func:`cw_l2`,
  :func:`ead`, :func:`choose_targets` (least-likely, top-2, random).
- Fast minimal norm: :func:`ddn`, :func:`fmn`, :func:`alma` (augmented Lagrangian, L2),
  :func:`fab` (fast adaptive boundary, L∞ and L2);
  :func:`minimal_l2` / :func:`minimal_linf` run the strongest portfolio at a pass budget.
- Linsley et al.: :func:`minimal_eps_pgd` (smallest L2-PGD budget per image).
- :func:`run_batched` runs any of them over an image set in chunks.

Inputs are unnormalised float32 or float64 images in [0, 1] (refused otherwise: for bfloat16
speed, wrap the model with :func:`advlens.accel.prepare`, which returns float32 logits; float64
images meeting a float32 model are attacked in float32); the model must return one
(N, classes) logits tensor; models are run in eval mode with their modes
restored. Labels ``y`` are the true classes; an attack is targeted iff
``targets`` are given; labels outside the model's classes are refused. Cost accounting:
``passes`` counts batched forward+backward passes, ``forwards`` batched forward-only passes; a
pass on a subset of the batch counts as one. Attacks may be called inside a caller's
``torch.inference_mode()`` or ``no_grad()`` (they take their own gradients); called outside
inference mode, they return ordinary tensors (inside it, inference tensors, as any op there).
"""

from advlens.attacks.alma import alma
from advlens.attacks.batching import run_batched
from advlens.attacks.criterion import Criterion
from advlens.attacks.cw import cw_l2
from advlens.attacks.ddn import ddn
from advlens.attacks.ead import ead
from advlens.attacks.fab import fab
from advlens.attacks.fmn import fmn
from advlens.attacks.ifgsm import fgsm_search, ifgsm_search
from advlens.attacks.minimal import minimal_l2, minimal_linf
from advlens.attacks.norms import lp_norms, project_ball
from advlens.attacks.pgd import fgsm, pgd
from advlens.attacks.result import AttackResult
from advlens.attacks.targets import choose_targets
from advlens.attacks.tolerance import minimal_eps_pgd

__all__ = ["AttackResult", "Criterion", "alma", "choose_targets", "cw_l2", "ddn", "ead", "fab",
           "fgsm", "fgsm_search", "fmn", "ifgsm_search", "lp_norms", "minimal_eps_pgd",
           "minimal_l2", "minimal_linf", "pgd", "project_ball", "run_batched"]
