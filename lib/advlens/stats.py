"""Small statistics shared by the notebooks: bootstrap confidence intervals, a linear fit and an
exact (or Monte Carlo) permutation test of an association."""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a (lo, hi) percentile-bootstrap confidence interval."""

    value: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}] (n={self.n})"


def _check_resampling(n_boot: int, level: float, name: str = "n_boot") -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ValueError(f"{name} must be an int >= 1; got {n_boot!r}.")
    # (a string failed on "<" naming neither, True was read as 1; no torch here for
    # advlens.checks.positive_number)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ValueError(f"level is a fraction in (0, 1), e.g. 0.95; got {level!r}.")


def _check_seed(seed: int) -> int:
    """``seed`` if it is an int >= 0 (NumPy's too), as numpy's generators take it; numpy's own
    error named neither the argument nor, for a float, what was wrong."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    return int(seed)


def bootstrap_ci(values: np.ndarray, *, statistic: Callable[[np.ndarray], float] = np.mean,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 groups: np.ndarray | None = None) -> Estimate:
    """Percentile bootstrap CI of ``statistic`` over the first axis of ``values``.

    ``groups`` (one label per row) resamples whole groups with all their rows (a cluster
    bootstrap: several seeds of one model are not independent draws); None resamples rows,
    as do singleton groups (the same draws). Resamples where the statistic is undefined (NaN,
    e.g. a rank correlation of tied values) are left out of the interval; if all are, the
    interval is NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    _check_resampling(n_boot, level)
    seed = _check_seed(seed)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(f"bootstrap_ci needs an array of at least one value; got shape "
                         f"{values.shape}.")
    if not np.isfinite(values).all():
        raise ValueError("bootstrap_ci got NaN or inf values; drop failed samples first.")
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    else:
        members = _group_members(groups, values.shape[0])
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        idx = [np.concatenate([members[g] for g in row]) for row in draws]
    boots = np.array([statistic(values[i]) for i in idx])
    alpha = (1.0 - level) / 2.0
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha]) if boots.size else (np.nan, np.nan)
    return Estimate(float(statistic(values)), float(lo), float(hi), int(values.shape[0]))


def _group_members(groups: np.ndarray, n: int) -> list[np.ndarray]:
    """The row indices of each group, groups in order of first appearance."""
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must give one label per point ({n}); got shape "
                         f"{groups.shape}.")
    _, first, labels = np.unique(groups, return_index=True, return_inverse=True)
    return [np.flatnonzero(labels == g) for g in np.argsort(first)]


def below_alpha(p: float, level: float = 0.95) -> bool:
    """Whether an exact p (permutation or sign test) is below the one-sided (1 − level)/2; one
    equal to it is not, whatever the rounding (in floats (1 − 0.95)/2 is 0.025000000000000022,
    above an exact p of 18/720 = 0.025; distinct exact p values differ far more than this
    slack)."""
    return p < (1.0 - level) / 2.0 * (1.0 - 1e-9)


def min_testable_points(level: float = 0.95) -> int:
    """The fewest points on which the sign of an association (Spearman ρ, a fitted slope) can
    be tested at ``level``: the smallest n whose most extreme ordering has exact permutation
    p = 1/n! below (1 − level)/2 (5 at 0.95).

    With fewer, no ordering is significant, yet the percentile bootstrap CI of a perfect
    ordering excludes 0 (Spearman ρ: [1, 1]; every resample with two distinct points ranks
    them alike, and every line through two of them rises): a CI above 0 there is no evidence,
    so a verdict on it is not testable.
    """
    _check_resampling(1, level)
    n = 2
    while not below_alpha(1.0 / math.factorial(n), level):
        n += 1
    return n


def min_sign_pairs(level: float = 0.95) -> int:
    """The fewest independent pairs on which "every pair changes the same way" can be a test at
    ``level``: the smallest n whose sign-test p of all n changes on one side, 1/2ⁿ under no
    effect, is below (1 − level)/2 (6 at 0.95: 4 pairs all up happen 1 time in 16 by chance).
    Several rows of one pair of models (one per attack) are one pair: they share its models.
    """
    _check_resampling(1, level)
    n = 1
    while not below_alpha(0.5**n, level):
        n += 1
    return n


def min_permutation_p(x: np.ndarray, y: np.ndarray, sign: int = 1) -> float:
    """The smallest exact one-sided permutation p that any ordering of the points (``x``,
    ``y``) can reach, for a rank correlation or a fitted slope alike (finite 1-D arrays of
    equal length), on the side ``sign`` (+1: a rising association, -1: a falling one).

    The most extreme value of either statistic is reached only by the pairings that match the
    sorted x with the sorted y (any pair out of order can be swapped for a larger one; for a
    falling association, with the y sorted the other way: where both variables tie, the two
    sides can differ, and the rising side alone was counted), and
    these are Π mᵢ! · Π m'ⱼ! / Π c_ij! of the n! pairings (mᵢ, m'ⱼ: the sizes of the groups of
    tied x and of tied y; c_ij: how often the sorted matching pairs the i-th x value with the
    j-th y value): p = that count / n! — 1/n! without ties (as in
    :func:`min_testable_points`), Π mᵢ! / n! where only x ties. Where it is at least
    (1 − level)/2 no ordering is significant, so a CI beside 0 is no evidence either: 4 points
    on two levels (p ≥ 2!·2!/4! = 1/6), 5 models of which 4 tie (p ≥ 4!/5! = 0.2), 6 points
    tied 3/2/1 in x and in pairs in y (3!·2! · 2!·2!·2! / 2! = 48 of 720 pairings: p ≥ 1/15,
    not the 1/60 of x's ties alone).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"x and y must be 1-D of equal, non-zero length; got {x.shape} and "
                         f"{y.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("min_permutation_p got NaN or inf; drop those points first.")
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"sign must be 1 (rising) or -1 (falling); got {sign!r}.")

    def log_factorials(counts: np.ndarray) -> float:  # ln Π mᵢ!
        return sum(math.lgamma(m + 1) for m in counts)

    # (the larger count of the two variables alone undercounts where both have ties)
    y_sorted = np.sort(y) if sign == 1 else np.sort(y)[::-1]
    matched = np.unique(np.column_stack([np.sort(x), y_sorted]), axis=0, return_counts=True)[1]
    log_p = (log_factorials(np.unique(x, return_counts=True)[1])
             + log_factorials(np.unique(y, return_counts=True)[1])
             - log_factorials(matched) - math.lgamma(x.size + 1))
    return float(min(1.0, math.exp(log_p)))


