"""One shared figure style, and saving every figure with its numbers and provenance."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.text import Text

from advlens import provenance
from advlens.io import atomic_write_bytes, json_text

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


class Saved(dict):
    """The files a save wrote, ``{kind: path}``; shown in a notebook as one line of file names
    (never the absolute paths) when a save is a cell's last expression."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("saved " + ", ".join(Path(p).name for p in self.values()))


# how titles and captions name the models below the paper zoo (its ImageNet models at the paper
# zoo: models_label)
STAND_IN_MODELS = "small zoo standing in for the ImageNet models"


def models_label(zoo: str) -> str:
    """How titles and captions name the models of zoo ``zoo``: the published ImageNet models
    for the ``paper`` zoo, else the small zoo standing in for them. Without an article, as
    :data:`STAND_IN_MODELS`: captions say "per model of the {label}"."""
    return "paper zoo's ImageNet models" if zoo == "paper" else STAND_IN_MODELS


# what every smoke / laptop result stands on: said once here, added to any caption not saying it
STAND_IN_NOTE = ("stand-ins at the {preset} preset: the embedded digits / twin-cue data and the "
                 "small zoo instead of the papers' datasets and models")
# "stand-in(s)", "stand in", "stands in", "standing in"; not "standard"
_NAMES_STAND_INS = re.compile(r"\bstand(?:s|ing)?[- ]ins?\b", re.IGNORECASE)


def labelled_caption(caption: str, params: dict[str, Any]) -> str:
    """``caption``, with :data:`STAND_IN_NOTE` appended at any preset but ``paper`` unless the
    caption already names its stand-ins."""
    preset = params.get("preset", "")
    if preset == "paper" or _NAMES_STAND_INS.search(caption):
        return caption
    note = STAND_IN_NOTE.format(preset=preset or "given")
    return f"{caption} ({note})." if caption else note[0].upper() + note[1:] + "."


def save_figure(fig: plt.Figure, data: pd.DataFrame, out_dir: str | Path, name: str, *,
                params: dict[str, Any], seed: int | None = None,
                wall_time_s: float | None = None, caption: str = "",
                paper_figure: str = "") -> Saved:
    """Save ``fig`` as PNG and PDF beside ``data`` (CSV) and a provenance JSON.

    ``caption`` says what the figure shows and what stands in for what (below the ``paper``
    preset, :func:`labelled_caption` adds the stand-ins if it does not); ``paper_figure`` names
    the published figure it corresponds to (both shown in the book's gallery). The provenance
    also lists :func:`layout_problems` (overlapping labels, missing titles or axis labels),
    which the notebook tests require to be empty. Every file is written atomically, and all
    four are made in memory before any is written (parameters the provenance cannot hold, or
    ``data`` that is no DataFrame, fail with the old files and their record untouched, not
    with new ones beside the old record); returns the paths written. The PNG and PDF hold no
    date: the same figure gives the same bytes on a rerun.
    """
    problems = layout_problems(fig)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = Saved({ext: out / f"{name}.{ext}" for ext in ("png", "pdf", "csv")})
    paths["json"] = out / f"{name}.provenance.json"
    record = json_text(provenance.record(
        params, seed=seed, wall_time_s=wall_time_s, figure=name,
        caption=labelled_caption(caption, params), paper_figure=paper_figure,
        layout_problems=problems,
        files=[p.name for p in paths.values()]))
    contents = {"csv": _csv_bytes(data)}
    for ext in ("png", "pdf"):
        buffer = io.BytesIO()
        # no creation date in the PDF (the provenance records when): with it, a rerun rewrote
        # every PDF of figures/ with the same drawing
        fig.savefig(buffer, format=ext,
                    **({"metadata": {"CreationDate": None}} if ext == "pdf" else {}))
        contents[ext] = buffer.getvalue()
    contents["json"] = record.encode()
    for kind, content in contents.items():
        atomic_write_bytes(paths[kind], content)
    return paths


def _csv_bytes(data: pd.DataFrame | pd.Series) -> bytes:
    """``data`` as CSV (no index), or a TypeError naming what it is instead of a DataFrame."""
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame of the numbers shown, got "
                        f"{type(data).__name__}; wrap it: pd.DataFrame(...).")
    return data.to_csv(index=False).encode()


