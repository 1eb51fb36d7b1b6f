"""Minimal-perturbation attacks behind one entry point per norm, at a given pass budget.

``method="auto"`` runs a portfolio under the one budget (:func:`l2_plan`, :func:`linf_plan`), each
image keeping its smallest adversarial, confirmed by one final forward pass. For L2 (below 20
passes FMN-L2 alone, as for L∞): DDN first (the strongest at small budgets), then attacks that end
on other local minima (DDN on the margin alone, ALMA), then a refinement restarted from each
image's best. Why: DDN settles within ~100 steps and gains nothing from more (its median is the
same at 100 and 1,000 passes on the robust zoo models), while restarting a local method from where
it stopped, or taking another path, still finds smaller perturbations. For L∞: FAB (the nearest of
several classes' linearised boundaries, which the runner-up class's margin does not always lead to;
below 1,000 passes narrowed to that class after its first iteration, so that a short budget buys it
several iterations), then FMN-L∞ with normalised-gradient steps from the clean images (other
minima), then the same FMN restarted from each image's best (eps shrinking from there at once);
from 2,000 passes, FMN-L∞ restarts with other step sizes. Targeted below 2,000 passes, FAB (which
would linearise only the target class) is left out, and from 400 passes FMN-L∞ with sign steps
from the clean images (other minima) takes a share of the normalised-step FMN's.
Measured against foolbox and adv-lib at equal budgets in ``benchmarks/README.md`` (rerun:
``python benchmarks/bench_attacks.py``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from advlens.attacks.alma import alma
from advlens.attacks.best import BestAdversarial
from advlens.attacks.core import attack_mode, linearised_l2_distance, margin_and_grad, prepare
from advlens.attacks.cw import cw_l2
from advlens.attacks.ddn import GAMMA as DDN_GAMMA
from advlens.attacks.ddn import ddn
from advlens.attacks.fab import fab, nearest_class
from advlens.attacks.fmn import fmn
from advlens.attacks.ifgsm import ifgsm_search
from advlens.attacks.norms import Norm, lp_norms
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor

L2Method = Literal["auto", "ddn", "fmn", "alma", "fab", "cw"]
LinfMethod = Literal["auto", "fmn", "fab", "ifgsm"]
L2_METHODS: tuple[str, ...] = ("auto", "ddn", "fmn", "alma", "fab", "cw")
LINF_METHODS: tuple[str, ...] = ("auto", "fmn", "fab", "ifgsm")
Stage = tuple[str, int]  # (what, steps)
# FMN-L∞ restarts of linf_plan from 2,000 passes, in turn: (step direction, first step size;
# None: fmn's default for the direction)
LINF_RESTARTS: tuple[tuple[Literal["sign", "l2"], float | None], ...] = (
    ("sign", None), ("l2", 0.3), ("l2", 3.0), ("sign", 0.03), ("l2", 1.0))
LINF_RESTART_STEPS = 500  # each restart's least length
# l2_plan's first stage below 400 passes starts each eps at this multiple of the image's
# linearised distance (at most 1): on 34 zoo models × 150 images at 100 / 200 passes the worst
# image-to-peer ratio fell 3.26 -> 1.35 with 10, to 1.76 with 4, no median moving above a peer's
DDN_REACH_FACTOR = 10.0


# The smallest budget of each method. FMN, DDN, ALMA and C&W test an iterate at the start of
# the next step, so one step tests x alone (no correctly classified image was ever fooled): they
# need 2 steps and the confirming forward (C&W 2 steps for each of its 3 constants); "auto" 2 FMN
# steps, its stage's forward and the final one.
AUTO_LEAST_BUDGET = 4
STEPPED_LEAST_BUDGET = 3
CW_LEAST_BUDGET = 7
_TOO_SMALL = "a smaller one cannot fool a correctly classified image"


def _check_budget(budget: int, least: int, method: str = "auto", why: str = _TOO_SMALL) -> None:
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral):
        raise TypeError(f"budget must be an int (forward+backward passes); got {budget!r} "
                        f"({type(budget).__name__}).")
    if budget < least:
        raise ValueError(f"budget must be >= {least} passes for method={method!r} ({why}); got "
                         f"{budget}.")


def l2_plan(budget: int) -> list[Stage]:
    """The ``auto`` L2 portfolio for ``budget`` passes: (stage, steps) pairs; each stage costs
    its steps plus one confirming forward, the portfolio one more (the final check).

    Below 20 passes: FMN-L2 alone (its first steps jump to its linear estimate of each image's
    boundary, at any scale; DDN's eps, moving 5 % a step from 1, cannot leave [0.4, 2.3] in 17
    steps: on affine models whose boundaries lie at 0.04 or 3.7 it ended 8× above the minimum
    or found nothing, FMN within 1 %). Below 400: DDN (default loss: cross-entropy, then margin;
    constant γ as published, so that eps can shrink from 1 to a near boundary, by up to
    e^(−0.05·steps), about twice the reach of :func:`ddn`'s default annealed γ; "ddn-reach":
    each image's eps starts at :data:`DDN_REACH_FACTOR` times its linearised distance
    margin/||∇margin||₂ at the clean image, at most 1, one pass spent on it — an image whose
    boundary lies far below 1 otherwise ended at the floor e^(−0.05·steps): at 100 passes one
    vgg-xs/std image at 3.3× a peer's norm; below 84 passes γ is annealed down to 0.05 from
    a value that lets eps shrink by that factor within the stage, :func:`reach_gamma`) for 60 %
    of the budget, DDN on the margin alone (it settles on other local minima; untargeted runs aim at
    each image's class whose linearised boundary at the clean image is nearest,
    :func:`~advlens.attacks.fab.nearest_class`, where the stage has at least 12 steps, among
    the steps/5 (2 to 9) highest other classes, one pass each and a forward: on the zoo,
    every image where the first stage ended above a peer had crossed into another class than
    the peer's; from the clean images,
    each image's eps starting at the norm the first stage found, where it found a nonzero one,
    or at the linearised distance margin/||∇margin||₂ where that is smaller (where it found
    none, at the linearised distance itself: from 1, an image whose boundary lies beyond the
    first stage's reach was never found), so that on a model
    whose boundaries lie far below 1 — or an image whose boundary lies far below the others' —
    this short stage does not spend its steps shrinking eps; constant γ, so that where that
    estimate falls short eps grows back by 5 % a step, not by an annealed γ's shrinking
    steps) for 15 %, then a refinement of each image's best (DDN on the margin, small steps,
    restarted from there) for the rest.
    From 400: DDN and DDN-margin for 100 steps each (both settle within that), then ALMA (runs
    of at most 2,000 steps, learning rates 0.1, 0.3, 0.03 in turn: ALMA settles too, and other
    rates find other minima) for 90 % of the rest, and the refinement for the last 10 %.
    """
    _check_budget(budget, AUTO_LEAST_BUDGET)
    if budget < 20:
        return [("fmn", budget - 2)]
    if budget < 400:
        free = budget - 4  # three stage confirmations and the final one
        first, second = 6 * free // 10, 15 * free // 100
        return [("ddn-reach", first), ("ddn-margin-const", second),
                ("refine", free - first - second)]
    rest = budget - 1 - 2 * 101
    refine = max(rest // 10, 10)
    explore = rest - refine
    runs = -(-explore // 2000)  # ceil
    each = explore // runs
    plan = [("ddn", 100), ("ddn-margin", 100)] + [(f"alma{k}", each - 1) for k in range(runs)]
    return plan + [("refine", refine - 1)]


def _run_l2_stage(stage: str, steps: int, model: nn.Module, x0: Tensor, y: Tensor,
                  targets: Tensor | None, best: BestAdversarial,
                  progress: bool | None) -> AttackResult:
    if stage == "fmn":  # below 20 passes
        return fmn(model, x0, y, steps=steps, targets=targets, progress=progress)
    if stage == "ddn":  # constant γ (published DDN): eps travels far in few steps
        return ddn(model, x0, y, steps=steps, targets=targets, gamma_end=None,
                   progress=progress)
    if stage == "ddn-reach":  # the same, each eps starting near its image's boundary
        reach = linearised_distance(model, x0, y, targets)
        start = torch.where(reach > 0, (DDN_REACH_FACTOR * reach).clamp(max=1.0),
                            torch.ones_like(reach))
        r = ddn(model, x0, y, steps=steps - 1, targets=targets, init_eps=start,
                progress=progress, **reach_gamma(steps - 1))
        return dataclasses.replace(r, passes=r.passes + 1)
    if stage.startswith("ddn-margin"):  # a fresh path, at the scale of the distances found
        # where nothing was found yet, the largest norm in the box: linear_start then puts eps
        # at the linearised distance, at any scale (from 1, far boundaries were out of reach)
        scale = torch.where(best.found & (best.score > 0), best.score,
                            torch.where(best.found, torch.ones_like(best.score),
                                        lp_norms(torch.maximum(x0, 1 - x0), "l2")))
        constant = {"gamma_end": None} if stage == "ddn-margin-const" else {}
        passes = forwards = 0
        aim = targets
        if targets is None and steps >= 12:
            # towards the class whose linearised boundary at x0 is nearest, not the runner-up:
            # where DDN's first stage ends farther than a peer, it has crossed into another class.
            # Choosing costs a pass per candidate (steps/5 of them) and a forward, for at 100
            # passes 9 candidates left a 14-step stage too few steps (measured in benchmarks/);
            # a model of 2 classes has no choice (aim None: the runner-up, untargeted)
            candidates = max(2, min(9, steps // 5))
            aim, passes, forwards = nearest_class(model, x0, y, "l2", candidates=candidates)
        r = ddn(model, x0, y, steps=steps - passes - forwards, targets=aim, loss="margin",
                init_eps=scale, linear_start=True, progress=progress, **constant)
        return dataclasses.replace(r, passes=r.passes + passes, forwards=r.forwards + forwards,
                                   targets=targets)
    if stage.startswith("alma"):
        lr = (0.1, 0.3, 0.03)[int(stage[4:]) % 3]
        return alma(model, x0, y, steps=steps, targets=targets, lr=lr, progress=progress)
    if stage == "refine":
        return ddn(model, x0, y, steps=steps, targets=targets, start=best.adv, loss="margin",
                   gamma=0.01, gamma_end=0.0001, max_step=0.05, min_step=0.001,
                   progress=progress)
    raise AssertionError(stage)  # pragma: no cover - stages come from l2_plan


def reach_gamma(steps: int) -> dict[str, float | None]:
    """DDN's γ for a "ddn-reach" stage of ``steps`` steps: constant :data:`DDN_GAMMA` where
    that lets eps shrink by :data:`DDN_REACH_FACTOR` (its start above the linearised distance)
    within the stage, i.e. from ln(10)/0.05 ≈ 47 steps; a shorter stage anneals γ from the
    value whose mean with 0.05 travels that factor down to 0.05. With 0.05 throughout, a 9-step
    stage (20 passes) could shrink eps by 1.6× only, and on zoo models it left up to 18 of 50
    images more than 1.5× above FMN's norm at 19 passes and up to 9 of 50 not found (digits
    vgg-xs/at1.0: 41 found)."""
    first = 2 * math.log(DDN_REACH_FACTOR) / steps - DDN_GAMMA
    if first <= DDN_GAMMA:
        return {"gamma": DDN_GAMMA, "gamma_end": None}
    return {"gamma": first, "gamma_end": DDN_GAMMA}


def linearised_distance(model: nn.Module, x: Tensor, y: Tensor,
                        targets: Tensor | None = None) -> Tensor:
    """Each image's L2 distance to its decision boundary with the model linearised at ``x``:
    margin/||∇margin||₂ (N,), 0 where already adversarial (runner-up margin untargeted, the
    target's targeted; :meth:`Criterion.margin`). One forward+backward pass; call inside
    :func:`~advlens.attacks.core.attack_mode`. Returned on the model's device."""
    # the validated images (on the model's device, float32 for a float32 model), not x itself
    x0, _, crit = prepare(model, x, y, targets=targets)
    _, margin, grad = margin_and_grad(model, x0, crit)
    return linearised_l2_distance(margin, grad)


StageRunner = Callable[[str, int, nn.Module, Tensor, Tensor, Tensor | None, BestAdversarial,
                        bool | None], AttackResult]


def _portfolio(model: nn.Module, x: Tensor, y: Tensor, targets: Tensor | None, norm: Norm,
               plan: list[Stage], run_stage: StageRunner,
               progress: bool | None) -> AttackResult:
    """Run the stages of ``plan``, each image keeping its smallest adversarial (passes a stage
    leaves unspent go to the next); one final confirming forward on the returned batch."""
    home = as_tensor(x, "x").device
    with attack_mode(model):
        x0, y0, crit = prepare(model, x, y, targets=targets)
        t0 = crit.classes if crit.targeted else None  # validated (a list of ints too)
        best = BestAdversarial(x0, norm)
        passes = forwards = unspent = 0
        for stage, steps in plan:
            # a stage that spent less than its share (FAB spends whole iterations) leaves the
            # rest to the next one
            r = run_stage(stage, steps + unspent, model, x0, y0, t0, best, progress)
            r = r.to(x0.device)
            unspent = steps + unspent + 1 - r.cost
            best.update(r.adv, r.success)
            passes, forwards = passes + r.passes, forwards + r.forwards
        result = best.result(model, crit, passes=passes, forwards=forwards)
    return result.to(home)


def minimal_l2(model: nn.Module, x: Tensor, y: Tensor, *, method: L2Method = "auto",
               budget: int = 1000, targets: Tensor | None = None,
               progress: bool | None = None) -> AttackResult:
    """Smallest-L2 adversarial per image within ``budget`` passes (``result.cost`` ≤ budget).

    Parameters
    ----------
    method: ``"auto"`` — the portfolio of :func:`l2_plan` (DDN, DDN-margin, ALMA, refinement;
        FMN-L2 below 20 passes);
        ``"ddn"``, ``"fmn"``, ``"alma"``: that attack for budget − 1 steps; ``"fab"``: FAB-L2
        (nearest of the top 9 classes) with budget − 1 passes; ``"cw"``: C&W-L2 with
        3 constants from c = 1, (budget − 1)//3 Adam steps of lr 0.05 each, no early abort —
        tuned for small budgets, not Su et al.'s protocol (use :func:`advlens.attacks.cw_l2`).
    budget: forward+backward passes, forward-only passes counted as full ones; at least 4 for
        ``"auto"``, 7 for ``"cw"``, 3 for the others (a budget of one step tested only x).
    targets: target classes (≠ ``y``) for a targeted attack; untargeted if None.
    progress: tqdm bars (None: on only in a terminal).

    Returns
    -------
    AttackResult (``norm="l2"``) with each image's smallest adversarial found.
    """
    if method not in L2_METHODS:
        raise ValueError(f"method must be one of {L2_METHODS}; got {method!r}.")
    if method == "auto":
        return _portfolio(model, x, y, targets, "l2", l2_plan(budget), _run_l2_stage, progress)
    if method == "cw":
        _check_budget(budget, CW_LEAST_BUDGET, method)
        return cw_l2(model, x, y, targets=targets, binary_steps=3, initial_const=1.0, lr=0.05,
                     abort_early=False, steps=(budget - 1) // 3, progress=progress)
    if method == "fab":
        _check_budget(budget, 3, method)
        return fab(model, x, y, norm="l2", steps=budget - 1, targets=targets,
                   progress=progress)
    _check_budget(budget, STEPPED_LEAST_BUDGET, method)
    fn = {"ddn": ddn, "fmn": fmn, "alma": alma}[method]
    return fn(model, x, y, steps=budget - 1, targets=targets, progress=progress)


def linf_plan(budget: int, targeted: bool = False) -> list[Stage]:
    """The ``auto`` L∞ portfolio for ``budget`` passes (same accounting as :func:`l2_plan`):
    below 20 passes FMN-L∞ alone; from 20, FAB-L∞ (the nearest of the top 9 classes' linearised
    boundaries, as published: it finds boundaries that the runner-up class's margin does not
    lead to), then FMN-L∞ with normalised-gradient steps (adv-lib's variant) from the clean
    images (it settles on other minima, and on some models FMN needs its ~100 steps), then the
    same FMN restarted from each image's best so far for the last 20 % ("refine": an adversarial
    start sets its eps at once, so its steps go to shrinking; its steps sized to each image's
    ball, :func:`linf_refine_step`); each image keeps its smallest.

    Below 1,000 passes FAB takes 20 % and FMN 60 %, FAB narrowed to each image's nearest class
    after its first iteration (``fab(narrow=1)``: later iterations cost 2 passes, not 10), so
    that a short budget buys FAB its iterations and FMN most of its steps. From 1,000, FAB over
    all 9 classes every iteration takes 30 % and FMN 50 %: there FAB has iterations enough, and
    its passes, backward sweeps through one forward, cost less time than FMN's.

    From 2,000 passes: the 1,000-pass plan, then FMN-L∞ restarted from the clean images, one
    run of at least 500 steps for each of :data:`LINF_RESTARTS` that 90 % of the rest affords
    (sign steps, normalised steps of first size 0.3, 3, sign steps of 0.03, normalised of 1:
    other step sizes settle on other minima, and FAB and FMN each settle within 1,000 passes —
    on the zoo the 1,000- and 5,000-pass medians of the earlier plan were equal; FMN is
    deterministic, so past five the runs lengthen rather than repeat), and the refinement for
    the last 10 %.

    ``targeted`` from 20 to 1,999 passes: no FAB (it would linearise the one target class:
    nothing to choose, its advantage untargeted), FMN-L∞ with normalised steps for 80 % and the
    refinement for the rest; from 400 passes the normalised-step FMN takes 60 % and FMN-L∞ with
    sign steps from the clean images (the published boundary estimate, ``overshoot=False``) 20
    %: it settles on other minima. Chosen on 12 zoo models and checked on 22 others with other
    images and targets (forty-second session, ``benchmarks/README.md``): held out, medians above
    the peers' FMN-L∞ in 9 / 6 of 22 cells at 400 / 1,000 passes against 15 / 12 without it,
    ours lower on 499 / 577 of 1,100 images and higher on 601 / 521 (without: 434 / 472 and 664
    / 627); at 100 passes it did not help (15 against 14 lost), so it starts at 400. On the six
    twin-cue models (3 × 32 × 32, never used in choosing) 1 / 1 of 6 medians lost against 2 / 3.
    From 2,000 passes targeted runs get the untargeted plan (FAB on the target class in its
    1,000-pass head), measured there. Targeted L∞ is where ours is weakest against FMN-L∞ given
    the whole budget: on 12 models of an earlier zoo, with FAB, the median was above FMN's in 7
    / 8 / 6 of 12 cells at 100 / 400 / 1,000 passes (by at most 1.7 %); without it in 5 / 5 / 5
    (by at most 0.8 %), ours lower image by image on more images in 3 / 6 / 8 cells
    (``benchmarks/bench_targeted.py``; ``benchmarks/README.md``). Our FMN alone, every pass, is
    not the peers' (its boundary estimate overshoots by 1 + γ; see :func:`fmn`) and lost 9 / 6 /
    5; FMN 80 % and the refinement with the published estimate lost 9 / 6 / 9, by less.
    """
    _check_budget(budget, AUTO_LEAST_BUDGET)
    if budget < 20:
        return [("fmn", budget - 2)]
    if targeted and budget < 400:
        free = budget - 3  # two stage confirmations and the final one
        first = 8 * free // 10
        return [("fmn-l2-steps", first), ("refine", free - first)]
    if targeted and budget < 2000:
        free = budget - 4  # three stage confirmations and the final one
        first, second = 6 * free // 10, 2 * free // 10
        return [("fmn-l2-steps", first), ("fmn-sign-published", second),
                ("refine", free - first - second)]
    free = budget - 4  # three stage confirmations and the final one
    if budget < 1000:
        first, second = 2 * free // 10, 6 * free // 10
        return [("fab-narrow", first), ("fmn-l2-steps", second),
                ("refine", free - first - second)]
    if budget < 2000:
        first, second = 3 * free // 10, free // 2
        return [("fab", first), ("fmn-l2-steps", second), ("refine", free - first - second)]
    rest = budget - 1000
    last = rest // 10
    runs = min(len(LINF_RESTARTS), max(1, (rest - last) // (LINF_RESTART_STEPS + 1)))
    each = (rest - last) // runs - 1
    return (linf_plan(1000) + [(f"fmn-restart{j}", each) for j in range(runs)]
            + [("refine", last - 1)])


def _run_linf_stage(stage: str, steps: int, model: nn.Module, x0: Tensor, y: Tensor,
                    targets: Tensor | None, best: BestAdversarial,
                    progress: bool | None) -> AttackResult:
    if stage in ("fab", "fab-narrow"):
        narrow = 1 if stage == "fab-narrow" else None
        return fab(model, x0, y, steps=steps, targets=targets, narrow=narrow, progress=progress)
    if stage == "refine":
        return fmn(model, x0, y, norm="linf", steps=steps, targets=targets, direction="l2",
                   start=best.adv, max_step=linf_refine_step(best), progress=progress)
    if stage.startswith("fmn-restart"):
        direction, first_step = LINF_RESTARTS[int(stage.removeprefix("fmn-restart"))]
        return fmn(model, x0, y, norm="linf", steps=steps, targets=targets, direction=direction,
                   max_step=first_step, progress=progress)
    if stage == "fmn-sign-published":  # sign steps, the published boundary estimate
        return fmn(model, x0, y, norm="linf", steps=steps, targets=targets, direction="sign",
                   overshoot=False, progress=progress)
    direction = {"fmn": "sign", "fmn-l2-steps": "l2"}[stage]
    return fmn(model, x0, y, norm="linf", steps=steps, targets=targets, direction=direction,
               progress=progress)


def linf_refine_step(best: BestAdversarial) -> Tensor:
    """The first step size (L2 length of a normalised-gradient step) of the L∞ refinement, per
    image: 0.3·||δ||∞·√d for an image whose best δ is nonzero (0.3 of the L2 length of a corner
    of its ball: a step sized to the ball it refines), at most 1 (FMN's cold-start step, kept
    where none or a zero one was found). Why: at the cold start's step of 1, an image whose ball
    is small (||δ||∞·√d well below 1) leaves its best point at the first step and spends a short
    refinement finding its way back."""
    corner = best.score * best.x[0].numel() ** 0.5
    usable = best.found & (best.score > 0)
    return torch.where(usable, (0.3 * corner).clamp(max=1.0), torch.ones_like(corner))


def minimal_linf(model: nn.Module, x: Tensor, y: Tensor, *, method: LinfMethod = "auto",
                 budget: int = 1000, targets: Tensor | None = None, tries: int = 9,
                 progress: bool | None = None) -> AttackResult:
    """Smallest-L∞ adversarial per image within ``budget`` passes (``result.cost`` ≤ budget).

    Parameters
    ----------
    method: ``"auto"`` — the portfolio of :func:`linf_plan`; ``"fmn"``: FMN-L∞ with budget − 1
        steps; ``"fab"``: FAB-L∞ (nearest of the top 9 classes) with budget − 1 passes;
        ``"ifgsm"``: Su et al.'s eps search with ``tries`` tries of
        (budget − 2)//tries − 1 I-FGSM steps each.
    budget: forward+backward passes, forward-only passes counted as full ones; at least 4 for
        ``"auto"``, 2 + 2·``tries`` for ``"ifgsm"`` (20 at the default), 3 for the others.
    targets, progress: as for :func:`minimal_l2`.
    tries: eps-search tries of ``"ifgsm"`` (ignored by the other methods).

    Returns
    -------
    AttackResult (``norm="linf"``).
    """
    if method not in LINF_METHODS:
        raise ValueError(f"method must be one of {LINF_METHODS}; got {method!r}.")
    if method == "ifgsm":
        if isinstance(tries, bool) or not isinstance(tries, numbers.Integral) or tries < 1:
            raise ValueError(f"tries must be an int >= 1 (eps-search attacks); got {tries!r}.")
        tries = int(tries)  # (a NumPy integer too)
        _check_budget(budget, 2 + 2 * tries, method, f"2 + 2·tries, tries={tries}")
        return ifgsm_search(model, x, y, steps=(budget - 2) // tries - 1, tries=tries,
                            targets=targets, progress=progress)
    if method == "auto":
        return _portfolio(model, x, y, targets, "linf", linf_plan(budget, targets is not None),
                          _run_linf_stage, progress)
    if method == "fab":
        _check_budget(budget, 3, method)
        return fab(model, x, y, steps=budget - 1, targets=targets, progress=progress)
    _check_budget(budget, STEPPED_LEAST_BUDGET, method)
    return fmn(model, x, y, norm="linf", steps=budget - 1, targets=targets, progress=progress)
