"""advlens.papers.liang2021: class lists, the per-source measurement, summaries, correlations,
and the paper preset's early data check."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as scipy_stats

from advlens import attacks, presets, runner
from advlens.data import ImageSet
from advlens.data.cifar import CLASSES as CIFAR_CLASSES
from advlens.data.stl10 import CLASSES as STL_CLASSES
from advlens.papers import liang2021
from advlens.zoo import ModelConfig
from attack_toys import random_images, tiny_cnn
from data_writers import write_cifar, write_stl


def test_growing_share_swaps_one_class_at_a_time() -> None:
    lists = liang2021.growing_share((5, 6, 7, 8), (0, 1, 2, 3))
    assert lists == [(0, 1, 2, 3), (5, 1, 2, 3), (5, 6, 2, 3), (5, 6, 7, 3), (5, 6, 7, 8)]
    with pytest.raises(ValueError, match="disjoint"):
        liang2021.growing_share((1, 2), (2, 3))


def test_paper_shares_come_from_the_class_lists() -> None:
    # the paper's CIFAR-10 lists: 0..4 of 4 classes are animals; labels from names, not files
    names = [[CIFAR_CLASSES[c] for c in lst] for lst in liang2021.PAPER_SOURCES]
    shares = [liang2021.class_share(n, liang2021.ANIMALS) for n in names]
    assert shares == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert set(liang2021.PAPER_TARGET) <= set(STL_CLASSES) and \
        set(liang2021.PAPER_TARGET) <= set(liang2021.ANIMALS)
    # reversing the lists reverses the labels: nothing is attached to a position or a file name
    labels = [liang2021.share_label(n, liang2021.ANIMALS) for n in names]
    assert [liang2021.share_label(n, liang2021.ANIMALS) for n in names[::-1]] == labels[::-1]
    assert labels[0].startswith("0/4") and labels[-1].startswith("4/4")


def test_experiment_a_labels_and_shares_match_each_sources_classes() -> None:
    target, other = (5, 6, 7, 8), (0, 1, 2, 3)
    exp = liang2021.experiment_a("A", ModelConfig("cnn-s"), target, other)
    assert exp.reference.classes == target
    for source in exp.sources:
        classes = source.config.classes
        hits = len(set(classes) & set(target))  # independent of the module's helpers
        assert source.share == hits / 4
        assert source.label == f"{hits}/4 target: {','.join(map(str, classes))}"
    # a shuffled order of `other` gives other lists, and the labels follow the lists
    shuffled = liang2021.experiment_a("A", ModelConfig("cnn-s"), target, (3, 2, 1, 0))
    assert shuffled.sources[0].label == "0/4 target: 3,2,1,0"


def _imageset(x: torch.Tensor, y: torch.Tensor) -> ImageSet:
    return ImageSet(x, y, None, [str(c) for c in range(int(y.max()) + 1)], "toy")


def test_evaluate_sources_on_toy_models() -> None:
    reference = tiny_cnn(seed=0, k=3).eval()
    other = tiny_cnn(seed=1, k=3).eval()
    x_train, x_test = random_images(120, seed=1), random_images(60, seed=2)
    with torch.no_grad():  # the reference's own labels, so it is right on every test image
        y_train, y_test = reference(x_train).argmax(1), reference(x_test).argmax(1)
    y_test[:10] = (y_test[:10] + 1) % 3  # ... except on 10
    # FGSM has no random start: the reference's copy gets the reference's own perturbation
    settings = liang2021.Settings(attack="fgsm", n_images=40, probe_epochs=5)
    rows = liang2021.evaluate_sources(reference, {"twin": copy.deepcopy(reference),
                                                  "other": other},
                                      _imageset(x_train, y_train), _imageset(x_test, y_test),
                                      settings)
    assert list(rows["source"]) == ["twin", "other"]
    assert (rows["n_alpha"] == 40).all()  # the first 40 of the 50 images the reference gets right
    twin = rows.set_index("source").loc["twin"]
    assert 0.0 <= rows["alpha2"].min() and rows["alpha2"].max() <= 1.0
    assert twin["alpha1"] == pytest.approx(1.0, abs=1e-6)
    assert rows.set_index("source").loc["other", "alpha1"] != pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= twin["transfer_acc"] <= 1.0 and twin["probe_epoch"] >= 1


def test_knowledge_transfer_with_the_lbfgs_probe_records_its_fit() -> None:
    """probe_recipe "lbfgs" (the laptop preset's probe, fitted to convergence): the rows say
    which weight decay the validation split chose and whether the fit converged; the test
    accuracy is that head's, recomputed; fine-tuning with it is refused at once."""
    from advlens import probes

    source = tiny_cnn(seed=1, k=3).eval()
    x_train, x_test = random_images(120, seed=1), random_images(60, seed=2)
    with torch.no_grad():
        y_train, y_test = source(x_train).argmax(1), source(x_test).argmax(1)
    settings = liang2021.Settings(probe_recipe="lbfgs", probe_epochs=500)
    train, test = _imageset(x_train, y_train), _imageset(x_test, y_test)
    row = liang2021.knowledge_transfer(source, train, test, settings, seed=0)
    assert row["probe_converged"] is True
    assert row["probe_weight_decay"] in probes.LBFGS_WEIGHT_DECAYS
    tr, val = probes.train_val_split(train.labels, settings.val_fraction, seed=0)
    fit = probes.linear_probe(source, x_train[tr], y_train[tr], x_train[val], y_train[val],
                              num_classes=3, recipe="lbfgs", epochs=500)
    with torch.no_grad():
        expected = float((fit.model(x_test).argmax(1) == y_test).double().mean())
    assert row["transfer_acc"] == pytest.approx(expected)
    assert row["probe_weight_decay"] == fit.weight_decay
    assert math.isnan(liang2021.knowledge_transfer(
        source, train, test, liang2021.Settings(probe_epochs=2), seed=0)["probe_weight_decay"])
    with pytest.raises(ValueError, match="'lbfgs' fits a linear probe"):
        liang2021.Settings(probe="finetune", probe_recipe="lbfgs")


def test_evaluate_sources_reads_the_reference_direction_their_adv2know_measured() -> None:
    """alpha_direction "reference-to-source" (the published experiment-B α₁: their adv2know.py
    attacks the reference and reads the source) gives, on the same α images, α₁, α₂ and the
    combined number of the pair (reference, source) — each checked against transfer's own
    functions on those images — and not those of the protocol's (source, reference)."""
    from advlens import transfer

    reference = tiny_cnn(seed=0, k=3).eval()
    other = tiny_cnn(seed=1, k=3).eval()
    x_train, x_test = random_images(120, seed=1), random_images(60, seed=2)
    with torch.no_grad():
        y_train, y_test = reference(x_train).argmax(1), reference(x_test).argmax(1)
    y_test[:10] = (y_test[:10] + 1) % 3
    rows = {}
    for direction in transfer.ALPHA_DIRECTIONS:
        settings = liang2021.Settings(attack="fgsm", n_images=40, probe_epochs=2,
                                      direction=direction)
        rows[direction] = liang2021.evaluate_sources(
            reference, {"other": other}, _imageset(x_train, y_train),
            _imageset(x_test, y_test), settings).iloc[0]
    x_alpha = x_test[10:50]  # the first 40 images the reference gets right
    attack = transfer.liang_fgsm(0.1)
    reverse, forward = rows["reference-to-source"], rows["source-to-reference"]
    assert reverse["n_alpha"] == forward["n_alpha"] == 40
    assert reverse["alpha1"] == pytest.approx(
        transfer.alpha1(reference, other, x_alpha, attack=attack), rel=1e-12)
    assert reverse["alpha2"] == pytest.approx(
        transfer.alpha2(reference, other, x_alpha, attack=attack), rel=1e-12)
    assert reverse["combined"] == pytest.approx(
        transfer.alpha_combined(reference, other, x_alpha, attack=attack), rel=1e-12)
    assert forward["alpha1"] == pytest.approx(
        transfer.alpha1(other, reference, x_alpha, attack=attack), rel=1e-12)
    assert reverse["alpha1"] != pytest.approx(forward["alpha1"], rel=1e-3)
    with pytest.raises(ValueError, match="direction must be one of"):
        liang2021.Settings(direction="both")


def test_evaluate_sources_names_a_reference_right_on_no_test_image() -> None:
    """No α image (the reference wrong on every test image): said so, not the attack's
    'x is an empty batch'."""
    reference = tiny_cnn(seed=0, k=3).eval()
    x_train, x_test = random_images(30, seed=1), random_images(20, seed=2)
    with torch.no_grad():
        y_train = reference(x_train).argmax(1)
        y_test = (reference(x_test).argmax(1) + 1) % 3  # wrong on every one
    with pytest.raises(ValueError, match="classifies none of the 20 test images"):
        liang2021.evaluate_sources(reference, {"other": tiny_cnn(seed=1, k=3).eval()},
                                   _imageset(x_train, y_train), _imageset(x_test, y_test),
                                   liang2021.Settings(attack="fgsm", probe_epochs=1))


def test_a_sources_alphas_do_not_depend_on_the_other_sources() -> None:
    """PGD's random starts come from each model's own stream: a source's α₁, α₂ are the same
    alone, beside others and in another order (one shared generator, consumed in attack order,
    moved every later source's start when a source was added or the list reordered); its
    perturbation is PGD from the start drawn from model_seed(seed, name)."""
    reference = tiny_cnn(seed=0, k=3).eval()
    models = {name: tiny_cnn(seed=i, k=3).eval() for i, name in enumerate("abc", start=1)}
    x_train, x_test = random_images(60, seed=1), random_images(30, seed=2)
    with torch.no_grad():
        y_train, y_test = reference(x_train).argmax(1), reference(x_test).argmax(1)
    train, test = _imageset(x_train, y_train), _imageset(x_test, y_test)
    settings = liang2021.Settings(steps=3, n_images=30, probe_epochs=1)
    alphas = ["alpha1", "alpha2", "combined"]

    def run(names: str, seed: int = 0) -> pd.DataFrame:
        sources = {n: models[n] for n in names}
        return liang2021.evaluate_sources(reference, sources, train, test, settings,
                                          seed=seed).set_index("source")[alphas]

    together = run("abc")
    pd.testing.assert_frame_equal(run("c").loc[["c"]], together.loc[["c"]])
    pd.testing.assert_frame_equal(run("cab").loc[list("abc")], together)
    assert not np.allclose(run("abc", seed=1).to_numpy(), together.to_numpy())
    # the stream is the model's own: PGD from SHA-256("0/b")'s generator, by hand
    assert liang2021.model_seed(0, "b") == int.from_bytes(
        hashlib.sha256(b"0/b").digest()[:8], "little") & (2**63 - 1)
    own = models["b"](x_test).argmax(1)
    by_hand = attacks.pgd(models["b"], x_test, own, eps=0.1, norm="linf", steps=3,
                          step_size=0.01, random_start=True,
                          generator=torch.Generator().manual_seed(liang2021.model_seed(0, "b")))
    made = liang2021.Settings(steps=3).make_attack(0, "b")(models["b"], x_test, own)
    assert torch.equal(made.adv, by_hand.adv)


def _rows(transfer: list[float], alpha: list[float], sources: int = 3) -> pd.DataFrame:
    n = len(transfer)
    return pd.DataFrame({"experiment": "E", "source": [f"s{i % sources}" for i in range(n)],
                         "seed": [i // sources for i in range(n)], "share": None, "arch": "a",
                         "alpha1": alpha, "alpha2": alpha, "combined": alpha,
                         "transfer_acc": transfer})


def test_summary_uses_a_student_t_interval_clipped_to_the_range() -> None:
    rows = _rows([0.5, 0.6, 0.7, 0.52, 0.61, 0.9, 0.49, 0.6, 0.4], [0.1] * 9)
    s = liang2021.summarize(rows).set_index("source")
    values = rows[rows["source"] == "s0"]["transfer_acc"].to_numpy()
    lo, hi = scipy_stats.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                    scale=scipy_stats.sem(values))
    assert s.loc["s0", "transfer_acc"] == pytest.approx(values.mean())
    assert (s.loc["s0", "transfer_acc_lo"], s.loc["s0", "transfer_acc_hi"]) == \
        pytest.approx((max(lo, 0.0), min(hi, 1.0)))
    assert np.allclose(s["alpha2_lo"], 0.1) and np.allclose(s["alpha2_hi"], 0.1)  # no spread
    # near the top of the range the t-interval reaches beyond 1, and is clipped there
    near = liang2021.summarize(_rows([0.5, 0.6, 0.99, 0.52, 0.61, 0.7, 0.49, 0.6, 0.98],
                                     [0.1] * 9)).set_index("source")
    values = np.array([0.99, 0.7, 0.98])
    lo, hi = scipy_stats.t.interval(0.95, 2, loc=values.mean(), scale=scipy_stats.sem(values))
    assert hi > 1.0 and near.loc["s2", "transfer_acc_hi"] == 1.0
    assert near.loc["s2", "transfer_acc_lo"] == pytest.approx(lo)


def test_correlations_hold_only_for_a_positive_rank_correlation() -> None:
    up = liang2021.correlations(_rows(list(np.linspace(0.3, 0.9, 15)),
                                      list(np.linspace(0, 1, 15)), sources=5), n_boot=200)
    assert up["rho"].eq(1.0).all() and up["holds"].all()
    # 5 sources: 120 pairings of whole sources, the observed one most extreme either way
    assert up["p"].to_numpy() == pytest.approx(2 / 120)
    down = liang2021.correlations(_rows(list(np.linspace(0.9, 0.3, 15)),
                                        list(np.linspace(0, 1, 15)), sources=5), n_boot=200)
    assert down["rho"].eq(-1.0).all() and not down["holds"].any()
    expected = scipy_stats.spearmanr([3, 1, 2, 5, 4, 6], [1, 2, 3, 4, 6, 5]).statistic
    mixed = liang2021.correlations(_rows([1, 2, 3, 4, 6, 5], [3, 1, 2, 5, 4, 6]), n_boot=200)
    assert mixed["rho"].iloc[0] == pytest.approx(expected)
    assert mixed["lo"].iloc[0] <= expected <= mixed["hi"].iloc[0]
    table = liang2021.findings(liang2021.summarize(_rows([1, 2, 3, 4, 6, 5],
                                                         [3, 1, 2, 5, 4, 6])), mixed)
    assert list(table["finding"]) == ["E: knowledge transfer rises with α₁",
                                      "E: knowledge transfer rises with α₂"]
    assert f"{expected:.3f}" in table["evidence"].iloc[0]
    # three sources cannot test the sign (3! pairings of whole sources): no verdict
    assert list(table["holds"]) == [None, None] and not mixed["testable"].any()
    assert "too few to test: 5 sources needed" in table["evidence"].iloc[0]


def test_correlation_figure_shows_the_one_sided_p_the_verdict_uses() -> None:
    """The 04b legend showed only the two-sided p (2/120 for five perfectly ordered sources)
    and its title said "permutation p", while ``holds`` reads the one-sided ``p_greater``
    (1/5! = 1/120: the observed pairing is the one most extreme pairing of whole sources)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advlens.papers import liang2021_figures

    rows = _rows(list(np.linspace(0.3, 0.9, 15)), list(np.linspace(0, 1, 15)), sources=5)
    corr = liang2021.correlations(rows, n_boot=100)
    assert corr["holds"].all()
    fig = liang2021_figures.correlation_scatter(rows, corr)
    try:
        for ax in fig.axes:
            (label,) = [t.get_text() for t in ax.get_legend().get_texts()]
            assert f"p = {2 / 120:.2g}" in label and f"one-sided {1 / 120:.2g}" in label, label
        title = fig._suptitle.get_text()
        assert "two-sided" in title and "one-sided" in title and "verdict" in title, title
    finally:
        plt.close(fig)


def test_correlations_take_metrics_as_a_list_once() -> None:
    """A generator of metrics was used up by the first experiment (the second had no rows), a
    bare string was read letter by letter (pandas' "['a'] not in index"); the reference is the
    same metrics given as a list."""
    rows = pd.concat([_rows(list(np.linspace(0.3, 0.9, 6)), list(np.linspace(0, 1, 6)))
                      .assign(experiment=name) for name in ("A", "B")], ignore_index=True)
    expected = liang2021.correlations(rows, metrics=["alpha1", "alpha2"], n_boot=50)
    assert len(expected) == 4
    got = liang2021.correlations(rows, metrics=(m for m in ["alpha1", "alpha2"]), n_boot=50)
    pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(ValueError, match=r"not the string 'alpha1'; pass \['alpha1'\]"):
        liang2021.correlations(rows, metrics="alpha1")
    with pytest.raises(ValueError, match=r"rows lack column\(s\) \['alpha3'\]"):
        liang2021.correlations(rows, metrics=["alpha3"])


def test_correlations_treat_a_sources_seeds_as_one_draw() -> None:
    """Nine points of three sources (three seeds each): ρ = 1 over the points, whose percentile
    CI is [1, 1], but only 3! pairings of whole sources exist (two-sided p ≥ 1/3): no verdict.
    The p of five sources is checked against every pairing of whole sources, by hand."""
    three = liang2021.correlations(_rows(list(np.linspace(0.3, 0.9, 9)),
                                         list(np.linspace(0, 1, 9))), n_boot=200)
    assert three["rho"].eq(1.0).all()
    assert not three["testable"].any() and not three["holds"].any()
    assert three["p"].to_numpy() == pytest.approx(2 / 6) and set(three["n_sources"]) == {3}
    rng = np.random.default_rng(4)
    transfer = rng.random(15)
    alpha = transfer + rng.normal(0, 0.3, 15)
    table = liang2021.correlations(_rows(list(transfer), list(alpha), sources=5), n_boot=200)
    source = np.arange(15) % 5
    observed = scipy_stats.spearmanr(alpha, transfer).statistic
    pairings = []
    for order in itertools.permutations(range(5)):  # source i's α with source order[i]'s transfer
        moved = np.empty(15)
        for i, j in enumerate(order):
            moved[source == i] = transfer[source == j]
        pairings.append(scipy_stats.spearmanr(alpha, moved).statistic)
    pairings = np.array(pairings)
    one_sided = min((pairings >= observed - 1e-12).mean(), (pairings <= observed + 1e-12).mean())
    assert table["p"].iloc[0] == pytest.approx(min(1.0, 2 * one_sided))
    assert table["p_over"].iloc[0] == "sources"
    # unequal seeds per source: points are paired one by one, and said so
    uneven = liang2021.correlations(_rows(list(transfer[:14]), list(alpha[:14]), sources=5),
                                    n_boot=200)
    assert uneven["p_over"].iloc[0] == "points"


def test_correlations_do_not_hold_at_a_permutation_p_of_exactly_the_level(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule is p below 1 − level: in floats 1 − 0.95 is 0.050000000000000044, so an exact p
    of 0.05 (reachable with ties or more sources, e.g. 6 of 120 pairings) read as below it."""
    rows = _rows(list(np.linspace(0.3, 0.9, 15)), list(np.linspace(0, 1, 15)), sources=5)
    assert liang2021.correlations(rows, n_boot=100)["holds"].all()
    monkeypatch.setattr(liang2021, "permutation_p", lambda *a, **k: 6 / 120)
    assert 6 / 120 < 1.0 - 0.95
    assert not liang2021.correlations(rows, n_boot=100)["holds"].any()


def test_correlations_pair_whole_sources_seed_by_seed_whatever_the_row_order() -> None:
    """Seed s of every source shares the reference model of seed s: the source pairings meet
    seed s with seed s (by the ``seed`` column), so the p is that of every pairing of whole
    sources by seed, by hand, for the rows in any order (shuffled rows paired a source's seed 0
    with another's seed 2, and a shared per-seed shift then looked like an association)."""
    rng = np.random.default_rng(9)
    shift = np.array([0.0, 1.0, 2.0])  # per seed: the reference model moves every source
    source, seed = np.arange(18) % 6, np.arange(18) // 6
    alpha = shift[seed] + rng.normal(0, 0.3, 6)[source] + rng.normal(0, 0.05, 18)
    transfer = 0.3 * shift[seed] + rng.normal(0, 0.02, 6)[source] + rng.normal(0, 0.01, 18)
    rows = _rows(list(transfer), list(alpha), sources=6)
    observed = scipy_stats.spearmanr(alpha, transfer).statistic
    pairings = []
    for order in itertools.permutations(range(6)):  # source i, seed s with source order[i], s
        moved = transfer[np.array(order)[source] + 6 * seed]
        pairings.append(scipy_stats.spearmanr(alpha, moved).statistic)
    pairings = np.array(pairings)
    one_sided = min((pairings >= observed - 1e-12).mean(), (pairings <= observed + 1e-12).mean())
    expected = min(1.0, 2 * one_sided)
    for order in (np.arange(18), rng.permutation(18), np.argsort(-transfer, kind="stable")):
        table = liang2021.correlations(rows.iloc[order], metrics=("alpha1",), n_boot=50)
        assert table["p"].iloc[0] == pytest.approx(expected), order
        assert table["p_over"].iloc[0] == "sources"


def test_correlations_do_not_hold_for_sources_ranked_the_wrong_way_within_every_seed() -> None:
    """Seed s shifts every source's α and transfer by 10·s (one reference model per seed);
    within each seed transfer falls as α rises. The pooled ρ and its CI over sources lie above
    0 and the two-sided p of whole-source pairings is their minimum, 2/120 — but from below:
    by hand (float64 ranks, every pairing), the observed ρ is the lowest of the 120, so the
    one-sided p of ρ above its pairings is 1. That read "holds"."""
    source, seed = np.arange(15) % 5, np.arange(15) // 5
    alpha, transfer = 10.0 * seed - 0.1 * source, 10.0 * seed + 0.1 * source
    table = liang2021.correlations(_rows(list(transfer), list(alpha), sources=5), n_boot=200)

    def rho(a: np.ndarray, t: np.ndarray) -> float:
        ra, rt = (np.argsort(np.argsort(v)).astype(np.float64) for v in (a, t))  # no ties
        ra, rt = ra - ra.mean(), rt - rt.mean()
        return float(ra @ rt / math.sqrt((ra @ ra) * (rt @ rt)))

    for s in range(3):
        assert rho(alpha[seed == s], transfer[seed == s]) == pytest.approx(-1.0)
    observed = rho(alpha, transfer)
    pairings = np.array([rho(alpha, transfer[np.array(order)[source] + 5 * seed])
                         for order in itertools.permutations(range(5))])
    greater = float((pairings >= observed - 1e-12).mean())
    less = float((pairings <= observed + 1e-12).mean())
    assert observed > 0 and (greater, less) == (1.0, 1 / 120)
    r = table.iloc[0]
    assert r["rho"] == pytest.approx(observed) and r["lo"] > 0 and r["testable"]
    assert r["p"] == pytest.approx(2 * less)
    assert not table["holds"].any()
    assert r["p_greater"] == pytest.approx(greater)
    verdicts = liang2021.findings(liang2021.summarize(_rows(list(transfer), list(alpha),
                                                            sources=5)), table)
    assert list(verdicts["holds"]) == [False, False]
    assert "one-sided, ρ above its pairings: 1" in verdicts["evidence"].iloc[0]
    # the same points ranked the right way within every seed: one-sided p 1/120, it holds
    right = liang2021.correlations(_rows(list(transfer), list(10.0 * seed + 0.1 * source),
                                         sources=5), n_boot=200)
    assert right["p_greater"].to_numpy() == pytest.approx(1 / 120) and right["holds"].all()


def test_paper_table_puts_ours_beside_the_published_numbers() -> None:
    summary = pd.DataFrame({"experiment": ["B-cifar10-stl10", "B-cifar10-stl10", "A"],
                            "source": ["lenet", "resnet50-cifar", "lenet"],
                            "transfer_acc": [0.5, 0.8, 0.1], "alpha1": [0.3, 0.6, 0.9]})
    table = liang2021.paper_table(summary).set_index("arch")
    assert table.loc["lenet", "paper_transfer_acc"] == 0.457
    assert table.loc["resnet50-cifar", "paper_alpha1"] == 0.614
    assert table.loc["lenet", "transfer_acc"] == 0.5
    assert table.loc["resnet50-cifar", "alpha1"] == 0.6
    assert table.loc[["fcnet", "alexnet"], "transfer_acc"].isna().all()
    assert liang2021.paper_table(summary, "nothing")["alpha1"].isna().all()


def test_paper_preset_fails_early_naming_the_missing_data(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path) -> None:
    knobs = presets.resolve("04", "paper")
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    with pytest.raises(FileNotFoundError, match="ADVLENS_CIFAR10"):
        liang2021.check_data(knobs)
    monkeypatch.setenv("ADVLENS_CIFAR10", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        liang2021.check_data(knobs)
    assert liang2021.check_data(presets.resolve("04", "laptop")) == {}


def test_paper_experiments_follow_the_published_lists() -> None:
    knobs = presets.resolve("04", "paper")
    a, b = liang2021.experiments_from_knobs(knobs)
    assert a.reference.dataset == "stl10"
    assert [STL_CLASSES[c] for c in a.reference.classes] == list(liang2021.PAPER_TARGET)
    assert [s.config.classes for s in a.sources] == list(liang2021.PAPER_SOURCES)
    assert [s.share for s in a.sources] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # the shares count animal classes: the last source (bird, cat, deer, horse) holds 3 of the
    # target's four (bird, cat, deer, dog), so its label must not say "4/4 target"
    assert [s.label.split(":")[0] for s in a.sources] == [f"{k}/4 animal" for k in range(5)]
    assert a.sources[-1].label == "4/4 animal: bird,cat,deer,horse"
    assert all(s.config.dataset == "cifar10" for s in a.sources + b.sources)
    assert [s.config.arch for s in b.sources] == list(liang2021.PAPER_ARCHS)
    # B's target task is all of STL-10 (their cmd.sh: transfer.py and adv2know.py with
    # -d stl10 --include_list 0 ... 9): the published 28.3 % of fcnet is a ten-class accuracy
    assert b.reference.dataset == "stl10" and b.reference.classes is None
    assert b.reference.num_classes == 10 and b.reference.arch == "resnet50-cifar"  # their res_net50
    assert all(s.config.classes is None for s in b.sources)
    # every model trained as their train_clf.py (SGD 0.1, wd 1e-4, cosine, crop + flip; their
    # default 100 epochs, batch 64)
    for config in [a.reference, b.reference, *(s.config for s in a.sources + b.sources)]:
        assert (config.optimizer, config.lr, config.weight_decay, config.warmup_frac,
                config.augment) == ("sgd", 0.1, 1e-4, 0.0, "crop-flip")
        assert (config.epochs, config.batch_size) == (100, 64)


def test_paper_path_runs_end_to_end_on_tiny_real_format_files(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    write_cifar(tmp_path / "cifar", train_per_batch=60, n_test=40)
    write_stl(tmp_path / "stl", n=160)
    knobs = presets.resolve("04", "paper", cifar_kw={"root": str(tmp_path / "cifar")},
                            stl10_kw={"root": str(tmp_path / "stl")}, epochs=1,
                            b_archs={"fcnet": 1, "lenet": 1}, arch="lenet",
                            b_reference_arch="lenet")
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    monkeypatch.delenv("ADVLENS_STL10", raising=False)
    liang2021.check_data(knobs)  # exports the folders for the zoo
    experiments = liang2021.experiments_from_knobs(knobs)
    settings = liang2021.Settings(steps=2, n_images=20, probe_epochs=2)
    rows = liang2021.run_all(experiments[1:], [0], settings, root=str(tmp_path / "zoo"))
    assert list(rows["source"]) == ["fcnet", "lenet"]
    assert rows[["alpha1", "alpha2", "transfer_acc"]].notna().all().all()


@pytest.mark.slow
def test_notebook_stops_in_its_first_cell_without_the_paper_data(
        monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("ADVLENS_CIFAR10", raising=False)
    with pytest.raises(runner.NotebookFailed, match="ADVLENS_CIFAR10") as err:
        runner.run("paper", only=["04"], out=tmp_path, progress=False)
    assert err.value.cell == 3  # parameters, papermill's injected parameters, then this one


def test_summary_with_two_seeds_and_with_one() -> None:
    """Two seeds: scipy's t interval (1 degree of freedom); one seed: its value, no interval."""
    rows = _rows([0.5, 0.6, 0.7, 0.55, 0.62, 0.9], [0.1] * 6)
    s = liang2021.summarize(rows).set_index("source")
    values = rows[rows["source"] == "s0"]["transfer_acc"].to_numpy()
    lo, hi = scipy_stats.t.interval(0.95, 1, loc=values.mean(), scale=scipy_stats.sem(values))
    assert (s.loc["s0", "transfer_acc_lo"], s.loc["s0", "transfer_acc_hi"]) == \
        pytest.approx((max(lo, 0.0), min(hi, 1.0)))
    one = liang2021.summarize(_rows([0.5, 0.6, 0.7], [0.1, 0.2, 0.3]).assign(
        share=[0.0, 0.5, 1.0], arch=["x", "y", "z"])).set_index("source")
    assert list(one["n_seeds"]) == [1, 1, 1] and list(one["share"]) == [0.0, 0.5, 1.0]
    assert list(one["arch"]) == ["x", "y", "z"]
    assert one.loc["s1", "alpha1"] == 0.2 and np.isnan(one["alpha1_lo"]).all()


def test_correlations_of_too_few_points_have_a_ci_but_no_verdict() -> None:
    """Three or four (source, seed) points in perfect order: every resample with two distinct
    points ranks them alike, so the CI is [1, 1], yet the exact permutation p of a perfect
    order is 1/n! (scipy: 1/6, 1/24), above the 0.025 a 95 % CI above 0 stands for: the claim
    is not testable there ('holds' read on it). Five points (p = 1/120) decide it."""
    for n, testable in ((3, False), (4, False), (5, True)):
        alpha, transfer = list(np.linspace(0.2, 0.9, n)), list(np.linspace(0.1, 0.4, n))
        exact = scipy_stats.permutation_test(  # every one of the n! orders of alpha
            (alpha,), lambda a, t=transfer: scipy_stats.spearmanr(a, t).statistic,
            permutation_type="pairings", alternative="greater").pvalue
        assert exact == pytest.approx(1 / math.factorial(n))
        rows = _rows(alpha, transfer, sources=n)  # one seed per source
        corr = liang2021.correlations(rows, n_boot=100)
        assert np.allclose(corr[["rho", "lo", "hi"]], 1.0) and list(corr["n"]) == [n] * 3
        assert corr["holds"].all() == testable == (exact < 0.025)
        assert corr["p"].to_numpy() == pytest.approx(2 * exact)
        table = liang2021.findings(liang2021.summarize(rows), corr)
        assert list(table["holds"]) == ([True, True] if testable else [None, None])
        assert ("too few to test: 5 sources needed" in table["evidence"].iloc[0]) != testable


def test_paper_sources_swap_one_vehicle_for_one_animal_per_step() -> None:
    """The paper's lists grow the animal share one class at a time (PROTOCOLS.md §4's
    experiment A): consecutive lists differ in one position, a vehicle replaced by an animal."""
    for before, after in zip(liang2021.PAPER_SOURCES, liang2021.PAPER_SOURCES[1:], strict=False):
        changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        assert len(changed) == 1
        (old, new), = changed
        assert CIFAR_CLASSES[old] not in liang2021.ANIMALS
        assert CIFAR_CLASSES[new] in liang2021.ANIMALS


def test_experiments_from_knobs_refuses_an_unknown_experiment() -> None:
    knobs = dict(presets.resolve("04", "laptop"))
    knobs["experiments"] = ["A-digits", "A-cifar"]
    with pytest.raises(ValueError, match=r"unknown experiment\(s\) \['A-cifar'\]"):
        liang2021.experiments_from_knobs(knobs)


@pytest.mark.parametrize(("knobs", "named", "cause"), [
    ({"arch": "cnn-S"}, "knob 'arch' = 'cnn-S'", "unknown arch 'cnn-S'"),
    ({"b_reference_arch": "resnet-8"}, "knob 'b_reference_arch'", "unknown arch 'resnet-8'"),
    ({"b_archs": {"mlp-S": 2}}, "knob 'b_archs' = {'mlp-S': 2}", "unknown arch 'mlp-S'"),
    ({"a_target": [5, 6, 7, 42]}, "knob 'a_target' = [5, 6, 7, 42]", "class indices in 0..9"),
    ({"b_source": [0, 12]}, "knob 'b_source' = [0, 12]", "class indices in 0..9"),
    ({"a_other": [5, 1, 2, 3]}, "knobs 'a_target' = [5, 6, 7, 8] and 'a_other' = [5, 1, 2, 3]",
     "must be disjoint"),
    ({"b_target": [4, 5, 6]}, "and 'b_target' = [4, 5, 6]", "must be disjoint"),
    ({"b_archs": {}}, "knob 'b_archs' = {} gives experiment B no source", ""),
])
def test_experiments_from_knobs_name_the_knob_that_is_wrong(knobs: dict, named: str,
                                                           cause: str) -> None:
    """The model config refused a misspelt architecture or class list without naming the knob
    that held it ("unknown arch 'cnn-S'", "classes must be ..."), and ``b_archs = {}`` ran
    experiment B with no source: its rows vanished from every table without a word."""
    resolved = presets.resolve("04", "smoke", **knobs)
    with pytest.raises(ValueError) as caught:
        liang2021.experiments_from_knobs(resolved)
    text = str(caught.value)
    assert text.startswith("knob") and named in text and cause in text, text
    # the knobs of an experiment that does not run are not its business
    if "b_archs" in knobs or "b_reference_arch" in knobs:
        made = liang2021.experiments_from_knobs({**resolved, "experiments": ["A-digits"]})
        assert [e.name for e in made] == ["A-digits"]


def test_run_experiment_seeds_sources_apart_from_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed s: the reference at s, every source at s + SOURCE_SEED_OFFSET (a source with the
    reference's classes would otherwise be the reference itself)."""
    loaded = []

    class Entry:
        def __init__(self, config: ModelConfig) -> None:
            loaded.append(config)
            self.model = tiny_cnn(seed=0, k=3)

    monkeypatch.setattr(liang2021.zoo, "load", lambda config, root, progress: Entry(config))
    monkeypatch.setattr(liang2021, "dataset_for", lambda config, split: _imageset(
        random_images(6, seed=0), torch.arange(6) % 3))
    monkeypatch.setattr(liang2021, "evaluate_sources", lambda ref, sources, *a: pd.DataFrame(
        {"source": list(sources)}))
    exp = liang2021.experiment_b("B", ModelConfig("cnn-s"), (0, 1), (2, 3),
                                 {"mlp-s": 1, "cnn-s": 1})
    liang2021.run_experiment(exp, [2], liang2021.Settings())
    assert [c.seed for c in loaded] == [2, 2 + liang2021.SOURCE_SEED_OFFSET,
                                        2 + liang2021.SOURCE_SEED_OFFSET]


def test_experiment_b_reference_follows_its_own_knob() -> None:
    knobs = presets.resolve("04", "smoke", b_reference_arch="mlp-s")
    made = {e.name: e for e in liang2021.experiments_from_knobs(knobs)}
    assert made["B-digits"].reference.arch == "mlp-s"
    assert made["A-digits"].reference.arch == knobs["arch"] == "cnn-s"
    # at the laptop preset B's reference is A's model: the same ModelConfig (one cache entry)
    same = {e.name: e for e in liang2021.experiments_from_knobs(presets.resolve("04", "laptop"))}
    assert same["B-digits"].reference.replace(classes=None) == \
        same["A-digits"].reference.replace(classes=None)


def test_experiment_table_lists_each_sources_classes() -> None:
    """What notebook 04 shows before running: the paper's CIFAR-10 lists (PROTOCOLS.md §4) for
    experiment A, no class list (all ten) for experiment B's sources."""
    a, b = liang2021.experiments_from_knobs(presets.resolve("04", "paper"))
    table = liang2021.experiment_table([a, b])
    assert table["classes"].tolist() == [[0, 1, 8, 9], [2, 1, 8, 9], [2, 3, 8, 9], [2, 3, 4, 9],
                                         [2, 3, 4, 7]] + [[]] * 5
    assert table["experiment"].tolist() == ["A-cifar10-stl10"] * 5 + ["B-cifar10-stl10"] * 5


def test_spearman_of_a_constant_column_is_nan_without_warnings() -> None:
    """Constant α or transfer: no rank correlation (NaN, not scipy's ConstantInputWarning);
    a column spanning exactly 0 .. 1 is not constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = liang2021.correlations(_rows([0.1, 0.2, 0.3, 0.4], [0.5] * 4), n_boot=50)
        also_flat = liang2021.correlations(_rows([0.3] * 4, [0.1, 0.2, 0.3, 0.4]), n_boot=50)
    assert flat["rho"].isna().all() and also_flat["rho"].isna().all()
    assert not flat["holds"].any()
    spans_one = liang2021.correlations(_rows([0.1, 0.2, 0.3], [0.0, 0.5, 1.0]), n_boot=50)
    assert (spans_one["rho"] == 1.0).all()  # ranks 1 2 3 against 1 2 3
    spans_one = liang2021.correlations(_rows([0.0, 1.0, 0.5], [0.1, 0.3, 0.2]), n_boot=50)
    assert (spans_one["rho"] == 1.0).all()


def test_correlations_keep_the_experiments_order() -> None:
    """Like summarize: the experiments in the order of the rows (the findings' order)."""
    rows = pd.concat([_rows([0.1, 0.2, 0.3], [0.1, 0.2, 0.4]).assign(experiment="B-digits"),
                      _rows([0.3, 0.2, 0.1], [0.1, 0.2, 0.4]).assign(experiment="A-digits")])
    corr = liang2021.correlations(rows, n_boot=50)
    assert corr["experiment"].tolist() == ["B-digits"] * 3 + ["A-digits"] * 3
    assert corr["rho"].tolist() == [1.0] * 3 + [-1.0] * 3


def test_run_all_is_one_table_with_one_row_per_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two experiments, one table: its index must not repeat (a .loc on a repeated label
    reads two rows)."""
    monkeypatch.setattr(liang2021, "run_experiment", lambda e, seeds, settings, **_: pd.DataFrame(
        {"experiment": e, "seed": list(seeds)}))
    rows = liang2021.run_all(["A", "B"], [0, 1], liang2021.Settings())
    assert rows["experiment"].tolist() == ["A", "A", "B", "B"]
    assert rows.index.tolist() == [0, 1, 2, 3]


def test_run_experiment_refuses_a_repeated_seed() -> None:
    """A repeated seed reloads the same cached models: its numbers would count twice
    (n_seeds 3 for seeds [0, 0, 1], a t-interval as if three seeds were measured)."""
    exp = liang2021.experiment_b("B", ModelConfig("cnn-s"), (0, 1), (2, 3), {"mlp-s": 1})
    with pytest.raises(ValueError, match=r"seeds must be distinct .* got \[0, 0, 1\]"):
        liang2021.run_experiment(exp, [0, 0, 1], liang2021.Settings())


def test_run_experiment_labels_each_row_with_its_experiment_and_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-seed table (04_per_seed.csv) starts with the experiment; each source row carries
    its own share and architecture and the seed's reference accuracy."""
    monkeypatch.setattr(liang2021.zoo, "load", lambda config, root, progress: type(
        "Entry", (), {"model": tiny_cnn(seed=0, k=3)})())
    monkeypatch.setattr(liang2021, "dataset_for", lambda config, split: _imageset(
        random_images(6, seed=0), torch.arange(6) % 3))
    monkeypatch.setattr(liang2021, "evaluate_sources", lambda ref, sources, *a: pd.DataFrame(
        {"source": list(sources), "seed": a[-1]}))
    monkeypatch.setattr(liang2021, "accuracy", lambda model, x, y: 0.75)
    exp = liang2021.experiment_b("B", ModelConfig("cnn-s"), (0, 1), (2, 3),
                                 {"mlp-s": 1, "cnn-s": 1})
    rows = liang2021.run_experiment(exp, [3, 4], liang2021.Settings())
    assert list(rows.columns) == ["experiment", "source", "seed", "share", "arch",
                                  "reference_acc"]
    assert rows["experiment"].eq("B").all() and rows["seed"].tolist() == [3, 3, 4, 4]
    assert rows["arch"].tolist() == ["mlp-s", "cnn-s"] * 2 and rows["share"].isna().all()
    assert rows["reference_acc"].eq(0.75).all()


def test_summary_and_correlations_keep_the_order_of_the_rows() -> None:
    """summarize's docstring: per (experiment, source) in the order of ``rows`` (the bars'
    order: experiment A's sources by growing share, not alphabetically)."""
    rows = pd.concat([_rows([0.1, 0.2, 0.3], [0.1, 0.2, 0.4]).assign(experiment="B-digits"),
                      _rows([0.3, 0.2, 0.1], [0.1, 0.2, 0.4]).assign(
                          experiment="A-digits", source=["4/4", "0/4", "2/4"])])
    summary = liang2021.summarize(rows)
    assert list(zip(summary["experiment"], summary["source"], strict=True)) == [
        ("B-digits", "s0"), ("B-digits", "s1"), ("B-digits", "s2"),
        ("A-digits", "4/4"), ("A-digits", "0/4"), ("A-digits", "2/4")]


def test_findings_leave_untested_a_ci_too_few_points_at_its_level_cannot_test() -> None:
    # 5 perfectly ordered points: every ordering of 5 has exact p = 1/120 > 0.005, so at
    # level 0.99 they cannot test the sign (6 needed); the claim is untested, not refuted
    n = 5
    rows = _rows(list(np.linspace(0.3, 0.9, n)), list(np.linspace(0, 1, n)), sources=n)
    assert 1 / math.factorial(n) > (1 - 0.99) / 2 > 1 / math.factorial(n + 1)
    corr = liang2021.correlations(rows, n_boot=200, level=0.99)
    assert (corr["lo"] > 0).all() and not corr["holds"].any()
    table = liang2021.findings(liang2021.summarize(rows), corr)
    assert table["holds"].isna().all() and table["evidence"].str.contains("too few").all()
    # at 0.95 the same 5 points test it, and it holds
    table = liang2021.findings(liang2021.summarize(rows),
                               liang2021.correlations(rows, n_boot=200))
    assert list(table["holds"]) == [True, True]


@pytest.mark.parametrize("bad", [{"probe": "Linear"}, {"attack": "PGD"}, {"val_fraction": 1.5},
                                 {"val_fraction": 0.0}, {"n_images": 0}, {"steps": 0},
                                 {"probe_epochs": 2.5}, {"squared_alpha2": "False"},
                                 # 0 ran no attack (alpha failed after every model was
                                 # trained), alpha on the random start, or no probe step
                                 {"eps": 0.0}, {"step_fraction": 0.0}, {"probe_lr": 0.0},
                                 {"eps": float("nan")}, {"probe_lr": -0.01}])
def test_settings_refuse_a_bad_value_before_any_model_is_loaded(
        bad: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad probe name or val_fraction used to pass Settings and fail only in the probe: after
    every model of the seed was loaded (or trained) and attacked."""
    loaded = []
    monkeypatch.setattr(liang2021.zoo, "load", lambda *a, **k: loaded.append(a))
    with pytest.raises((ValueError, TypeError), match=next(iter(bad))):
        liang2021.run_experiment(liang2021.experiment_b("B", ModelConfig("cnn-s"), (0, 1),
                                                        (2, 3), {"mlp-s": 1}),
                                 [0], liang2021.Settings(**bad))
    assert loaded == []


def test_transfer_bars_caption_names_the_data_networks_and_probe_the_preset_ran() -> None:
    """The 04a caption was fixed text: at the paper preset (CIFAR-10 -> STL-10, Liang et al.'s
    networks) it said "Digits and twin-cue stand in for CIFAR-10/STL-10, small zoo models for
    the paper's networks" (which also kept plots.labelled_caption from adding anything), and it
    said "linear-probe" / "unsquared" whatever the probe and squared_alpha2 knobs were."""
    from advlens.papers import liang2021_figures

    smoke = presets.PRESETS["04"]["smoke"]
    assert liang2021_figures.bars_caption(smoke) == (
        "Per source: α₁, α₂ (unsquared) and linear-probe accuracy on the target task, mean and "
        "95% t-CI over seeds. Digits and twin-cue stand in for CIFAR-10/STL-10, small zoo "
        "models for the paper's networks.")  # the caption as it was, where it was right
    paper = liang2021_figures.bars_caption(presets.PRESETS["04"]["paper"])
    assert "stand in" not in paper and "small zoo" not in paper
    assert "CIFAR-10 sources, STL-10 references and Liang et al.'s networks" in paper
    other = liang2021_figures.bars_caption({**smoke, "probe": "finetune", "squared_alpha2": True})
    assert "α₂ (squared) and fine-tuned accuracy" in other and "linear" not in other
    reverse = liang2021_figures.bars_caption({**smoke, "alpha_direction": "reference-to-source"})
    assert "α₂ (unsquared; the reference attacked, the source read) and" in reverse


def test_findings_leave_untested_a_ci_that_ties_make_no_evidence() -> None:
    """Five (source, seed) points, four probes at the same knowledge transfer (1.0): ρ = 0.71
    with a CI above 0, but the one ordering that matters has exact permutation p = 1/5
    (scipy) > 0.025, so the claim is not testable -- it read 'holds' (five points passed the
    count)."""
    transfer, alpha = [1.0, 1.0, 1.0, 1.0, 0.9], [0.5, 0.4, 0.3, 0.2, 0.1]
    exact = scipy_stats.permutation_test(
        (np.array(transfer),), lambda a: scipy_stats.spearmanr(alpha, a).statistic,
        permutation_type="pairings", alternative="greater").pvalue
    assert exact == pytest.approx(0.2)
    rows = _rows(transfer, alpha, sources=5)
    corr = liang2021.correlations(rows, n_boot=200)
    assert (corr["lo"] > 0).all() and not corr["testable"].any() and not corr["holds"].any()
    table = liang2021.findings(liang2021.summarize(rows), corr)
    assert table["holds"].isna().all() and table["evidence"].str.contains("too few").all()


def test_experiment_b_probes_for_its_own_epochs_at_the_paper_preset() -> None:
    """Their cmd.sh ran experiment B's transfer.py with --epoch 10 and A's at its default: the
    paper preset probed B for A's epochs once (b_probe_epochs)."""
    knobs = presets.resolve("04", "paper")
    a, b = liang2021.experiments_from_knobs(knobs)
    assert (a.probe_epochs, b.probe_epochs) == (None, 10)
    laptop = presets.resolve("04", "laptop")
    assert all(e.probe_epochs is None for e in liang2021.experiments_from_knobs(laptop))
    given = liang2021.experiments_from_knobs({**laptop, "b_probe_epochs": 3})
    assert [e.probe_epochs for e in given] == [None, None, 3]  # A-digits, A-twin-cue, B-digits


def test_paper_preset_probes_experiment_a_for_their_transfer_scripts_default_epochs() -> None:
    """Their image_exp/cmd.sh runs A's probe as ``transfer.py ... --source_classes 4
    --transfer_last`` without --epochs: image_exp/transfer.py's default, 10 (only that script
    takes --source_classes; exp1/transfer.py's default 300 belongs to the earlier release, whose
    last source is [2, 3, 4, 5], not the [2, 3, 4, 7] of PAPER_SOURCES). The epochs are the
    cosine schedule's T_max, so 300 annealed 30 times more slowly and trained 30 times longer."""
    their_default_epochs = 10  # image_exp/transfer.py: add_argument('--epochs', default=10)
    knobs = presets.resolve("04", "paper")
    a, b = liang2021.experiments_from_knobs(knobs)
    assert liang2021.PAPER_SOURCES[-1] == (2, 3, 4, 7)  # image_exp/cmd.sh's lists
    settings = liang2021.settings_from_knobs(knobs)
    assert settings.probe_recipe == "liang"
    for experiment in (a, b):
        epochs = experiment.probe_epochs or settings.probe_epochs
        assert epochs == their_default_epochs, experiment.name


def test_run_experiment_probes_for_the_experiments_own_epochs(monkeypatch) -> None:  # noqa: ANN001
    """run_experiment hands evaluate_sources the experiment's probe_epochs where it has them."""
    import types

    seen: list[int] = []
    monkeypatch.setattr(liang2021.zoo, "load", lambda *a, **k: types.SimpleNamespace(
        model=tiny_cnn(seed=0, k=2)))
    monkeypatch.setattr(liang2021, "dataset_for", lambda *a, **k: ImageSet(
        random_images(4), torch.tensor([0, 1, 0, 1]), None, ("a", "b"), "toy"))

    def evaluate(reference, models, train, test, settings, seed):  # noqa: ANN001, ANN202
        seen.append(settings.probe_epochs)
        return pd.DataFrame({"source": list(models)})

    monkeypatch.setattr(liang2021, "evaluate_sources", evaluate)
    config = ModelConfig("cnn-s", epochs=1)
    experiment = liang2021.Experiment("B", config, (liang2021.Source("s", config),))
    settings = liang2021.Settings(probe_epochs=30)
    liang2021.run_experiment(experiment, [0], settings)
    liang2021.run_experiment(dataclasses.replace(experiment, probe_epochs=10), [0], settings)
    assert seen == [30, 10] and settings.probe_epochs == 30


def test_transfer_bars_draw_no_error_bar_for_a_source_without_a_ci() -> None:
    """A source of one seed has no t-interval (NaN in the CSV): its error bar was drawn as a
    zero-width bar with caps at the mean, a CI of width 0 that the CSV does not hold. A source
    of three seeds keeps its bar over the Student-t interval (scipy)."""
    import matplotlib

    matplotlib.use("Agg")
    from advlens.papers import liang2021_figures

    values = {"s3": [0.30, 0.32, 0.34], "s1": [0.6]}
    rows = pd.DataFrame([{"experiment": "A", "source": src, "seed": i, "share": 0.5,
                          "arch": "cnn-s", "alpha1": v, "alpha2": v, "combined": v,
                          "transfer_acc": v} for src, vs in values.items()
                         for i, v in enumerate(vs)])
    fig = liang2021_figures.transfer_bars(liang2021.summarize(rows))
    ax = fig.axes[0]
    (bars,) = [c for c in ax.containers if hasattr(c, "has_xerr")]
    _, caps, (segments,) = bars.lines
    drawn = [seg for seg in segments.get_segments() if len(seg) and np.isfinite(seg).all()]
    lo, hi = scipy_stats.t.interval(0.95, 2, loc=0.32, scale=scipy_stats.sem(values["s3"]))
    assert len(drawn) == 1 and drawn[0][:, 0] == pytest.approx([lo, hi])
    for cap in caps:  # one cap per end of the one bar; none for the one-seed source
        assert np.isfinite(np.asarray(cap.get_xdata(), dtype=float)).sum() == 1
    assert ax.get_title() == "A (1-3 seeds)"
    one = liang2021.summarize(rows[rows["source"] == "s1"])
    assert liang2021_figures.transfer_bars(one).axes[0].get_title() == "A (1 seed: no CI)"


def test_settings_defaults_are_the_protocols_attack() -> None:
    """PROTOCOLS.md §4: untargeted L∞ PGD, random start, 50 steps of 0.1·eps at eps 0.1 (a
    `make mutate` survivor changed the default step count unnoticed)."""
    s = liang2021.Settings()
    assert (s.attack, s.eps, s.steps, s.step_fraction) == ("pgd", 0.1, 50, 0.1)


def test_findings_read_a_table_written_before_testable_by_its_count_and_ci() -> None:
    """A correlations table without ``testable`` (written before it): enough points are at
    least min_testable_points (5) with a CI not above 0 (it can then fail), or a row that held;
    fewer points, or a CI above 0 that did not hold (so something untestable kept it from
    holding), leave the claim untested. Each row below is decided by hand from that rule."""
    assert liang2021.min_testable_points() == 5
    summary = pd.DataFrame({"experiment": ["E"] * 2, "source": ["a", "b"],
                            "transfer_acc": [0.5, 0.6], "alpha1": [0.2, 0.1],
                            "alpha2": [0.2, 0.1]})
    cases = [  # (n, lo, holds) -> expected finding
        ((5, -0.2, False), False),  # exactly 5 points, CI reaching below 0: refuted
        ((3, -0.2, False), None),   # 3 points: too few, whatever the CI
        ((6, 0.1, False), None),    # CI above 0 that did not hold: untested
        ((6, 0.1, True), True)]
    for (n, lo, held), expected in cases:
        corr = pd.DataFrame({"experiment": ["E"], "metric": ["alpha1"], "rho": [0.3],
                             "lo": [lo], "hi": [0.8], "p": [0.2], "n": [n], "holds": [held]})
        (row,) = liang2021.findings(summary, corr).to_dict("records")
        assert row["holds"] is expected, (n, lo, held)


def _ranked_rows(transfer: list[float], alpha: list[float], seeds: int = 3,
                 jitter: float = 0.01) -> pd.DataFrame:
    """One row per (source, seed): source i at ``transfer[i]`` / ``alpha[i]`` plus noise in
    every seed (none on a transfer of exactly 0.2: a probe at chance in every seed)."""
    rng = np.random.default_rng(0)
    rows = [{"experiment": "E", "source": f"s{i}", "seed": seed, "share": None, "arch": "a",
             "alpha1": a + jitter * rng.normal(), "alpha2": a, "combined": a,
             "transfer_acc": t if t == 0.2 else t + jitter * rng.normal()}
            for i, (t, a) in enumerate(zip(transfer, alpha, strict=True))
            for seed in range(seeds)]
    return pd.DataFrame(rows)


def test_sources_tied_in_every_seed_leave_the_claim_untested() -> None:
    """3 of 5 sources at chance in every seed: no pairing of the sources reaches p < 0.025
    (at best 3!/5! = 0.05), yet the points' own test counted it testable and the claim read
    'does not hold' (review)."""
    rows = _ranked_rows([0.2, 0.2, 0.2, 0.5, 0.7], [1, 2, 3, 4, 5])
    corr = liang2021.correlations(rows, metrics=["alpha1"], n_boot=200)
    sources = [f"s{i}" for i in range(5)]
    x = np.stack([rows[rows.source == s].alpha1.to_numpy() for s in sources])
    y = np.stack([rows[rows.source == s].transfer_acc.to_numpy() for s in sources])
    rhos = np.array([scipy_stats.spearmanr(x.ravel(), y[list(p)].ravel()).statistic
                     for p in itertools.permutations(range(5))])
    assert float(np.mean(rhos >= rhos.max() - 1e-12)) == pytest.approx(0.05)  # by brute force
    assert not corr["testable"].iloc[0] and not corr["holds"].iloc[0]
    found = liang2021.findings(liang2021.summarize(rows), corr)
    assert found["holds"].iloc[0] is None
    assert "no pairing of these sources is significant" in found["evidence"].iloc[0]
    # five distinct sources in the same order: testable, and held
    rows = _ranked_rows([0.2, 0.3, 0.4, 0.5, 0.7], [1, 2, 3, 4, 5])
    corr = liang2021.correlations(rows, metrics=["alpha1"], n_boot=200)
    assert corr["testable"].iloc[0] and corr["holds"].iloc[0]


def test_sources_with_unequal_seed_counts_are_not_tested() -> None:
    """Pairing points instead of whole sources made one dropped row turn p 0.033 into 0.0002
    and a failed claim into 'holds' (review)."""
    rows = _ranked_rows([0.3, 0.2, 0.4, 0.5, 0.6], [1, 2, 3, 4, 5])
    full = liang2021.correlations(rows, metrics=["alpha1"], n_boot=200)
    assert full["p_over"].iloc[0] == "sources"
    dropped = rows.drop(index=rows.index[(rows.source == "s0") & (rows.seed == 2)])
    corr = liang2021.correlations(dropped, metrics=["alpha1"], n_boot=200)
    assert corr["p_over"].iloc[0] == "points"
    assert not corr["testable"].iloc[0] and not corr["holds"].iloc[0]
    found = liang2021.findings(liang2021.summarize(dropped), corr)
    assert found["holds"].iloc[0] is None
    assert "unequal numbers of seeds" in found["evidence"].iloc[0]


def test_an_undefined_rho_is_named_as_such() -> None:
    rows = _ranked_rows([0.2, 0.3, 0.4, 0.5, 0.7], [1, 2, 3, 4, 5])
    rows.loc[4, "alpha1"] = np.nan
    corr = liang2021.correlations(rows, metrics=["alpha1"], n_boot=200)
    found = liang2021.findings(liang2021.summarize(rows), corr)
    assert found["holds"].iloc[0] is None
    assert "ρ undefined" in found["evidence"].iloc[0]
    assert "too few" not in found["evidence"].iloc[0]


def test_the_knobs_the_prose_names_for_their_fgsm_are_a_random_start_and_one_step() -> None:
    """Their adv2know.py FGSM (attack.py, itr=1): a uniform random start in the ball, one sign
    step of eps from there, clipped back to the ball -- what README and notebook 04 name as
    pgd, steps 1, step_fraction 1 (not the knob "fgsm", a plain FGSM from x)."""
    from advlens.attacks.norms import random_in_ball
    from advlens.paths import notebooks_dir, repo_root

    knobs = presets.resolve("04", "laptop", alpha_direction="reference-to-source",
                            alpha_attack="pgd", steps=1, step_fraction=1.0)
    settings = liang2021.settings_from_knobs(knobs)
    model, x = tiny_cnn().eval(), random_images(6)
    y = model(x).argmax(1)
    made = settings.make_attack(0, "ref")(model, x, y).adv
    # by hand, from the start the settings' stream for the reference draws
    gen = torch.Generator().manual_seed(liang2021.model_seed(0, "ref"))
    start = (x + random_in_ball(x, settings.eps, "linf", gen)).clamp(0, 1)
    start.requires_grad_(True)
    torch.nn.functional.cross_entropy(model(start), y, reduction="sum").backward()
    by_hand = (x + (start.detach() + settings.eps * start.grad.sign() - x).clamp(
        -settings.eps, settings.eps)).clamp(0, 1)
    assert torch.allclose(made, by_hand, atol=1e-6)
    plain = liang2021.Settings(attack="fgsm").make_attack(0, "ref")(model, x, y).adv
    assert not torch.allclose(made, plain, atol=1e-3)
    for text in ((repo_root() / "README.md").read_text(),
                 (notebooks_dir() / "04_transferability.ipynb").read_text()):
        assert "step_fraction" in text and "their FGSM" in text


def test_probe_fits_says_how_the_probes_ended() -> None:
    rows = pd.DataFrame({"probe_weight_decay": [0.01, 0.1, 0.01], "probe_converged": [True] * 3,
                         "probe_epoch": [20, 31, 18]})
    assert liang2021.probe_fits(rows) == (
        "3 of 3 probes (logistic regressions, L-BFGS) converged; weight decays chosen on "
        "validation: 0.01 × 2, 0.1 × 1")
    rows["probe_converged"] = [True, False, True]
    assert liang2021.probe_fits(rows).startswith("2 of 3 probes")
    by_epochs = rows.assign(probe_weight_decay=math.nan, probe_converged=None)
    assert liang2021.probe_fits(by_epochs) == (
        "3 probes trained by epochs; the epoch kept ranged 18-31")
    assert liang2021.probe_fits(rows.iloc[:0]) == "no probes were fitted"
