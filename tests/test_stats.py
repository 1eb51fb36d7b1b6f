"""advlens.stats edge cases (the main checks are in test_core.py and test_input_errors.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as sps

from advlens import stats


def test_linear_fit_with_every_resample_degenerate_gives_nan_cis() -> None:
    """x=[0,0,1], n_boot=1, seed=4: the one resample has a single distinct x (checked here by
    drawing it with the same generator), so no refit exists; the CIs are NaN, as bootstrap_ci
    gives when every resample is undefined, and the point fit is still numpy's least squares."""
    x, y = np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, 3.0])
    draw = np.random.default_rng(4).integers(0, 3, size=3)
    assert np.ptp(x[draw]) == 0
    fit = stats.linear_fit(x, y, n_boot=1, seed=4)
    assert fit.boots.shape == (0, 2)
    for est in (fit.slope, fit.intercept):
        assert np.isnan(est.lo) and np.isnan(est.hi) and est.n == 3
    assert fit.slope.value == pytest.approx(1.5, rel=1e-12)  # closed form: (3 - 1.5) / (1 - 0)
    assert fit.intercept.value == pytest.approx(1.5, rel=1e-12)
    with pytest.raises(ValueError, match=r"single distinct x.*larger n_boot"):
        fit.band(np.array([0.0, 1.0]))


@pytest.mark.parametrize("n", [5, 10, 18])
def test_linear_fit_of_equal_y_has_no_r2(n: int) -> None:
    """Equal y (every model's distortion 0.02) leave nothing to explain: R² is NaN at every n
    (the float mean of ten 0.02s is not 0.02: R² read −2.6 at n = 10 and 1.0 at n = 18)."""
    fit = stats.linear_fit(np.log(np.geomspace(0.01, 0.3, n)), np.full(n, 0.02), n_boot=20)
    assert np.isnan(fit.r2) and abs(fit.slope.value) < 1e-15


