"""The figures of notebook 03 on small synthetic inputs (the drawn numbers are checked)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from advlens.papers import linsley2023_figures  # noqa: E402
from advlens.plots import layout_problems  # noqa: E402


def _qualitative(alignment: list[float]) -> dict[str, torch.Tensor]:
    k = len(alignment)
    return {"image": torch.rand(k, 3, 8, 8), "map": torch.rand(k, 8, 8),
            "perturbation": torch.rand(k, 8, 8), "saliency": torch.rand(k, 8, 8),
            "alignment": torch.tensor(alignment)}


def test_qualitative_panel_shows_each_models_own_alignment() -> None:
    """The columns were titled with the first model's ρ only: the harmonized twin's ρ (here
    0.90 where the plain model's is NaN) was in no panel."""
    panels = [("plain", _qualitative([0.1, float("nan")])),
              ("harm", _qualitative([0.5, 0.9]))]
    fig = linsley2023_figures.qualitative_panel(panels, n_show=2, map_label="map")
    k = 2
    for j, (_, q) in enumerate(panels):
        for i in range(k):
            texts = [t.get_text() for t in fig.axes[(2 + 2 * j) * k + i].texts]
            assert texts == [f"ρ {float(q['alignment'][i]):.2f}"], (j, i, texts)
    assert not [ax.get_title() for ax in fig.axes if ax.get_title().startswith("ρ")]
    assert not layout_problems(fig)
    plt.close(fig)


def test_accuracy_axis_says_imagenet_top1_where_the_study_plots_it() -> None:
    """On ClickMe (the paper preset) the x axis is each model's ImageNet top-1
    (``imagenet_accuracy`` gives ``study`` a ``top1``), on the stand-in sets the accuracy on the
    evaluation images (``imagenet_accuracy`` is None); the figure said "clean test accuracy"
    and notebook 03's caption "clean accuracy" on both."""
    import json

    import pandas as pd
    import pytest

    from advlens import runner
    from advlens.papers import linsley2023

    summary = pd.DataFrame({"model": ["a", "b"], "attack": "pgd", "accuracy": [0.7, 0.8],
                            "tolerance": [0.3, 0.4], "alignment": [0.1, 0.2]})
    corr = pd.DataFrame({"attack": "pgd", "quantity": ["tolerance", "alignment"], "rho": 1.0,
                         "lo": 1.0, "hi": 1.0, "n_models": 2})
    for dataset in linsley2023.EVAL_SETS:
        top1 = linsley2023.imagenet_accuracy([], dataset) is not None  # the study's x axis
        label = linsley2023.accuracy_label(dataset)
        assert ("ImageNet top-1" in label) == top1, (dataset, label)
        fig = linsley2023_figures.accuracy_panels(
            summary, {"tolerance": pd.DataFrame(), "alignment": pd.DataFrame()}, corr,
            family={"a": "f", "b": "f"}, regime={"a": "standard", "b": "standard"},
            title=dataset, xlabel=label)
        assert {ax.get_xlabel() for ax in fig.axes if ax.get_xlabel()} == {label}
        plt.close(fig)
    with pytest.raises(ValueError, match="dataset must be one of"):
        linsley2023.accuracy_label("imagenet")
    path = next(iter(runner.discover(["03"])))
    cell = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                if "03a_accuracy_" in "".join(c["source"]))
    assert "acc_label = linsley2023.accuracy_label(name)" in cell
    assert "xlabel=acc_label" in cell and "{who}, {acc_label} vs median L2" in cell


def test_a_tolerance_beyond_reach_is_drawn_on_a_line_above_the_others() -> None:
    """matplotlib leaves out a point at +inf without a word: the most robust model vanished."""
    import numpy as np
    import pandas as pd

    summary = pd.DataFrame({"model": ["a", "b", "c"], "attack": "pgd",
                            "accuracy": [0.7, 0.8, 0.9], "tolerance": [0.3, 0.4, np.inf],
                            "alignment": [0.1, 0.2, 0.3]})
    corr = pd.DataFrame({"attack": "pgd", "quantity": ["tolerance", "alignment"], "rho": 1.0,
                         "lo": 1.0, "hi": 1.0, "n_models": 3})
    fig = linsley2023_figures.accuracy_panels(
        summary, {"tolerance": pd.DataFrame(), "alignment": pd.DataFrame()}, corr,
        family=dict.fromkeys("abc", "f"), regime=dict.fromkeys("abc", "standard"), title="t")
    ax = fig.axes[0]
    ys = [float(c.get_offsets()[0][1]) for c in ax.collections]
    assert len(ys) == 3 and all(np.isfinite(ys)) and ys[2] > max(ys[:2])
    assert any("beyond reach" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_an_undefined_alignment_draws_no_arrow_and_is_named() -> None:
    """A model with no successful perturbation has a NaN alignment: the arrow from it to its
    harmonized twin raised StopIteration inside matplotlib when the figure was drawn (notebook
    03, smoke preset, seed 2), and its point vanished without a word."""
    import io

    import numpy as np
    import pandas as pd

    from advlens.papers import linsley2023

    summary = pd.DataFrame({"model": ["a", "b", "c"], "attack": "pgd",
                            "accuracy": [0.24, 0.22, 0.5], "tolerance": [np.inf, np.inf, 0.5],
                            "alignment": [np.nan, 0.12, 0.3]})
    corr = pd.DataFrame({"attack": "pgd", "quantity": ["tolerance", "alignment"], "rho": 1.0,
                         "lo": 1.0, "hi": 1.0, "n_models": 3})
    arrows = {q: linsley2023.twin_arrows(summary, [("a", "b")], q)
              for q in ("tolerance", "alignment")}
    fig = linsley2023_figures.accuracy_panels(
        summary, arrows, corr, family=dict.fromkeys("abc", "f"),
        regime={"a": "standard", "b": "harmonized", "c": "standard"}, title="t")
    fig.savefig(io.BytesIO(), format="png")  # raised StopIteration
    tolerance_ax, alignment_ax = fig.axes[:2]
    assert len([c for c in tolerance_ax.get_children()
                if type(c).__name__ == "Annotation"]) == 1  # both beyond reach: drawn
    assert not [c for c in alignment_ax.get_children() if type(c).__name__ == "Annotation"]
    assert any(t.get_text() == "not drawn (undefined): a" for t in alignment_ax.texts)
    plt.close(fig)
