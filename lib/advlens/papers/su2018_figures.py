"""The figures of notebook 02 (Su et al., ECCV 2018): scaling-law panels, the accuracy–robustness
Pareto scatter and the transfer heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.text import Text

from advlens import plots
from advlens.papers import su2018

Colour = tuple[float, float, float]
# how the paper writes the attacks and norms
ATTACK_LABEL = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "cw": "C&W-L2", "ead": "EAD-L1"}
NORM_LABEL = {"linf": "L∞", "l2": "L2", "l1": "L1"}


def scaling_law_panels(table: pd.DataFrame, laws: pd.DataFrame, attacks: Sequence[str], *,
                       palette: Mapping[str, Colour], n_boot: int = 2000,
                       seed: int = 0, models: str = plots.STAND_IN_MODELS) -> plt.Figure:
    """A grid of panels, one per attack: each model's distortion (with CI) vs its top-1 error
    on a log axis, coloured by family, with the fitted line ``a·ln(error) + b`` and its
    bootstrap band; the title gives the slope with its CI and R². One legend for the figure;
    ``models`` names the models in the title (:func:`advlens.plots.models_label`).

    ``table``: one row per (model, attack) with family, top1_error, distortion(_lo/_hi);
    ``laws``: :func:`advlens.papers.su2018.scaling_laws` output (attack, norm, slope with
    slope_lo/slope_hi, intercept, r2).
    """
    by_attack = laws.set_index("attack")
    missing = [a for a in attacks if a not in by_attack.index]
    if missing:
        raise ValueError(f"no fitted law for attacks {missing}; fit every attack you plot.")
    n_cols = min(2, len(attacks))
    n_rows = -(-len(attacks) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols, 3.9 * n_rows + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(attacks):]:
        ax.set_visible(False)
    for ax, attack in zip(axes.flat, attacks, strict=False):
        measured = table[(table["attack"] == attack) & np.isfinite(table["distortion"])]
        # as in the fit (su2018.scaling_laws): an error of 0 has no place on a log axis
        d = measured[measured["top1_error"] > 0]
        if len(d) < len(measured):
            ax.annotate(f"{len(measured) - len(d)} model(s) with 0 top-1 error not shown",
                        (0.02, 0.02), xycoords="axes fraction", fontsize=7)
        for fam, g in d.groupby("family"):
            plots.error_band(ax, g["top1_error"], g["distortion"], g["distortion_lo"],
                             g["distortion_hi"], fmt="o", color=palette[fam], label=fam,
                             ms=4, capsize=2, lw=0.8)
        law = by_attack.loc[attack]
        norm = NORM_LABEL.get(law["norm"], law["norm"])
        title = ATTACK_LABEL.get(attack, attack)
        if np.isfinite(law["slope"]):
            grid = np.geomspace(d["top1_error"].min(), d["top1_error"].max(), 60)
            lo, hi = su2018.prediction_band(d["distortion"], d["top1_error"], grid,
                                             n_boot=n_boot, seed=seed)
            ax.plot(grid, law["slope"] * np.log(grid) + law["intercept"], "k-", lw=1,
                    label="fit a·ln(error) + b")
            ax.fill_between(grid, lo, hi, color="k", alpha=0.12, lw=0, label="95% band")
            title += (f": a = {law['slope']:.3g} [{law['slope_lo']:.3g}, "
                      f"{law['slope_hi']:.3g}], R² = {law['r2']:.2f}")
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        ax.set_xlabel("top-1 error (log scale)")
        ax.set_ylabel(f"mean {norm} distortion")
    handles, labels = _legend_entries(axes.flat)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 8),
               fontsize=8, frameon=False)
    fig.suptitle(f"Distortion (successful examples) vs log top-1 error — {models}")
    return fig


def _legend_entries(axes: Sequence[plt.Axes]) -> tuple[list, list[str]]:
    """Every panel's legend entries, each label once, in order of first appearance (a family
    or the fit can be missing from the first panel, e.g. when an attack never succeeded)."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def label_points(ax: plt.Axes, x: Sequence[float], y: Sequence[float], labels: Sequence[str],
                 *, sizes: Sequence[float] | None = None,
                 fontsize: float = 6) -> list[plt.Annotation]:
    """Annotate points so that no label overlaps another label, a marker (of area ``sizes``
    in points², as in ``scatter``) or the axes' edge: each label, in turn, takes the first
    free spot among 8 directions at growing distances from its point (greedy placement in
    display space); a thin line joins a label placed further out to its point. A label next
    to its point (no line) is never nearer another marker than its own: it would name that
    marker instead."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([x, y]).astype(float))
    to_pt = 72.0 / fig.dpi
    radii = np.sqrt(np.asarray(sizes if sizes is not None else [16.0] * len(labels),
                               dtype=float)) / 2 / to_pt
    frame = ax.get_window_extent(renderer).extents
    taken = [(px - r, py - r, px + r, py + r) for (px, py), r in zip(points, radii, strict=True)]
    notes = []
    directions = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
    for i, (text, (px, py), r, xi, yi) in enumerate(zip(labels, points, radii, x, y,
                                                          strict=True)):
        note = ax.annotate(text, (xi, yi), xytext=(0, 0), textcoords="offset points",
                           fontsize=fontsize, alpha=0.9,
                           arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.4"})
        w, h = (lambda e: (e[2] - e[0], e[3] - e[1]))(Text.get_window_extent(note, renderer)
                                                      .extents)
        best = None
        for distance in (r + 2, r + 12, r + 24, r + 40, r + 60):
            for dx, dy in directions:
                cx, cy = px + dx * (distance + w / 2), py + dy * (distance + h / 2)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                inside = (box[0] >= frame[0] and box[2] <= frame[2] and box[1] >= frame[1]
                          and box[3] <= frame[3])
                if (inside and not any(_overlap(box, other) for other in taken)
                        and (distance > r + 2 or _nearest_marker(box, points, radii) == i)):
                    best = (box, distance)
                    break
            if best is not None:
                break
        if best is None:  # crowded: the nearest spot up and right
            cx, cy = px + r + 2 + w / 2, py + r + 2 + h / 2
            best = ((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), r + 2)
        box, distance = best
        note.set_position(((box[0] - px) * to_pt, (box[1] - py) * to_pt))
        note.set(ha="left", va="bottom")
        note.arrow_patch.set_visible(bool(distance > r + 2))
        taken.append(box)
        notes.append(note)
    return notes


def _nearest_marker(box: Sequence[float], points: np.ndarray, radii: np.ndarray) -> int:
    """The index of the marker (centre ``points``, radius ``radii``, display units) whose
    edge is nearest to ``box``; ties: the first."""
    dx = np.clip(points[:, 0], box[0], box[2]) - points[:, 0]
    dy = np.clip(points[:, 1], box[1], box[3]) - points[:, 1]
    return int(np.argmin(np.hypot(dx, dy) - radii))


def _overlap(a: Sequence[float], b: Sequence[float]) -> float | None:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else None


def pareto_scatter(table: pd.DataFrame, *, palette: Mapping[str, Colour],
                   ylabel: str = "mean C&W-L2 distortion",
                   models: str = plots.STAND_IN_MODELS) -> plt.Figure:
    """Distortion vs top-1 error per model (marker area grows with ``params``), coloured by
    family, names placed by :func:`label_points`, the rows flagged ``pareto`` joined as a
    dashed frontier; ``models`` names the models in the title. A model with 0 top-1 error
    has no place on the log axis: the x label says how many are not shown."""
    fig, ax = plt.subplots(figsize=(7.2, 5.0), layout="constrained")
    hidden = int((table["top1_error"] <= 0).sum())
    table = table[table["top1_error"] > 0]
    # by position, not index label: a table joined from two runs can repeat index labels
    sizes = 25 + 12 * np.log10(table["params"].to_numpy(dtype=float)) ** 1.5
    for fam, g in table.groupby("family"):
        ax.scatter(g["top1_error"], g["distortion"], s=sizes[(table["family"] == fam).to_numpy()],
                   color=palette[fam], label=fam, edgecolor="k", lw=0.4)
    front = table[table["pareto"]].sort_values("top1_error")
    ax.step(front["top1_error"], front["distortion"], "k--", where="post", lw=1,
            label="Pareto frontier")
    ax.set_xscale("log")
    ax.set_xlabel(_log_error_label("top-1 error (log scale)", hidden))
    ax.set_ylabel(ylabel)
    ax.set_title(f"Top-1 error vs robustness (marker size ~ parameters)\n{models}", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.12 * (high - low))  # room for the labels of the top points
    label_points(ax, table["top1_error"], table["distortion"], list(table["model"]),
                 sizes=sizes)
    return fig


def _log_error_label(label: str, hidden: int) -> str:
    """``label`` of a log top-1 error axis, naming the ``hidden`` models of 0 error (none
    has a place on it)."""
    return f"{label}; {hidden} model(s) with 0 error not shown" if hidden else label


TARGETED_TITLE = {"success": "targeted top-1", "top5": "targeted top-5 match"}


def transfer_heatmaps(untargeted: pd.DataFrame, targeted: pd.DataFrame, *,
                      family: Mapping[str, str], eps: float,
                      targeted_metric: str = "success",
                      models: str = plots.STAND_IN_MODELS) -> plt.Figure:
    """Untargeted (left) and targeted (right) transfer success, rows = source, columns =
    target, both in the same model order, equal panels with one colour bar; white lines
    separate the families, named above each panel. The diagonal (white-box success) is masked
    and left out of the colour scale, so the transfer rates use the whole scale. The order is
    ``untargeted``'s rows; both matrices are reindexed to it (rows and columns)."""
    if targeted_metric not in TARGETED_TITLE:
        raise ValueError(f"targeted_metric must be one of {sorted(TARGETED_TITLE)}, "
                         f"got {targeted_metric!r}.")
    order = list(untargeted.index)
    for name, mat in (("untargeted", untargeted), ("targeted", targeted)):
        if set(mat.index) != set(order) or set(mat.columns) != set(order):
            raise ValueError(f"{name} must have the models {order} as its rows and columns; "
                             f"it has rows {list(mat.index)}, columns {list(mat.columns)}.")
    # the separators, family names and masked diagonal are positions in ``order``
    untargeted, targeted = untargeted.loc[order, order], targeted.loc[order, order]
    panels = [(f"I-FGSM eps {eps:.3g}: {title}", mat) for title, mat in
              [("untargeted success", untargeted), (TARGETED_TITLE[targeted_metric], targeted)]]
    bounds = plots.group_boundaries(order, dict(family))
    fig = plots.heatmap_pair(panels, figsize=(15, 7.4), max_annotated=8, separators=bounds,
                             xlabel="target model", ylabels=["source model"] * 2,
                             mask_diagonal=True, xtick_rotation=90,
                             cbar_label="transfer success rate (diagonal masked)",
                             suptitle=f"Transfer between the models of the {models}, ordered "
                                      "by family")
    edges = [0, *bounds, len(order)]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    names = [family[order[a]] for a in edges[:-1]]
    for ax in fig.axes[:2]:
        top = ax.secondary_xaxis("top")
        top.set_xticks(centres, names, fontsize=8)
        top.tick_params(length=0)
    return fig


