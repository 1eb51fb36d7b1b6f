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
