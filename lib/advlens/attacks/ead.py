"""EAD, elastic-net attack (Chen et al. 2018): C&W's constant search with an ISTA/FISTA solver."""

from __future__ import annotations

from typing import Literal

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
from advlens.attacks.core import attack_mode, finite_rows, positive_number, prepare
from advlens.attacks.criterion import Criterion
from advlens.attacks.norms import lp_norms
from advlens.attacks.result import AttackResult
from advlens.attacks.scalars import scalar
from advlens.checks import as_tensor, check_bool


def shrink(z: Tensor, x0: Tensor, beta: float) -> Tensor:
    """Projected shrinkage-thresholding: soft-threshold z − x0 by β, then clamp into [0, 1]."""
    d = z - x0
    magnitude = d.abs().sub_(scalar(beta, d.dtype)).clamp_min_(0)
    return d.sign_().mul_(magnitude).add_(x0).clamp_(0.0, 1.0)  # in place on fresh temporaries


class ElasticNetISTA:
    """Minimise c·f(x') + ||x' − x||₂² + β||x' − x||₁ by (F)ISTA with a square-root decaying step.

    As in the published EAD, the soft threshold is β itself (not step·β). The FISTA slack point
    is clamped into [0, 1], so every point the model is evaluated at is a valid image; that point
    is the candidate checked for success (no second forward per iteration).
    """

    def __init__(self, model: nn.Module, x0: Tensor, crit: Criterion, *, lr: float,
                 beta: float, kappa: float, steps: int, fista: bool) -> None:
        self.model, self.x0, self.crit = model, x0, crit
        self.lr, self.beta, self.kappa, self.steps, self.fista = lr, beta, kappa, steps, fista
        self.last: tuple[Tensor, Tensor, Tensor, Tensor]  # logits, margin, δ, c of a step
        self.first_grad_finite: Tensor | None = None
        self.reset()

    def reset(self) -> None:
        self.x = self.x0.clone()
        self.slack = self.x0.clone()
        self.held: Tensor | None = None  # rows left as they are (abort_rule "image")

    def hold(self, stopped: Tensor) -> None:
        self.held = held_rows(stopped)

    def step(self, c: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        point = self.slack
        logits, grad, margin, delta = penalised(self.model, point, self.x0, self.crit, c,
                                                self.kappa)
        if self.first_grad_finite is None:
            self.first_grad_finite = finite_rows(grad)
        self.last = (logits, margin, delta, c)
        lr = self.lr * (1 - k / self.steps) ** 0.5
        new = shrink(point - grad.mul_(lr), self.x0, self.beta)
        if self.fista:
            slack = (new - self.x).mul_(k / (k + 3)).add_(new).clamp_(0.0, 1.0)
        else:
            slack = new
        if self.held is not None:  # a held image takes no step
            new[self.held] = self.x[self.held]
            if slack is not new:
                slack[self.held] = self.slack[self.held]
        self.slack, self.x = slack, new
        return point, logits, margin, delta

    def objective(self) -> Tensor:
        smooth = penalised_value(self.crit, *self.last, self.kappa)
        return smooth + self.beta * lp_norms(self.last[2], "l1")


def ead(model: nn.Module, x: Tensor, y: Tensor, *, targets: Tensor | None = None,
        beta: float = 1e-3, decision: Literal["l1", "en"] = "l1", binary_steps: int = 9,
        steps: int = 1000, initial_const: float = 0.01, lr: float = 0.01, kappa: float = 0.0,
        fista: bool = True, abort_early: bool = True,
        abort_rule: AbortRule = "batch",
        progress: bool | None = None) -> AttackResult:
    """EAD with the L1 decision rule (Su et al.'s EAD-L1 settings as defaults).

    Same constant search and early abort as :func:`advlens.attacks.cw_l2` (``binary_steps``
    constants from ``initial_const``, ``steps`` iterations each); the solver is FISTA (or ISTA
    with ``fista=False``) with step ``lr``·sqrt(1 − k/steps) — EAD's published default lr is
    0.01. ``decision="l1"`` keeps each image's smallest-L1 adversarial; ``"en"`` the smallest
    elastic-net distance ||δ||₂² + β||δ||₁. ``result.norms`` are L1 norms. With
    ``abort_early`` each image's result depends on the images batched with it, as for
    :func:`~advlens.attacks.cw_l2` (``abort_rule``: as there; "every" is Su et al.'s
    ``l1_attack.py``).
    """
    initial_const, lr, kappa = check_search_settings(binary_steps, steps, initial_const, lr, kappa)
    beta = positive_number("beta", beta, allow_zero=True)
    fista, abort_early = check_bool(fista, "fista"), check_bool(abort_early, "abort_early")
    abort_rule = check_abort_rule(abort_rule)
    if decision not in ("l1", "en"):
        raise ValueError(f"decision must be 'l1' or 'en'; got {decision!r}.")
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, _, crit = prepare(model, x, y, targets=targets)
        best = _ElasticBest(x0, beta) if decision == "en" else BestAdversarial(x0, "l1")
        opt = ElasticNetISTA(model, x0, crit, lr=lr, beta=beta, kappa=kappa, steps=steps,
                             fista=fista)
        passes = const_search(model, crit, opt, best, binary_steps=binary_steps, steps=steps,
                              initial_const=initial_const, kappa=kappa,
                              abort_early=abort_early, progress=progress,
                              abort_rule=abort_rule)
        result = best.result(model, crit, passes=passes, forwards=0)
    return result.to(home)


class _ElasticBest(BestAdversarial):
    """Best-adversarial bookkeeping scored by the elastic-net distance (reported norms stay L1)."""

    def __init__(self, x: Tensor, beta: float) -> None:
        super().__init__(x, "l1")
        self.beta = beta

    def update(self, candidate: Tensor, is_adv: Tensor, score: Tensor | None = None,
               index: Tensor | None = None, delta: Tensor | None = None) -> Tensor:
        if score is None:
            if delta is None:
                delta = candidate - (self.x if index is None else self.x[index])
            d = delta.flatten(1)
            score = d.pow(2).sum(1) + self.beta * d.abs().sum(1)
        return super().update(candidate, is_adv, score, index)