def within_family_panels(table: pd.DataFrame, family_laws: pd.DataFrame,
                         attacks: Sequence[str], *, palette: Mapping[str, Colour]) -> plt.Figure:
    """Su et al.'s law inside each family: one panel per attack, each model's distortion vs its
    top-1 error (log axis) coloured by family, with each fitted family's line
    ``a·ln(error) + b`` over the error range of that family's models drawn in the panel
    (:func:`su2018.within_family_laws`).
    Families not fitted (too few models) are drawn as points only; models with 0 top-1 error
    (no place on the log axis, nor in the fits) are counted in the x label."""
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.6 * len(attacks), 3.9), squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        rows = table[(table["attack"] == attack) & np.isfinite(table["distortion"])]
        hidden = int((rows["top1_error"] <= 0).sum())
        rows = rows[rows["top1_error"] > 0]
        for family, group in rows.groupby("family"):
            ax.scatter(group["top1_error"], group["distortion"], s=22, color=palette[family],
                       label=family)
            law = family_laws[(family_laws["family"] == family)
                              & (family_laws["attack"] == attack)].dropna(subset=["slope"])
            if len(law):
                fit = law.iloc[0]
                # over the models fitted for this attack (the points drawn), not the family's
                # whole range: a model the attack never fooled is in neither
                grid = np.geomspace(group["top1_error"].min(), group["top1_error"].max(), 50)
                ax.plot(grid, fit["slope"] * np.log(grid) + fit["intercept"],
                        color=palette[family], lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel(_log_error_label("top-1 error (log)", hidden))
        name = ATTACK_LABEL.get(attack, attack)
        norm = NORM_LABEL.get(su2018.NORM.get(attack, ""))
        ax.set_ylabel(f"mean {norm + ' ' if norm else ''}distortion ({name})")
        ax.set_title(f"{name}: the law inside each family")
    handles, labels = _legend_entries(axes[0])
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize="small",
               frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
