"""The plotting helpers behind the notebooks' figures, on small synthetic inputs (no images
compared: the axes, titles, annotations and plotted data are checked)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from advlens import plots  # noqa: E402
from advlens.papers import jones2022_figures, su2018, su2018_figures  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def matrix(names: list[str], seed: int = 0) -> pd.DataFrame:
    values = np.random.default_rng(seed).uniform(0, 1, (len(names), len(names)))
    return pd.DataFrame(values, index=names, columns=names)


def heatmap_axes(fig: plt.Figure) -> list[plt.Axes]:
    """The panels of a heatmap figure (colour bars are axes too; they have no title)."""
    return [ax for ax in fig.axes if ax.get_title()]


def annotations(ax: plt.Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_annotated_heatmap_writes_every_value_in_row_major_order():
    m = matrix(["a", "b", "c"])
    fig, ax = plt.subplots()
    plots.annotated_heatmap(ax, m, title="t", xlabel="x", ylabel="y", fontsize=7)
    assert annotations(ax) == [f"{v:.2f}" for v in m.to_numpy().ravel()]
    assert {t.get_fontsize() for t in ax.texts} == {7}
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("t", "x", "y")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert len(fig.axes) == 2  # the heatmap and its colour bar


def test_annotated_heatmap_separators_and_no_annotation():
    fig, ax = plt.subplots()
    plots.annotated_heatmap(ax, matrix(list("abcd")), annot=False, cbar=False, separators=[1, 3])
    assert len(ax.texts) == 0
    assert len(fig.axes) == 1
    # one horizontal and one vertical white line per separator
    positions = sorted(tuple(line.get_xydata()[:, i].tolist()) for line in ax.lines
                       for i in (0, 1) if len(set(line.get_xydata()[:, i])) == 1)
    assert positions == [(1.0, 1.0), (1.0, 1.0), (3.0, 3.0), (3.0, 3.0)]


def test_annotated_heatmap_rejects_empty():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="non-empty 2-D"):
        plots.annotated_heatmap(ax, pd.DataFrame())


def test_heatmap_pair_panels_titles_colourbar_and_annotation_threshold():
    small, big = matrix(list("abc")), matrix(list("abcdefghij"), seed=1)
    fig = plots.heatmap_pair([("left", small), ("right", big)], figsize=(6, 3), suptitle="S",
                             max_annotated=5, ylabels=["rows", ""])
    left, right = heatmap_axes(fig)
    assert (left.get_title(), right.get_title()) == ("left", "right")
    assert len(fig.axes) == 3  # two panels, one colour bar (on the last panel)
    assert len(left.texts) == 9 and len(right.texts) == 0  # big matrix over the threshold
    assert (left.get_ylabel(), right.get_ylabel()) == ("rows", "")
    assert fig._suptitle.get_text() == "S"
    with pytest.raises(ValueError, match="one per panel"):
        plots.heatmap_pair([("l", small)], figsize=(3, 3), ylabels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        plots.heatmap_pair([], figsize=(3, 3))


def test_group_boundaries_and_family_palette():
    order = ["m1", "m2", "v1", "r1", "r2"]
    family = {"m1": "mlp", "m2": "mlp", "v1": "vgg", "r1": "resnet", "r2": "resnet"}
    assert plots.group_boundaries(order, family) == [2, 3]
    palette = plots.family_palette(list(family.values()))
    assert list(palette) == ["mlp", "resnet", "vgg"]
    assert len(set(palette.values())) == 3


def test_error_band_yerr_is_distance_to_the_interval():
    fig, ax = plt.subplots()
    plots.error_band(ax, [1, 2], [0.5, 0.6], [0.4, 0.3], [0.7, 0.65], fmt="o")
    segments = ax.collections[0].get_segments()
    ends = [y for s in segments for y in (s[0][1], s[1][1])]
    assert ends == pytest.approx([0.4, 0.7, 0.3, 0.65])


def test_error_band_draws_an_interval_that_leaves_out_its_estimate():
    """A percentile bootstrap interval may lie beside its estimate: the bar spans [lo, hi]
    (matplotlib refused the negative distance), in the estimate's colour, one legend entry."""
    fig, ax = plt.subplots()
    plots.error_band(ax, [1, 2], [0.5, 0.6], [0.55, 0.3], [0.7, 0.65], fmt="o", color="C3",
                     capsize=2, label="est")
    ends = [y for s in ax.collections[0].get_segments() for y in (s[0][1], s[1][1])]
    assert ends == pytest.approx([0.55, 0.7, 0.3, 0.65])
    assert list(ax.lines[0].get_ydata()) == [0.5, 0.6]  # the estimates where they are
    assert ax.collections[0].get_colors()[0] == pytest.approx(mcolors.to_rgba("C3"))
    assert [t.get_text() for t in ax.legend().get_texts()] == ["est"]
    plt.close(fig)


