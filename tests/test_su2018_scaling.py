"""advlens.papers.su2018: distortion over successful examples and the log-error scaling law."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from advlens.attacks import AttackResult
from advlens.papers.su2018 import distortion, distortion_table, scaling_law, scaling_laws


def _result(norms: list[float], success: list[bool]) -> AttackResult:
    n = len(norms)
    return AttackResult(torch.zeros(n, 1, 2, 2), torch.tensor(norms, dtype=torch.float64),
                        torch.tensor(success), passes=1)


def test_distortion_averages_successful_examples_only() -> None:
    d = distortion(_result([1.0, 3.0, float("inf"), 5.0], [True, True, False, True]))
    assert d.mean.value == pytest.approx(3.0) and d.mean.n == 3
    assert d.success_rate == pytest.approx(0.75) and d.attempts == 4
    assert d.mean.lo <= 3.0 <= d.mean.hi
    none = distortion(np.array([np.inf, np.inf]), np.array([False, False]))
    assert np.isnan(none.mean.value) and none.success_rate == 0.0
    with pytest.raises(ValueError, match="success flags"):
        distortion(np.array([1.0]))


def test_scaling_law_recovers_a_known_line() -> None:
    rng = np.random.default_rng(0)
    errors = np.exp(rng.uniform(np.log(0.01), np.log(0.4), size=30))
    dist = 0.3 * np.log(errors) + 2.0 + rng.normal(0, 0.01, size=30)
    fit = scaling_law(dist, errors, n_boot=500)
    assert fit.slope.value == pytest.approx(0.3, abs=0.01)
    assert fit.intercept.value == pytest.approx(2.0, abs=0.03)
    assert fit.slope.lo < 0.3 < fit.slope.hi and fit.r2 > 0.99
    exact = scaling_law(0.3 * np.log(errors) + 2.0, errors, n_boot=50)
    assert exact.slope.value == pytest.approx(0.3, abs=1e-10) and exact.r2 == pytest.approx(1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        scaling_law([1.0, 2.0, 3.0], [0.1, 0.0, 0.2])


def test_scaling_laws_per_attack_and_norm() -> None:
    errors = np.array([0.02, 0.05, 0.1, 0.2])
    rows = []
    for attack, norm, a, b in (("cw", "l2", 0.5, 3.0), ("ifgsm", "linf", 0.02, 0.2)):
        for i, e in enumerate(errors):
            rows.append({"model": f"m{i}", "attack": attack, "norm": norm, "top1_error": e,
                         "distortion": a * np.log(e) + b})
    rows.append({"model": "m9", "attack": "ead", "norm": "l1", "top1_error": 0.1,
                 "distortion": 1.0})
    out = scaling_laws(pd.DataFrame(rows), n_boot=100).set_index("attack")
    assert out.loc["cw", "slope"] == pytest.approx(0.5)
    assert out.loc["ifgsm", "intercept"] == pytest.approx(0.2)
    assert out.loc["ead", "n_models"] == 1 and np.isnan(out.loc["ead", "slope"])


def test_scaling_laws_refuses_a_model_twice_in_a_group() -> None:
    """attack_suite's table with target modes pooled the modes into one law (n_models 8)."""
    errors = np.array([0.02, 0.05, 0.1, 0.2])
    table = pd.DataFrame([{"model": f"m{i}", "attack": "cw", "mode": mode, "norm": "l2",
                           "top1_error": e, "distortion": a * np.log(e) + 2}
                          for mode, a in (("untargeted", 0.3), ("top-2", -0.2))
                          for i, e in enumerate(errors)])
    with pytest.raises(ValueError, match=r"model 'm0' has several rows in group \('cw', 'l2'\)"):
        scaling_laws(table, n_boot=50)
    per_mode = scaling_laws(table, by=("attack", "norm", "mode"), n_boot=50).set_index("mode")
    assert per_mode.loc["untargeted", "slope"] == pytest.approx(0.3)
    assert (per_mode["n_models"] == 4).all()


def test_distortion_table_rows() -> None:
    res = {("a", "cw"): _result([1.0, 2.0], [True, True]),
           ("b", "cw"): _result([2.0, float("inf")], [True, False])}
    df = distortion_table(res, {"a": 0.1, "b": 0.2}, n_boot=50)
    assert list(df["distortion"]) == [1.5, 2.0] and list(df["success_rate"]) == [1.0, 0.5]
    with pytest.raises(ValueError, match="no top-1 error"):
        distortion_table(res, {"a": 0.1})


def test_distortion_table_takes_attack_suites_keys() -> None:
    """attack_suite keys its results (model, attack, mode): distortion_table crashed on them
    ("too many values to unpack"); it now keeps the mode as a column."""
    norms = {"untargeted": [1.0, 3.0, float("inf")], "random": [2.0, 6.0, 7.0]}
    flags = {"untargeted": [True, True, False], "random": [True, False, True]}
    res = {("a", "cw", mode): _result(norms[mode], flags[mode]) for mode in norms}
    df = distortion_table(res, {"a": 0.1}, n_boot=50)
    assert list(df["mode"]) == ["untargeted", "random"]
    for row in df.itertuples():
        n, ok = np.array(norms[row.mode]), np.array(flags[row.mode])
        assert row.distortion == pytest.approx(n[ok].mean()) and row.success_rate == ok.mean()
    with pytest.raises(ValueError, match=r"keyed by \(model, attack\)"):
        distortion_table({"a": _result([1.0], [True])}, {"a": 0.1})


