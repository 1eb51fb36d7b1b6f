"""Class-subset zoo models (ModelConfig.classes): k-way head, relabelled data, own cache key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from advlens.data import digits
from advlens.zoo import ModelConfig, load
from advlens.zoo.datasets import dataset_for

TINY = ModelConfig("mlp-xs", epochs=1, n_train=300, n_test=100, batch_size=32)


def test_config_names_hash_and_validation() -> None:
    sub = TINY.replace(classes=(0, 1, 8, 9))
    assert sub.num_classes == 4 and TINY.num_classes == 10
    assert sub.name.endswith("/c0-1-8-9") and sub.name != TINY.name
    assert len({TINY.hash, sub.hash, TINY.replace(classes=(1, 0, 8, 9)).hash}) == 3
    assert ModelConfig.from_dict(sub.to_dict()) == sub
    assert TINY.replace(classes=[0, 1]).classes == (0, 1)
    for bad in ((0, 0, 1), (3,), (0, 10)):
        with pytest.raises(ValueError, match="distinct class indices"):
            TINY.replace(classes=bad)


def test_classes_are_whole_numbers_in_a_list() -> None:
    """classes="37" was read digit by digit (the classes 3 and 7), 2.7 and True were the
    classes 2 and 1: each is refused as the int fields refuse them; 2.0 (from YAML) is 2."""
    with pytest.raises(ValueError, match="classes must be None or a list of class indices, e.g. "
                                         r"\[3, 7\]; got '37'"):
        TINY.replace(classes="37")
    with pytest.raises(ValueError, match="classes must be None or a list"):
        TINY.replace(classes=3)
    for bad in ((2.7, 1), (True, 2)):
        with pytest.raises(ValueError, match=f"ModelConfig.classes must be an integer; got "
                                             f"{bad[0]!r}"):
            TINY.replace(classes=bad)
    reference = TINY.replace(classes=(3, 7))
    for same in ([3.0, 7], np.array([3, 7]), torch.tensor([3, 7]), (c for c in (3, 7))):
        got = TINY.replace(classes=same)
        assert got == reference and got.hash == reference.hash
        assert all(type(c) is int for c in got.classes)


def test_data_keeps_only_the_listed_classes_relabelled_in_order() -> None:
    sub = dataset_for(TINY.replace(classes=(8, 3)), "test")
    full = dataset_for(TINY, "test")
    assert sub.classes == ["8", "3"]
    keep = (full.labels == 8) | (full.labels == 3)
    assert torch.equal(sub.images, full.images[keep])
    assert torch.equal(sub.labels, (full.labels[keep] == 3).long())  # 8 -> 0, 3 -> 1
    assert len(digits("test", size=16).labels) >= len(full)


def test_trains_a_k_way_model_and_reloads_it(tmp_path: Path) -> None:
    cfg = TINY.replace(classes=(2, 5, 7))
    first = load(cfg, tmp_path, progress=False, robust_eval_eps=0.3, robust_eval_n=8)
    assert first.model.head.out_features == 3
    again = load(cfg, tmp_path, progress=False, robust_eval_eps=0.3, robust_eval_n=8)
    assert again.cached and torch.equal(first.model.head.weight, again.model.head.weight)
    x = dataset_for(cfg, "test").images[:4]
    assert first.model(x).shape == (4, 3)
