"""The zoo at a glance: clean and robust test accuracy per family and robustness level."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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
    x = np.arange(len(rows))
    ax.bar(x - 0.2, rows["test_acc"], 0.4, label="clean")
    ax.bar(x + 0.2, rows["robust_acc"], 0.4, label="under L2-PGD")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)


def accuracy_figure(table: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Three panels from ``Zoo.table()``: standard digits models (clean vs attacked accuracy,
    grouped by family), accuracy vs adversarial-training radius per architecture, and the
    twin-cue models. Returns the figure and the plotted numbers (long form)."""
    eps = table["robust_eps"].dropna().unique()
    attack = f"L2-PGD, eps {eps[0]:g}" if len(eps) == 1 else "L2-PGD"
    digits = table[table["dataset"] == "digits"]
    standard = _family_order(digits[(digits["regime"] == "standard") & (digits["seed"] == 0)])
    robust_archs = list(dict.fromkeys(digits.loc[digits["regime"] == "l2-at", "arch"]))
    twin = table[table["dataset"] == "twin-cue"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8),
                             gridspec_kw={"width_ratios": [2.2, 1.2, 1]})

    ax = axes[0]
    if len(standard):
        _paired_bars(ax, standard, list(standard["arch"]))
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Standard models (digits): clean vs {attack}")
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1]
    seed0 = digits[digits["seed"] == 0]
    for i, arch in enumerate(robust_archs):
        rows = seed0[seed0["arch"] == arch].sort_values("eps")
        colour = f"C{i}"
        ax.plot(rows["eps"], rows["test_acc"], "o-", color=colour, label=f"{arch} clean")
        ax.plot(rows["eps"], rows["robust_acc"], "s--", color=colour, label=f"{arch} attacked")
    ax.set_xlabel("adversarial-training L2 radius (0 = standard)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Adversarially trained (digits)")
    if robust_archs:
        ax.legend(fontsize=6, ncol=2, loc="lower right")

    ax = axes[2]
    if len(twin):
        labels = [f"{v}\ns{s}" for v, s in zip(twin["variant"], twin["seed"], strict=True)]
        _paired_bars(ax, twin, labels)
        ax.axhline(0.95, color="grey", ls=":", lw=1)
    ax.set_title("Twin-cue CNN by training variant")
    fig.tight_layout()
    return fig, accuracy_long(table)
