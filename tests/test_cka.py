"""advlens.cka against published outputs, independent float64 references and invariances."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import advlens.cka as cka_module
from advlens.cka import MinibatchCKA, cka_cross, cka_matrix, linear_cka, rbf_cka


# ------------------------------------------------------------------ independent numpy references
def ref_linear_gram(x: np.ndarray) -> np.ndarray:
    return x @ x.T


def ref_rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    sq = cdist(x, x, "sqeuclidean")
    return np.exp(-sq / (2 * threshold**2 * np.median(sq)))


def ref_hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    """tr(K H L H) / (n-1)² with an explicit centring matrix H."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def ref_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012), eq. (5), written out term by term."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    value = (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
             - 2 / (n - 2) * (one @ kt @ lt @ one))
    return float(value) / (n * (n - 3))


def ref_cka(x: np.ndarray, y: np.ndarray, *, kernel: str = "linear", debiased: bool = False,
            threshold: float = 1.0) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gram = ref_linear_gram if kernel == "linear" else (lambda z: ref_rbf_gram(z, threshold))
    hsic = ref_hsic_unbiased if debiased else ref_hsic_biased
    k, l = gram(x), gram(y)
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def ref_linear_cka_features(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """O(n d²) reference for large n, on *uncentred* data: the unbiased HSIC terms of Song et al.
    expanded for linear kernels (tr(K̃L̃), 1ᵀK̃1, 1ᵀK̃L̃1 via K̃1 = X(Xᵀ1) − diag K)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[0]
    if not debiased:
        x, y = x - x.mean(0), y - y.mean(0)
        return (np.linalg.norm(x.T @ y) ** 2
                / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        da, db = (a * a).sum(1), (b * b).sum(1)
        trace = np.linalg.norm(a.T @ b) ** 2 - da @ db
        sum_a, sum_b = np.sum(a.sum(0) ** 2) - da.sum(), np.sum(b.sum(0) ** 2) - db.sum()
        rows_a, rows_b = a @ a.sum(0) - da, b @ b.sum(0) - db
        return (trace + sum_a * sum_b / ((n - 1) * (n - 2)) - 2 / (n - 2) * rows_a @ rows_b) / (
            n * (n - 3))

    return hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y))


def related(rng: np.random.Generator, n: int, d1: int, d2: int, noise: float = 1.0,
            offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, d1)) + offset
    y = np.tanh(x @ rng.standard_normal((d1, d2)) / np.sqrt(d1)) + noise * rng.standard_normal(
        (n, d2)) + offset
    return x, y


# --------------------------------------------------------------------------- published outputs
def kornblith_demo() -> tuple[np.ndarray, np.ndarray]:
    np.random.seed(1337)  # noqa: NPY002 - reproduces Kornblith's demo exactly
    x = np.random.randn(100, 10)  # noqa: NPY002
    y = np.random.randn(100, 10) + x  # noqa: NPY002
    return x, y


def test_known_outputs_kornblith_demo():
    x, y = kornblith_demo()
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


# ------------------------------------------------------------------------ float64 references
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("shape", [(120, 6, 9), (40, 70, 90)], ids=["n>d", "n<d"])
def test_matches_gram_reference(kernel, debiased, shape):
    n, d1, d2 = shape
    x, y = related(np.random.default_rng(1), n, d1, d2, offset=3.0)
    ours = (linear_cka(x, y, debiased=debiased) if kernel == "linear"
            else rbf_cka(x, y, threshold=0.8, debiased=debiased))
    assert ours == pytest.approx(ref_cka(x, y, kernel=kernel, debiased=debiased, threshold=0.8),
                                 abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_large_threshold_is_not_refused(debiased):
    """Threshold 1000: K = 1 - O(1e-6), so every self-HSIC is ~1e-12 of tr(K)², yet CKA is
    well defined. Reference: both HSIC estimators ignore a constant added to K, so they are
    taken on K - 1 = expm1(-d²/2σ²), free of the cancellation that K itself carries."""
    x, y = related(np.random.default_rng(30), 30, 5, 5)
    hsic = ref_hsic_unbiased if debiased else ref_hsic_biased

    def k_minus_one(z: np.ndarray) -> np.ndarray:
        sq = cdist(z, z, "sqeuclidean")
        return np.expm1(-sq / (2 * 1000.0**2 * np.median(sq)))

    k, l = k_minus_one(x), k_minus_one(y)
    expected = hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))
    assert rbf_cka(x, y, threshold=1000.0, debiased=debiased) == pytest.approx(expected, rel=1e-8)


def test_large_n_reference_expansion_agrees_with_gram_reference():
    x, y = related(np.random.default_rng(2), 50, 5, 7, offset=2.0)
    for debiased in (False, True):
        assert ref_linear_cka_features(x, y, debiased) == pytest.approx(
            ref_cka(x, y, debiased=debiased), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_n10000_agrees_with_float64_reference(dtype):
    x, y = related(np.random.default_rng(3), 10_000, 32, 48, noise=2.0, offset=5.0)
    x, y = x.astype(dtype), y.astype(dtype)
    for debiased in (False, True):
        reference = ref_linear_cka_features(x, y, debiased)
        assert linear_cka(x, y, debiased=debiased) == pytest.approx(reference, abs=1e-6)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        assert linear_cka(tx, ty, debiased=debiased) == pytest.approx(reference, abs=1e-6)


# --------------------------------------------------------------------------------- invariances
def _minibatch(x, y):
    m = MinibatchCKA()
    for start in range(0, x.shape[0], 20):
        m.update({"x": x[start:start + 20], "y": y[start:start + 20]})
    return float(m.compute().loc["x", "y"])


MEASURES = {
    "linear": lambda x, y: linear_cka(x, y),
    "rbf": lambda x, y: rbf_cka(x, y, threshold=0.7),
    "linear-debiased": lambda x, y: linear_cka(x, y, debiased=True),
    "rbf-debiased": lambda x, y: rbf_cka(x, y, threshold=0.7, debiased=True),
    "minibatch": _minibatch,
}


def _orthogonal(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))
    return x @ q.astype(x.dtype)


TRANSFORMS = {
    "orthogonal": _orthogonal,
    "scale": lambda x, rng: x * x.dtype.type(7.5),
    "translate": lambda x, rng: x + rng.standard_normal(x.shape[1]).astype(x.dtype) * 4,
}


@pytest.mark.parametrize("transform", list(TRANSFORMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("measure", list(MEASURES))
def test_invariances(measure, dtype, transform):
    rng = np.random.default_rng(4)
    x, y = (a.astype(dtype) for a in related(rng, 60, 8, 12, noise=0.7))
    f = MEASURES[measure]
    base = f(x, y)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    assert f(TRANSFORMS[transform](x, rng), y) == pytest.approx(base, abs=tol)
    assert f(x, TRANSFORMS[transform](y, rng)) == pytest.approx(base, abs=tol)
    # the relation is real: the invariance is not a constant function in disguise
    assert abs(base - f(x, rng.standard_normal(y.shape).astype(dtype))) > 0.05


@pytest.mark.parametrize("measure", list(MEASURES))
def test_self_similarity_and_symmetry(measure):
    x, y = related(np.random.default_rng(5), 60, 8, 12)
    f = MEASURES[measure]
    assert f(x, x) == pytest.approx(1.0, abs=1e-12)
    assert f(x, y) == pytest.approx(f(y, x), abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_space_form_equals_gram_form(debiased, monkeypatch):
    x, y = related(np.random.default_rng(6), 50, 20, 30, offset=1.0)
    values = {}
    for use_gram in (False, True):
        monkeypatch.setattr(cka_module, "_use_gram", lambda n, dims, g=use_gram: g)
        values[use_gram] = (linear_cka(x, y, debiased=debiased),
                            cka_matrix({"x": x, "y": y}, debiased=debiased).loc["x", "y"])
    assert values[False] == pytest.approx(values[True], abs=1e-12)


def test_feature_space_form_never_holds_the_whole_cross_product(monkeypatch):
    """With the Grams over budget the feature-space form is used, even for d ≫ n (e.g. 12000
    images of a 64×32×32 conv layer: 2 GiB of Grams vs a 32 GiB d×d product): it must work in
    blocks, not materialise XᵀY, XᵀX or YᵀY."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, tuple | list) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.numel = max(Largest.numel, t.numel())
            return out

    n, d1, d2 = 30, 400, 300
    x, y = related(np.random.default_rng(18), n, d1, d2, offset=1.0)
    monkeypatch.setattr(cka_module, "_use_gram", lambda n, dims: False)
    monkeypatch.setattr(cka_module, "_CROSS_MAX_BYTES", 8 * 50 * d2, raising=False)
    for debiased in (False, True):
        with Largest():
            value = linear_cka(x, y, debiased=debiased)
        assert value == pytest.approx(ref_cka(x, y, debiased=debiased), abs=1e-10)
        assert Largest.numel <= max(n * d1, 50 * max(d1, d2))  # the inputs, or one block


def test_form_choice_follows_shape():
    assert cka_module._use_gram(10_000, [32, 48]) is False
    assert cka_module._use_gram(64, [2048, 512]) is True


def test_torch_and_numpy_inputs_agree():
    x, y = related(np.random.default_rng(7), 40, 5, 6)
    tx = torch.from_numpy(x).float().requires_grad_(True)
    assert linear_cka(tx, torch.from_numpy(y)) == pytest.approx(
        linear_cka(x.astype(np.float32), y), abs=1e-12)
    assert isinstance(linear_cka(tx, y), float)


def test_numpy_views_torch_cannot_wrap():
    """Reversed (negative-stride) and big-endian arrays are valid numpy inputs."""
    x, y = related(np.random.default_rng(17), 40, 5, 6)
    expected = linear_cka(x[::-1].copy(), y[::-1].copy())
    assert linear_cka(x[::-1], y[::-1]) == pytest.approx(expected, abs=1e-12)
    assert linear_cka(np.flip(x, 1), y) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert linear_cka(x.astype(">f8"), y) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert rbf_cka(x[::-1], y[::-1]) == pytest.approx(rbf_cka(x, y), abs=1e-12)
    m = MinibatchCKA()
    m.update({"x": x[::-1], "y": y[::-1].astype(">f4")})
    assert m.compute().loc["x", "y"] == pytest.approx(
        linear_cka(x, y.astype(np.float32), debiased=True), abs=1e-12)


# ---------------------------------------------------------------------------- cka_matrix/cross
@pytest.mark.parametrize("kernel,debiased", [("linear", False), ("linear", True), ("rbf", False),
                                             ("rbf", True)])
def test_cka_matrix_equals_pairwise(kernel, debiased):
    rng = np.random.default_rng(8)
    x, y = related(rng, 50, 6, 9)
    reps = {"x": x, "y": y, "x2": np.tanh(x) ** 2, "z": torch.from_numpy(rng.standard_normal(
        (50, 4)))}
    pair = linear_cka if kernel == "linear" else rbf_cka
    table = cka_matrix(reps, kernel=kernel, debiased=debiased)
    assert list(table.index) == list(table.columns) == list(reps)
    assert (np.diag(table.to_numpy()) == 1.0).all()
    np.testing.assert_array_equal(table.to_numpy(), table.to_numpy().T)
    for a in reps:
        for b in reps:
            if a != b:
                assert table.loc[a, b] == pytest.approx(
                    pair(reps[a], reps[b], debiased=debiased), abs=1e-12)


def test_cka_matrix_single_and_wide_reps():
    rng = np.random.default_rng(9)
    assert cka_matrix({"a": rng.standard_normal((10, 3))}).to_numpy().tolist() == [[1.0]]
    reps = {k: rng.standard_normal((12, 300)) for k in "abc"}  # Gram form
    table = cka_matrix(reps)
    assert table.loc["a", "b"] == pytest.approx(ref_cka(reps["a"], reps["b"]), abs=1e-10)


def test_cka_cross_is_row_model_data():
    rng = np.random.default_rng(10)
    reps = {r: {c: rng.standard_normal((30, 5)) for c in ("m1", "m2", "m3")}
            for r in ("m1", "m2", "m3")}
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    reps["m2"]["m3"] = reps["m2"]["m2"] @ q  # m3 equals m2 up to a rotation on m2's data
    table = cka_cross(reps)
    assert list(table.index) == list(table.columns) == ["m1", "m2", "m3"]
    assert (np.diag(table.to_numpy()) == 1.0).all()
    for r in reps:
        for c in reps:
            assert table.loc[r, c] == pytest.approx(linear_cka(reps[r][r], reps[r][c]), abs=1e-12)
    assert table.loc["m2", "m3"] == pytest.approx(1.0, abs=1e-9)
    assert table.loc["m3", "m2"] < 0.9  # asymmetric


def test_cka_cross_rows_in_any_key_order():
    """Each row built own model first ({R: Rep_R(X_R), **others}) holds every column model:
    it was refused as if one were missing."""
    rng = np.random.default_rng(19)
    names = ["m1", "m2", "m3"]
    data = {r: {c: rng.standard_normal((20, 4)) for c in names} for r in names}
    reps = {r: {r: data[r][r], **{c: data[r][c] for c in names if c != r}} for r in names}
    table = cka_cross(reps)
    assert list(table.index) == names and list(table.columns) == ["m1", "m2", "m3"]
    for r in names:
        for c in names:
            assert table.loc[r, c] == pytest.approx(linear_cka(data[r][r], data[r][c]),
                                                    abs=1e-12)


# ---------------------------------------------------------------------------------- minibatch
def test_minibatch_one_batch_equals_debiased_linear():
    x, y = related(np.random.default_rng(11), 64, 10, 20)
    m = MinibatchCKA()
    m.update({"x": x, "y": torch.from_numpy(y).float(), "z": x[:, :3]})
    table = m.compute()
    assert m.n_batches == 1 and m.n_samples == 64
    assert table.loc["x", "y"] == pytest.approx(
        linear_cka(x, y.astype(np.float32), debiased=True), abs=1e-12)
    assert table.loc["y", "z"] == pytest.approx(
        linear_cka(y.astype(np.float32), x[:, :3], debiased=True), abs=1e-12)
    assert (np.diag(table.to_numpy()) == 1.0).all()


def test_minibatch_over_many_batches_close_to_mean_of_batches():
    x, y = related(np.random.default_rng(12), 640, 20, 30, noise=1.5)
    m = MinibatchCKA()
    per_batch = []
    for start in range(0, 640, 64):
        batch = {"x": x[start:start + 64], "y": y[start:start + 64]}
        m.update(batch)
        per_batch.append(linear_cka(batch["x"], batch["y"], debiased=True))
    assert m.n_batches == 10
    assert m.compute().loc["x", "y"] == pytest.approx(np.mean(per_batch), abs=0.01)
    # and near the full-data debiased value (the estimator is nearly batch-size independent)
    assert m.compute().loc["x", "y"] == pytest.approx(linear_cka(x, y, debiased=True), abs=0.03)


def test_minibatch_sums_raw_scale_hsic_over_batches():
    """Σ_b HSIC_u(K_b, L_b) / sqrt(Σ_b HSIC_u(K_b, K_b) · Σ_b HSIC_u(L_b, L_b)) with Song et al.'s
    estimator written out (ref_hsic_unbiased) on raw Grams: batches of very different scale
    weigh by their HSIC, as in Nguyen et al. -- rescaling each batch would change the result."""
    rng = np.random.default_rng(21)
    batches = []
    for scale, noise in ((1.0, 0.3), (30.0, 3.0), (0.05, 1.0)):
        x, y = related(rng, 24, 6, 9, noise=noise)
        batches.append({"x": scale * x, "y": scale * y})
    m = MinibatchCKA()
    sums = {"xy": 0.0, "xx": 0.0, "yy": 0.0}
    for batch in batches:
        m.update(batch)
        k, l = ref_linear_gram(batch["x"]), ref_linear_gram(batch["y"])
        sums["xy"] += ref_hsic_unbiased(k, l)
        sums["xx"] += ref_hsic_unbiased(k, k)
        sums["yy"] += ref_hsic_unbiased(l, l)
    expected = sums["xy"] / np.sqrt(sums["xx"] * sums["yy"])
    assert m.compute().loc["x", "y"] == pytest.approx(expected, rel=1e-10)
    per_batch_mean = np.mean([linear_cka(b["x"], b["y"], debiased=True) for b in batches])
    assert abs(expected - per_batch_mean) > 0.01  # the weighting matters on these batches


@pytest.mark.parametrize("s", [1e-80, 1e60, 1e-312])
def test_minibatch_at_extreme_magnitudes_gives_the_unit_scale_value(s):
    """Σ HSIC over batches of very different scale (so the weighting matters), everything times
    s: HSIC is quartic in the values (1e-320 or 1e240 here), yet CKA is that of the float64
    reference at scale 1, per-batch weighting included. At 1e-312 (subnormal values) the
    power of two that rescales them, 2**1030 and more, is itself beyond float64: applied in two
    halves."""
    rng = np.random.default_rng(21)
    batches = []
    for scale, noise in ((1.0, 0.3), (30.0, 3.0), (0.05, 1.0)):
        x, y = related(rng, 24, 6, 9, noise=noise)
        batches.append({"x": scale * x, "y": scale * y})
    sums = np.zeros(3)
    m = MinibatchCKA()
    for batch in batches:
        k, l = ref_linear_gram(batch["x"]), ref_linear_gram(batch["y"])
        sums += [ref_hsic_unbiased(k, l), ref_hsic_unbiased(k, k), ref_hsic_unbiased(l, l)]
        m.update({name: s * rep for name, rep in batch.items()})
    expected = sums[0] / np.sqrt(sums[1] * sums[2])
    assert m.compute().loc["x", "y"] == pytest.approx(expected, rel=1e-12)


def test_minibatch_batches_1e45_apart():
    """Self-HSIC sums near 1e190: finite, but their product is not (normalise by sqrt each)."""
    rng = np.random.default_rng(22)
    m, sums = MinibatchCKA(), np.zeros(3)
    for scale in (1.0, 1e45):
        x, y = related(rng, 24, 6, 9)
        k, l = ref_linear_gram(scale * x), ref_linear_gram(scale * y)
        sums += [ref_hsic_unbiased(k, l), ref_hsic_unbiased(k, k), ref_hsic_unbiased(l, l)]
        m.update({"x": scale * x, "y": scale * y})
    expected = sums[0] / (np.sqrt(sums[1]) * np.sqrt(sums[2]))
    assert m.compute().loc["x", "y"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_minibatch_batch_with_a_constant_representation_adds_nothing(kernel):
    """Every ReLU dead in one batch: its Gram is constant (all ones for RBF, whatever the
    bandwidth), so each of its unbiased HSIC terms is 0 and Nguyen et al.'s sums stay defined
    (ckatorch.cka_batch gives 0.544739 for the linear kernel on these data)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 6))
    y = np.maximum(x @ rng.standard_normal((6, 8)), 0)
    y[10:20] = 0.0

    def gram(z: np.ndarray) -> np.ndarray:
        if kernel == "linear":
            return ref_linear_gram(z)
        return np.ones((len(z), len(z))) if np.ptp(z) == 0 else ref_rbf_gram(z, 1.0)

    m = MinibatchCKA(kernel=kernel)
    sums = np.zeros(3)
    for i in range(0, 40, 10):
        batch = {"x": x[i:i + 10], "y": y[i:i + 10]}
        m.update(batch)
        k, l = gram(batch["x"]), gram(batch["y"])
        sums += [ref_hsic_unbiased(k, l), ref_hsic_unbiased(k, k), ref_hsic_unbiased(l, l)]
    assert m.n_batches == 4 and m.n_samples == 40
    value = m.compute().loc["x", "y"]
    assert value == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), rel=1e-12)
    if kernel == "linear":
        assert value == pytest.approx(0.5447390107395822, rel=1e-12)


def test_minibatch_reset():
    rng = np.random.default_rng(13)
    m = MinibatchCKA()
    m.update({"a": rng.standard_normal((8, 3)), "b": rng.standard_normal((8, 3))})
    m.reset()
    assert m.n_batches == 0
    m.update({"c": rng.standard_normal((8, 3))})
    assert list(m.compute().index) == ["c"]


# ---------------------------------------------------------------------------- estimator bias
@pytest.mark.parametrize("d,biased_range", [(8, (0.12, 0.32)), (256, (0.8, 0.95))])
def test_biased_estimator_inflated_at_small_n(d, biased_range):
    rng = np.random.default_rng(14)
    biased, debiased = [], []
    for _ in range(20):
        x, y = rng.standard_normal((32, d)), rng.standard_normal((32, d))
        biased.append(linear_cka(x, y))
        debiased.append(linear_cka(x, y, debiased=True))
    assert biased_range[0] < np.mean(biased) < biased_range[1]
    assert abs(np.mean(debiased)) < 0.04
    assert min(debiased) < 0  # negative values are returned as they are, not clipped
    assert np.isfinite(debiased).all()


def test_fewest_samples_each_estimator_takes_match_the_reference():
    """n = 2 (biased) and n = 4 (unbiased, also one MinibatchCKA batch of 4 rows): the smallest
    inputs accepted give the explicit-centring-matrix references. With two samples the centred
    rows are ±v, so every pair of representations has CKA 1."""
    rng = np.random.default_rng(11)
    x2, y2 = rng.standard_normal((2, 5)), rng.standard_normal((2, 3))
    assert linear_cka(x2, y2) == pytest.approx(ref_cka(x2, y2), abs=1e-12)
    assert linear_cka(x2, y2) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x2, y2) == pytest.approx(ref_cka(x2, y2, kernel="rbf"), abs=1e-12)
    x4, y4 = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    reference = ref_cka(x4, y4, debiased=True)
    assert linear_cka(x4, y4, debiased=True) == pytest.approx(reference, abs=1e-12)
    m = MinibatchCKA()
    m.update({"x": x4, "y": y4})
    assert float(m.compute().loc["x", "y"]) == pytest.approx(reference, abs=1e-12)


def test_cka_cross_of_one_row_model():
    """A single row model with two column models: its row is linear CKA against itself (1) and
    the other column."""
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 3))
    table = cka_cross({"a": {"a": x, "b": y}})
    assert table.shape == (1, 2) and table.loc["a", "a"] == 1.0
    assert table.loc["a", "b"] == pytest.approx(ref_cka(x, y), abs=1e-12)


def test_minibatch_batches_of_unequal_size_weigh_by_their_own_estimator():
    """A short final batch (drop_last=False): each batch's unbiased HSIC is divided by its own
    n(n - 3), so the sums are Song et al.'s estimates as written out (ref_hsic_unbiased); every
    other test used batches of one size, where that denominator cancels from CKA."""
    rng = np.random.default_rng(23)
    x, y = related(rng, 70, 6, 9, noise=0.8)
    sizes = [32, 32, 6]  # 70 rows in batches of 32
    m, sums, start = MinibatchCKA(), np.zeros(3), 0
    for size in sizes:
        bx, by = x[start:start + size], y[start:start + size]
        start += size
        m.update({"x": bx, "y": by})
        k, l = ref_linear_gram(bx), ref_linear_gram(by)
        sums += [ref_hsic_unbiased(k, l), ref_hsic_unbiased(k, k), ref_hsic_unbiased(l, l)]
    expected = sums[0] / np.sqrt(sums[1] * sums[2])
    assert m.n_samples == 70
    assert m.compute().loc["x", "y"] == pytest.approx(expected, rel=1e-10)


def test_cka_cross_of_some_row_models_in_another_order():
    """Rows need not list every column model, nor in the columns' order: row R's entries are
    CKA against R's own representation, wherever R stands among the columns."""
    rng = np.random.default_rng(24)
    names = ["m1", "m2", "m3"]
    data = {r: {c: rng.standard_normal((20, 4)) for c in names} for r in names}
    reps = {"m3": data["m3"], "m2": data["m2"]}  # two row models, not in the columns' order
    table = cka_cross(reps)
    assert list(table.index) == ["m3", "m2"] and list(table.columns) == names
    for r in ("m3", "m2"):
        assert table.loc[r, r] == 1.0
        for c in names:
            assert table.loc[r, c] == pytest.approx(ref_cka(data[r][r], data[r][c]), abs=1e-12)


def test_rbf_cka_of_near_duplicate_rows_uses_their_exact_distances() -> None:
    """30 of 40 rows a relative 1e-8 apart: the Gram trick's squared distances between them
    were rounding noise, and they set the median (the bandwidth): 0.957934 where the distances
    taken from the differences give 0.958384. A float64 reference from the differences."""
    rng = np.random.default_rng(0)
    centre = rng.normal(size=(1, 6)) * 10
    x = np.concatenate([centre + 1e-8 * rng.normal(size=(30, 6)), rng.normal(size=(10, 6))])
    y = rng.normal(size=(40, 5))

    def gram(a: np.ndarray) -> np.ndarray:
        sq = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * np.median(sq)))

    def centred(k: np.ndarray) -> np.ndarray:
        h = np.eye(len(k)) - 1 / len(k)
        return h @ k @ h

    kx, ky = centred(gram(x)), centred(gram(y))
    reference = (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())
    assert rbf_cka(x, y) == pytest.approx(reference, rel=1e-7)  # (was 0.2068 for 0.2354)
