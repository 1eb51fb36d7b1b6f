"""The figures of notebook 03 (Linsley et al. 2023): accuracy vs tolerance and vs alignment with
arrows from each model to its harmonized twin, the qualitative panel, the twin-cue check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from advlens import plots

Colour = tuple[float, float, float]
ATTACK_LABEL = {"pgd": "L2 PGD search (Linsley et al.)", "ddn": "DDN (minimal L2)"}
QUANTITY_LABEL = {"tolerance": "median tolerance (L2 eps to fool)",
                  "alignment": "alignment (Spearman ρ with map)"}
MARKER = {"standard": "o", "l2-at": "s", "harmonized": "*"}


def _panel(ax: plt.Axes, summary: pd.DataFrame, arrows: pd.DataFrame, quantity: str,
           family: Mapping[str, str], regime: Mapping[str, str],
           palette: Mapping[str, Colour], xlabel: str) -> None:
    values = summary[quantity].to_numpy(float)
    finite = values[np.isfinite(values)]
    # a median tolerance beyond the attack's reach (+inf) is drawn on a line above the others
    # (matplotlib left it out without a word)
    top = (finite.max() * 1.15 if len(finite) and finite.max() > 0 else 1.0)

    def y(value: float) -> float:
        return top if np.isposinf(value) else value

    if np.isposinf(values).any():
        ax.axhline(top, color="0.6", ls=":", lw=0.8, zorder=1)
        ax.text(0.01, top, "beyond reach (half or more never fooled)", fontsize=7,
                color="0.4", va="bottom", transform=ax.get_yaxis_transform())
    for row in summary.itertuples():
        ax.scatter(row.accuracy, y(getattr(row, quantity)), color=palette[family[row.model]],
                   marker=MARKER.get(regime[row.model], "o"),
                   s=90 if regime[row.model] == "harmonized" else 30, edgecolor="black",
                   linewidth=0.4, zorder=3)
    # NaN (an alignment with no successful perturbation to measure it): no point, and no arrow
    # (an arrow from a NaN point raised StopIteration in matplotlib when the figure was drawn);
    # the panel names the models it leaves out
    undefined = [row.model for row in summary.itertuples() if np.isnan(getattr(row, quantity))]
    if undefined:
        ax.text(0.01, 0.01, f"not drawn (undefined): {', '.join(undefined)}", fontsize=7,
                color="0.4", va="bottom", transform=ax.transAxes)
    for row in arrows.itertuples():
        start = (row.accuracy_plain, y(getattr(row, f"{quantity}_plain")))
        end = (row.accuracy_harmonized, y(getattr(row, f"{quantity}_harmonized")))
        if np.isnan([*start, *end]).any():
            continue
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1.0}, zorder=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(QUANTITY_LABEL[quantity])


def accuracy_panels(summary: pd.DataFrame, arrows: Mapping[str, pd.DataFrame],
                    corr: pd.DataFrame, *, family: Mapping[str, str],
                    regime: Mapping[str, str], title: str,
                    xlabel: str = "clean test accuracy") -> plt.Figure:
    """Rows = attacks, columns = tolerance and alignment: one point per model (colour = family,
    marker = regime), an arrow from each model to its harmonized twin; panel titles give
    Spearman ρ(accuracy, ·) with its bootstrap CI over models. ``xlabel``: what the accuracy
    is (:func:`advlens.papers.linsley2023.accuracy_label`: ImageNet top-1 on ClickMe).

    ``summary``: :func:`advlens.papers.linsley2023.model_table`; ``arrows``: quantity →
    :func:`~advlens.papers.linsley2023.twin_arrows`; ``corr``:
    :func:`~advlens.papers.linsley2023.correlations`.
    """
    attack_list = list(dict.fromkeys(summary["attack"]))
    palette = plots.family_palette(list(family.values()))
    fig, axes = plt.subplots(len(attack_list), 2, figsize=(10, 3.6 * len(attack_list) + 0.8),
                             squeeze=False, layout="constrained")
    c = corr.set_index(["attack", "quantity"])
    for r, attack in enumerate(attack_list):
        part = summary[summary["attack"] == attack]
        for col, quantity in enumerate(("tolerance", "alignment")):
            ax = axes[r, col]
            arr = arrows[quantity]
            arr = arr[arr["attack"] == attack] if len(arr) else arr
            _panel(ax, part, arr, quantity, family, regime, palette, xlabel)
            est = c.loc[(attack, quantity)]
            ax.set_title(f"{ATTACK_LABEL.get(attack, attack)}\nρ = {est['rho']:.2f} "
                         f"[{est['lo']:.2f}, {est['hi']:.2f}], {int(est['n_models'])} models")
    handles = [plt.Line2D([], [], marker="o", ls="", color=col, label=fam)
               for fam, col in palette.items()]
    handles += [plt.Line2D([], [], marker=m, ls="", color="0.5", label=reg)
                for reg, m in MARKER.items() if reg in set(regime.values())]
    fig.legend(handles=handles, loc="outside right center", title="family / regime")
    fig.suptitle(title)
    return fig


def qualitative_panel(panels: Sequence[tuple[str, Mapping[str, torch.Tensor]]], *,
                      n_show: int, map_label: str) -> plt.Figure:
    """Columns = images; rows = the image, its importance map, then for each model (name,
    :func:`advlens.papers.linsley2023.qualitative` output) |perturbation| and |saliency|; each
    |perturbation| is marked with that model's alignment ρ on that image."""
    first = panels[0][1]
    k = min(n_show, first["image"].shape[0])
    rows = [first["image"][:k], first["map"][:k, None]]
    labels = ["image", map_label]
    for name, q in panels:
        rows += [q["perturbation"][:k, None], q["saliency"][:k, None]]
        labels += [f"|δ| {name}", f"|saliency| {name}"]
    cmaps = ["gray", "magma"] + ["viridis"] * (len(rows) - 2)
    fig = plots.image_grid(rows, row_labels=labels, cmaps=cmaps, cell_size=1.5,
                           title="what the attack changes and where the model looks")
    # each model's own ρ on its |δ| image: one ρ per column would show only the first model's
    for j, (_, q) in enumerate(panels):
        for i in range(k):
            ax = fig.axes[(2 + 2 * j) * k + i]  # the grid's axes, row by row
            ax.text(0.03, 0.97, f"ρ {float(q['alignment'][i]):.2f}", transform=ax.transAxes,
                    ha="left", va="top", fontsize=7, color="w")
    return fig


def cue_reliance_bars(reliance: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> plt.Figure:
    """Per twin-cue pair: a-only accuracy, b-only accuracy and saliency share on the shape
    mask, plain vs harmonized side by side."""
    metrics = [("acc_a-only", "accuracy, a-only (shape tells)"),
               ("acc_b-only", "accuracy, b-only (grating tells)"),
               ("saliency_shape", "saliency share on shape")]
    r = reliance.set_index("model")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), 3.6),
                             layout="constrained")
    x = np.arange(len(pairs))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        ax.bar(x - 0.2, [r.loc[p, key] for p, _ in pairs], 0.4, label="plain")
        ax.bar(x + 0.2, [r.loc[h, key] for _, h in pairs], 0.4, label="harmonized")
        ax.set_xticks(x, [p.split("/")[1] for p, _ in pairs])
        ax.set_xlabel("architecture")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.set_ylim(0, 1.05)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center")
    fig.suptitle("twin-cue ground truth: harmonized to the shape cue (stand-in map)")
    return fig
