"""Figures of a seed sweep (:mod:`advlens.sweep`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

from advlens.sweep import data_seed_only

OUTCOMES = (("holds", "holds", "#4c9a5b"), ("does_not_hold", "does not hold", "#c4553f"),
            ("not_testable", "not testable", "#b0b0b0"), ("absent", "absent", "#e6e6e6"),
            ("missing", "no findings table", "#ffffff"))


def hold_counts_bars(counts: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """One horizontal stacked bar per finding: in how many seeds it holds, does not hold, could
    not be tested, is absent from the findings table or has no table in a seed
    (:func:`advlens.sweep.hold_counts`); a
    finding whose notebook varied only the data seed (no ``zoo_seed``: the same models in every
    run) is marked †."""
    if counts.empty:
        raise ValueError("counts is empty; collect a sweep's findings first.")
    fixed = set(data_seed_only(counts))
    labels = [f"{nb[:2]} {finding}" + (" †" if nb in fixed else "")
              for nb, finding in zip(counts["notebook"], counts["finding"], strict=True)]
    # the † note needs room beside the legend
    fig, ax = plt.subplots(figsize=(10.5 if fixed else 9, 0.45 * len(labels) + 1.4))
    left = pd.Series(0.0, index=counts.index)
    for column, name, colour in OUTCOMES:
        if column not in counts:  # counts of before the ``absent`` / ``missing`` columns
            continue
        hatched = {"hatch": "//", "edgecolor": "#999999"} if column == "missing" else {}
        ax.barh(labels, counts[column], left=left, color=colour, label=name, **hatched)
        left = left + counts[column]
    ax.invert_yaxis()
    ax.set_xlabel("seeds")
    ax.set_ylabel("finding (notebook, id)")
    ax.set_xticks(range(int(counts["n_runs"].max()) + 1))
    ax.set_title(title or "In how many seeds each finding holds")
    handles, names = ax.get_legend_handles_labels()
    if fixed:
        handles.append(Patch(color="none"))
        names.append("† only the data seed\nvaried (no zoo_seed):\nthe same models\nin every run")
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
              frameon=False)
    fig.tight_layout()
    return fig