def test_cka_long_and_heatmaps():
    test, inv = matrix(["cnn", "mlp"]), matrix(["cnn", "mlp"], seed=2)
    long = jones2022_figures.cka_long({"test": test, "inverted": inv})
    assert list(long.columns) == ["row", "col", "cka", "data"]
    assert len(long) == 8
    row = long[(long.data == "inverted") & (long.row == "mlp") & (long.col == "cnn")]
    assert row.cka.item() == inv.loc["mlp", "cnn"]
    fig = jones2022_figures.cka_heatmaps(test, inv, suptitle="S")
    left, right = heatmap_axes(fig)
    assert left.get_title() == "CKA on test images"
    assert right.get_title() == "CKA on row model's inverted data"
    assert (left.get_xlabel(), left.get_ylabel()) == ("column model C", "row model R")
    assert annotations(right) == [f"{v:.2f}" for v in inv.to_numpy().ravel()]
    compact = jones2022_figures.cka_heatmaps(test, inv, test_label="x", compact=True)
    assert heatmap_axes(compact)[0].get_title() == "CKA on x"


def test_robustness_trend_joins_the_radii_in_order():
    """Levels given as [1, 0, 0.5] (a mapping's order) were joined 1 -> 0 -> 0.5: a zigzag."""
    summary = pd.DataFrame({"level": [1.0, 0.0, 0.5], "cka_inverted": [0.8, 0.2, 0.5],
                            "cka_inverted_lo": [0.7, 0.1, 0.4], "cka_inverted_hi": [0.9, 0.3, 0.6],
                            "cka_test": [0.9, 0.7, 0.8], "cka_test_lo": [0.8, 0.6, 0.7],
                            "cka_test_hi": [1.0, 0.8, 0.9]})
    pairs = pd.DataFrame({"level": [0.0, 1.0], "cka_inverted": [0.2, 0.8]})
    ax = jones2022_figures.robustness_trend(summary, pairs).axes[0]
    inverted, test = (bars.lines[0] for bars in ax.containers[:2])  # the two curves
    assert list(inverted.get_xdata()) == [0.0, 0.5, 1.0]
    assert list(inverted.get_ydata()) == [0.2, 0.5, 0.8]
    assert list(test.get_ydata()) == [0.7, 0.8, 0.9]


def test_robustness_trend_curves_points_and_freeze():
    summary = pd.DataFrame({"level": [0.0, 0.5, 1.0], "cka_inverted": [0.2, 0.5, 0.8],
                            "cka_inverted_lo": [0.1, 0.4, 0.7], "cka_inverted_hi": [0.3, 0.6, 0.9],
                            "cka_test": [0.7, 0.8, 0.9], "cka_test_lo": [0.6, 0.7, 0.8],
                            "cka_test_hi": [0.8, 0.9, 1.0]})
    pairs = pd.DataFrame({"level": [0.0, 0.0, 1.0], "cka_inverted": [0.15, 0.25, 0.8]})
    freeze = pd.DataFrame({"eps": [0.0, 1.0], "cka_inverted": [0.1, 0.75]})
    fig = jones2022_figures.robustness_trend(summary, pairs, freeze=freeze, seed=0)
    (ax,) = fig.axes
    labels = ax.get_legend_handles_labels()[1]
    assert "inverted, freeze_at_bounds=True" in labels and len(labels) == 4
    scattered = ax.collections[-1].get_offsets()
    assert np.asarray(scattered)[:, 1].tolist() == pairs.cka_inverted.tolist()
    assert np.abs(np.asarray(scattered)[:, 0] - pairs.level).max() <= 0.01
    no_freeze = jones2022_figures.robustness_trend(summary, pairs, symlog=True)
    assert len(no_freeze.axes[0].get_legend_handles_labels()[1]) == 3
    assert no_freeze.axes[0].get_xscale() == "symlog"


