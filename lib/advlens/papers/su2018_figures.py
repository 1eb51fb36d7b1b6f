"""The figures of notebook 02 (Su et al., ECCV 2018): scaling-law panels, the accuracy–robustness
Pareto scatter and the transfer heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from advlens import plots
from advlens.papers import su2018

Colour = tuple[float, float, float]


def scaling_law_panels(table: pd.DataFrame, laws: pd.DataFrame, attacks: Sequence[str], *,
                       palette: Mapping[str, Colour], n_boot: int = 2000,
                       seed: int = 0) -> plt.Figure:
    """One panel per attack: each model's distortion (with CI) vs its top-1 error on a log axis,
    coloured by family, with the fitted line ``a·ln(error) + b`` and its bootstrap band.

    ``table``: one row per (model, attack) with family, top1_error, distortion(_lo/_hi);
    ``laws``: :func:`advlens.papers.su2018.scaling_laws` output (attack, norm, slope, intercept,
    r2).
    """
    by_attack = laws.set_index("attack")
    missing = [a for a in attacks if a not in by_attack.index]
    if missing:
        raise ValueError(f"no fitted law for attacks {missing}; fit every attack you plot.")
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.2 * len(attacks), 3.9))
    axes = np.atleast_1d(axes)
    for ax, attack in zip(axes, attacks, strict=True):
        d = table[(table["attack"] == attack) & np.isfinite(table["distortion"])]
        for fam, g in d.groupby("family"):
            plots.error_band(ax, g["top1_error"], g["distortion"], g["distortion_lo"],
                             g["distortion_hi"], fmt="o", color=palette[fam], label=fam)
        law = by_attack.loc[attack]
        if np.isfinite(law["slope"]):
            grid = np.geomspace(d["top1_error"].min(), d["top1_error"].max(), 60)
            lo, hi = su2018.prediction_band(d["distortion"], d["top1_error"], grid,
                                             n_boot=n_boot, seed=seed)
            ax.plot(grid, law["slope"] * np.log(grid) + law["intercept"], "k-", lw=1)
            ax.fill_between(grid, lo, hi, color="k", alpha=0.12, lw=0)
            ax.set_title(f"{attack} ({law['norm']}): a = {law['slope']:.3g}, R² = {law['r2']:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("top-1 error (log scale)")
        ax.set_ylabel(f"mean {law['norm']} distortion (successful)")
    axes[-1].legend(fontsize=8, frameon=False)
    fig.suptitle("Distortion vs log error (small zoo standing in for the ImageNet models)")
    fig.tight_layout()
    return fig


def pareto_scatter(table: pd.DataFrame, *, palette: Mapping[str, Colour],
                   ylabel: str = "mean C&W-L2 distortion") -> plt.Figure:
    """Distortion vs top-1 error per model (marker area grows with ``params``), coloured by
    family, names annotated, the rows flagged ``pareto`` joined as a dashed frontier."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for fam, g in table.groupby("family"):
        size = 25 + 12 * np.log10(g["params"].astype(float)) ** 1.5
        ax.scatter(g["top1_error"], g["distortion"], s=size, color=palette[fam], label=fam,
                   edgecolor="k", lw=0.4)
    front = table[table["pareto"]].sort_values("top1_error")
    ax.step(front["top1_error"], front["distortion"], "k--", where="post", lw=1,
            label="Pareto frontier")
    for _, r in table.iterrows():
        ax.annotate(r["model"], (r["top1_error"], r["distortion"]), fontsize=6, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("top-1 error (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title("Accuracy vs robustness; marker size ~ parameters")
    ax.legend(fontsize=7, frameon=False)
    return fig


TARGETED_TITLE = {"success": "targeted top-1", "top5": "targeted top-5 match"}


def transfer_heatmaps(untargeted: pd.DataFrame, targeted: pd.DataFrame, *,
                      family: Mapping[str, str], eps: float,
                      targeted_metric: str = "success") -> plt.Figure:
    """Untargeted (left) and targeted (right) transfer success, rows = source, columns =
    target, both in the same model order; white lines separate the families."""
    if targeted_metric not in TARGETED_TITLE:
        raise ValueError(f"targeted_metric must be one of {sorted(TARGETED_TITLE)}, "
                         f"got {targeted_metric!r}.")
    order = list(untargeted.index)
    panels = [(f"I-FGSM eps {eps:.3g}: {title}", mat) for title, mat in
              [("untargeted success", untargeted), (TARGETED_TITLE[targeted_metric], targeted)]]
    return plots.heatmap_pair(panels, figsize=(15, 6.4), max_annotated=8,
                              separators=plots.group_boundaries(order, dict(family)),
                              xlabel="target model", ylabels=["source model", ""])


def within_family_panels(table: pd.DataFrame, family_laws: pd.DataFrame,
                         attacks: Sequence[str], *, palette: Mapping[str, Colour]) -> plt.Figure:
    """Su et al.'s law inside each family: one panel per attack, each model's distortion vs its
    top-1 error (log axis) coloured by family, with each fitted family's line
    ``a·ln(error) + b`` over that family's error range (:func:`su2018.within_family_laws`).
    Families not fitted (too few models) are drawn as points only."""
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.6 * len(attacks), 3.9), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        rows = table[(table["attack"] == attack) & np.isfinite(table["distortion"])]
        for family, group in rows.groupby("family"):
            ax.scatter(group["top1_error"], group["distortion"], s=22, color=palette[family],
                       label=family)
            law = family_laws[(family_laws["family"] == family)
                              & (family_laws["attack"] == attack)].dropna(subset=["slope"])
            if len(law):
                fit = law.iloc[0]
                grid = np.geomspace(fit["error_min"], fit["error_max"], 50)
                ax.plot(grid, fit["slope"] * np.log(grid) + fit["intercept"],
                        color=palette[family], lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("top-1 error (log)")
        ax.set_ylabel(f"{attack} distortion")
        ax.set_title(f"{attack}: the law inside each family")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize="small",
               frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