def test_prediction_band_contains_the_true_line() -> None:
    from advlens.papers.su2018 import prediction_band

    rng = np.random.default_rng(1)
    errors = np.exp(rng.uniform(np.log(0.01), np.log(0.4), size=40))
    dist = 0.3 * np.log(errors) + 2.0 + rng.normal(0, 0.02, size=40)
    grid = np.array([0.02, 0.1, 0.3])
    lo, hi = prediction_band(dist, errors, grid, n_boot=300)
    truth = 0.3 * np.log(grid) + 2.0
    assert (lo <= truth).all() and (truth <= hi).all() and (hi - lo < 0.05).all()


def test_prediction_band_is_the_scaling_laws_bootstrap() -> None:
    """The band comes from the very refits behind scaling_law's CIs: at the fitted errors'
    geometric mean the band's width matches a hand loop over the same resamples."""
    from advlens.papers.su2018 import prediction_band

    rng = np.random.default_rng(2)
    errors = np.exp(rng.uniform(np.log(0.02), np.log(0.5), size=9))
    dist = 0.2 * np.log(errors) + 1.0 + rng.normal(0, 0.05, size=9)
    grid = np.array([0.03, 0.2])
    lo, hi = prediction_band(dist, errors, grid, n_boot=200, seed=3)
    draws, lines = np.random.default_rng(3), []
    for _ in range(200):
        i = draws.integers(0, 9, size=9)
        a, b = np.linalg.lstsq(np.c_[np.log(errors[i]), np.ones(9)], dist[i], rcond=None)[0]
        lines.append(a * np.log(grid) + b)
    np.testing.assert_allclose(lo, np.quantile(lines, 0.025, axis=0), atol=1e-10)
    np.testing.assert_allclose(hi, np.quantile(lines, 0.975, axis=0), atol=1e-10)
    with pytest.raises(ValueError, match="top-1 errors"):
        prediction_band(dist, np.r_[errors[:-1], 0.0], grid)


def test_distortion_ignores_the_finite_norms_pgd_reports_for_failures() -> None:
    """Fixed-budget attacks (PGD) give every image a finite norm, failures included; Su et al.'s
    distortion averages the successful examples only. Checked on a constructed result and on a
    real PGD run, against norms and success recomputed by hand."""
    made = distortion(_result([0.1, 0.5, 0.3, 0.5], [True, False, True, False]))
    assert made.mean.value == pytest.approx(0.2) and made.mean.n == 2
    assert made.success_rate == 0.5

    from advlens.attacks import pgd
    from attack_toys import affine_model, centre_images

    model = affine_model(k=3, seed=2)
    x = centre_images(40, seed=3)
    y = model(x).argmax(1)
    eps = torch.linspace(0.6, 1.2, 40, dtype=torch.float64)  # around the distances (0.87-1.0)
    result = pgd(model, x, y, eps=eps, norm="l2", steps=30)
    with torch.no_grad():
        fooled = (model(result.adv).argmax(1) != y).numpy()
    norms = (result.adv - x).flatten(1).norm(dim=1).numpy()
    assert 0 < fooled.sum() < len(x) and np.isfinite(norms).all()  # a mix, all norms finite
    d = distortion(result)
    assert d.mean.n == fooled.sum()
    assert d.mean.value == pytest.approx(norms[fooled].mean(), rel=1e-6)
    assert d.mean.value != pytest.approx(norms.mean(), rel=1e-3)


def test_scaling_laws_refuses_invalid_input_rather_than_reporting_nan() -> None:
    """Too few models is a NaN row; errors in percent or n_boot=0 used to be one too."""
    errors = np.array([0.02, 0.05, 0.1, 0.2])
    table = pd.DataFrame({"model": [f"m{i}" for i in range(4)], "attack": "cw", "norm": "l2",
                          "top1_error": errors, "distortion": 0.3 * np.log(errors) + 1})
    with pytest.raises(ValueError, match=r"fractions in \(0, 1\] \(not percent\); got \[2.0"):
        scaling_laws(table.assign(top1_error=100 * errors), n_boot=50)
    with pytest.raises(ValueError, match="n_boot"):
        scaling_laws(table, n_boot=0)
    tied = scaling_laws(table.assign(top1_error=0.1), n_boot=50)  # one distinct error: no line
    assert tied.loc[0, "n_models"] == 4 and np.isnan(tied.loc[0, "slope"])


def test_scaling_law_refuses_unequal_lengths() -> None:
    with pytest.raises(ValueError, match=r"1-D of equal length; got \(3,\) and \(2,\)"):
        scaling_law([1.0, 2.0, 3.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="1-D of equal length"):
        scaling_law(np.ones((2, 2)), np.full((2, 2), 0.1))


def test_scaling_laws_refuses_a_model_whose_error_is_nan() -> None:
    """A NaN top-1 error dropped its model from the fit silently (n_models 3 of 4), where an
    error above 1 was refused (review)."""
    errors = np.array([0.02, 0.05, 0.1, np.nan])
    table = pd.DataFrame({"model": [f"m{i}" for i in range(4)], "attack": "cw", "norm": "l2",
                          "top1_error": errors, "distortion": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(ValueError, match=r"fractions in \(0, 1\].*got \[nan\] \(models \['m3'\]\)"):
        scaling_laws(table, n_boot=50)
    zero = scaling_laws(table.assign(top1_error=[0.0, 0.05, 0.1, 0.2]), n_boot=50)
    assert zero.loc[0, "n_models"] == 3  # a zero error has no log: left out, as documented