def test_robustness_data_holds_every_number_the_trend_draws():
    """Figure 01b's CSV was pairs merged with summary: the red freeze_at_bounds squares were
    drawn but saved in no table. Every y the figure draws (read from its artists) must be in the
    data, each at its own level."""
    summary = pd.DataFrame({"level": [0.0, 0.5, 1.0], "cka_inverted": [0.2, 0.5, 0.8],
                            "cka_inverted_lo": [0.1, 0.4, 0.7], "cka_inverted_hi": [0.3, 0.6, 0.9],
                            "cka_test": [0.7, 0.8, 0.9], "cka_test_lo": [0.6, 0.7, 0.8],
                            "cka_test_hi": [0.8, 0.9, 1.0]})
    pairs = pd.DataFrame({"level": [0.0, 0.0, 0.5, 1.0], "row": ["a", "b", "a", "a"],
                          "col": ["b", "a", "b", "b"], "cka_inverted": [0.15, 0.25, 0.5, 0.8],
                          "cka_test": [0.65, 0.75, 0.8, 0.9]})  # as similarity_by_level gives
    freeze = pd.DataFrame({"eps": [0.0, 1.0], "setting": "freeze_at_bounds",
                           "mean_loss": [0.03, 0.01], "cka_inverted": [0.137, 0.777],
                           "ci": ["[0.1, 0.2]", "[0.7, 0.8]"]})
    fig = jones2022_figures.robustness_trend(summary, pairs, freeze=freeze, seed=0)
    data = jones2022_figures.robustness_data(summary, pairs, freeze=freeze)
    assert len(data) == len(pairs) and list(data[["row", "col"]].itertuples(index=False)) == \
        list(pairs[["row", "col"]].itertuples(index=False))
    (ax,) = fig.axes
    (squares,) = [line for line in ax.lines if line.get_marker() == "s"]
    for x, y in zip(squares.get_xdata(), squares.get_ydata(), strict=True):
        at = data[data["level"] == x]
        assert len(at) and (at["freeze_cka_inverted"] == y).all()
    assert data.loc[data["level"] == 0.5, "freeze_cka_inverted"].isna().all()
    assert data.groupby("level")["freeze_mean_loss"].first().dropna().tolist() == [0.03, 0.01]
    curves = [line for line in ax.lines if line.get_marker() == "o"]
    drawn = {float(v) for line in curves for v in line.get_ydata()}
    assert drawn <= set(data["cka_inverted_mean"]) | set(data["cka_test_mean"])
    assert set(np.asarray(ax.collections[-1].get_offsets())[:, 1]) <= set(data["cka_inverted"])
    # a rerun level with no pair still keeps its square; no freeze: the pairs and summary only
    lone = jones2022_figures.robustness_data(summary, pairs[pairs.level < 1], freeze=freeze)
    assert lone["freeze_cka_inverted"].iloc[-1] == 0.777 and np.isnan(lone["row"].iloc[-1])
    plain = jones2022_figures.robustness_data(summary, pairs)
    assert "freeze_cka_inverted" not in plain and len(plain) == len(pairs)
    with pytest.raises(ValueError, match="freeze lacks columns"):
        jones2022_figures.robustness_data(summary, pairs, freeze=freeze.drop(columns="eps"))
    code = _notebook_code("01")  # and notebook 01 saves them as the figure's CSV
    assert ("trend_data = jones2022_figures.robustness_data(by_level.summary, by_level.pairs, "
            "freeze=fz)") in code
    assert "plots.save_figure(fig, trend_data, OUT, \"01b_robustness\"" in code


def test_robustness_trend_points_stay_at_their_own_radius():
    """At the paper's radii the jitter was +-0.05 (1 % of eps 5): points of eps 0.01 were drawn
    beyond 0.03 and 0.05. Each point must lie nearer its own radius than any other."""
    radii = [0.0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0, 5.0]
    pairs = pd.DataFrame({"level": np.repeat(radii, 12), "cka_inverted": 0.3})
    summary = pd.DataFrame({"level": radii, **{k + s: 0.3 for k in ("cka_inverted", "cka_test")
                                               for s in ("", "_lo", "_hi")}})
    fig = jones2022_figures.robustness_trend(summary, pairs, symlog=True)
    x = np.asarray(fig.axes[0].collections[-1].get_offsets())[:, 0]
    nearest = np.asarray(radii)[np.abs(x[:, None] - np.asarray(radii)).argmin(1)]
    assert (nearest == pairs.level.to_numpy()).all()
    assert np.abs(x - pairs.level).max() > 0.01  # still jittered where the radii are far apart


def _notebook_code(number: str) -> str:
    """The code cells of notebook ``number``, joined."""
    import nbformat

    from advlens.runner import discover

    (path,) = discover([number])
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                     if c.cell_type == "code")


def test_notebook_01_names_the_paper_zoo_as_itself_not_as_a_stand_in():
    """At the paper preset the 01a/01b titles and captions said "small zoo standing in for the
    ImageNet models" (hard-coded), which plots.labelled_caption then kept as it was."""

    summary = pd.DataFrame({"level": [0.0, 3.0], **{k + s: 0.3 for k in ("cka_inverted", "cka_test")
                                                    for s in ("", "_lo", "_hi")}})
    pairs = pd.DataFrame({"level": [0.0, 3.0], "cka_inverted": [0.2, 0.5]})
    paper, laptop = (jones2022_figures.models_label(zoo) for zoo in ("paper", "laptop"))
    title = jones2022_figures.robustness_trend(summary, pairs, models=paper).axes[0].get_title()
    assert paper in title and not plots._NAMES_STAND_INS.search(title)
    assert plots._NAMES_STAND_INS.search(laptop) and not plots._NAMES_STAND_INS.search(paper)
    assert laptop in jones2022_figures.robustness_trend(summary, pairs).axes[0].get_title()
    code = _notebook_code("01")
    assert "standing in for the ImageNet" not in code, "notebook 01 hard-codes its stand-ins"
    assert code.count("models_label(P[\"zoo\"])") == 1 and code.count("{who}") == 2


def test_notebook_02_names_the_paper_zoo_as_itself_not_as_a_stand_in():
    """The same in notebook 02: the 02a / 02b / 02c titles and captions said "small zoo standing
    in for the ImageNet models" at the paper preset too."""

    paper = plots.models_label("paper")
    table = suite_table()
    table = table[table["attack"] == "cw"].assign(pareto=True)
    fig = su2018_figures.pareto_scatter(table, palette=plots.family_palette(list(table.family)),
                                        models=paper)
    assert paper in fig.axes[0].get_title()
    assert not plots._NAMES_STAND_INS.search(fig.axes[0].get_title())
    default = su2018_figures.pareto_scatter(table, palette=plots.family_palette(
        list(table.family))).axes[0].get_title()
    assert plots.STAND_IN_MODELS in default
    code = _notebook_code("02")
    assert "standing in for the ImageNet" not in code, "notebook 02 hard-codes its stand-ins"
    assert code.count("models=who") == 3 and code.count("{who}") == 3