def _texts(fig: plt.Figure) -> list[tuple[str, Any]]:
    """Every visible, non-empty text of ``fig`` with a short description of where it is."""
    suptitle = getattr(fig, "_suptitle", None)
    found: list[tuple[str, Any]] = [("suptitle" if t is suptitle else "figure text", t)
                                    for t in fig.texts]
    if suptitle is not None and suptitle not in fig.texts:
        found.append(("suptitle", suptitle))
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"axes {i} ({ax.get_title() or ax.get_label() or 'untitled'})"
        found += [(f"{where} title", ax.title), (f"{where} left title", ax._left_title),
                  (f"{where} right title", ax._right_title),
                  (f"{where} x label", ax.xaxis.label), (f"{where} y label", ax.yaxis.label)]
        for axis, name in ((ax.xaxis, "x tick"), (ax.yaxis, "y tick")):
            if not axis.get_visible():
                continue
            low, high = sorted(axis.get_view_interval())
            found += [(f"{where} {name} {lab.get_text()!r}", lab)
                      for tick, lab in zip(axis.get_majorticklocs(), axis.get_ticklabels(),
                                           strict=False)
                      if lab.get_visible() and low - 1e-9 * abs(high - low) <= tick
                      <= high + 1e-9 * abs(high - low)]
        found += [(f"{where} text {t.get_text()!r}", t) for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found += [(f"{where} legend {t.get_text()!r}", t) for t in legend.get_texts()]
            if legend.get_title().get_text():
                found.append((f"{where} legend title", legend.get_title()))
    return [(w, t) for w, t in found if t.get_visible() and t.get_text().strip()]


def layout_problems(fig: plt.Figure, *, min_overlap_px: float = 1.0) -> list[str]:
    """What a reader would trip over in ``fig``, as it is drawn when saved.

    Checks that no two text labels overlap (tick labels, titles, axis labels, annotations,
    legend entries, by their drawn extents), that every axes with data has a title (or the
    figure a suptitle) and x and y labels (image panels and colour bars: a label where they
    carry a scale), and that every colour bar is labelled.

    Returns
    -------
    One line per problem; empty when the figure is clean.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _texts(fig)
    # the text itself, without an annotation's connecting line
    boxes = np.array([Text.get_window_extent(t, renderer).extents
                      for _, t in texts]).reshape(-1, 4)
    problems = []
    if len(boxes):
        x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
        w = np.minimum(x1[:, None], x1[None, :]) - np.maximum(x0[:, None], x0[None, :])
        h = np.minimum(y1[:, None], y1[None, :]) - np.maximum(y0[:, None], y0[None, :])
        hit = (w > min_overlap_px) & (h > min_overlap_px)
        for i, j in zip(*np.nonzero(np.triu(hit, 1)), strict=True):
            problems.append(f"text overlap: {texts[i][0]} / {texts[j][0]}")
    has_suptitle = getattr(fig, "_suptitle", None) is not None and fig._suptitle.get_text()
    colorbars = {id(im.colorbar.ax) for ax in fig.axes for im in ax.collections + ax.images
                 if getattr(im, "colorbar", None) is not None}
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        where = f"axes {i}"
        if id(ax) in colorbars or ax.get_label() == "<colorbar>":
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"{where}: colour bar without a label")
            continue
        is_image = bool(ax.images) and not ax.get_xticks().size and not ax.get_yticks().size
        has_data = bool(ax.lines or ax.collections or ax.patches or ax.images)
        if not has_data:
            continue
        if not (ax.get_title() or ax._left_title.get_text() or has_suptitle):
            problems.append(f"{where}: no title (and no suptitle)")
        if not is_image:
            if not ax.get_xlabel():
                problems.append(f"{where} ({ax.get_title()}): no x label")
            if not ax.get_ylabel():
                problems.append(f"{where} ({ax.get_title()}): no y label")
    return problems


def save_table(data: pd.DataFrame, out_dir: str | Path, name: str, *,
               params: dict[str, Any], seed: int | None = None,
               wall_time_s: float | None = None, caption: str = "") -> Saved:
    """Save a results table (CSV) with a provenance JSON, for numbers that have no figure; the
    caption as :func:`save_figure`'s."""
    out = Path(out_dir)
    paths = Saved({"csv": out / f"{name}.csv", "json": out / f"{name}.provenance.json"})
    record = json_text(provenance.record(  # before the CSV, as save_figure's
        params, seed=seed, wall_time_s=wall_time_s, table=name,
        caption=labelled_caption(caption, params)))
    atomic_write_bytes(paths["csv"], _csv_bytes(data))
    atomic_write_bytes(paths["json"], record.encode())
    return paths


def image_grid(rows: Sequence[Any], *, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, cmaps: Sequence[str] | str = "gray",
               cell_size: float = 1.1, title: str = "",
               colorbars: dict[int, str] | None = None) -> plt.Figure:
    """A grid of images: one row per (N, C, H, W) tensor/array in [0, 1] (C = 1 or 3).

    Single-channel rows use ``cmaps`` (one per row, or one for all) on a fixed [0, 1] scale;
    ``colorbars`` maps a row index to the label of a colour bar drawn beside that row.
    """
    if not rows:
        raise ValueError("image_grid needs at least one row of images.")
    n_cols = max(len(r) for r in rows)
    row_cmaps = [cmaps] * len(rows) if isinstance(cmaps, str) else list(cmaps)
    height = cell_size * len(rows) + (0.5 if title else 0.0)
    # room for the row labels (about 0.07 in per character at 8 pt) and any colour bars, so
    # that the images keep their cell size instead of leaving gaps between the rows
    label_width = 0.07 * max(map(len, row_labels)) + 0.2 if row_labels else 0.0
    width = cell_size * n_cols + label_width + (0.7 if colorbars else 0.0)
    fig, axes = plt.subplots(len(rows), n_cols, squeeze=False, figsize=(width, height))
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
    for r, label in (colorbars or {}).items():
        last = axes[r, len(rows[r]) - 1]
        if not last.images:
            raise ValueError(f"row {r} has no single-channel image to put a colour bar on.")
        pos = last.get_position()
        cax = fig.add_axes((pos.x1 + 0.01, pos.y0, 0.012, pos.height))
        fig.colorbar(last.images[0], cax=cax).set_label(label, fontsize=7)
        cax.tick_params(labelsize=6)
    return fig


def annotated_heatmap(ax: plt.Axes, matrix: pd.DataFrame, *, title: str = "",
                      annot: bool = True, cbar: bool = True, xlabel: str | None = None,
                      ylabel: str | None = None, xtick_rotation: float | None = None,
                      separators: Sequence[int] = (), fontsize: float | None = None,
                      vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis",
                      mask: Any = None, cbar_label: str = "") -> plt.Axes:
    """Draw ``matrix`` on ``ax`` as a square heatmap on a fixed [vmin, vmax] scale.

    ``annot`` writes each value (2 decimals, ``fontsize`` if given); ``separators`` are row and
    column positions where white lines split groups (e.g. model families); ``mask`` (boolean,
    the matrix's shape) hides cells (drawn in light grey, not annotated). ``xlabel``/``ylabel``
    of None keep seaborn's (the index/column names). Row names are written horizontally.
    """
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"annotated_heatmap needs a non-empty 2-D matrix, got shape "
                         f"{matrix.shape}.")
    ax.set_facecolor("0.88")
    sns.heatmap(matrix, vmin=vmin, vmax=vmax, cmap=cmap, annot=annot, fmt=".2f", square=True,
                cbar=cbar, ax=ax, mask=mask, cbar_kws={"label": cbar_label} if cbar else None,
                annot_kws=None if fontsize is None else {"fontsize": fontsize})
    for b in separators:
        ax.axhline(b, color="w", lw=1.2)
        ax.axvline(b, color="w", lw=1.2)
    if title:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.tick_params(axis="y", labelrotation=0)
    if xtick_rotation is not None:
        ax.tick_params(axis="x", labelrotation=xtick_rotation)
        if xtick_rotation % 180:
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
    return ax


