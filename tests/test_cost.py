"""The cost model: FLOPs per pass against closed forms, pass counts against a hand count."""

from __future__ import annotations

import pandas as pd
import pytest
from torch import nn

from advlens import cost
from advlens.zoo import ModelConfig


def test_pass_flops_match_the_closed_form() -> None:
    # conv 3->4 (3x3, pad 1) on 8x8: 2*3*4*9*64 FLOPs; linear 256->5: 2*256*5
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(),
                          nn.Linear(256, 5, bias=False))
    forward, backward = cost.pass_flops(model, 8)
    assert forward == 2 * 3 * 4 * 9 * 64 + 2 * 256 * 5
    # input gradient only (parameters frozen): one transposed conv and one matmul, same sizes
    assert backward == forward


def test_passes_and_hours_for_a_hand_counted_zoo() -> None:
    zoo = [ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                       checkpoint="a"),
           ModelConfig("resnet18", source="robustness", dataset="imagenet", epochs=0,
                       regime="l2-at", eps=3.0, checkpoint="b")]
    knobs = {"00": {"robust_eval_n": 10},
             "01": {"heatmap_archs": ["resnet18"], "heatmap_eps": 0.0, "n_data": 5,
                    "n_pairs": 4, "iterations": 3, "robust_archs": ["resnet18"],
                    "robust_eps": [0.0, 3.0], "robust_pairs": 2},
             "02": {"target_modes": ["random"], "n_images": 2, "search_tries": 3,
                    "ifgsm_steps": 4, "cw_binary_steps": 2, "cw_steps": 5,
                    "ead_binary_steps": 1, "ead_steps": 6, "transfer_steps": 7}}
    passes = cost.notebook_passes(knobs, zoo).groupby("notebook")[["fwd", "fwd_bwd"]].sum()
    assert passes.loc["00"].tolist() == [2 * 20, 10 * 20]
    # heatmap: 5 test + 4 targets + 4 inverted sets of 1 model; 4 pairs x 3 iterations.
    # levels: both models, each 5 + 2 * (1 + 1) forward and 2 x 3 forward+backward
    assert passes.loc["01"].tolist() == [13 + 2 * 9, 12 + 2 * 6]
    # attacks: 2 modes x 2 images x (3 * (1 + 4) + 2 * 5 + 1 * 6); 2 * (1 + 2 * 3) forward;
    # transfer: 2 * 2 images * 1 target forward, 2 * 2 * 7 forward+backward
    assert passes.loc["02"].tolist() == [14 + 4, 2 * 2 * 31 + 28]
    flops = pd.DataFrame([{"arch": "resnet18", "forward_gflops": 1.0, "backward_gflops": 2.0}])
    hours = cost.gpu_hours(cost.notebook_passes(knobs, zoo), flops,
                           gpus=(cost.Gpu("X", 1e9, 0.5),)).set_index("notebook")
    expected = (40 * 1e9 + 200 * 3e9) / 0.5e9 / 3600
    assert hours.loc["00", "X_hours"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="no FLOPs measured"):
        cost.gpu_hours(cost.notebook_passes(knobs, zoo), flops.assign(arch="other"))
    assert "| **all** |" in cost.markdown(hours.reset_index(), gpus=(cost.Gpu("X", 1e9, 0.5),))