def test_paper_zoo_label_reads_after_the_article_of_titles_and_captions():
    """models_label("paper") was "the paper zoo's ImageNet models": notebook 02's captions
    ("per model of the {who}") and transfer_heatmaps' title ("the models of the {models}")
    read "of the the paper zoo's ImageNet models" at the paper preset."""
    import re


    for zoo in ("paper", "laptop"):
        who = plots.models_label(zoo)
        names = ["m1", "m2"]
        fig = su2018_figures.transfer_heatmaps(matrix(names), matrix(names), eps=0.1,
                                               family={"m1": "cnn", "m2": "mlp"}, models=who)
        code = _notebook_code("02")
        texts = [fig._suptitle.get_text(),
                 *(t.replace("{who}", who) for t in re.findall(r'f"([^"]*\{who\}[^"]*)"', code))]
        assert len(texts) == 4
        for text in texts:
            assert not re.search(r"\bthe the\b", text, re.IGNORECASE), text
    assert su2018_figures.transfer_heatmaps(
        matrix(names), matrix(names), eps=0.1, family={"m1": "cnn", "m2": "mlp"},
        models=plots.models_label("paper"))._suptitle.get_text() == (
        "Transfer between the models of the paper zoo's ImageNet models, ordered by family")


def suite_table() -> pd.DataFrame:
    rows = []
    for i, (model, fam, params) in enumerate([("mlp-s", "mlp", 1e4), ("mlp-l", "mlp", 1e5),
                                              ("cnn-s", "cnn", 2e4), ("cnn-l", "cnn", 3e5)]):
        err = 0.05 * (i + 1)
        for attack in su2018.SUITE:
            d = 0.1 + 0.05 * np.log(err) + 0.3
            rows.append({"model": model, "family": fam, "params": params, "top1_error": err,
                         "attack": attack, "norm": su2018.NORM[attack], "distortion": d,
                         "distortion_lo": d - 0.01, "distortion_hi": d + 0.02})
    return pd.DataFrame(rows)


def test_scaling_law_panels_one_panel_per_attack():
    table = suite_table()
    laws = pd.DataFrame([{"attack": a, "norm": su2018.NORM[a], "slope": 0.05, "slope_lo": 0.01,
                          "slope_hi": 0.09, "intercept": 0.4, "r2": 1.0} for a in su2018.SUITE])
    palette = plots.family_palette(table.family)
    fig = su2018_figures.scaling_law_panels(table, laws, su2018.SUITE, palette=palette, n_boot=20)
    assert len(fig.axes) == len(su2018.SUITE)
    assert fig.axes[0].get_title() == "FGSM: a = 0.05 [0.01, 0.09], R² = 1.00"
    assert fig.axes[2].get_ylabel() == "mean L2 distortion"
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    positions = {(round(ax.get_position().x0, 2), round(ax.get_position().y0, 2))
                 for ax in fig.axes}
    assert len({x for x, _ in positions}) == 2 and len({y for _, y in positions}) == 2  # 2 x 2
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert plots.layout_problems(fig) == []
    with pytest.raises(ValueError, match="no fitted law"):
        su2018_figures.scaling_law_panels(table, laws[laws.attack != "ead"], su2018.SUITE,
                                          palette=palette)


def test_pareto_scatter_frontier_and_names():
    table = suite_table().query("attack == 'cw'").reset_index(drop=True)
    table["pareto"] = su2018.pareto_front(table).to_numpy()
    fig = su2018_figures.pareto_scatter(table, palette=plots.family_palette(table.family))
    (ax,) = fig.axes
    assert sorted(annotations(ax)) == sorted(table.model)
    assert "error" in ax.get_title().lower() and "accuracy" not in ax.get_title().lower()
    assert plots.layout_problems(fig) == []  # no two labels overlap
    (frontier,) = [line for line in ax.lines if line.get_label() == "Pareto frontier"]
    front = table[table.pareto].sort_values("top1_error")
    assert frontier.get_xdata().tolist() == front.top1_error.tolist()


def test_pareto_scatter_marker_sizes_follow_rows_not_index_labels():
    """A table concatenated from two runs repeats index labels: the marker sizes were looked
    up by label and the scatter raised 's (size 4) cannot be broadcast'."""
    cw = suite_table().query("attack == 'cw'")
    table = pd.concat([cw.iloc[:2], cw.iloc[2:]]).set_axis([0, 1, 0, 1])
    table["pareto"] = su2018.pareto_front(table).to_numpy()
    fig = su2018_figures.pareto_scatter(table, palette=plots.family_palette(table.family))
    for points in fig.axes[0].collections:
        g = table[table.family == points.get_label()]
        np.testing.assert_allclose(points.get_offsets(), g[["top1_error", "distortion"]])
        np.testing.assert_allclose(points.get_sizes(), 25 + 12 * np.log10(g.params) ** 1.5)