def heatmap_pair(panels: Sequence[tuple[str, pd.DataFrame]], *, figsize: tuple[float, float],
                 suptitle: str = "", annot: bool | None = None,
                 max_annotated: int | None = None, xlabel: str | None = None,
                 ylabels: Sequence[str | None] | None = None, cbar_label: str = "",
                 mask_diagonal: bool = False, **heatmap_kw: Any) -> plt.Figure:
    """Side-by-side :func:`annotated_heatmap` panels (one ``(title, matrix)`` each) of equal
    size, sharing one colour bar labelled ``cbar_label`` (constrained layout).

    Values are annotated if ``annot`` is True, or (``annot=None``) if each matrix has at most
    ``max_annotated`` rows (always, when that is None too). ``ylabels`` gives one y label per
    panel (None: seaborn's). ``mask_diagonal`` hides the diagonal and leaves it out of the
    colour scale (``vmax`` becomes the largest off-diagonal value unless given). Further
    keywords go to :func:`annotated_heatmap`.
    """
    if not panels:
        raise ValueError("heatmap_pair needs at least one (title, matrix) panel.")
    if ylabels is not None and len(ylabels) != len(panels):
        raise ValueError(f"ylabels has {len(ylabels)} entries for {len(panels)} panels; "
                         "give one per panel.")
    masks = [np.eye(*mat.shape, dtype=bool) if mask_diagonal else None for _, mat in panels]
    if mask_diagonal and "vmax" not in heatmap_kw:
        off = [mat.to_numpy(dtype=float)[~m] for (_, mat), m in zip(panels, masks, strict=True)]
        finite = np.concatenate(off)
        finite = finite[np.isfinite(finite)]
        heatmap_kw["vmax"] = float(np.ceil(finite.max() * 20) / 20) if finite.size else 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False, layout="constrained")
    axes = axes[0]
    for i, (ax, (title, mat)) in enumerate(zip(axes, panels, strict=True)):
        show = annot if annot is not None else (max_annotated is None or len(mat) <= max_annotated)
        annotated_heatmap(ax, mat, title=title, annot=show, cbar=False, xlabel=xlabel,
                          ylabel=None if ylabels is None else ylabels[i], mask=masks[i],
                          **heatmap_kw)
    fig.colorbar(axes[0].collections[0], ax=list(axes), label=cbar_label, shrink=0.85)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def group_boundaries(order: Sequence[str], group: dict[str, str]) -> list[int]:
    """Positions in ``order`` where ``group`` (e.g. model -> family) changes, for separators."""
    return [i for i in range(1, len(order)) if group[order[i]] != group[order[i - 1]]]


