"""The zoo at a glance: clean and robust test accuracy per family and robustness level."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from advlens import plots
from advlens.zoo.architectures import FAMILIES

MEASURES = {"test_acc": "clean", "robust_acc": "under L2-PGD"}


def accuracy_long(table: pd.DataFrame) -> pd.DataFrame:
    """``Zoo.table()`` in long form: one row per model and measure (clean / under attack)."""
    keep = ["name", "family", "arch", "dataset", "variant", "regime", "eps", "seed",
            "robust_eps"]
    long = table.melt(id_vars=keep, value_vars=list(MEASURES), var_name="measure",
                      value_name="accuracy")
    long["measure"] = long["measure"].map(MEASURES)
    return long


def _family_order(table: pd.DataFrame) -> pd.DataFrame:
    rank = {f: i for i, f in enumerate(FAMILIES)}
    return table.assign(_rank=table["family"].map(rank)).sort_values(
        ["_rank"], kind="stable").drop(columns="_rank")


def _paired_bars(ax: plt.Axes, rows: pd.DataFrame, labels: list[str]) -> None:
    """Clean and attacked accuracy side by side; a bar too low to see is labelled with its
    value ("0" at zero), so that it cannot be mistaken for a missing one."""
    x = np.arange(len(rows))
    for offset, key, colour in ((-0.2, "test_acc", "C0"), (0.2, "robust_acc", "C1")):
        values = rows[key].to_numpy(dtype=float)
        ax.bar(x + offset, values, 0.4, color=colour, label=MEASURES[key])
        for xi, v in zip(x + offset, values, strict=True):
            if np.isfinite(v) and v < 0.03:
                ax.text(xi, v + 0.01, "0" if v < 0.005 else f"{v:.2f}", ha="center",
                        va="bottom", fontsize=6, rotation=90, color=colour)
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_ylim(0, 1.02)


def accuracy_figure(table: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Three panels from ``Zoo.table()``: standard digits models (clean vs attacked accuracy,
    grouped by family; the published ImageNet models when the table has them, i.e. the paper
    zoo), accuracy vs adversarial-training radius per architecture, and the twin-cue models.
    Legends sit outside the bars; the title names the paper zoo's ImageNet models or the small
    zoo standing in for them (:func:`advlens.plots.models_label`). Returns the figure and the
    plotted numbers (long form): the models drawn, not the later seeds or the digits
    harmonized twins that no panel shows."""
    eps = table["robust_eps"].dropna().unique()
    attack = f"L2-PGD, eps {eps[0]:g}" if len(eps) == 1 else "L2-PGD"
    # the paper zoo's published ImageNet models take the digits models' place in two panels
    main = "imagenet" if (table["dataset"] == "imagenet").any() else "digits"
    digits = table[table["dataset"] == main]
    # one model per architecture and radius: the first training seed, 0 or (in a zoo reseeded
    # with a zoo_seed, advlens.zoo.seeds.reseed) 0 shifted
    first = digits["seed"] == digits["seed"].min()
    standard = _family_order(digits[(digits["regime"] == "standard") & first])
    robust_archs = list(dict.fromkeys(digits.loc[digits["regime"] == "l2-at", "arch"]))
    twin = table[table["dataset"] == "twin-cue"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained",
                             gridspec_kw={"width_ratios": [2.2, 1.2, 1]})

    ax = axes[0]
    if len(standard):
        _paired_bars(ax, standard, list(standard["arch"]))
    ax.set(xlabel="standard model (architecture)", ylabel="test accuracy",
           title=f"Standard models ({main}): clean vs {attack}")

    ax = axes[1]
    # radius 0 is the standard model: a harmonized twin (also eps 0) is not on this axis
    seed0 = digits[first & digits["regime"].isin(["standard", "l2-at"])]
    colours = sns.color_palette("dark", max(len(robust_archs), 1))
    for colour, arch in zip(colours, robust_archs, strict=False):
        rows = seed0[seed0["arch"] == arch].sort_values("eps")
        ax.plot(rows["eps"], rows["test_acc"], "o-", color=colour, label=arch)
        ax.plot(rows["eps"], rows["robust_acc"], "s--", color=colour)
    ax.set(xlabel="adversarial-training L2 radius (0 = standard)", ylabel="test accuracy",
           ylim=(0, 1.02), title=f"Adversarially trained ({main})")
    if robust_archs:
        handles = ax.get_legend_handles_labels()[0] + [
            Line2D([], [], color="k", marker="o", ls="-", label="clean"),
            Line2D([], [], color="k", marker="s", ls="--", label=f"under {attack}")]
        ax.legend(handles=handles, fontsize=6, ncol=3, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), frameon=False)

    ax = axes[2]
    if len(twin):
        # the model's name: variant, architecture, regime and seed ('both' has several)
        labels = [str(n).removeprefix("twin-cue-") for n in twin["name"]]
        _paired_bars(ax, twin, labels)
        ax.axhline(0.95, color="grey", ls=":", lw=1, label="0.95")
    ax.set(xlabel="training variant / architecture / regime / seed",
           ylabel="test accuracy on own variant", title="Twin-cue models by training variant")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", ncol=2,
               fontsize=8, frameon=False)
    models = plots.models_label("paper" if main == "imagenet" else "")
    fig.suptitle(f"{models[0].upper()}{models[1:]}: clean and attacked accuracy")
    drawn = pd.concat([standard, seed0[seed0["arch"].isin(robust_archs)], twin])
    return fig, accuracy_long(table[table["name"].isin(drawn["name"])])
