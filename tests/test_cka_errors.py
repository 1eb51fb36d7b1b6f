"""advlens.cka refuses bad inputs with messages that name the argument and the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlens.cka import MinibatchCKA, cka_cross, cka_matrix, linear_cka, rbf_cka

rng = np.random.default_rng(0)
X = rng.standard_normal((20, 4))
Y = rng.standard_normal((20, 5))


@pytest.mark.parametrize("f", [linear_cka, rbf_cka], ids=["linear", "rbf"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(f, bad):
    y = Y.copy()
    y[3, 1] = bad
    with pytest.raises(ValueError, match=r"Y contains NaN or inf"):
        f(X, y)
    with pytest.raises(ValueError, match=r"X contains NaN or inf"):
        f(torch.from_numpy(y), X)


def test_mismatched_rows():
    with pytest.raises(ValueError, match=r"Y has 19 samples but X has 20.*row for row"):
        linear_cka(X, Y[:19])
    with pytest.raises(ValueError, match=r"reps\['b'\] has 19 samples but reps\['a'\] has 20"):
        cka_matrix({"a": X, "b": Y[:19]})


@pytest.mark.parametrize("shape", [(20,), (20, 2, 3), (2, 3, 4, 5)])
def test_not_two_dimensional(shape):
    with pytest.raises(ValueError, match=r"X must be 2-D .* x\.reshape\(n, -1\)"):
        linear_cka(np.ones(shape), Y)
    with pytest.raises(ValueError, match=r"reps\['b'\] must be 2-D"):
        cka_matrix({"a": X, "b": torch.ones(shape)})


def test_too_few_rows():
    with pytest.raises(ValueError, match=r"X has 1 samples.*needs at least 2"):
        linear_cka(X[:1], Y[:1])
    with pytest.raises(ValueError, match=r"X has 3 samples.*debiased.*at least 4"):
        linear_cka(X[:3], Y[:3], debiased=True)
    with pytest.raises(ValueError, match=r"at least 4"):
        rbf_cka(X[:3], Y[:3], debiased=True)
    assert np.isfinite(linear_cka(X[:4], Y[:4], debiased=True))


def test_constant_representation():
    with pytest.raises(ValueError, match=r"Y is constant across samples"):
        linear_cka(X, np.full((20, 5), 3.25, dtype=np.float32))
    with pytest.raises(ValueError, match=r"reps\['dead'\] is constant"):
        cka_matrix({"a": X, "dead": np.zeros((20, 7))})
    with pytest.raises(ValueError, match=r"X is constant"):
        rbf_cka(np.ones((20, 2)), Y)


def test_minibatch_overflow_is_a_clear_error():
    # one scale per representation, fixed by its first batch: 1e300 alone is fine ...
    m = MinibatchCKA()
    m.update({"a": X * 1e300, "b": Y})
    # ... but a later batch vastly larger than the first cannot be summed with it
    for later, what in ((1e300, r"values too large to square"), (1e100, r"HSIC sums overflow")):
        with pytest.raises(ValueError, match=what + r".*first batch.*comparable magnitude"):
            m.update({"a": X, "b": Y * later})
    assert m.n_batches == 1  # failed updates leave the sums untouched
    assert m.compute().loc["a", "b"] == pytest.approx(linear_cka(X, Y, debiased=True), rel=1e-12)


def test_minibatch_constant_in_every_batch():
    m = MinibatchCKA()
    m.update({"a": X[:8], "dead": np.zeros((8, 3))})
    m.update({"a": X[8:16], "dead": np.full((8, 3), 0.5)})
    with pytest.raises(ValueError, match=r"batch\['dead'\] was constant .* in every batch"):
        m.compute()


@pytest.mark.parametrize("big", [1e11, 1e15])
def test_large_constant_feature_beside_varying_ones(big):
    # a constant column changes no centred feature: CKA is that of the varying columns alone,
    # whatever their scale next to it (float64 numpy, from the definition)
    local = np.random.default_rng(7)
    x = local.standard_normal((20, 4)) * 1e-3
    y = x + local.standard_normal((20, 4))
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = (np.linalg.norm(xc.T @ yc) ** 2
                / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))
    with_big = np.concatenate([np.full((20, 1), big), x], 1)
    assert linear_cka(with_big, y) == pytest.approx(expected, rel=1e-12)
    assert cka_matrix({"x": with_big, "y": y}).loc["x", "y"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("offset", [1e9, 1e11])
def test_float64_variation_on_a_large_offset_is_kept(offset):
    # a column varying by ~1 around 1e11 (65,000 ulps of float64) is a real feature: it was
    # zeroed as constant (relative std below 1e-10), its CKA with itself read 5e-5, and with
    # every column offset the representation was refused as constant (float64 numpy reference)
    local = np.random.default_rng(7)
    base = local.standard_normal((100, 2))
    y = base[:, :1]
    for x in (np.c_[offset + base[:, 0], 1e-3 * base[:, 1]], offset + base):
        xc, yc = x - x.mean(0), y - y.mean(0)
        expected = (np.linalg.norm(xc.T @ yc) ** 2
                    / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))
        assert linear_cka(x, y) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("s", [1e-300, 1e-80, 1e60, 1e300])
def test_extreme_scales_give_the_unscaled_value(s):
    # CKA is scale-invariant; squares of such inputs over- or underflow in float64
    assert linear_cka(X * s, Y * s) == pytest.approx(linear_cka(X, Y), rel=1e-12)
    assert linear_cka(X * s, Y, debiased=True) == pytest.approx(
        linear_cka(X, Y, debiased=True), rel=1e-12)
    assert rbf_cka(X * s, Y) == pytest.approx(rbf_cka(X, Y), rel=1e-12)


def test_no_features():
    with pytest.raises(ValueError, match=r"X has no features"):
        linear_cka(np.ones((20, 0)), Y)


def test_rbf_median_distance_zero():
    x = np.zeros((20, 3))
    x[:3] = rng.standard_normal((3, 3))  # most rows identical: median distance 0
    with pytest.raises(ValueError, match=r"X: the median pairwise distance is 0"):
        rbf_cka(x, Y)


@pytest.mark.parametrize("order", ["given", "reversed", "permuted"])
def test_rbf_median_zero_whatever_the_rounding_of_identical_rows(order):
    """75 of 100 rows all zero (a dead post-ReLU layer): scipy's exact median squared distance
    is 0. The Gram trick left some identical rows ~1e-17 apart (rounding, depending on the
    row order), which passed for the median and returned a number instead of the error."""
    from scipy.spatial.distance import pdist

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 64, dtype=torch.float64, generator=gen).relu()
    x[:75] = 0.0
    y = torch.randn(100, 10, dtype=torch.float64, generator=gen)
    sq = np.concatenate([np.zeros(100), np.repeat(pdist(x.numpy(), "sqeuclidean"), 2)])
    assert np.median(sq) == 0.0  # the reference: the bandwidth is undefined
    perm = {"given": torch.arange(100), "reversed": torch.arange(100).flip(0),
            "permuted": torch.randperm(100, generator=gen)}[order]
    for f in (lambda: rbf_cka(x[perm], y[perm]),
              lambda: cka_matrix({"x": x[perm], "y": y[perm]}, kernel="rbf")):
        with pytest.raises(ValueError, match=r"(X|\['x'\]): the median pairwise distance is 0"):
            f()


def test_bad_options():
    with pytest.raises(ValueError, match=r"threshold must be finite and > 0"):
        rbf_cka(X, Y, threshold=0.0)
    with pytest.raises(ValueError, match=r"kernel must be 'linear' or 'rbf'"):
        cka_matrix({"a": X}, kernel="cosine")
    with pytest.raises(ValueError, match=r"non-empty mapping"):
        cka_matrix({})
    with pytest.raises(ValueError, match=r"non-empty mapping"):
        cka_matrix([X, Y])
    with pytest.raises(TypeError, match=r"X must be a numeric torch.Tensor or numpy.ndarray"):
        linear_cka("not an array", Y)
    with pytest.raises(TypeError, match=r"Y must be a numeric"):
        linear_cka(X, [["a"] * 5] * 20)


def test_degenerate_debiased_self_hsic():
    # three identical rows and one other: x_i·x_j = a_i + a_j off the diagonal, which U-centring
    # removes entirely, so the unbiased self-HSIC is 0 (the biased estimator is fine)
    x = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [-3.0, -6.0]]) + 0.1
    y = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match=r"X has a self-HSIC of .*not positive beyond rounding"):
        linear_cka(x, y, debiased=True)
    with pytest.raises(ValueError, match=r"reps\['x'\] has a self-HSIC"):
        cka_matrix({"y": y, "x": x}, debiased=True)
    assert np.isfinite(linear_cka(x, y))


def test_minibatch_errors():
    m = MinibatchCKA()
    with pytest.raises(ValueError, match=r"before any update"):
        m.compute()
    with pytest.raises(ValueError, match=r"batch\['a'\] has 3 rows.*at least 4 samples.*drop_last"):
        m.update({"a": X[:3], "b": Y[:3]})
    m.update({"a": X[:8], "b": Y[:8]})
    with pytest.raises(ValueError, match=r"same names"):
        m.update({"a": X[:8], "c": Y[:8]})
    with pytest.raises(ValueError, match=r"batch\['b'\] contains NaN"):
        m.update({"a": X[:8], "b": np.full((8, 5), np.nan)})
    assert m.n_batches == 1  # failed updates leave the sums untouched
    with pytest.raises(ValueError, match=r"kernel must be"):
        MinibatchCKA(kernel="poly")


def test_cka_cross_errors():
    with pytest.raises(ValueError, match=r"reps\['m2'\] must map every column model"):
        cka_cross({"m1": {"m1": X, "m2": X}, "m2": {"m1": X}})


@pytest.mark.parametrize("reps", [{}, [{"m1": X}], "m1"], ids=["empty", "list", "str"])
def test_cka_cross_needs_a_non_empty_mapping(reps):
    with pytest.raises(ValueError, match=r"reps must be a non-empty mapping"):
        cka_cross(reps)


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("nan"), float("inf")])
def test_every_rbf_entry_point_refuses_a_bad_threshold(threshold):
    """cka_matrix, cka_cross and MinibatchCKA name a threshold that is not finite and > 0 as
    rbf_cka does (a negative one, squared in the bandwidth, passed for its opposite)."""
    calls = (lambda: cka_matrix({"a": X, "b": Y}, kernel="rbf", threshold=threshold),
             lambda: cka_cross({"a": {"a": X, "b": Y}, "b": {"a": X, "b": Y}}, kernel="rbf",
                               threshold=threshold),
             lambda: MinibatchCKA(kernel="rbf", threshold=threshold))
    for call in calls:
        with pytest.raises(ValueError, match=r"threshold must be finite and > 0"):
            call()


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 here")
def test_a_numpy_dtype_torch_cannot_hold_is_named():
    """An extended-precision array (np.longdouble) got torch's own "can't convert np.ndarray of
    type numpy.longdouble", which named neither the argument nor a way out."""
    x = np.random.default_rng(0).random((10, 3))
    with pytest.raises(TypeError, match=r"X is a NumPy array of dtype float\d+.*astype"):
        linear_cka(x.astype(np.longdouble), x)
