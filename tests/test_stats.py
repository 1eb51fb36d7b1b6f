"""advlens.stats edge cases (the main checks are in test_core.py and test_input_errors.py)."""

from __future__ import annotations

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
