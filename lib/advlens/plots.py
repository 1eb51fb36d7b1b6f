"""One shared figure style, and saving every figure with its numbers and provenance."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
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
