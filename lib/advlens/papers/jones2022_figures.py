"""The figures of notebook 01 (Jones et al., UAI 2022): CKA heatmaps and CKA vs robustness."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from advlens import plots

STAND_IN_MODELS, models_label = plots.STAND_IN_MODELS, plots.models_label  # notebook 01's names

def cka_long(matrices: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long form (row, col, cka, data) of CKA matrices keyed by the data they were measured on."""
    long = pd.concat([m.stack().rename("cka").reset_index().assign(data=d)
                      for d, m in matrices.items()])
    long.columns = ["row", "col", "cka", "data"]
    return long


def cka_heatmaps(test: pd.DataFrame, inverted: pd.DataFrame, *, test_label: str = "test images",
                 suptitle: str = "", figsize: tuple[float, float] = (12, 5.2),
                 compact: bool = False) -> plt.Figure:
    """Test-data CKA (left) beside CKA on each row model's inverted data (right).

    Both panels have the same size, axis labels (row model R, column model C) and one shared
    colour bar; the default annotates matrices of up to 9 models (small font), ``compact``
    always annotates (for a few models).
    """
    panels = [(f"CKA on {test_label}", test), ("CKA on row model's inverted data", inverted)]
    common = {"figsize": figsize, "suptitle": suptitle, "cbar_label": "linear CKA",
              "xlabel": "column model C", "ylabels": ["row model R"] * 2, "xtick_rotation": 90}
    if compact:
        return plots.heatmap_pair(panels, annot=True, **common)
    return plots.heatmap_pair(panels, max_annotated=9, fontsize=8, **common)


def robustness_data(summary: pd.DataFrame, pairs: pd.DataFrame, *,
                    freeze: pd.DataFrame | None = None) -> pd.DataFrame:
    """The numbers :func:`robustness_trend` draws, one row per model pair (the figure's CSV):
    the pair's CKA (``pairs``), its level's means and CIs (``summary``, suffix ``_mean`` where
    the names clash) and, at the levels ``freeze`` (``eps``, ``cka_inverted``, optional
    ``mean_loss``) reran, the red squares as ``freeze_cka_inverted`` (and
    ``freeze_mean_loss``); a freeze level without pairs gets a row of its own."""
    data = pairs.merge(summary, on="level", suffixes=("", "_mean"))
    if freeze is None or not len(freeze):
        return data
    missing = [c for c in ("eps", "cka_inverted") if c not in freeze]
    if missing:
        raise ValueError(f"freeze lacks columns {missing}; it needs 'eps' and 'cka_inverted' "
                         "(optionally 'mean_loss'), one row per rerun level.")
    names = {"eps": "level", "cka_inverted": "freeze_cka_inverted", "mean_loss": "freeze_mean_loss"}
    squares = freeze[[c for c in names if c in freeze]].rename(columns=names)
    squares = squares.assign(level=squares["level"].to_numpy(np.float64))
    data = data.merge(squares, on="level", how="left")
    alone = squares[~squares["level"].isin(data["level"])]
    return pd.concat([data, alone], ignore_index=True) if len(alone) else data


def robustness_trend(summary: pd.DataFrame, pairs: pd.DataFrame, *,
                     freeze: pd.DataFrame | None = None, symlog: bool = False,
                     seed: int = 0, models: str = STAND_IN_MODELS) -> plt.Figure:
    """Mean CKA between different architectures vs the adversarial-training radius.

    ``summary`` (one row per ``level``: ``cka_inverted``/``cka_test`` with ``_lo``/``_hi``)
    gives the two curves with CIs; ``pairs`` (``level``, ``cka_inverted``) the individual model
    pairs, jittered by a ``seed``-ed RNG; ``freeze`` (``eps``, ``cka_inverted``) optional red
    squares for the freeze-at-bounds rerun; ``symlog`` a symlog ε axis for wide radius ranges;
    ``models`` names the models in the title (:func:`models_label`).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    summary = summary.sort_values("level")  # the curves join the radii in order of eps
    for key, label, colour in [("cka_inverted", "inverted data", "C0"),
                               ("cka_test", "test data", "C7")]:
        plots.error_band(ax, summary.level, summary[key], summary[f"{key}_lo"],
                         summary[f"{key}_hi"], marker="o", capsize=3, color=colour,
                         label=f"mean over architecture pairs, {label}")
    level = pairs.level.to_numpy(np.float64)
    radii = np.unique(np.concatenate([level, summary.level.to_numpy(np.float64)]))
    gaps = np.diff(radii)
    nearest = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf])  # to the neighbouring radius
    # +-1 % of the widest radius, but never past a fifth of the way to the next radius: at
    # close radii (0.01, 0.03, 0.05 next to 5) a point must stay at its own eps
    half = np.minimum(0.01 * max(1.0, radii.max(initial=0.0)), 0.2 * nearest)
    jitter = (np.random.default_rng(seed).uniform(-1.0, 1.0, len(pairs))
              * half[np.searchsorted(radii, level)])
    ax.scatter(level + jitter, pairs.cka_inverted, s=10, alpha=0.4, color="C0",
               label="one (R, C) pair, inverted")
    if freeze is not None and len(freeze):
        ax.plot(freeze.eps, freeze.cka_inverted, "s", color="C3",
                label="inverted, freeze_at_bounds=True")
    if symlog:
        ax.set_xscale("symlog", linthresh=0.01)
    ax.set(xlabel="L2 adversarial-training radius ε", ylabel="linear CKA", ylim=(0, 1.02),
           title=f"Different architectures at equal robustness\n({models})")
    ax.legend(fontsize=7)
    return fig
