"""Linsley et al.'s minimal-eps L2 PGD search ("tolerance"), batched with per-image intervals."""

from __future__ import annotations

from torch import Tensor, nn

from advlens.attacks.core import attack_mode, positive_number, prepare
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import Norm, check_norm
from advlens.attacks.pgd import run_pgd
from advlens.attacks.result import AttackResult
from advlens.attacks.search import EpsSearch, bracketed_bisection
from advlens.checks import as_tensor, check_positive_int


def minimal_eps_pgd(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 3,
                    step_size: float = 0.5, eps_max: float = 10.0, eps_mid: float = 1.0,
                    eps_min: float = 0.001, width_low: float = 0.01, width_high: float = 0.1,
                    norm: Norm = "l2", progress: bool | None = None) -> AttackResult:
    """Smallest L2 budget at which untargeted PGD fools the model, per image.

    PGD on the cross-entropy: no random start, ``steps`` steps of ``step_size``·g/||g||₂,
    projection onto the L2 *ball* of radius eps (Linsley et al.'s code did not project: it
    added eps·δ/||δ||₂ to each iterate, moving it to norm ||δ||₂ + eps, beyond the sphere;
    this is the real ball projection), clamp to [0, 1]. Search: try ``eps_max``; an image
    still correct there is recorded as *not broken* (``success`` False, ``eps`` inf; never
    dropped). Otherwise try ``eps_mid`` and bisect [eps_min, eps_mid] to width ``width_low`` or
    [eps_mid, eps_max] to width ``width_high``. ``result.eps`` = smallest eps that fooled (0 for
    images misclassified clean); ``result.norms`` = the actual ||adv − x||₂ ≤ eps.
    The search follows their Colab notebook and PROTOCOLS (eps_min 0.001, each bisection step
    attacked at its own eps), not their ``main.py``, whose bisection attacked every step at
    eps = 1 and whose ``parameters.py`` sets the lower bound to 0.01.

    With the ball projection the iterate never moves further than ``steps · step_size`` from x
    (1.5 by default), so every budget above that is the same attack: ``eps_max`` = 10 tests
    eps = 1.5, "not broken" means not fooled within L2 1.5 (an image another attack fools at
    1.6 is not broken here), and ``result.eps`` never exceeds 1.5 + ``width_high``. (Their
    step put every iterate at norm > eps, so eps = 10 did move the image by more than 10.)

    Every setting is one finite number > 0 for the whole batch.
    Cost: one clean forward, then per round ``steps`` passes + 1 forward on the images still
    searching, then one confirming forward.
    """
    norm = check_norm(norm, ("l2", "linf"))
    # finite and > 0: an eps_max of inf was no success (not below the inf of "none yet") and a
    # step_size <= 0 never moved, so every image read "not broken", silently
    # one number each for the batch (an (N,) tensor failed inside torch, or in a later round;
    # a NaN width ended the bisection at once)
    eps_min, eps_mid, eps_max, step_size, width_low, width_high = (
        positive_number(name, value) for name, value in
        (("eps_min", eps_min), ("eps_mid", eps_mid), ("eps_max", eps_max),
         ("step_size", step_size), ("width_low", width_low), ("width_high", width_high)))
    if not 0 < eps_min < eps_mid < eps_max:
        raise ValueError(f"need 0 < eps_min < eps_mid < eps_max; got {eps_min}, {eps_mid}, "
                         f"{eps_max}.")
    steps = check_positive_int(steps, "steps")
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y)

        def attack(images: Tensor, c: Criterion, eps: Tensor) -> tuple[Tensor, Tensor]:
            return run_pgd(model, images, c, eps=eps, step=step_size, steps=steps, norm=norm,
                           confident=True)

        search = EpsSearch(model, x0, crit, norm, lo=eps_min, attack=attack, cost=(steps, 1))
        bracketed_bisection(search, eps_max=eps_max, eps_mid=eps_mid, width_low=width_low,
                            width_high=width_high, progress=progress)
        result = search.result()
    return result.to(home)
