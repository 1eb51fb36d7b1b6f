"""plots.grouped_bars: every value drawn once, at its group, in its column's colour."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from advlens import plots  # noqa: E402


def test_grouped_bars_draws_each_value_at_its_group() -> None:
    table = pd.DataFrame({"variant": ["both", "a-only", "b-only"], "p": [1.0, 0.9, 0.1],
                          "q": [0.2, 0.5, 0.7], "other": [9, 9, 9]})
    fig = plots.grouped_bars(table, "variant", ["p", "q"], width=0.25, reference=0.1,
                             reference_label="chance", xlabel="variant", ylabel="fraction",
                             title="t")
    (ax,) = fig.axes
    containers = ax.containers
    assert len(containers) == 2  # one bar series per column, 'other' not drawn
    for container, column in zip(containers, ["p", "q"], strict=True):
        heights = [bar.get_height() for bar in container]
        centres = [bar.get_x() + bar.get_width() / 2 for bar in container]
        assert heights == list(table[column])
        offset = -0.125 if column == "p" else 0.125
        np.testing.assert_allclose(centres, np.arange(3) + offset)
        assert len({bar.get_facecolor() for bar in container}) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == list(table["variant"])
    assert [ln.get_ydata()[0] for ln in ax.get_lines()] == [0.1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chance", "p", "q"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("variant", "fraction", "t")
    with pytest.raises(ValueError, match="lacks column"):
        plots.grouped_bars(table, "variant", ["nope"])


def test_saves_display_file_names_not_paths(tmp_path) -> None:  # noqa: ANN001
    """A save as a cell's last expression shows file names only (IPython's pretty printer)."""
    from IPython.lib.pretty import pretty

    table = pd.DataFrame({"a": [1]})
    saved = plots.save_table(table, tmp_path / "deep" / "run", "t", params={"k": 1})
    assert saved == {"csv": tmp_path / "deep" / "run" / "t.csv",
                     "json": tmp_path / "deep" / "run" / "t.provenance.json"}
    assert pretty(saved) == "saved t.csv, t.provenance.json"
    fig = plots.grouped_bars(pd.DataFrame({"g": ["x"], "v": [1.0]}), "g", ["v"], xlabel="g",
                             ylabel="v", title="t")
    shown = pretty(plots.save_figure(fig, table, tmp_path, "f", params={}))
    assert shown == "saved f.png, f.pdf, f.csv, f.provenance.json" and str(tmp_path) not in shown
