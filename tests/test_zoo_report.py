"""The zoo accuracy figure: every model plotted, numbers returned in long form."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from advlens.zoo.report import accuracy_figure  # noqa: E402
from advlens.zoo.seeds import SEED_STRIDE  # noqa: E402


def _table() -> pd.DataFrame:
    rows = []
    for arch, family in (("cnn-m", "cnn"), ("mlp-l", "mlp")):
        for eps in (0.0, 0.5, 1.0):
            rows.append({"name": f"{arch}/{eps}", "family": family, "arch": arch,
                         "dataset": "digits", "variant": None,
                         "regime": "standard" if eps == 0 else "l2-at", "eps": eps, "seed": 0,
                         "test_acc": 0.9 - eps / 10, "robust_acc": 0.3 + eps / 2,
                         "robust_eps": 0.5})
    rows.append({"name": "tc", "family": "cnn", "arch": "cnn-s", "dataset": "twin-cue",
                 "variant": "a-only", "regime": "standard", "eps": 0.0, "seed": 0,
                 "test_acc": 0.97, "robust_acc": 0.4, "robust_eps": 0.5})
    return pd.DataFrame(rows)


def test_accuracy_figure_plots_every_model() -> None:
    table = _table()
    fig, data = accuracy_figure(table)
    left, middle, right = fig.axes
    assert len(left.patches) == 2 * 2  # two standard digits models, clean + attacked
    assert len(middle.lines) == 2 * 2  # two robust archs, clean + attacked lines
    x, y = middle.lines[1].get_data()
    assert list(x) == [0.0, 0.5, 1.0] and list(y) == [0.3, 0.55, 0.8]
    assert len(right.patches) == 2
    assert len(data) == 2 * len(table)
    assert set(data["measure"]) == {"clean", "under L2-PGD"}
    assert "eps 0.5" in left.get_title()


def test_the_twin_cue_panel_names_every_model() -> None:
    """The twin-cue bars were labelled '<variant> s<seed>': figures/00's six 'both' models
    (CNN, VGG, ResNet, plain and harmonized) all read 'both s0', under a title saying CNN."""
    table = _table()
    twins = pd.DataFrame([{**table.iloc[-1].to_dict(), "name": f"twin-cue-both/{arch}/{tag}/s0",
                           "arch": arch, "variant": "both", "regime": regime}
                          for arch in ("cnn-s", "vgg-xs")
                          for tag, regime in (("std", "standard"), ("harm", "harmonized"))])
    fig, _ = accuracy_figure(pd.concat([table, twins], ignore_index=True))
    right = fig.axes[2]
    labels = [t.get_text() for t in right.get_xticklabels()]
    assert len(set(labels)) == len(labels) == 5, labels
    assert "both/vgg-xs/harm/s0" in labels and "CNN" not in right.get_title()


def test_accuracy_figure_shows_the_published_models_of_the_paper_zoo() -> None:
    table = _table().assign(dataset=lambda t: t["dataset"].replace("digits", "imagenet"))
    fig, _ = accuracy_figure(table)
    left, middle, _right = fig.axes
    assert len(left.patches) == 2 * 2 and "imagenet" in left.get_title()
    assert len(middle.lines) == 2 * 2 and "imagenet" in middle.get_title()


def test_the_radius_panel_leaves_out_harmonized_twins() -> None:
    """A harmonized twin has eps 0 too: it was drawn as a second radius-0 point of its
    architecture's line (figures/00's cnn-m, vgg-xs and resnet8-xs lines began with two)."""
    table = _table()
    harmonized = table.iloc[[0]].assign(name="cnn-m/harm", regime="harmonized", test_acc=0.5,
                                        robust_acc=0.1)
    fig, _ = accuracy_figure(pd.concat([table, harmonized], ignore_index=True))
    middle = fig.axes[1]
    for line in middle.lines[:4]:
        x, y = line.get_data()
        assert list(x) == [0.0, 0.5, 1.0], line.get_label()
        assert 0.5 not in list(y) and 0.1 not in list(y)


def test_a_reseeded_zoo_is_plotted_too() -> None:
    """A zoo built with a zoo_seed (advlens.zoo.seeds.reseed) has no seed-0 model: the
    standard panel was empty and the radius panel's lines had no points, without a word."""
    table = _table().assign(seed=lambda t: t["seed"] + SEED_STRIDE)
    left, middle, _right = accuracy_figure(table)[0].axes
    assert len(left.patches) == 2 * 2
    x, y = middle.lines[1].get_data()
    assert list(x) == [0.0, 0.5, 1.0] and list(y) == [0.3, 0.55, 0.8]


def test_the_title_names_the_paper_zoos_imagenet_models_or_the_stand_ins() -> None:
    """At the paper zoo the title said 'Small zoo standing in for the ImageNet models' above
    the published ImageNet models themselves (notebooks 01 and 02 were fixed the same way)."""
    paper = _table().assign(dataset=lambda t: t["dataset"].replace("digits", "imagenet"))
    title = accuracy_figure(paper)[0].get_suptitle()
    assert title.startswith("Paper zoo's ImageNet models") and "standing in" not in title
    assert accuracy_figure(_table())[0].get_suptitle().startswith("Small zoo standing in for")


def test_the_returned_numbers_are_the_models_drawn() -> None:
    """The CSV beside the figure (the second return value) held every model of the table:
    figures/00's zoo_accuracy.csv listed 9 models no panel draws (the seed-1 digits models and
    the digits harmonized twins) beside the 38 drawn."""
    table = _table()
    extra = pd.concat([table.iloc[[0, 1]].assign(name=lambda t: t["name"] + "/s1", seed=1),
                       table.iloc[[0]].assign(name="cnn-m/harm", regime="harmonized")])
    fig, data = accuracy_figure(pd.concat([table, extra], ignore_index=True))
    assert set(data["name"]) == set(table["name"])  # the seed-0 digits models and the twin
    assert len(data) == 2 * len(table)
    left, middle, right = fig.axes
    assert len(left.patches) + len(right.patches) == 2 * 3  # 2 standard + 1 twin-cue
    assert sum(len(line.get_xdata()) for line in middle.lines) == 2 * 6  # 2 archs x 3 radii
