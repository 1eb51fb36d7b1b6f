"""Tests of advlens.papers.jones2022 against hand-computed CKA on hand-extracted representations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from advlens.inversion import draw_pairs
from advlens.papers.jones2022 import (
    data_cka_matrix,
    inverted_cka_matrix,
    mask_concentration,
    mean_cka_ci,
    off_diagonal,
    prediction_rates,
)
from references import numpy_debiased_cka
from references import numpy_linear_cka as np_cka
from references import penultimate as rep


def tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.fixture(scope="module")
def setup() -> tuple[dict[str, nn.Module], torch.Tensor, torch.Tensor]:
    models = {"a": tiny(0), "b": tiny(1), "c": tiny(2)}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 1, 8, 8, generator=g)
    labels = torch.arange(24) % 3
    return models, x, labels


def test_data_cka_matrix_matches_hand_computation(setup) -> None:  # noqa: ANN001
    models, x, _ = setup
    m = data_cka_matrix(models, x)
    assert m.loc["a", "b"] == pytest.approx(np_cka(rep(models["a"], x), rep(models["b"], x)),
                                            abs=1e-10)
    assert np.allclose(m.to_numpy(), m.to_numpy().T)


def test_inverted_cka_matrix_rows_use_the_row_models_inversions(setup) -> None:  # noqa: ANN001
    models, x, labels = setup
    s, t = draw_pairs(labels, 12, seed=0)
    res = inverted_cka_matrix(models, x[s], x[t], seed_labels=labels[s], target_labels=labels[t],
                              iterations=20, progress=False)
    assert list(res.matrix.index) == ["a", "b", "c"] == list(res.matrix.columns)
    assert np.allclose(np.diag(res.matrix.to_numpy()), 1.0)
    for row in models:
        xr = res.inverted[row].images
        for col in models:
            expected = np_cka(rep(models[row], xr), rep(models[col], xr))
            assert res.matrix.loc[row, col] == pytest.approx(expected, abs=1e-9)
    assert not np.allclose(res.matrix.to_numpy(), res.matrix.to_numpy().T)  # asymmetric
    again = inverted_cka_matrix(models, x[s], x[t], inverted=res.inverted)
    pd.testing.assert_frame_equal(again.matrix, res.matrix)
    with pytest.raises(ValueError, match="no result for models"):
        inverted_cka_matrix(models, x[s], x[t], inverted={"a": res.inverted["a"]})
    with pytest.raises(ValueError, match="same label"):
        inverted_cka_matrix(models, x[s], x[s], seed_labels=labels[s], target_labels=labels[s],
                            iterations=1, progress=False)
    assert off_diagonal(res.matrix).shape == (6,)
    assert res.matrix.loc["a", "b"] in off_diagonal(res.matrix)

    pairs = [("a", "b"), ("b", "c")]
    est = mean_cka_ci(res.reps, pairs, groups=6, seed=1)
    expected = np.mean([res.matrix.loc[r, c] for r, c in pairs])
    assert est.value == pytest.approx(expected, abs=1e-9)
    assert est.lo <= est.value <= est.hi and est.hi - est.lo > 0 and est.n == 12
    with pytest.raises(ValueError, match="no representations"):
        mean_cka_ci(res.reps, [("a", "z")])


def test_prediction_rates() -> None:
    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # class 0 if mean > 0.5 else 1
            m = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([m - 0.5, 0.5 - m], 1)

    x = torch.cat([torch.full((3, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), 0.1)])
    rates = prediction_rates(Fixed(), x, torch.tensor([1, 1, 0, 1]), torch.tensor([0, 0, 1, 0]))
    assert rates == {"target": 0.5, "seed": 0.5}


def test_mask_concentration() -> None:
    seeds = torch.zeros(2, 3, 4, 4)
    masks = torch.zeros(2, 2, 4, 4)
    masks[:, 0, :2, :2] = 1  # a quarter of the image
    masks[:, 1, 2:, 2:] = 1
    inverted = seeds.clone()
    inverted[0, :, :2, :2] = 0.5  # changed only inside mask 0
    inverted[1] = 0.3  # changed evenly
    out = mask_concentration(seeds, inverted, masks)
    assert torch.allclose(out[0], torch.tensor([4.0, 0.0], dtype=torch.float64))
    assert torch.allclose(out[1], torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.isnan(mask_concentration(seeds, seeds, masks)).all()
    # unequal changes: energy is the squared change summed over channels (numpy, by hand)
    rng = np.random.default_rng(4)
    seeds2 = rng.uniform(size=(3, 3, 5, 5))
    inverted2 = np.clip(seeds2 + rng.normal(0, 0.2, size=seeds2.shape), 0, 1)
    masks2 = (rng.uniform(size=(3, 2, 5, 5)) < 0.4).astype(np.float64)
    energy = ((inverted2 - seeds2) ** 2).sum(1)
    expected = np.array([[(energy[i] * masks2[i, k]).sum() / energy[i].sum() / masks2[i, k].mean()
                          for k in range(2)] for i in range(3)])
    got = mask_concentration(torch.from_numpy(seeds2), torch.from_numpy(inverted2),
                             torch.from_numpy(masks2))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_grouped_jackknife_se_matches_the_sampling_spread_of_cka() -> None:
    """The jackknife's standard error of CKA agrees with the spread over independent data sets
    (a bootstrap with replacement would also shift the centre: duplicated rows inflate CKA)."""
    from advlens.cka import linear_cka
    from advlens.papers.jones2022 import grouped_jackknife

    rng = np.random.default_rng(0)

    def draw(n: int = 96) -> tuple[np.ndarray, np.ndarray]:
        z = rng.normal(size=(n, 4))
        return (z @ mix_a + rng.normal(size=(n, 12)) * 2, z @ mix_b + rng.normal(size=(n, 10)) * 2)

    mix_a, mix_b = rng.normal(size=(4, 12)), rng.normal(size=(4, 10))
    spread = np.std([linear_cka(*draw()) for _ in range(300)])
    ses = []
    for _ in range(20):
        a, b = draw()
        est = grouped_jackknife(96, lambda i, a=a, b=b: linear_cka(a[i], b[i]), groups=16)
        assert est.lo < est.value < est.hi
        ses.append((est.hi - est.value) / 2.131)  # t quantile, 15 degrees of freedom
    assert 0.6 < np.mean(ses) / spread < 1.6
    with pytest.raises(ValueError, match="groups"):
        grouped_jackknife(5, lambda i: 0.0, groups=1)


@pytest.mark.parametrize("kwargs", [{"level": 95}, {"level": 1.0}, {"level": 0.0},
                                    {"groups": 4.0}, {"groups": True}])
def test_grouped_jackknife_refuses_a_level_or_groups_it_cannot_use(kwargs) -> None:  # noqa: ANN001
    """level=95 (a percentage) gave a NaN interval, 1.0 an infinite and 0.0 a zero-width one;
    a float groups count failed inside range()."""
    from advlens.papers.jones2022 import grouped_jackknife

    with pytest.raises(ValueError, match="level is a fraction|groups must be an int"):
        grouped_jackknife(20, lambda i: float(len(i)), **{"groups": 4, **kwargs})


def test_similarity_by_level_and_prediction_table(setup) -> None:  # noqa: ANN001
    from advlens.papers.jones2022 import prediction_table, similarity_by_level

    models, x, labels = setup
    s, t = draw_pairs(labels, 12, seed=2)
    levels = {0.0: {"a/s0": models["a"], "b/s0": models["b"], "b/s1": models["c"]},
              1.0: {"c/s0": models["c"]}}
    res = similarity_by_level(levels, x[s], x[t], x, groups=4, iterations=15, progress=False,
                              pair_filter=lambda r, c: r.split("/")[0] != c.split("/")[0])
    assert list(res.summary.level) == [0.0]  # a level with one model has no pair
    assert set(zip(res.pairs.row, res.pairs.col, strict=True)) == {
        ("a/s0", "b/s0"), ("a/s0", "b/s1"), ("b/s0", "a/s0"), ("b/s1", "a/s0")}
    for row in res.pairs.itertuples():
        xr = res.inverted[0.0][row.row].images
        m_r, m_c = levels[0.0][row.row], levels[0.0][row.col]
        assert row.cka_inverted == pytest.approx(np_cka(rep(m_r, xr), rep(m_c, xr)), abs=1e-9)
        assert row.cka_test == pytest.approx(np_cka(rep(m_r, x), rep(m_c, x)), abs=1e-9)
    summ = res.summary.iloc[0]
    assert summ.cka_inverted == pytest.approx(res.pairs.cka_inverted.mean(), abs=1e-9)
    assert summ.cka_test == pytest.approx(res.pairs.cka_test.mean(), abs=1e-9)
    assert summ.cka_inverted_lo <= summ.cka_inverted <= summ.cka_inverted_hi
    assert summ.n_pairs == 4 and summ.n_models == 3

    table = prediction_table(levels[0.0], res.inverted[0.0], labels[s], labels[t])
    assert len(table) == 9
    one = table[(table.inverted_by == "a/s0") & (table.judged_by == "b/s0")].iloc[0]
    expected = prediction_rates(models["b"], res.inverted[0.0]["a/s0"].images, labels[s],
                                labels[t])
    assert (one.as_target, one.as_seed) == (expected["target"], expected["seed"])


def test_similarity_by_level_checks_groups_before_inverting(setup, monkeypatch) -> None:  # noqa: ANN001
    """12 pairs and 20 groups: refused before any inversion (it failed after the first
    level's inversions, inside the jackknife). (Without ``groups``, min(20, n) are taken.)"""
    from advlens.papers import jones2022

    models, x, labels = setup
    s, t = draw_pairs(labels, 12, seed=0)
    monkeypatch.setattr(jones2022, "invert", lambda *a, **k: pytest.fail("inverted first"))
    with pytest.raises(ValueError, match=r"groups must be an int in \[2, 12\].*Pass fewer"):
        jones2022.similarity_by_level({0.0: {"a": models["a"], "b": models["b"]}}, x[s], x[t], x,
                                      seed_labels=labels[s], target_labels=labels[t],
                                      groups=20, progress=False)


def test_label_cka_and_class_means() -> None:
    from advlens.papers.jones2022 import class_means, label_cka

    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    onehot = torch.nn.functional.one_hot(labels).double()
    rep = torch.tensor([[1.0, 2], [3, 4], [5, 6], [7, 9], [0, 1], [2, 1]])
    means = class_means(rep, labels)
    assert torch.allclose(means[0], torch.tensor([2.0, 3], dtype=torch.float64))
    assert torch.allclose(means[3], torch.tensor([6.0, 7.5], dtype=torch.float64))
    scores = label_cka({"pure": onehot * 3 + 1, "x": rep}, labels)
    assert scores["pure"] == pytest.approx(1.0)
    assert scores["x"] == pytest.approx(np_cka(rep.double().numpy(), onehot.numpy()))


def test_label_cka_of_class_identity_alone_is_not_one() -> None:
    """Images at their class means (no within-class spread) score 1/√2, not 1, when three
    balanced classes' means lie on a line (closed form: a rank-one X inside the two-dimensional
    span of the centred one-hot labels, whose Gram has equal eigenvalues): label_cka is not the
    share of the variance that is class identity (the docstring said it was)."""
    from advlens.papers.jones2022 import label_cka

    labels = torch.arange(3).repeat_interleave(5)
    for means in ([0.0, 1.0, 10.0], [3.0, -1.0, 0.0]):
        rep = torch.tensor(means)[labels, None]
        assert label_cka({"x": rep}, labels)["x"] == pytest.approx(2**-0.5, abs=1e-12)


def test_label_cka_checks_its_labels() -> None:
    """Labels of the wrong length were reported as "Y has 8 samples", negative ones as torch's
    RuntimeError and fractional ones truncated silently; any integer class ids are classes."""
    from advlens.papers.jones2022 import label_cka

    rep = torch.tensor([[1.0, 2], [3, 4], [5, 6], [7, 9], [0, 1], [2, 1]])
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        label_cka({"x": rep}, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        label_cka({"x": rep}, torch.arange(6) * 0.5)
    ids = label_cka({"x": rep}, torch.tensor([-1, -1, 7, 7, 3, 3]))["x"]
    assert ids == pytest.approx(label_cka({"x": rep}, torch.tensor([0, 0, 1, 1, 2, 2]))["x"])


def test_similarity_by_level_uses_the_same_layer_on_test_and_inverted_data(setup) -> None:  # noqa: ANN001
    from advlens.papers.jones2022 import similarity_by_level

    models, x, labels = setup
    s, t = draw_pairs(labels, 8, seed=1)
    levels = {0.0: {"a": models["a"], "b": models["b"]}}
    res = similarity_by_level(levels, x[s], x[t], x, groups=4, iterations=3, progress=False,
                              layer="1")
    with torch.no_grad():
        ra, rb = (models[k][:2](x).flatten(1).double().numpy() for k in ("a", "b"))
    row = res.pairs[(res.pairs.row == "a") & (res.pairs.col == "b")].iloc[0]
    assert row.cka_test == pytest.approx(np_cka(ra, rb), abs=1e-9)


def test_similarity_by_level_debiased_applies_to_every_cka(setup) -> None:  # noqa: ANN001
    """debiased=True reached only the inverted matrix (through **invert_kwargs): cka_test and
    both summary means stayed biased, so the summary was not the mean of its pairs."""
    from advlens.papers.jones2022 import similarity_by_level

    models, x, labels = setup
    s, t = draw_pairs(labels, 12, seed=2)
    levels = {0.0: {"a": models["a"], "b": models["b"], "c": models["c"]}}
    res = similarity_by_level(levels, x[s], x[t], x, groups=4, iterations=5, progress=False,
                              debiased=True)
    for row in res.pairs.itertuples():
        xr = res.inverted[0.0][row.row].images
        m_r, m_c = levels[0.0][row.row], levels[0.0][row.col]
        # the reference works on uncentred Grams, whose cancellations leave ~1e-9 of rounding
        assert row.cka_inverted == pytest.approx(numpy_debiased_cka(rep(m_r, xr), rep(m_c, xr)),
                                                 abs=1e-7)
        assert row.cka_test == pytest.approx(numpy_debiased_cka(rep(m_r, x), rep(m_c, x)), abs=1e-7)
    summ = res.summary.iloc[0]
    assert summ.cka_inverted == pytest.approx(res.pairs.cka_inverted.mean(), abs=1e-9)
    assert summ.cka_test == pytest.approx(res.pairs.cka_test.mean(), abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_mean_cka_ci_centres_each_representation_once(debiased: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The heatmap's CI (every ordered pair of 3 models on shared test data, float32 features as
    notebook 01 passes them) equals the float64 numpy reference CKA of every pair on every
    leave-a-group-out subset to 1e-12, biased and debiased; and each representation is
    centred once, not (groups + 1) × its pairs times: that recomputation, n²·d per CKA, took
    hours of CPU at the paper preset (n 2000, d up to 4096, 72 pairs; 1.4-3 s per CKA)."""
    from scipy import stats as scipy_stats

    import advlens.cka
    from references import numpy_linear_cka

    rng = np.random.default_rng(4)
    n, groups = 48, 6
    z = rng.normal(size=(n, 3))
    test = {m: torch.from_numpy(z @ rng.normal(size=(3, d)) + rng.normal(size=(n, d))).float()
            for m, d in (("a", 7), ("b", 5), ("c", 9))}
    reps = {r: test for r in test}
    pairs = [(r, c) for r in test for c in test if r != c]
    centred = []
    original = advlens.cka._centre
    monkeypatch.setattr(advlens.cka, "_centre",
                        lambda *a, **k: centred.append(1) or original(*a, **k))
    est = mean_cka_ci(reps, pairs, groups=groups, seed=2, debiased=debiased)
    assert len(centred) == len(test)  # the old code: 2 × 6 pairs × 7 statistics = 84
    reference = numpy_debiased_cka if debiased else numpy_linear_cka

    def mean_cka(idx: np.ndarray) -> float:
        return float(np.mean([reference(test[r].double().numpy()[idx],
                                        test[c].double().numpy()[idx]) for r, c in pairs]))

    assign = np.random.default_rng(2).permutation(n) % groups
    leave = np.array([mean_cka(np.flatnonzero(assign != g)) for g in range(groups)])
    half = scipy_stats.t.ppf(0.975, groups - 1) * np.sqrt(
        (groups - 1) / groups * ((leave - leave.mean()) ** 2).sum())
    value = mean_cka(np.arange(n))
    assert est.value == pytest.approx(value, abs=1e-12)
    assert (est.lo, est.hi) == pytest.approx((value - half, value + half), abs=1e-12)


def test_mean_cka_ci_takes_a_mapping_that_makes_its_items_on_access() -> None:
    """reps[R] may be any Mapping, e.g. a store reading each representation when asked: each
    item is then a new object, freed after use, and its id can come back for the next one. The
    Grams were matched to representations by id, so every pair took one freed item's Gram
    (CKA 1.0 here); the numpy reference CKA of each pair, as for a plain dict."""
    from collections.abc import Iterator, Mapping

    class Fresh(Mapping):
        def __init__(self, items: dict[str, np.ndarray]) -> None:
            self.items_ = items

        def __getitem__(self, key: str) -> np.ndarray:
            return self.items_[key].copy()

        def __iter__(self) -> Iterator[str]:
            return iter(self.items_)

        def __len__(self) -> int:
            return len(self.items_)

    rng = np.random.default_rng(0)
    n = 40
    base = {m: rng.normal(size=(n, 8)) for m in "abc"}
    plain = {r: {c: base[c] + (0 if c == r else 0.5 * rng.normal(size=(n, 8))) for c in "abc"}
             for r in "abc"}
    pairs = [("a", "b"), ("b", "c"), ("c", "a")]
    value = float(np.mean([np_cka(plain[r][r], plain[r][c]) for r, c in pairs]))
    est = mean_cka_ci({r: Fresh(items) for r, items in plain.items()}, pairs, groups=5)
    assert est.value == pytest.approx(value, abs=1e-12)
    assert est == mean_cka_ci(plain, pairs, groups=5)


def test_mean_cka_ci_names_a_degenerate_representation() -> None:
    rng = np.random.default_rng(0)
    reps = {"r": {"r": rng.normal(size=(12, 3)), "c": np.ones((12, 2))}}
    with pytest.raises(ValueError, match=r"reps\['r'\]\['c'\] is constant"):
        mean_cka_ci(reps, [("r", "c")], groups=3)


def test_mean_cka_ci_is_the_grouped_jackknife_of_the_reference_cka() -> None:
    """mean_cka_ci by hand: numpy CKA (tests/references.py), the same group assignment, the
    delete-a-group variance and the t quantile; equal to 1e-12."""
    from scipy import stats as scipy_stats

    from references import numpy_linear_cka

    rng = np.random.default_rng(3)
    n, groups = 40, 8
    z = rng.normal(size=(n, 3))
    reps = {"r": {"r": z @ rng.normal(size=(3, 6)) + rng.normal(size=(n, 6)),
                  "c": z @ rng.normal(size=(3, 5)) + rng.normal(size=(n, 5)),
                  "d": rng.normal(size=(n, 4))}}
    pairs = [("r", "c"), ("r", "d")]
    est = mean_cka_ci(reps, pairs, groups=groups, seed=5)

    def mean_cka(idx: np.ndarray) -> float:
        return float(np.mean([numpy_linear_cka(reps[r][r][idx], reps[r][c][idx])
                              for r, c in pairs]))

    assign = np.random.default_rng(5).permutation(n) % groups
    leave = np.array([mean_cka(np.flatnonzero(assign != g)) for g in range(groups)])
    se = np.sqrt((groups - 1) / groups * ((leave - leave.mean()) ** 2).sum())
    half = scipy_stats.t.ppf(0.975, groups - 1) * se
    value = mean_cka(np.arange(n))
    assert est.value == pytest.approx(value, abs=1e-12)
    assert est.lo == pytest.approx(value - half, abs=1e-12)
    assert est.hi == pytest.approx(value + half, abs=1e-12)


def test_model_labels_and_the_pair_filter_of_notebook_01() -> None:
    from advlens.papers.jones2022 import different_kinds, label_kind, model_label
    from advlens.zoo.config import ModelConfig
    from advlens.zoo.seeds import SEED_STRIDE

    digits = ModelConfig("cnn-m", seed=1)
    twin = ModelConfig("cnn-s", dataset="twin-cue", variant="b-only", seed=2 * SEED_STRIDE)
    assert model_label(digits) == "cnn-m/s1"
    assert model_label(twin, zoo_seed=2) == "b-only/s0"  # seed counted within its zoo
    with pytest.raises(ValueError, match="zoo seed"):
        model_label(twin, zoo_seed=0)
    for config in (digits, ModelConfig("resnet8-xs", seed=3), ModelConfig("vit-xs")):
        assert label_kind(model_label(config)) == config.arch
    assert label_kind(model_label(twin, zoo_seed=2)) == "b-only"
    with pytest.raises(ValueError, match="not a model label"):
        label_kind("cnn-m")
    assert different_kinds("cnn-m/s0", "mlp-l/s0") and not different_kinds("cnn-m/s0", "cnn-m/s1")


def test_similarity_by_level_without_a_pair_gives_untestable_findings(setup) -> None:  # noqa: ANN001
    """One architecture per level: no pair is kept. The frames keep their columns (they had
    none: pair_trends refused them and finding_b raised KeyError 'level')."""
    from advlens.papers import jones2022

    models, x, labels = setup
    s, t = draw_pairs(labels, 12, seed=0)
    levels = {0.0: {"a/s0": models["a"], "a/s1": models["b"]}, 1.0: {"a/s0": models["c"]}}
    res = jones2022.similarity_by_level(levels, x[s], x[t], x, groups=4, iterations=2,
                                        progress=False, pair_filter=jones2022.different_kinds)
    assert res.pairs.empty and "cka_inverted" in res.pairs and "cka_test_hi" in res.summary
    assert jones2022.finding_b(res.summary, None)["holds"] is None
    trends = jones2022.pair_trends(res.pairs)
    assert trends.empty and "slope" in trends
    assert jones2022.finding_b_pairs(trends)["holds"] is None


def test_check_zoo_knobs_names_models_the_zoo_lacks() -> None:
    """A misspelt robust_archs ran notebook 01 to the end, reporting finding (b) as "fewer than
    two robustness levels in this zoo"; the smoke zoo's digits models are listed in zoo.spec."""
    from advlens import presets
    from advlens.papers.jones2022 import check_zoo_knobs

    for preset in presets.PRESET_NAMES:
        check_zoo_knobs(presets.resolve("01", preset))  # no error
    for over, says in [({"robust_archs": ["cnn_s"]}, r"'robust_archs' names \['cnn_s'\]"),
                       ({"robust_eps": [0.0, 0.3]}, r"'robust_eps' holds \[0.3\].*radii: "
                                                   r"\[0.0, 0.5\]"),
                       ({"heatmap_archs": ["mlp-s", "x"]}, r"'heatmap_archs' names \['x'\]"),
                       ({"heatmap_eps": 0.5}, r"'heatmap_archs' names \['mlp-s', 'vgg-xs', "
                                              r"'resnet8-xs'\].*at heatmap_eps 0.5"),
                       # a misspelt dataset was blamed on heatmap_archs
                       ({"dataset": "digitz"}, r"knob 'dataset' = 'digitz': zoo 'smoke' has no "
                                               r"model of it; its data sets: \['digits'")]:
        with pytest.raises(ValueError, match=says):
            check_zoo_knobs(presets.resolve("01", "smoke", **over))


def test_check_zoo_knobs_refuses_more_robust_pairs_than_pairs() -> None:
    """(b) inverts rs = s_idx[:robust_pairs] of the n_pairs pairs drawn for (a): robust_pairs 64
    at the smoke preset's n_pairs 32 inverted 32 pairs while P recorded 64."""
    from advlens import presets
    from advlens.papers.jones2022 import check_zoo_knobs

    with pytest.raises(ValueError, match=r"'robust_pairs' = 64 exceeds n_pairs = 32.*raise "
                                         r"n_pairs"):
        check_zoo_knobs(presets.resolve("01", "smoke", robust_pairs=64))
    check_zoo_knobs(presets.resolve("01", "smoke", robust_pairs=64, n_pairs=64))  # no error
    check_zoo_knobs(presets.resolve("01", "smoke", robust_pairs=16))  # fewer: a prefix


def test_the_jackknife_takes_at_most_one_group_per_item_by_default() -> None:
    """Notebook 01 with n_pairs 4 failed: "groups must be an int in [2, n=4]; got 20". Without
    ``groups``, min(20, n) groups: one item each below 20 (the delete-one jackknife, checked
    against its closed form for the mean), 20 from 20 items on (unchanged)."""
    values = np.array([0.3, 0.9, 0.4, 0.7])
    from scipy import stats as scipy_stats

    from advlens.papers import jones2022 as j

    est = j.grouped_jackknife(4, lambda rows: float(values[rows].mean()))
    # delete-one jackknife of a mean: se = sd / sqrt(n)
    se = values.std(ddof=1) / np.sqrt(4)
    half = float(scipy_stats.t.ppf(0.975, 3)) * se
    assert est.value == pytest.approx(values.mean()) and est.hi - est.value == pytest.approx(half)
    many = np.random.default_rng(0).random(50)
    mean = lambda rows: float(many[rows].mean())  # noqa: E731
    assert j.grouped_jackknife(50, mean) == j.grouped_jackknife(50, mean, groups=20)
