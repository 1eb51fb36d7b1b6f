"""Minimal-perturbation attacks behind one entry point per norm, at a given pass budget.

``method="auto"`` is the strongest method measured by ``benchmarks/bench_attacks.py`` at equal
pass budgets (DDN for L2, FMN for L∞); the measured medians, wall times and success rates are in
``benchmarks/README.md`` (rerun: ``python benchmarks/bench_attacks.py``; output in
``benchmarks/results/``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from advlens.attacks.cw import cw_l2
from advlens.attacks.ddn import ddn
from advlens.attacks.fmn import fmn
from advlens.attacks.ifgsm import ifgsm_search
from advlens.attacks.result import AttackResult

L2_METHODS = ("auto", "ddn", "fmn", "cw")
LINF_METHODS = ("auto", "fmn", "ifgsm")
AUTO_L2 = "ddn"
AUTO_LINF = "fmn"


def _check_budget(budget: int, least: int) -> None:
    if budget < least:
        raise ValueError(f"budget must be >= {least} passes; got {budget}.")


def minimal_l2(model: nn.Module, x: Tensor, y: Tensor, *, method: str = "auto",
               budget: int = 1000, targets: Tensor | None = None,
               **kwargs: Any) -> AttackResult:
    """Smallest-L2 adversarial per image within ``budget`` passes (``result.cost`` ≤ budget;
    one pass is kept for the confirming forward).

    ``method="auto"`` picks the strongest method measured by ``benchmarks/bench_attacks.py``.
    ``"ddn"``, ``"fmn"``: budget − 1 steps. ``"cw"``: C&W-L2 with 3 constants from c = 1,
    (budget − 1)//3 Adam steps of lr 0.05 each (abort early off) — tuned for small budgets, not
    Su et al.'s protocol (use :func:`advlens.attacks.cw_l2` for that). ``kwargs`` go to the
    method.
    """
    if method not in L2_METHODS:
        raise ValueError(f"method must be one of {L2_METHODS}; got {method!r}.")
    method = AUTO_L2 if method == "auto" else method
    if method == "cw":
        _check_budget(budget, 4)
        opts = {"binary_steps": 3, "initial_const": 1.0, "lr": 0.05, "abort_early": False,
                "progress": False, **kwargs}
        opts["steps"] = opts.pop("steps", (budget - 1) // opts["binary_steps"])
        return cw_l2(model, x, y, targets=targets, **opts)
    _check_budget(budget, 2)
    fn = ddn if method == "ddn" else fmn
    return fn(model, x, y, steps=budget - 1, targets=targets, **kwargs)


def minimal_linf(model: nn.Module, x: Tensor, y: Tensor, *, method: str = "auto",
                 budget: int = 1000, targets: Tensor | None = None,
                 **kwargs: Any) -> AttackResult:
    """Smallest-L∞ adversarial per image within ``budget`` passes (``result.cost`` ≤ budget).

    ``"fmn"``: FMN-L∞ with budget − 1 steps. ``"ifgsm"``: Su et al.'s eps search with 9 tries of
    (budget − 2)//9 − 1 I-FGSM steps each. ``"auto"``: the strongest measured.
    """
    if method not in LINF_METHODS:
        raise ValueError(f"method must be one of {LINF_METHODS}; got {method!r}.")
    method = AUTO_LINF if method == "auto" else method
    if method == "ifgsm":
        tries = kwargs.pop("tries", 9)
        steps = kwargs.pop("steps", (budget - 2) // tries - 1)
        _check_budget(budget, 2 + 2 * tries)
        return ifgsm_search(model, x, y, steps=steps, tries=tries, targets=targets,
                            progress=kwargs.pop("progress", False), **kwargs)
    _check_budget(budget, 2)
    return fmn(model, x, y, norm="linf", steps=budget - 1, targets=targets, **kwargs)