def _centred(x: np.ndarray, y: np.ndarray, rank: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """``x`` and ``y`` (their average ranks with ``rank``) less their means, and the product of
    their norms (0 where either is constant)."""
    if rank:
        x, y = rankdata(x), rankdata(y)
    xc, yc = x - x.mean(), y - y.mean()
    return xc, yc, math.sqrt(float(xc @ xc) * float(yc @ yc))


def min_group_permutation_p(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
                            rank: bool = False, sign: int = 1,
                            n_resamples: int = 9999) -> float:
    """The smallest one-sided p that :func:`permutation_p` with ``groups`` (whole groups
    paired) can give for any pairing of these groups' ``x`` with their ``y``: the share of the
    k! group pairings whose statistic reaches the largest one (the smallest, ``sign`` -1) —
    1/k! where no two pairings tie, more where groups tie (sources whose points are all equal).
    Exact where k! is at most ``n_resamples``; above, :func:`min_permutation_p` of the points
    as if single (smaller than the exact value where whole groups tie). ``rank``: Spearman's
    ρ, as in :func:`permutation_p`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ValueError(f"sign must be 1 (rising) or -1 (falling); got {sign!r}.")
    blocks = _group_blocks(np.asarray(groups), x.size)
    k = blocks.shape[0]
    if math.factorial(k) > n_resamples:
        return min_permutation_p(x, y, sign)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("min_group_permutation_p got NaN or inf; drop those points first.")
    xc, yc, scale = _centred(x, y, rank)
    if scale == 0.0:
        return 1.0
    orders = np.array(list(itertools.permutations(range(k))), dtype=np.intp)
    stats_ = sign * (yc[blocks[orders].reshape(len(orders), -1)] @ xc[blocks.reshape(-1)])
    # as permutation_p: a pairing within float rounding of the most extreme counts as extreme
    return float((stats_ >= stats_.max() - 1e-12 * scale).sum() / len(orders))


def testable(x: np.ndarray, y: np.ndarray, level: float = 0.95, sign: int = 1) -> bool:
    """Whether some ordering of the points (``x``, ``y``) is significant at ``level`` (one-sided
    (1 − level)/2, what a CI beside 0 stands for) on the side ``sign`` of the claim (+1
    rising, -1 falling): :func:`min_permutation_p` below it. The tie-aware form of
    ``n >= min_testable_points(level)``."""
    _check_resampling(1, level)
    return below_alpha(min_permutation_p(x, y, sign), level)


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """``labels`` as an array of one label per point (``n``)."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"strata must give one label per point ({n}); got shape "
                         f"{labels.shape}.")
    return labels