def test_transfer_heatmaps_titles_and_family_lines():
    names = ["m1", "m2", "c1"]
    family = {"m1": "mlp", "m2": "mlp", "c1": "cnn"}
    fig = su2018_figures.transfer_heatmaps(matrix(names), matrix(names, seed=3), family=family,
                                           eps=0.1, targeted_metric="top5")
    left, right = heatmap_axes(fig)
    assert left.get_title() == "I-FGSM eps 0.1: untargeted success"
    assert right.get_title() == "I-FGSM eps 0.1: targeted top-5 match"
    assert (left.get_ylabel(), right.get_ylabel()) == ("source model", "source model")
    assert left.get_xlabel() == "target model"
    assert len(left.lines) == 2  # one family boundary: a horizontal and a vertical line
    assert len(left.texts) == 6  # the diagonal (white-box) is masked, not annotated
    assert left.get_position().width == pytest.approx(right.get_position().width)
    (top,) = left.child_axes  # the families named above the panel
    assert [t.get_text() for t in top.get_xticklabels()] == ["mlp", "cnn"]
    assert plots.layout_problems(fig) == []
    with pytest.raises(ValueError, match="targeted_metric"):
        su2018_figures.transfer_heatmaps(matrix(names), matrix(names), family=family, eps=0.1,
                                         targeted_metric="top3")


def test_transfer_heatmaps_put_both_panels_in_the_untargeted_order():
    """A targeted matrix in another order (e.g. transfer_heatmap without ``order``) was drawn
    as given, under the left panel's family lines and names; a matrix whose columns are in
    another order than its rows had its masked 'diagonal' off the white-box cells."""
    names = ["m1", "m2", "c1"]
    family = {"m1": "mlp", "m2": "mlp", "c1": "cnn"}
    untargeted, targeted = matrix(names), matrix(names, seed=3)
    fig = su2018_figures.transfer_heatmaps(untargeted, targeted.loc[names[::-1], sorted(names)],
                                           family=family, eps=0.1)
    left, right = heatmap_axes(fig)
    for ax, mat in ((left, untargeted), (right, targeted)):
        assert [t.get_text() for t in ax.get_yticklabels()] == names
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        off = [f"{mat.loc[r, c]:.2f}" for r in names for c in names if r != c]
        assert [t.get_text() for t in ax.texts] == off
    with pytest.raises(ValueError, match="as its rows and columns"):
        su2018_figures.transfer_heatmaps(untargeted, matrix(["m1", "m2", "x"]), family=family,
                                         eps=0.1)


def test_depth_comparison_against_hand_rows():
    table = suite_table()
    depth = su2018.depth_comparison(table, [("mlp-s", "mlp-l"), ("mlp-s", "absent")],
                                    attacks=["fgsm"])
    assert len(depth) == 1  # the pair with a missing model is left out
    r = depth.iloc[0]
    a = table[(table.model == "mlp-s") & (table.attack == "fgsm")].iloc[0]
    b = table[(table.model == "mlp-l") & (table.attack == "fgsm")].iloc[0]
    assert r.dist_shallow == a.distortion and r.dist_deep == b.distortion
    assert r.deeper_larger == (b.distortion > a.distortion)
    assert r.cis_overlap == (b.distortion_lo <= a.distortion_hi
                             and a.distortion_lo <= b.distortion_hi)
    # the CIs are number columns: a CSV round trip reads them back as the table's floats (a
    # tuple column was written as "(np.float64(...), ...)" text)
    back = pd.read_csv(io.StringIO(depth.to_csv(index=False)))
    for side, row in (("shallow", a), ("deep", b)):
        for end in ("lo", "hi"):
            assert back[f"dist_{side}_{end}"].dtype == np.float64
            assert back[f"dist_{side}_{end}"].iloc[0] == row[f"distortion_{end}"]
    assert su2018.depth_comparison(table, [("x", "y")]).empty


def test_layout_problems_finds_overlapping_labels_and_missing_titles():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    ax.set(title="t", xlabel="x", ylabel="y")
    assert plots.layout_problems(fig) == []
    ax.text(0.5, 0.5, "a long label", transform=ax.transAxes)
    ax.text(0.52, 0.5, "another long label", transform=ax.transAxes)
    problems = plots.layout_problems(fig)
    assert len(problems) == 1 and "text overlap" in problems[0] and "another long label" in \
        problems[0]
    fig, axes = plt.subplots(1, 2, figsize=(3, 2))
    axes[0].plot([0, 1], [0, 1])
    axes[1].bar([0], [1])
    axes[1].set_xticks([0, 0.02], ["left tick label", "right tick label"])
    problems = plots.layout_problems(fig)
    assert "axes 0: no title (and no suptitle)" in problems
    assert any("no x label" in p for p in problems) and any("no y label" in p for p in problems)
    assert any("'left tick label' / " in p for p in problems)
    plt.close("all")