def test_linear_fit_r2_and_line_of_small_values_match_scipy() -> None:
    """y in the units of a distortion (spread < 1, sum of squares < 1): R² is scipy's r² and
    unchanged by rescaling y; predict is the fitted line at new x (np.polyval)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1.0, 1.0, 12)
    y = 0.02 + 0.01 * x + rng.normal(0.0, 0.003, 12)
    assert np.ptp(y) < 1 and ((y - y.mean()) ** 2).sum() < 1
    fit = stats.linear_fit(x, y, n_boot=10)
    ref = sps.linregress(x, y)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert stats.linear_fit(x, 1e3 * y, n_boot=10).r2 == pytest.approx(fit.r2, rel=1e-10)
    grid = np.array([[-2.0, 0.0], [0.5, 3.0]])
    np.testing.assert_allclose(fit.predict(grid), np.polyval([ref.slope, ref.intercept], grid),
                               rtol=1e-10, atol=0)


def test_linear_fit_is_reproducible_and_comparable() -> None:
    """The same data and seed give an equal fit (== works: the bootstrap array is left out of
    the comparison), and a fit built without refits refuses a band."""
    x, y = np.arange(6.0), np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.7])
    a, b = stats.linear_fit(x, y, n_boot=50, seed=1), stats.linear_fit(x, y, n_boot=50, seed=1)
    assert a == b
    np.testing.assert_array_equal(a.boots, b.boots)
    bare = stats.LinearFit(a.slope, a.intercept, a.r2, a.n)
    assert bare.boots.shape == (0, 2)
    with pytest.raises(ValueError, match="no bootstrap refits"):
        bare.band(x)


@pytest.mark.parametrize(("level", "expected"), [(0.95, 5), (0.9, 4), (0.99, 6)])
def test_min_testable_points_is_where_a_perfect_order_becomes_significant(level: float,
                                                                       expected: int) -> None:
    """scipy's exact permutation test of a perfect ordering (p = 1/n!) against the one-sided
    (1 − level)/2 that a CI above 0 stands for: significant from ``expected`` points on."""
    def exact_p(n: int) -> float:
        x = np.arange(n, dtype=float)
        return sps.permutation_test((x,), lambda a: sps.spearmanr(a, x).statistic,  # n! orders
                                    permutation_type="pairings", alternative="greater").pvalue

    assert stats.min_testable_points(level) == expected
    assert exact_p(expected) == pytest.approx(1 / math.factorial(expected))
    assert exact_p(expected) < (1 - level) / 2 <= exact_p(expected - 1)
    with pytest.raises(ValueError, match="level"):
        stats.min_testable_points(95)


def _extreme_p(x: np.ndarray, y: np.ndarray, statistic) -> float:  # noqa: ANN001
    """Exact one-sided permutation p of the most extreme pairing, by enumerating all n!."""
    import itertools

    values = np.array([statistic(x, y[list(q)]) for q in itertools.permutations(range(len(y)))])
    return float(np.mean(values >= values.max() - 1e-12))


@pytest.mark.parametrize(("x", "y"), [
    ([0.0, 0.0, 0.5, 0.5], [0.2, 0.25, 0.4, 0.45]),  # two levels, two points each
    ([0.9, 0.9, 0.9, 0.9, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5]),  # four models tie
    ([0.1, 0.1, 0.1, 0.2, 0.3], [0.5, 0.51, 0.52, 0.6, 0.7]),  # three tied errors
    ([0.0, 0.0, 0.5, 0.5, 1.0, 1.0], [0.2, 0.21, 0.4, 0.41, 0.6, 0.61]),  # 3 levels x 2
    ([3.0, 1.0, 2.0, 5.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0]),  # no ties: 1/5!
    # ties in both: 48 of the 720 pairings reach the top (p = 1/15), not x's 12 (1/60, which
    # read "testable")
    ([0.9, 0.9, 0.9, 0.95, 0.95, 0.99], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]),
    ([0.0, 0.0, 1.0, 1.0, 2.0], [0.1, 0.2, 0.2, 0.3, 0.3]),
])
def test_min_permutation_p_is_the_exact_p_of_the_most_extreme_ordering(x: list, y: list) -> None:
    """Ties cut the distinct orderings: 4 points on two levels have p ≥ 1/6, 5 models of which
    4 tie p ≥ 0.2 (all n! pairings enumerated, for Spearman ρ and the least-squares slope
    alike); the guards counted points only, so their CIs above 0 read 'holds'."""
    x, y = np.array(x), np.array(y)
    spearman = _extreme_p(x, y, lambda a, b: sps.spearmanr(a, b).statistic)
    slope = _extreme_p(x, y, lambda a, b: sps.linregress(a, b).slope)
    assert stats.min_permutation_p(x, y) == pytest.approx(spearman) == pytest.approx(slope)
    assert stats.testable(x, y) == (spearman < 0.025)
    fit = stats.linear_fit(x, y, n_boot=50)
    assert fit.min_p == pytest.approx(slope) and fit.testable == (slope < 0.025)


@pytest.mark.parametrize(("x", "y"), [
    # the reviewer's two: testable read False though p = 0.029 is reached falling, and True
    # though the most negative ordering only reaches p = 0.067
    ([0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 0.0]),
    ([0.0, 1.0, 1.0, 2.0, 3.0, 3.0], [3.0, 3.0, 2.0, 1.0, 1.0, 1.0]),
    ([0.9, 0.9, 0.9, 0.95, 0.95, 0.99], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]),
    ([3.0, 1.0, 2.0, 5.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0]),
])
def test_min_permutation_p_of_a_falling_claim_is_the_exact_p_of_the_most_negative_ordering(
        x: list, y: list) -> None:
    """Where both variables tie, the most negative ordering can be reached by other counts of
    pairings than the most positive: only the rising side was counted, so Linsley et al.'s
    falling claim (alignment) read untestable where p 0.029 is reachable, and testable where
    only 0.067 is (all n! pairings enumerated, Spearman ρ)."""
    x, y = np.array(x), np.array(y)
    falling = _extreme_p(x, y, lambda a, b: -sps.spearmanr(a, b).statistic)
    rising = _extreme_p(x, y, lambda a, b: sps.spearmanr(a, b).statistic)
    assert stats.min_permutation_p(x, y, sign=-1) == pytest.approx(falling)
    assert stats.min_permutation_p(x, y) == pytest.approx(rising)
    assert stats.testable(x, y, sign=-1) == (falling < 0.025)
    with pytest.raises(ValueError, match="sign must be 1"):
        stats.min_permutation_p(x, y, sign=0)


def test_testable_without_ties_is_min_testable_points() -> None:
    for level in (0.9, 0.95, 0.99):
        n = stats.min_testable_points(level)
        assert stats.testable(np.arange(n), np.arange(n), level)
        assert not stats.testable(np.arange(n - 1), np.arange(n - 1), level)
    assert stats.min_permutation_p(np.ones(4), np.arange(4)) == 1.0  # constant: no ordering
    with pytest.raises(ValueError, match="NaN"):
        stats.min_permutation_p(np.array([0.0, np.nan]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="equal"):
        stats.min_permutation_p(np.arange(3), np.arange(4))


def test_bootstrap_ci_leaves_out_resamples_where_the_statistic_is_undefined() -> None:
    """Spearman ρ of a resample whose x values tie is NaN (scipy); such resamples are left out
    of the interval, as the docstring says: the interval is the quantile of the defined ones,
    drawn here by hand with the same generator. Kept, they made the whole interval NaN."""
    pairs = np.array([[0.0, 0.1], [1.0, 0.3], [2.0, 0.2], [3.0, 0.5], [4.0, 0.4]])

    def rho(v: np.ndarray) -> float:
        if np.ptp(v[:, 0]) == 0 or np.ptp(v[:, 1]) == 0:
            return float("nan")
        return float(sps.spearmanr(v[:, 0], v[:, 1]).statistic)

    est = stats.bootstrap_ci(pairs, statistic=rho, n_boot=400, level=0.9, seed=3)
    idx = np.random.default_rng(3).integers(0, 5, size=(400, 5))
    boots = np.array([rho(pairs[i]) for i in idx])
    assert 0 < np.isnan(boots).sum() < 400  # some resamples are undefined, not all
    defined = boots[np.isfinite(boots)]
    assert est.value == pytest.approx(sps.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
    assert (est.lo, est.hi) == pytest.approx(tuple(np.quantile(defined, [0.05, 0.95])), abs=1e-12)


@pytest.mark.parametrize("rank", [False, True])
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_permutation_p_is_scipys_exact_test_and_near_its_monte_carlo_one(
        rank: bool, alternative: str) -> None:
    """Exact (n! ≤ n_resamples) against scipy's permutation_test over every pairing, ties
    included (a tied statistic counts as extreme); Monte Carlo (n = 14) within sampling error
    of scipy's with 10⁵ resamples."""
    rng = np.random.default_rng(5)
    for n in (4, 6, 7):
        x = rng.integers(0, 4, n).astype(float)  # ties in x and y
        y = x + rng.integers(0, 3, n)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue

        def statistic(v: np.ndarray, x: np.ndarray = x) -> float:
            return (sps.spearmanr(x, v).statistic if rank else
                    sps.pearsonr(x, v).statistic)
        exact = sps.permutation_test((y,), statistic, permutation_type="pairings",
                                             alternative=alternative, n_resamples=np.inf).pvalue
        assert stats.permutation_p(x, y, rank=rank, alternative=alternative) == \
            pytest.approx(exact, rel=1e-12)
    x = rng.normal(size=14)
    y = 0.4 * x + rng.normal(size=14)

    def statistic14(v: np.ndarray) -> float:
        return (sps.spearmanr(x, v).statistic if rank else
                sps.pearsonr(x, v).statistic)
    reference = sps.permutation_test((y,), statistic14, permutation_type="pairings",
                                             alternative=alternative, n_resamples=100_000,
                                             random_state=1).pvalue
    ours = stats.permutation_p(x, y, rank=rank, alternative=alternative, n_resamples=20_000)
    assert abs(ours - reference) < 4 * math.sqrt(reference * (1 - reference) / 20_000) + 1e-3


