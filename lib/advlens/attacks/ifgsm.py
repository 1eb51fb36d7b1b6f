"""Su et al.'s (I-)FGSM with a per-image eps search: the smallest budget that fools the model."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from advlens.attacks.core import attack_mode, positive_number, prepare
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import Norm, check_norm
from advlens.attacks.pgd import check_loss, run_pgd
from advlens.attacks.result import AttackResult
from advlens.attacks.search import EpsSearch, doubling_bisection
from advlens.checks import as_tensor, check_positive_int


def ifgsm_search(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 50,
                 start_eps: float = 0.02, tries: int = 9, norm: Norm = "linf",
                 targets: Tensor | None = None, loss: Literal["ce", "logit"] = "ce",
                 progress: bool | None = None) -> AttackResult:
    """I-FGSM (``steps`` iterations of size eps/steps, projection on the ``norm`` ball, clamp to
    [0, 1]) inside Su et al.'s eps search: start at ``start_eps``, double until the image is
    fooled, then bisect; ``tries`` attacks per image; each image keeps its smallest successful
    eps (``result.eps``; inf if none) and that adversarial. ``steps=1`` is FGSM with the search.
    An eps fools an image when the last iterate, or failing it an earlier one, is adversarial.

    ``loss``: the objective each step ascends: ``"ce"`` the cross-entropy (Goodfellow et al.'s
    and Kurakin et al.'s FGSM / I-FGSM), ``"logit"`` the raw logit, −z_y untargeted or +z_t
    targeted, as Su et al.'s code ran them (``--use_zvalue``; on notebook 02's 17 laptop
    digits models its mean I-FGSM distortions came out 7-40 % larger than the CE's, FGSM's
    −1 to +27 %).

    Untargeted unless ``targets`` (target classes ≠ ``y``) are given. Images misclassified
    before any perturbation get eps = 0. Cost: one forward-only clean check, then per try
    ``steps`` passes + 1 forward (on the images still searching), then one confirming forward.
    """
    norm = check_norm(norm, ("l2", "linf"))
    loss = check_loss(loss)
    start_eps = positive_number("start_eps", start_eps)  # (one number: each image searches from it)
    steps, tries = check_positive_int(steps, "steps"), check_positive_int(tries, "tries")
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)

        def attack(images: Tensor, c: Criterion, eps: Tensor) -> tuple[Tensor, Tensor]:
            return run_pgd(model, images, c, eps=eps, step=eps / steps, steps=steps, norm=norm,
                           keep_any=True, confident=True, loss=loss)

        search = EpsSearch(model, x0, crit, norm, lo=0.0, attack=attack, cost=(steps, 1))
        doubling_bisection(search, start=start_eps, tries=tries, progress=progress)
        result = search.result()
    return result.to(home)


def fgsm_search(model: nn.Module, x: Tensor, y: Tensor, *, start_eps: float = 0.02,
                tries: int = 9, norm: Norm = "linf", targets: Tensor | None = None,
                loss: Literal["ce", "logit"] = "ce", progress: bool | None = None
                ) -> AttackResult:
    """FGSM (one step of size eps) inside the same eps search as :func:`ifgsm_search` (and with
    its choice of ``loss``)."""
    return ifgsm_search(model, x, y, steps=1, start_eps=start_eps, tries=tries, norm=norm,
                        targets=targets, loss=loss, progress=progress)
