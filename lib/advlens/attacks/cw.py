"""Carlini & Wagner L2 (2017): Adam on tanh-space images inside the trade-off-constant search."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from advlens.attacks.best import BestAdversarial
from advlens.attacks.const_search import (
    AbortRule,
    check_abort_rule,
    check_search_settings,
    const_search,
    held_rows,
    penalised,
    penalised_value,
)
from advlens.attacks.core import attack_mode, finite_rows, prepare
from advlens.attacks.criterion import Criterion
from advlens.attacks.result import AttackResult
from advlens.attacks.scalars import scalar
from advlens.checks import as_tensor, check_bool

RESTARTS = ("x", "last")
ADAM_EPS = ("outside", "inside")


def _one_of(value: object, choices: tuple[str, ...], name: str, meanings: str) -> str:
    """``value`` if it is one of ``choices``; a ValueError naming ``name`` (and what each
    choice means) otherwise."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices} ({meanings}); got {value!r}.")
    return value  # type: ignore[return-value]


def check_restart(restart_from: object, name: str = "restart_from") -> Literal["x", "last"]:
    """``restart_from`` if it is one of :data:`RESTARTS`; a ValueError naming ``name``
    otherwise."""
    return _one_of(restart_from, RESTARTS, name,  # type: ignore[return-value]
                   "'x': Carlini & Wagner's code, 'last': Su et al.'s")


def check_adam_eps(adam_eps: object, name: str = "adam_eps") -> Literal["outside", "inside"]:
    """``adam_eps`` if it is one of :data:`ADAM_EPS`; a ValueError naming ``name`` otherwise."""
    return _one_of(adam_eps, ADAM_EPS, name,  # type: ignore[return-value]
                   "'outside': Adam as published, 'inside': Su et al.'s l2_attack.py")


class TanhAdam:
    """C&W's change of variables x' = (tanh(w) + 1)/2 with Adam on w, restarted per constant.

    w starts at atanh of the image shrunk by 1e-6 (finite at pixels 0 and 1); the offset that
    shrink leaves is added back, so the first iterate is exactly x (clamped into [0, 1], outside
    the graph: the gradient is chained through tanh by hand). ``restart_from``: where each
    constant after the first starts, "x" (Carlini & Wagner) or "last", the previous constant's
    last iterate (Su et al.'s l2_attack.py); Adam's moments restart either way. ``adam_eps``:
    where Adam's ``tol`` enters its step, "outside" (published Adam: m̂/(√v̂ + tol)) or "inside"
    (Su et al.'s l2_attack.py: lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m/√(v + tol), on the uncorrected v).
    """

    def __init__(self, model: nn.Module, x0: Tensor, crit: Criterion, *, lr: float,
                 kappa: float, betas: tuple[float, float] = (0.9, 0.999), tol: float = 1e-8,
                 restart_from: Literal["x", "last"] = "x",
                 adam_eps: Literal["outside", "inside"] = "outside"):
        self.model, self.x0, self.crit = model, x0, crit
        self.lr, self.kappa, self.betas, self.tol = lr, kappa, betas, tol
        self.restart_from, self.adam_eps = restart_from, adam_eps
        # shrink by 1e-6 so atanh stays finite at pixels exactly 0 or 1
        self.w0 = torch.atanh((2 * x0 - 1) * (1 - 1e-6))
        self.offset = x0 - (torch.tanh(self.w0) + 1) / 2
        self.last: tuple[Tensor, Tensor, Tensor, Tensor]  # logits, margin, δ, c of a step
        self.w = self.w0.clone()
        # the step's fixed numbers as tensors (scalars.scalar: the same values, fewer ops)
        self.one, self.two, self.half, self.beta1, self.beta2, self.tol_t = (
            scalar(v, x0.dtype) for v in (1, 2, 0.5, *betas, tol))
        self.first_grad_finite: Tensor | None = None
        self.reset()

    def reset(self) -> None:
        if self.restart_from == "x":
            self.w = self.w0.clone()
        self.m = torch.zeros_like(self.w)
        self.v = torch.zeros_like(self.w)
        self.t = 0
        self.held: Tensor | None = None  # rows left as they are (abort_rule "image")

    def hold(self, stopped: Tensor) -> None:
        self.held = held_rows(stopped)

    def step(self, c: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        tw = torch.tanh(self.w)
        image = (tw + self.one).div_(self.two).add_(self.offset).clamp_(0.0, 1.0)
        logits, grad_x, margin, delta = penalised(self.model, image, self.x0, self.crit, c,
                                                  self.kappa)
        if self.first_grad_finite is None:
            self.first_grad_finite = finite_rows(grad_x)
        self.last = (logits, margin, delta, c)
        # chain rule through (tanh(w) + 1)/2
        grad_w = grad_x.mul_(self.one - tw * tw).mul_(self.half)
        self.t += 1
        b1, b2 = self.betas
        kept = None if self.held is None else [t[self.held] for t in (self.m, self.v, self.w)]
        self.m.mul_(self.beta1).add_(grad_w, alpha=1 - b1)
        self.v.mul_(self.beta2).addcmul_(grad_w, grad_w, value=1 - b2)
        if self.adam_eps == "inside":
            denom = (self.v + self.tol_t).sqrt_()
            rate = self.lr * (1 - b2**self.t) ** 0.5 / (1 - b1**self.t)
        else:
            denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.tol_t)
            rate = self.lr / (1 - b1**self.t)
        self.w.addcdiv_(self.m, denom, value=-rate)
        if kept is not None:  # a held image takes no step (nor does its Adam state move)
            for t, rows in zip((self.m, self.v, self.w), kept, strict=True):
                t[self.held] = rows
        return image, logits, margin, delta

    def objective(self) -> Tensor:
        return penalised_value(self.crit, *self.last, self.kappa)