def test_permutation_p_of_whole_groups_against_every_pairing_by_hand() -> None:
    """Groups of three points (a model's seeds) are permuted as blocks, seed by seed; singleton
    groups are the point test; unequal groups are refused."""
    rng = np.random.default_rng(6)
    group = np.repeat(np.arange(5), 3)
    x = rng.normal(size=5)[group] + rng.normal(0, 0.3, 15)
    y = x + rng.normal(0, 1.0, 15)
    observed = float(np.corrcoef(x, y)[0, 1])
    moved = []
    for order in itertools.permutations(range(5)):
        z = np.empty(15)
        for i, j in enumerate(order):  # group i's x with group j's y, seed by seed
            z[group == i] = y[group == j]
        moved.append(np.corrcoef(x, z)[0, 1])
    moved = np.array(moved)
    assert stats.permutation_p(x, y, groups=group, alternative="greater") == \
        pytest.approx((moved >= observed - 1e-12).mean())
    assert stats.permutation_p(x, y, groups=group, alternative="less") == \
        pytest.approx((moved <= observed + 1e-12).mean())
    point = stats.permutation_p(x[:7], y[:7])
    assert stats.permutation_p(x[:7], y[:7], groups=np.arange(7)) == point
    with pytest.raises(ValueError, match="equal size"):
        stats.permutation_p(x[:14], y[:14], groups=group[:14])
    with pytest.raises(ValueError, match="one label per point"):
        stats.permutation_p(x, y, groups=group[:3])


