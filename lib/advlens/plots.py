"""One shared figure style, and saving every figure with its numbers and provenance."""

from __future__ import annotations

import time
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