def family_palette(families: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour-blind-safe colour per distinct family, in sorted order."""
    return dict(zip(sorted(set(families)), sns.color_palette("colorblind"), strict=False))


def grouped_bars(table: pd.DataFrame, x: str, bars: Sequence[str], *, width: float = 0.2,
                 reference: float | None = None, reference_label: str = "",
                 xlabel: str = "", ylabel: str = "", title: str = "",
                 figsize: tuple[float, float] = (6.5, 3)) -> plt.Figure:
    """One group of bars per row of ``table`` (labelled by column ``x``), one bar per column
    of ``bars`` (same colour across groups, legend below), and an optional dashed horizontal
    ``reference`` line (e.g. chance level). Returns the figure."""
    missing = [c for c in [x, *bars] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(table.columns)}.")
    fig, ax = plt.subplots(figsize=figsize)
    positions = np.arange(len(table), dtype=np.float64)
    for i, column in enumerate(bars):
        ax.bar(positions + width * (i - (len(bars) - 1) / 2), table[column], width=width,
               label=column)
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1, label=reference_label or None)
    ax.set_xticks(positions, [str(v) for v in table[x]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    # below the axes, and below the x label when there is one
    ax.legend(ncol=3, fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.25 if xlabel else -0.15))
    return fig


_BAR_KW = ("capsize", "capthick", "elinewidth", "lw", "linewidth", "alpha", "zorder")


def error_band(ax: plt.Axes, x: Any, value: Any, lo: Any, hi: Any, **kw: Any) -> None:
    """Error bars from an estimate and its (lo, hi) interval (not from half-widths). The bars
    span [lo, hi] as given, also where a (percentile) interval leaves out its estimate:
    matplotlib's distances to the estimate would be negative there, which it refuses."""
    value, lo, hi = (np.asarray(v, dtype=np.float64) for v in (value, lo, hi))
    below, above = value - lo, hi - value
    if not (np.any(below < 0) or np.any(above < 0)):
        ax.errorbar(x, value, yerr=[below, above], **kw)
        return
    estimate = ax.errorbar(x, value, **kw)
    ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none",
                ecolor=estimate.lines[0].get_color(),
                **{k: v for k, v in kw.items() if k in _BAR_KW})