def test_permutation_p_is_exact_at_its_level_under_the_null() -> None:
    """Without association the test rejects at most as often as its level (exact, n = 5: only
    a perfect order reaches p = 1/120 < 0.025), where a percentile bootstrap CI of ρ excludes 0
    far more often; constant values give p = 1; p is never 0 by Monte Carlo."""
    rng = np.random.default_rng(7)
    draws = [rng.normal(size=(2, 5)) for _ in range(600)]
    rate = np.mean([stats.permutation_p(a, b, rank=True, alternative="greater") < 0.025
                    for a, b in draws])
    assert rate < 0.025
    assert stats.permutation_p(np.ones(5), np.arange(5.0)) == 1.0
    x = np.arange(30.0)
    assert stats.permutation_p(x, x, n_resamples=99) == pytest.approx(2 / 100)
    with pytest.raises(ValueError, match="alternative"):
        stats.permutation_p(x, x, alternative="greater-than")
    with pytest.raises(ValueError, match=r"n_resamples must be an int >= 1; got 10000\.0"):
        stats.permutation_p(x, x, n_resamples=1e4)  # named as passed (was "n_boot")


def test_bootstrap_ci_of_groups_draws_whole_groups() -> None:
    """Each group repeated three times: resampling groups is resampling the distinct rows (the
    same draws, the same means); singleton groups are the point bootstrap."""
    rng = np.random.default_rng(8)
    distinct = rng.normal(size=(9, 2))
    repeated = np.repeat(distinct, 3, axis=0)

    def mean0(v: np.ndarray) -> float:
        return float(v[:, 0].mean())
    by_group = stats.bootstrap_ci(repeated, statistic=mean0, n_boot=300, seed=2,
                                  groups=np.repeat(np.arange(9), 3))
    by_row = stats.bootstrap_ci(distinct, statistic=mean0, n_boot=300, seed=2)
    assert (by_group.lo, by_group.hi) == pytest.approx((by_row.lo, by_row.hi), rel=1e-12)
    assert by_group.n == 27
    assert stats.bootstrap_ci(distinct, statistic=mean0, n_boot=300, seed=2,
                              groups=np.arange(9)) == by_row
    # a point bootstrap of the repeated rows is narrower: it treats copies as draws
    naive = stats.bootstrap_ci(repeated, statistic=mean0, n_boot=300, seed=2)
    assert naive.hi - naive.lo < by_group.hi - by_group.lo


