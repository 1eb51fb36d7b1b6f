"""One shared figure style, and saving every figure with its numbers and provenance."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from advlens import provenance
from advlens.io import atomic_write, atomic_write_json

STYLE = {"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
         "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8}


def use_style() -> None:
    """Apply the project's figure style (seaborn ticks + colour-blind palette)."""
    sns.set_theme(context="notebook", style="ticks", palette="colorblind", rc=STYLE)


class Timer:
    """Wall-clock timer started at construction; ``elapsed`` in seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def save_figure(fig: plt.Figure, data: pd.DataFrame, out_dir: str | Path, name: str, *,
                params: dict[str, Any], seed: int | None = None,
                wall_time_s: float | None = None, caption: str = "") -> dict[str, Path]:
    """Save ``fig`` as PNG and PDF beside ``data`` (CSV) and a provenance JSON.

    Every file is written atomically; returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{name}.{ext}" for ext in ("png", "pdf", "csv")}
    for ext in ("png", "pdf"):
        atomic_write(paths[ext], lambda tmp, ext=ext: fig.savefig(tmp, format=ext))
    atomic_write(paths["csv"], lambda tmp: data.to_csv(tmp, index=False))
    paths["json"] = out / f"{name}.provenance.json"
    atomic_write_json(paths["json"], provenance.record(
        params, seed=seed, wall_time_s=wall_time_s, figure=name, caption=caption,
        files=[p.name for p in paths.values()]))
    return paths


def save_table(data: pd.DataFrame, out_dir: str | Path, name: str, *,
               params: dict[str, Any], seed: int | None = None,
               wall_time_s: float | None = None, caption: str = "") -> dict[str, Path]:
    """Save a results table (CSV) with a provenance JSON, for numbers that have no figure."""
    out = Path(out_dir)
    paths = {"csv": out / f"{name}.csv", "json": out / f"{name}.provenance.json"}
    atomic_write(paths["csv"], lambda tmp: data.to_csv(tmp, index=False))
    atomic_write_json(paths["json"], provenance.record(
        params, seed=seed, wall_time_s=wall_time_s, table=name, caption=caption))
    return paths


def image_grid(rows: Sequence[Any], *, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, cmaps: Sequence[str] | str = "gray",
               cell_size: float = 1.1, title: str = "") -> plt.Figure:
    """A grid of images: one row per (N, C, H, W) tensor/array in [0, 1] (C = 1 or 3).

    Single-channel rows use ``cmaps`` (one per row, or one for all) on a fixed [0, 1] scale.
    """
    if not rows:
        raise ValueError("image_grid needs at least one row of images.")
    n_cols = max(len(r) for r in rows)
    row_cmaps = [cmaps] * len(rows) if isinstance(cmaps, str) else list(cmaps)
    height = cell_size * len(rows) + (0.5 if title else 0.0)
    fig, axes = plt.subplots(len(rows), n_cols, squeeze=False,
                             figsize=(cell_size * n_cols, height))
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(images):
                continue
            img = images[c]
            img = img.detach().cpu().numpy() if hasattr(img, "detach") else img
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap=row_cmaps[r], vmin=0.0, vmax=1.0)
            else:
                ax.imshow(img.transpose(1, 2, 0).clip(0.0, 1.0))
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def annotated_heatmap(ax: plt.Axes, matrix: pd.DataFrame, *, title: str = "",
                      annot: bool = True, cbar: bool = True, xlabel: str | None = None,
                      ylabel: str | None = None, xtick_rotation: float | None = None,
                      separators: Sequence[int] = (), fontsize: float | None = None,
                      vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis") -> plt.Axes:
    """Draw ``matrix`` on ``ax`` as a square heatmap on a fixed [vmin, vmax] scale.

    ``annot`` writes each value (2 decimals, ``fontsize`` if given); ``separators`` are row and
    column positions where white lines split groups (e.g. model families). ``xlabel``/``ylabel``
    of None keep seaborn's (the index/column names).
    """
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"annotated_heatmap needs a non-empty 2-D matrix, got shape "
                         f"{matrix.shape}.")
    sns.heatmap(matrix, vmin=vmin, vmax=vmax, cmap=cmap, annot=annot, fmt=".2f", square=True,
                cbar=cbar, ax=ax, annot_kws=None if fontsize is None else {"fontsize": fontsize})
    for b in separators:
        ax.axhline(b, color="w", lw=1.2)
        ax.axvline(b, color="w", lw=1.2)
    if title:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if xtick_rotation is not None:
        ax.tick_params(axis="x", labelrotation=xtick_rotation)
    return ax


def heatmap_pair(panels: Sequence[tuple[str, pd.DataFrame]], *, figsize: tuple[float, float],
                 suptitle: str = "", constrained_layout: bool = False,
                 annot: bool | None = None, max_annotated: int | None = None,
                 xlabel: str | None = None, ylabels: Sequence[str | None] | None = None,
                 **heatmap_kw: Any) -> plt.Figure:
    """Side-by-side :func:`annotated_heatmap` panels (one ``(title, matrix)`` each), one colour
    bar on the last panel.

    Values are annotated if ``annot`` is True, or (``annot=None``) if each matrix has at most
    ``max_annotated`` rows (always, when that is None too). ``ylabels`` gives one y label per
    panel (None: seaborn's). Further keywords go to :func:`annotated_heatmap`.
    """
    if not panels:
        raise ValueError("heatmap_pair needs at least one (title, matrix) panel.")
    if ylabels is not None and len(ylabels) != len(panels):
        raise ValueError(f"ylabels has {len(ylabels)} entries for {len(panels)} panels; "
                         "give one per panel.")
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False,
                             constrained_layout=constrained_layout)
    axes = axes[0]
    for i, (ax, (title, mat)) in enumerate(zip(axes, panels, strict=True)):
        show = annot if annot is not None else (max_annotated is None or len(mat) <= max_annotated)
        annotated_heatmap(ax, mat, title=title, annot=show, cbar=i == len(panels) - 1,
                          xlabel=xlabel, ylabel=None if ylabels is None else ylabels[i],
                          **heatmap_kw)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def group_boundaries(order: Sequence[str], group: dict[str, str]) -> list[int]:
    """Positions in ``order`` where ``group`` (e.g. model -> family) changes, for separators."""
    return [i for i in range(1, len(order)) if group[order[i]] != group[order[i - 1]]]


def family_palette(families: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour-blind-safe colour per distinct family, in sorted order."""
    return dict(zip(sorted(set(families)), sns.color_palette("colorblind"), strict=False))


def error_band(ax: plt.Axes, x: Any, value: Any, lo: Any, hi: Any, **kw: Any) -> None:
    """Error bars from an estimate and its (lo, hi) interval (not from half-widths)."""
    value, lo, hi = (np.asarray(v, dtype=np.float64) for v in (value, lo, hi))
    ax.errorbar(x, value, yerr=[value - lo, hi - value], **kw)