def _group_blocks(groups: np.ndarray | None, n: int) -> np.ndarray:
    """Row indices (k, m): one row per group in order of first appearance, its m members in
    order; ``groups`` None makes every point its own group."""
    if groups is None:
        return np.arange(n).reshape(n, 1)
    members = _group_members(groups, n)
    sizes = {len(m) for m in members}
    if len(sizes) != 1:
        raise ValueError(f"permuting whole groups needs groups of equal size; got sizes "
                         f"{sorted(sizes)} (drop the points of incomplete groups first).")
    return np.stack(members)


def permutation_p(x: np.ndarray, y: np.ndarray, *, rank: bool = False,
                  alternative: Literal["two-sided", "greater", "less"] = "two-sided",
                  groups: np.ndarray | None = None, n_resamples: int = 9999,
                  seed: int = 0, strata: np.ndarray | None = None) -> float:
    """Permutation p of the association of ``x`` and ``y``: Pearson's r, or Spearman's ρ with
    ``rank`` (r of the average ranks), against the pairings of the same values.

    Exact (every pairing) where their number is at most ``n_resamples``; else Monte Carlo with
    ``n_resamples`` random pairings, p = (1 + as extreme) / (1 + n_resamples), never 0.
    ``alternative``: "greater" (a positive association), "less", or "two-sided"
    (2 × the smaller one-sided p, at most 1). A pairing as extreme as the observed one up to
    float rounding counts as extreme (ties in the statistic make p larger, not smaller).

    ``groups`` (one label per point) permutes whole groups instead of points: the points of
    group i keep their ``y`` values' order and take those of group j (equal group sizes) —
    the test for points that are not exchangeable one by one (several seeds of one model).
    A slope's sign test is the Pearson test: the pairings keep both spreads.
    ``strata`` (one label per point) pairs points only within a stratum (Monte Carlo): the
    test for points that share effects by stratum (models of one architecture family), whose
    association across strata may be their families' alone -- the pairings keep every
    stratum's values, so only an association within strata is evidence. Not with ``groups``.
    Returns p in (0, 1]; 1 where ``x`` or ``y`` is constant.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2; got {x.shape} and "
                         f"{y.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("permutation_p got NaN or inf; drop those points first.")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less'; got "
                         f"{alternative!r}.")
    _check_resampling(n_resamples, 0.5, "n_resamples")
    seed = _check_seed(seed)
    if not isinstance(rank, bool | np.bool_):  # (as advlens.checks.check_bool; no torch here)
        raise TypeError(f"rank must be True or False; got {rank!r} ({type(rank).__name__}): "
                        "a string such as 'False' would read as True.")
    xc, yc, scale = _centred(x, y, rank)
    if scale == 0.0:
        return 1.0
    # Σ xc·yc up to a constant factor: the pairings keep both spreads
    observed = float(xc @ yc)
    if strata is not None:
        if groups is not None:
            raise ValueError("pass groups= (whole groups paired) or strata= (points paired "
                             "within a stratum), not both.")
        labels = np.unique(_check_labels(strata, x.size), return_inverse=True)[1]
        rng = np.random.default_rng(seed)
        # a random order inside each stratum, strata in a fixed order: point base[j] takes
        # the y of order[:, j], a point of its own stratum
        base = np.argsort(labels, kind="stable")
        order = np.argsort(labels + 0.5 * rng.random((n_resamples, x.size)), axis=1)
        pairing = np.empty_like(order)
        pairing[:, base] = order
        stats_ = yc[pairing] @ xc
        count, orders = 1, pairing
    else:
        blocks = _group_blocks(groups, x.size)
        k = blocks.shape[0]
        if math.factorial(k) <= n_resamples:
            orders = np.array(list(itertools.permutations(range(k))), dtype=np.intp)
            count = 0
        else:
            rng = np.random.default_rng(seed)
            orders = np.argsort(rng.random((n_resamples, k)), axis=1)
            count = 1  # the observed pairing, as one of 1 + n_resamples
        stats_ = yc[blocks[orders].reshape(len(orders), -1)] @ xc[blocks.reshape(-1)]
    slack = 1e-12 * scale
    greater = (count + int((stats_ >= observed - slack).sum())) / (count + len(orders))
    less = (count + int((stats_ <= observed + slack).sum())) / (count + len(orders))
    if alternative == "greater":
        return float(greater)
    if alternative == "less":
        return float(less)
    return float(min(1.0, 2.0 * min(greater, less)))


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = slope * x + intercept`` with bootstrap CIs over points.

    ``boots`` holds the (slope, intercept) of every bootstrap refit (resamples with a single
    distinct x are skipped), ``level`` the confidence level of the CIs and of :meth:`band`.
    If every resample was skipped, ``boots`` is empty and the CIs are NaN (as in
    :func:`bootstrap_ci`). ``min_p``: :func:`min_permutation_p` of the fitted points on the
    rising side (NaN when not given); see :attr:`testable` — a claim of a rising slope, as
    every caller's is (a falling one would need ``min_permutation_p(x, y, -1)``). ``p``: the
    two-sided permutation p of the slope (:func:`permutation_p`, Pearson's r: the pairings keep
    both spreads; NaN when not given).
    """

    slope: Estimate
    intercept: Estimate
    r2: float
    n: int
    level: float = 0.95
    boots: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False,
                              compare=False)
    min_p: float = field(default=float("nan"), compare=False)
    p: float = field(default=float("nan"), compare=False)

    @property
    def testable(self) -> bool:
        """Whether some ordering of the fitted points has a significant slope at ``level``
        (:func:`testable`); where not, a slope CI beside 0 is no evidence. True when ``min_p``
        was not given."""
        return math.isnan(self.min_p) or below_alpha(self.min_p, self.level)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The fitted line at ``x``."""
        return self.slope.value * np.asarray(x) + self.intercept.value

    def band(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise percentile-bootstrap band (lo, hi) of the line at ``x``.

        Returns two arrays shaped like ``x``: the ``level`` band of the bootstrap lines.
        """
        if self.boots.shape[0] == 0:
            raise ValueError("no bootstrap refits to draw a band from: every resample had a "
                             "single distinct x; fit with a larger n_boot or more points with "
                             "distinct x values.")
        x = np.asarray(x, dtype=np.float64)
        lines = self.boots[:, :1] * x.reshape(1, -1) + self.boots[:, 1:]
        alpha = (1.0 - self.level) / 2.0
        lo, hi = np.quantile(lines, [alpha, 1.0 - alpha], axis=0)
        return lo.reshape(x.shape), hi.reshape(x.shape)


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    # equal y have no spread to explain; their float mean need not equal them, which left a
    # rounding-noise total (R² 1.0 or −2.6)
    r2 = 1.0 - (residual**2).sum() / total if total > 0 and np.ptp(y) > 0 else float("nan")
    return float(slope), float(intercept), float(r2)


