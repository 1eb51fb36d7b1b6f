"""The sweep's hold-count bars: one bar per finding, segments equal to the counts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from advlens.plots import layout_problems  # noqa: E402
from advlens.sweep_figures import hold_counts_bars  # noqa: E402


def test_bars_show_the_seeds_a_finding_is_absent_from():
    counts = pd.DataFrame([{"notebook": "01_x", "finding": "a", "n_runs": 3, "holds": 2,
                            "does_not_hold": 0, "not_testable": 0, "absent": 1}])
    ax = hold_counts_bars(counts).axes[0]
    widths = [(round(p.get_x()), round(p.get_width())) for p in ax.patches]
    assert widths == [(0, 2), (2, 0), (2, 0), (2, 1)]  # the absent seed ends the bar at n_runs
    assert "absent" in [t.get_text() for t in ax.get_legend().get_texts()]
    matplotlib.pyplot.close("all")

def test_bars_stack_the_counts():
    counts = pd.DataFrame([
        {"notebook": "01_x", "finding": "a", "n_runs": 3, "holds": 2, "does_not_hold": 1,
         "not_testable": 0},
        {"notebook": "02_y", "finding": "b", "n_runs": 3, "holds": 0, "does_not_hold": 0,
         "not_testable": 3}])
    fig = hold_counts_bars(counts)
    ax = fig.axes[0]
    widths = [(round(p.get_x()), round(p.get_width())) for p in ax.patches]
    # holds bars, then does-not-hold bars (starting where holds end), then not-testable bars
    assert widths == [(0, 2), (0, 0), (2, 1), (0, 0), (3, 0), (0, 3)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["01 a", "02 b"]
    assert not layout_problems(fig)
    with pytest.raises(ValueError, match="empty"):
        hold_counts_bars(counts.iloc[0:0])


def test_a_notebook_that_keeps_its_models_is_labelled_data_seed_only():
    """03 and 04 vary only the data seed in a sweep; their bars read as if the models varied."""
    counts = pd.DataFrame([
        {"notebook": "01_x", "finding": "a", "n_runs": 2, "holds": 2, "does_not_hold": 0,
         "not_testable": 0, "seed_knobs": "seed, zoo_seed"},
        {"notebook": "03_y", "finding": "b", "n_runs": 2, "holds": 1, "does_not_hold": 1,
         "not_testable": 0, "seed_knobs": "seed"}])
    fig = hold_counts_bars(counts)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["01 a", "03 b †"]
    assert "† only the data seed" in ax.get_legend().get_texts()[-1].get_text()
    assert not layout_problems(fig)