def test_layout_problems_colour_bar_needs_a_label_and_images_need_no_axis_labels():
    small = matrix(list("abc"))
    fig = plots.heatmap_pair([("l", small), ("r", small)], figsize=(6, 3), xlabel="col",
                             ylabels=["row", "row"])
    assert plots.layout_problems(fig) == ["axes 2: colour bar without a label"]
    fig = plots.heatmap_pair([("l", small), ("r", small)], figsize=(6, 3), xlabel="col",
                             ylabels=["row", "row"], cbar_label="value")
    assert plots.layout_problems(fig) == []
    left, right = heatmap_axes(fig)
    assert left.get_position().width == pytest.approx(right.get_position().width)
    images = np.random.default_rng(0).uniform(size=(2, 1, 4, 4))
    fig = plots.image_grid([images, images], row_labels=["a", "b"], col_labels=["c", "d"],
                           title="grid", colorbars={1: "scale"})
    assert plots.layout_problems(fig) == []
    assert len(fig.axes) == 5  # 2 x 2 images and one colour bar beside row 1
    plt.close("all")


def test_heatmap_pair_masked_diagonal_leaves_the_scale_to_the_rest():
    m = pd.DataFrame([[1.0, 0.2, 0.4], [0.1, 1.0, 0.3], [0.0, 0.25, 1.0]],
                     index=list("abc"), columns=list("abc"))
    fig = plots.heatmap_pair([("t", m)], figsize=(3, 3), mask_diagonal=True, cbar_label="v",
                             xlabel="x", ylabels=["y"])
    (ax,) = heatmap_axes(fig)
    mesh = ax.collections[0]
    assert mesh.norm.vmax == pytest.approx(0.4)  # the largest off-diagonal value, rounded up
    assert [t.get_text() for t in ax.texts] == ["0.20", "0.40", "0.10", "0.30", "0.00", "0.25"]
    plt.close("all")


def test_label_points_places_crowded_labels_without_overlap():
    fig, ax = plt.subplots(figsize=(4, 3))
    x, y = np.array([1.0, 1.02, 1.04, 2.0, 2.01]), np.array([1.0, 1.01, 1.0, 2.0, 2.0])
    ax.scatter(x, y, s=60)
    ax.set(title="t", xlabel="x", ylabel="y", xlim=(0.5, 2.5), ylim=(0.5, 2.5))
    notes = su2018_figures.label_points(ax, x, y, [f"model-{i}" for i in range(5)],
                                        sizes=[60] * 5)
    assert [n.get_text() for n in notes] == [f"model-{i}" for i in range(5)]
    assert plots.layout_problems(fig) == []
    fig2, ax2 = plt.subplots(figsize=(4, 3))  # the same labels at the points themselves overlap
    for xi, yi, i in zip(x, y, range(5), strict=True):
        ax2.annotate(f"model-{i}", (xi, yi))
    ax2.set(title="t", xlabel="x", ylabel="y", xlim=(0.5, 2.5), ylim=(0.5, 2.5))
    assert any("text overlap" in p for p in plots.layout_problems(fig2))


def test_scaling_law_panels_leave_out_a_model_with_zero_error():
    """A model with no test error (one wrong image in 397 is 0.0025: a reseeded zoo reaches 0)
    has no place on the log axis nor in the fit; the panel names it instead of crashing."""
    table = suite_table()
    table.loc[table.model == "mlp-s", "top1_error"] = 0.0
    laws = su2018.scaling_laws(table, n_boot=20)
    assert (laws["n_models"] == 3).all()
    fig = su2018_figures.scaling_law_panels(table, laws, su2018.SUITE,
                                            palette=plots.family_palette(table.family),
                                            n_boot=20)
    assert "1 model(s) with 0 top-1 error not shown" in annotations(fig.axes[0])
    assert plots.layout_problems(fig) == []


def test_figure_legends_name_a_family_missing_from_the_first_panel():
    """A family with no successful FGSM example (NaN distortion) is drawn in the other panels;
    the figure's one legend, read off the first panel only, left it (and the fit) out."""
    table = suite_table()
    table.loc[(table.family == "cnn") & (table.attack == "fgsm"), "distortion"] = np.nan
    palette = plots.family_palette(table.family)
    laws = su2018.scaling_laws(table, n_boot=20)
    fig = su2018_figures.scaling_law_panels(table, laws, su2018.SUITE, palette=palette,
                                            n_boot=20)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(names) == ["95% band", "cnn", "fit a·ln(error) + b", "mlp"]
    fig = su2018_figures.within_family_panels(table, laws.assign(family="mlp").iloc[0:0],
                                              ["fgsm", "cw"], palette=palette)
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["cnn", "mlp"]


def _on_axes(ax: plt.Axes) -> int:
    """How many scatter points of ``ax`` fall inside it (a 0 on a log axis does not)."""
    ax.figure.canvas.draw()
    offsets = np.concatenate([np.ma.filled(np.ma.asarray(c.get_offsets(), dtype=float), np.nan)
                              for c in ax.collections])
    x = ax.transData.transform(offsets)[:, 0]
    x0, _, x1, _ = ax.get_window_extent().extents
    return int(((x >= x0) & (x <= x1)).sum())