def linear_fit(x: np.ndarray, y: np.ndarray, *, n_boot: int = 2000, level: float = 0.95,
               seed: int = 0) -> LinearFit:
    """Fit a line and bootstrap (resampling points) the slope and intercept.

    The one bootstrap line fit of the package: every scaling law and prediction band uses it.
    Returns a :class:`LinearFit` (CIs at ``level``; :meth:`LinearFit.band` for a band). Resamples
    with a single distinct x cannot be refitted and are skipped; if all are (few points, small
    ``n_boot``), the CIs are NaN: increase ``n_boot`` or add points with distinct x.
    :attr:`LinearFit.testable` says whether the points can test the slope's sign at all,
    :attr:`LinearFit.p` whether these do (exact permutation test up to 7 points).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _check_resampling(n_boot, level)
    seed = _check_seed(seed)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length; got {x.shape} and {y.shape}.")
    for name, values in (("x", x), ("y", y)):
        if not np.isfinite(values).all():
            raise ValueError(f"linear_fit got NaN or inf in {name} (at positions "
                             f"{np.flatnonzero(~np.isfinite(values))[:5].tolist()}); drop those "
                             "points first.")
    if x.shape[0] < 3 or np.ptp(x) == 0:
        raise ValueError("a linear fit needs at least 3 points with distinct x values.")
    slope, intercept, r2 = _fit_line(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, x.shape[0], size=x.shape[0])
        if np.ptp(x[i]) > 0:
            boots.append(_fit_line(x[i], y[i])[:2])
    b = np.array(boots, dtype=np.float64).reshape(-1, 2)
    alpha = (1.0 - level) / 2.0
    if b.shape[0] == 0:  # no refit to take quantiles of; NaN as bootstrap_ci gives
        q = np.full((2, 2), np.nan)
    else:
        q = np.quantile(b, [alpha, 1.0 - alpha], axis=0)
    n = x.shape[0]
    return LinearFit(Estimate(slope, q[0, 0], q[1, 0], n), Estimate(intercept, q[0, 1], q[1, 1], n),
                     r2, n, level, b, min_permutation_p(x, y), permutation_p(x, y, seed=seed))
