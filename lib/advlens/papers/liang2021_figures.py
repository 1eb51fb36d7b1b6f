"""The figures of notebook 04 (Liang et al., ICML 2021): the per-source bars of α₁, α₂ and
knowledge transfer, and the transfer-correlation scatter (our addition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from advlens import plots

PANELS = (("alpha1", "α₁ (logit-change ratio)"), ("alpha2", "α₂ (direction consistency)"),
          ("transfer_acc", "knowledge transfer (probe test acc.)"))


def bars_caption(knobs: Mapping[str, Any]) -> str:
    """The caption of :func:`transfer_bars` at notebook 04's ``knobs``: the probe and α₂ as
    run (``probe``, ``squared_alpha2``), the direction of α where it is not the protocol's
    (``alpha_direction``), and the data and networks — the embedded stand-ins, or at
    ``liang_data="cifar10-stl10"`` the paper's data and networks."""
    probe = "linear-probe" if knobs["probe"] == "linear" else "fine-tuned"
    alpha2 = "squared" if knobs["squared_alpha2"] else "unsquared"
    if knobs.get("alpha_direction", "source-to-reference") != "source-to-reference":
        alpha2 += "; the reference attacked, the source read"
    data = ("Digits and twin-cue stand in for CIFAR-10/STL-10, small zoo models for the paper's "
            "networks." if knobs["liang_data"] == "embedded" else
            "CIFAR-10 sources, STL-10 references and Liang et al.'s networks (deviations: "
            "liang2021.paper_experiments).")
    return (f"Per source: α₁, α₂ ({alpha2}) and {probe} accuracy on the target task, mean and "
            f"95% t-CI over seeds. {data}")


def transfer_bars(summary: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """One row per experiment, three panels (α₁, α₂, knowledge transfer): a horizontal bar per
    source at its mean over seeds with the Student-t CI as error bars (none where there is no
    CI: a source of one seed).

    ``summary``: :func:`advlens.papers.liang2021.summarize` output (experiment, source,
    <metric>, <metric>_lo, <metric>_hi, n_seeds).
    """
    experiments = list(dict.fromkeys(summary["experiment"]))
    heights = [0.45 * (summary["experiment"] == e).sum() + 1.2 for e in experiments]
    fig, axes = plt.subplots(len(experiments), len(PANELS), squeeze=False,
                             figsize=(13, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for r, experiment in enumerate(experiments):
        g = summary[summary["experiment"] == experiment]
        y = np.arange(len(g))
        for c, (metric, label) in enumerate(PANELS):
            ax = axes[r, c]
            ax.barh(y, g[metric], color=sns.color_palette("colorblind")[c], alpha=0.8)
            mean, lo, hi = (g[k].to_numpy(dtype=np.float64)
                            for k in (metric, f"{metric}_lo", f"{metric}_hi"))
            # no CI (one seed: NaN in the CSV) draws no bar, not a zero-width one with caps
            ax.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="none", ecolor="k",
                        capsize=3, lw=1)
            ax.set_yticks(y, g["source"] if c == 0 else [""] * len(g), fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(label, fontsize=9)
            ax.set_ylabel("source" if c == 0 else "(same sources)", fontsize=8)
            low, high = int(g["n_seeds"].min()), int(g["n_seeds"].max())
            seeds = ("1 seed: no CI" if high == 1 else f"{high} seeds" if low == high else
                     f"{low}-{high} seeds")
            ax.set_title(f"{experiment} ({seeds})" if c == 0 else label, fontsize=9)
    fig.suptitle(title or "Adversarial (α₁, α₂) and knowledge transferability per source "
                 "(mean, 95% t-CI over seeds)")
    fig.tight_layout()
    return fig


def correlation_scatter(rows: pd.DataFrame, corr: pd.DataFrame) -> plt.Figure:
    """Knowledge transfer against α₁ and against α₂, one point per (source, seed), coloured by
    experiment; the legend gives each experiment's Spearman ρ with its bootstrap CI over sources,
    its two-sided permutation p and the one-sided ``p_greater`` (ρ above its pairings) that the
    verdict uses (:func:`advlens.papers.liang2021.correlations`; our addition: the paper reports
    no coefficient)."""
    experiments = list(dict.fromkeys(rows["experiment"]))
    palette = plots.family_palette(experiments)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, metric, name in zip(axes, ("alpha1", "alpha2"), ("α₁", "α₂"), strict=True):
        for experiment in experiments:
            g = rows[rows["experiment"] == experiment]
            r = corr[(corr["experiment"] == experiment) & (corr["metric"] == metric)].iloc[0]
            ax.scatter(g[metric], g["transfer_acc"], s=22, color=palette[experiment],
                       label=f"{experiment}: ρ = {r['rho']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]"
                             + (f", p = {r['p']:.2g}" if "p" in r else "")
                             + (f", one-sided {r['p_greater']:.2g}" if "p_greater" in r else ""))
        ax.set_xlabel(f"adversarial transferability {name}")
        ax.set_ylabel("knowledge transfer (probe test acc.)")
        ax.set_title(f"knowledge transfer vs {name}", fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="best")
    fig.suptitle("Transfer correlation (our addition): Spearman ρ [95% bootstrap CI over "
                 "sources],\npermutation p two-sided, and one-sided (ρ above its pairings): the "
                 "verdict's")
    fig.tight_layout()
    return fig