def test_log_error_figures_name_a_model_with_zero_error():
    """A model with no test error (a reseeded zoo reaches 0: one wrong image in 397 is
    0.0025) has no place on the log error axis: scaling_law_panels says so, but the Pareto
    scatter and the within-family panels dropped it (and its name, and the frontier's first
    step) without a word."""
    table = suite_table()
    table.loc[table.model == "mlp-s", "top1_error"] = 0.0
    palette = plots.family_palette(table.family)
    cw = table[table.attack == "cw"].reset_index(drop=True)
    cw["pareto"] = su2018.pareto_front(cw).to_numpy()
    assert cw.loc[cw.model == "mlp-s", "pareto"].item()  # the most accurate is on the front
    (ax,) = su2018_figures.pareto_scatter(cw, palette=palette).axes
    assert _on_axes(ax) == 3 and "mlp-s" not in annotations(ax)
    assert ax.get_xlabel() == "top-1 error (log scale); 1 model(s) with 0 error not shown"
    fig = su2018_figures.within_family_panels(table, su2018.within_family_laws(table, n_boot=20),
                                              ["cw", "ifgsm"], palette=palette)
    for ax in fig.axes:
        assert _on_axes(ax) == 3
        assert ax.get_xlabel() == "top-1 error (log); 1 model(s) with 0 error not shown"
    assert plots.layout_problems(fig) == []
    full = suite_table()
    (ax,) = su2018_figures.pareto_scatter(full[full.attack == "cw"].assign(pareto=False),
                                          palette=palette).axes
    assert ax.get_xlabel() == "top-1 error (log scale)"


def test_within_family_line_spans_the_models_its_attack_fooled():
    """A family's line was drawn over the family's error range over all attacks: in
    figures/02's data, EAD never fooled resnet8-xs/e1 (error 0.89), yet the resnet EAD line ran
    from 0.003 to 0.89, past its last point (0.60) -- an extrapolation drawn as a fit."""
    rng = np.random.default_rng(0)
    errors = [0.02, 0.05, 0.1, 0.2, 0.4]
    table = pd.DataFrame([{"model": f"m{i}", "family": "cnn", "attack": a,
                           "norm": su2018.NORM[a], "top1_error": e,
                           "distortion": 0.3 + 0.05 * np.log(e) + rng.normal(0, 0.01)}
                          for i, e in enumerate(errors) for a in ("cw", "ead")])
    table.loc[(table.model == "m4") & (table.attack == "ead"), "distortion"] = np.nan
    laws = su2018.within_family_laws(table, n_boot=20)
    fig = su2018_figures.within_family_panels(table, laws, ["cw", "ead"],
                                              palette=plots.family_palette(table.family))
    for ax, last in zip(fig.axes, (0.4, 0.2), strict=True):
        (line,) = ax.lines
        assert line.get_xdata()[[0, -1]] == pytest.approx([0.02, last])


def test_pareto_names_sit_nearest_their_own_marker():
    """figures/02b: vgg-s (0.551) and resnet14 (0.562) at one error; each name took the first
    free spot by its point, which put "vgg-s" beside resnet14's marker and "resnet14" beside
    vgg-s's, with no leader line. A name without a line now sits nearest its own marker
    (edge distance, display units)."""
    table = pd.DataFrame({"model": ["vgg-s", "resnet14", "mlp-l", "mlp-xl", "cnn-xs"],
                          "family": ["vgg", "resnet", "mlp", "mlp", "cnn"],
                          "top1_error": [0.0076, 0.0076, 0.0227, 0.0227, 0.25],
                          "distortion": [0.551, 0.562, 0.910, 0.882, 0.59],
                          "params": [38386, 174970, 50698, 134154, 1010], "pareto": False})
    fig = su2018_figures.pareto_scatter(table, palette=plots.family_palette(table.family))
    (ax,) = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    centres = ax.transData.transform(table[["top1_error", "distortion"]].to_numpy(float))
    radii = np.sqrt(25 + 12 * np.log10(table["params"].to_numpy(float)) ** 1.5) / 2 \
        * fig.dpi / 72
    for i, note in enumerate(ax.texts):
        assert note.get_text() == table.model[i]
        if note.arrow_patch.get_visible():
            continue  # a leader line names the point
        x0, y0, x1, y1 = Text.get_window_extent(note, renderer).extents
        gap = np.hypot(np.clip(centres[:, 0], x0, x1) - centres[:, 0],
                       np.clip(centres[:, 1], y0, y1) - centres[:, 1]) - radii
        assert gap[i] < np.delete(gap, i).min(), (note.get_text(), gap.round(1))
    assert plots.layout_problems(fig) == []