def cw_l2(model: nn.Module, x: Tensor, y: Tensor, *, targets: Tensor | None = None,
          binary_steps: int = 9, steps: int = 1000, initial_const: float = 0.01,
          lr: float = 0.001, kappa: float = 0.0, abort_early: bool = True,
          abort_rule: AbortRule = "batch",
          restart_from: Literal["x", "last"] = "x",
          adam_eps: Literal["outside", "inside"] = "outside",
          progress: bool | None = None) -> AttackResult:
    """Carlini & Wagner's L2 attack with the settings of Su et al. as defaults.

    Minimises ``||x' − x||₂² + c·max(margin(x'), −κ)`` over x' = (tanh(w)+1)/2 with Adam
    (``lr``), ``steps`` iterations per constant, ``binary_steps`` per-image binary-search steps on
    c from ``initial_const``; keeps each image's smallest-L2 adversarial. Untargeted unless
    ``targets`` are given. Cost: at most ``binary_steps·steps`` passes (fewer with
    ``abort_early``) plus one confirming forward.

    ``abort_early`` (as in Carlini & Wagner's code) stops a constant when the *batch's* summed
    objective stalls, so each image's result depends on the images batched with it (another
    batch size or split, e.g. in :func:`~advlens.attacks.run_batched`, gives other norms and
    passes); ``abort_early=False`` makes it per image, at float rounding. ``abort_rule="every"``
    stops a constant only once every image's own objective stalled, as Su et al.'s
    ``l2_attack.py`` (``np.all(l > prev*.9999)``): later than the batch rule, never earlier;
    ``"image"`` stops each image alone when its own objective stalls (held where it is while
    the others go on): their code run one image at a time, as they ran it, and independent
    of the batch.

    ``restart_from``: where each constant after the first starts Adam (its moments reset), at
    x ("x", Carlini & Wagner's code) or at the previous constant's last iterate ("last": Su et
    al.'s ``l2_attack.py``, whose reset leaves the tanh-space modifier out).

    ``adam_eps``: where Adam's 1e-8 enters the step: "outside", m̂/(√v̂ + 1e-8) (Kingma & Ba's
    Algorithm 1, PyTorch's Adam; Carlini & Wagner's code, through TensorFlow's Adam, adds it to
    the uncorrected √v, an effective 3e-7 on √v̂ at the first step: the two differ only where
    gradients are below ~1e-6), or "inside" the square root of the uncorrected second moment,
    lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m/√(v + 1e-8) (Su et al.'s ``l2_attack.py``,
    ``adam_optimizer_tf``): an effective floor of about 3e-3 on √v̂ at the first step and
    1.3e-4 at the 1,000th, which damps the steps of pixels whose gradients are smaller than that
    (high-resolution images, small distortions).
    """
    initial_const, lr, kappa = check_search_settings(binary_steps, steps, initial_const, lr, kappa)
    abort_early = check_bool(abort_early, "abort_early")
    abort_rule = check_abort_rule(abort_rule)
    restart_from = check_restart(restart_from)
    adam_eps = check_adam_eps(adam_eps)
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        best = BestAdversarial(x0, "l2")
        opt = TanhAdam(model, x0, crit, lr=lr, kappa=kappa, restart_from=restart_from,
                       adam_eps=adam_eps)
        passes = const_search(model, crit, opt, best, binary_steps=binary_steps, steps=steps,
                              initial_const=initial_const, kappa=kappa,
                              abort_early=abort_early, progress=progress,
                              abort_rule=abort_rule)
        result = best.result(model, crit, passes=passes, forwards=0)
    return result.to(home)