def test_testable_is_false_where_the_most_extreme_p_equals_the_level() -> None:
    """Six points, x tied 3/1/1/1 and y tied 1/3/1/1: the sorted pairing is the most extreme,
    and scipy's exact one-sided p of it is 3!·3!/2!/6! = 18/720 = 0.025 -- not below 0.025, so
    no ordering is significant (two-sided p 0.05, not below 0.05): not testable. It read
    testable ((1 - 0.95)/2 is 0.025000000000000022 in floats), so a verdict on such points
    said 'does not hold' where it cannot be tested."""
    x, y = np.array([0, 0, 0, 1, 2, 3.0]), np.array([0, 1, 1, 1, 2, 3.0])
    exact = sps.permutation_test((y,), lambda v: sps.pearsonr(x, v).statistic,
                                 permutation_type="pairings", alternative="greater").pvalue
    assert exact == pytest.approx(18 / 720, rel=1e-12)
    assert stats.min_permutation_p(x, y) == pytest.approx(exact, rel=1e-12)
    assert not stats.testable(x, y)
    assert not stats.linear_fit(x, y, n_boot=50).testable
    assert stats.permutation_p(x, y) == pytest.approx(2 * exact)
    # one tie fewer in y: 3!·2!/720 = 1/60 < 0.025, testable
    assert stats.testable(x, np.array([0, 1, 1, 2, 3, 4.0]))
    assert stats.min_testable_points() == 5


def test_permutation_p_refuses_bad_points_and_is_exact_up_to_n_resamples() -> None:
    """x and y of unequal length, 2-D or of one point, and NaN in either one are refused; with
    exactly k! = n_resamples pairings the test is exact (scipy's, every pairing), not a Monte
    Carlo draw of them."""
    x = np.arange(5.0)
    for a, b in ((x, x[:4]), (x.reshape(1, 5), x.reshape(1, 5)), (x[:1], x[:1])):
        with pytest.raises(ValueError, match="1-D of equal length >= 2"):
            stats.permutation_p(a, b)
    bad = x.copy()
    bad[2] = np.nan
    for a, b in ((x, bad), (bad, x)):
        with pytest.raises(ValueError, match="NaN or inf"):
            stats.permutation_p(a, b)
    y = np.array([0.3, 0.1, 0.5, 0.4, 0.9])
    exact = sps.permutation_test((y,), lambda v: sps.pearsonr(x, v).statistic,
                                 permutation_type="pairings", alternative="two-sided").pvalue
    assert stats.permutation_p(x, y, n_resamples=120) == pytest.approx(exact, rel=1e-12)


def test_permutation_p_does_not_depend_on_an_offset_of_the_values() -> None:
    """A pairing's statistic Σ xc·yc ignores any constant added to x or y, so p does too: with
    1e11 added to integer y (exact in float64) p is the exact count over the 720 pairings done
    here by hand (a rounding slack scaled by the uncentred values, 2e-11 × 1e11, counted
    pairings 1 or 2 below the observed one as ties: p grew)."""
    x = np.arange(6.0)
    y = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 4.0])
    observed = x @ (y - y.mean())
    moved = np.array([x @ (y[list(order)] - y.mean())
                      for order in itertools.permutations(range(6))])
    greater, less = (moved >= observed).mean(), (moved <= observed).mean()
    assert 0 < greater < 0.05  # a count the slack could inflate
    for offset in (0.0, 1e11):
        assert stats.permutation_p(x, y + offset, alternative="greater") == greater
        assert stats.permutation_p(x + offset, y + offset, alternative="less") == less
        assert stats.permutation_p(x, y + offset, rank=True) == 2 * greater