def test_captions_below_the_paper_preset_name_their_stand_ins(tmp_path):
    """A smoke / laptop table or figure whose caption does not say what stands in for what gets
    the note; one that does, or a paper-preset one, is kept as written."""
    import json

    table = pd.DataFrame({"a": [1]})
    plots.save_table(table, tmp_path, "t", params={"preset": "laptop"}, caption="Per source.")
    caption = json.loads((tmp_path / "t.provenance.json").read_text())["caption"]
    assert caption.startswith("Per source. (stand-ins at the laptop preset: ")
    for params, text in (({"preset": "laptop"}, "Twin-cue masks standing in for ClickMe."),
                         ({"preset": "paper"}, "Per source.")):
        plots.save_table(table, tmp_path, "u", params=params, caption=text)
        assert json.loads((tmp_path / "u.provenance.json").read_text())["caption"] == text
    # "standard" names no stand-in: the note is still added
    for text in ("Standard and harmonized models.", "Mean and standard deviation over seeds."):
        assert plots.labelled_caption(text, {"preset": "laptop"}).startswith(
            f"{text} (stand-ins at the laptop preset: ")
    for text in ("Digits and twin-cue stand in for CIFAR-10.", "The stand-ins: digits.",
                 "Masks (stand-in maps).", "The zoo stands in for the ImageNet models."):
        assert plots.labelled_caption(text, {"preset": "laptop"}) == text


def test_notebook_03_captions_name_the_stand_in_models_too():
    """03a / 03b captions named the stand-in *maps* ("stroke map (stand-in)"), which kept
    plots.labelled_caption from adding its note, so no caption of the two said that the
    models were the small zoo standing in for the ImageNet models (01 and 02 say so)."""
    import re

    code = _notebook_code("03")
    assert code.count('models_label(P["zoo"])') == 1
    captions = re.findall(r'caption=f"([^"]*(?:"\s*f?"[^"]*)*)"', code)
    shown = [c for c in captions if c.startswith(("{name}: per model", "{name}: image"))]
    assert len(shown) == 2, captions
    for text in shown:
        laptop = re.sub(r'"\s*f?"', "", text).replace("{who}", plots.models_label("laptop"))
        assert plots.STAND_IN_MODELS in laptop, text
        paper = re.sub(r'"\s*f?"', "", text).replace("{who}", plots.models_label("paper"))
        assert plots.STAND_IN_MODELS not in paper


def test_a_record_that_cannot_be_written_leaves_the_old_files_with_their_record(tmp_path):
    """Parameters the provenance cannot hold (a torch.device) failed after the PNG, PDF and CSV
    were replaced: the new numbers stood beside the old record, which named the old
    parameters. Now nothing is written, for a figure and for a table."""
    import json

    import torch

    def figure(v):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, v])
        ax.set(title="t", xlabel="x", ylabel="y")
        return fig

    plots.save_figure(figure(1), pd.DataFrame({"v": [1]}), tmp_path, "f",
                      params={"preset": "paper", "eps": 1})
    plots.save_table(pd.DataFrame({"v": [1]}), tmp_path, "t", params={"preset": "paper", "eps": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad = {"preset": "paper", "eps": 2, "device": torch.device("cpu")}
    with pytest.raises(TypeError, match="cannot serialise device"):
        plots.save_figure(figure(2), pd.DataFrame({"v": [2]}), tmp_path, "f", params=bad)
    with pytest.raises(TypeError, match="cannot serialise device"):
        plots.save_table(pd.DataFrame({"v": [2]}), tmp_path, "t", params=bad)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert pd.read_csv(tmp_path / "f.csv")["v"].tolist() == [1]
    assert json.loads((tmp_path / "f.provenance.json").read_text())["parameters"]["eps"] == 1


def test_numbers_that_cannot_be_written_leave_the_old_files_with_their_record(tmp_path):
    """The numbers were written last but one: numbers that are no DataFrame (a dict) failed
    with AttributeError 'to_csv' after the new PNG and PDF had replaced the old ones, beside
    the old CSV and the old record. Now nothing is written, and the error names the way out;
    a Series is written as its one column, as before."""
    def figure(v):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, v])
        ax.set(title="t", xlabel="x", ylabel="y")
        return fig

    plots.save_figure(figure(1), pd.DataFrame({"v": [1]}), tmp_path, "f", params={"eps": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError, match=r"got dict; wrap it: pd.DataFrame"):
        plots.save_figure(figure(2), {"v": [2]}, tmp_path, "f", params={"eps": 2})
    with pytest.raises(TypeError, match=r"got list"):
        plots.save_table([2], tmp_path, "f", params={"eps": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    plots.save_figure(figure(3), pd.Series([3, 4], name="v"), tmp_path, "f", params={"eps": 3})
    assert (tmp_path / "f.csv").read_text() == "v\n3\n4\n"


def test_a_figure_saved_again_later_has_the_same_bytes(tmp_path, monkeypatch):
    """The PDF held its creation date (matplotlib's, from the clock or $SOURCE_DATE_EPOCH), so
    every rerun rewrote each PDF of figures/ with the same drawing; now PNG and PDF are the same
    bytes whenever they are saved (the provenance records when)."""
    def saved(folder, epoch: str) -> dict[str, bytes]:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)  # two runs' clocks
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        ax.set(title="t", xlabel="x", ylabel="y")
        paths = plots.save_figure(fig, pd.DataFrame({"v": [1]}), tmp_path / folder, "f",
                                  params={"eps": 1})
        return {ext: paths[ext].read_bytes() for ext in ("png", "pdf")}

    first, later = saved("a", "1700000000"), saved("b", "1800000000")
    assert b"/CreationDate" not in first["pdf"]
    assert later == first
