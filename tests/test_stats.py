"""advlens.stats edge cases (the main checks are in test_core.py and test_input_errors.py)."""

from __future__ import annotations

import numpy as np
import pytest

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