def test_permutation_p_of_ranks_is_spearmans_exact_test() -> None:
    """``rank=True`` permutes the average ranks (scipy's rankdata): with an outlying x its count
    over the 720 pairings, done here by hand, differs from Pearson's on the values."""
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 40.0])
    y = np.array([1.0, 0.0, 2.0, 4.0, 5.0, 3.0])

    def exact(a: np.ndarray, b: np.ndarray) -> float:
        b = b - b.mean()
        moved = np.array([a @ b[list(o)] for o in itertools.permutations(range(6))])
        return float((moved >= a @ b - 1e-9).mean())

    spearman, pearson = exact(sps.rankdata(x), sps.rankdata(y)), exact(x, y)
    assert spearman != pearson
    assert stats.permutation_p(x, y, rank=True, alternative="greater") == \
        pytest.approx(spearman, rel=1e-12)
    assert stats.permutation_p(x, y, alternative="greater") == pytest.approx(pearson, rel=1e-12)


def test_linear_fit_takes_lists_and_is_frozen() -> None:
    """Plain lists fit as arrays do; the fit is immutable (a frozen dataclass)."""
    import dataclasses

    x, y = [0.0, 1.0, 2.0, 3.0, 5.0], [0.1, 0.9, 2.2, 2.8, 5.3]
    fit = stats.linear_fit(x, y, n_boot=50)
    assert fit == stats.linear_fit(np.array(x), np.array(y), n_boot=50)
    assert fit.slope.value == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.r2 = 0.0  # type: ignore[misc]


def test_permutation_p_strata_pairs_points_only_within_a_stratum() -> None:
    """strata= pairs y only within each stratum: checked against every one of the 4!·3!
    within-stratum pairings enumerated here (Monte Carlo, so to about 0.01); two strata whose
    association is theirs alone (within each y falls) have a large "greater" p, where the
    points paired freely give a small one."""
    import itertools

    from advlens.stats import permutation_p

    x = np.array([0.1, 0.2, 0.3, 0.4, 1.1, 1.2, 1.3])
    y = np.array([0.4, 0.3, 0.35, 0.1, 2.0, 1.9, 1.95])
    strata = np.array([0, 0, 0, 0, 1, 1, 1])
    xc, yc = x - x.mean(), y - y.mean()
    observed = xc @ yc
    sums = np.array([xc @ yc[list(a) + [4 + i for i in b]]
                     for a in itertools.permutations(range(4))
                     for b in itertools.permutations(range(3))])
    exact = (sums >= observed - 1e-12).mean()
    p = permutation_p(x, y, alternative="greater", strata=strata)
    assert p == pytest.approx(exact, abs=0.01) and p > 0.5
    assert permutation_p(x, y, alternative="greater") < 0.05
    with pytest.raises(ValueError, match="not both"):
        permutation_p(x, y, strata=strata, groups=strata)
    with pytest.raises(ValueError, match="one label per point"):
        permutation_p(x, y, strata=strata[:3])


@pytest.mark.parametrize("case", range(6))
def test_min_group_permutation_p_is_the_smallest_p_of_any_pairing_of_the_groups(case: int) -> None:
    """Brute force: every pairing of the groups' x with their y, the grouped test's one-sided
    p of each (permutation_p), the smallest of them -- with whole groups tied in some cases."""
    rng = np.random.default_rng(case)
    k, m = 4 + case % 2, 2 + case % 3
    x = rng.normal(size=(k, m))
    y = rng.normal(size=(k, m))
    if case >= 2:  # groups constant and tied, as sources at chance in every seed
        y[: 2 + case % 2] = 0.2
    groups = np.repeat(np.arange(k), m)
    for sign, side in ((1, "greater"), (-1, "less")):
        smallest = min(stats.permutation_p(x.ravel(), y[list(p)].ravel(), rank=True,
                                           groups=groups, alternative=side)
                       for p in itertools.permutations(range(k)))
        got = stats.min_group_permutation_p(x.ravel(), y.ravel(), groups, rank=True, sign=sign)
        assert got == pytest.approx(smallest)
    if case >= 2:  # ties of whole groups: more than one pairing reaches the extreme
        assert got > 1 / math.factorial(k)
    else:
        assert got == pytest.approx(1 / math.factorial(k))
