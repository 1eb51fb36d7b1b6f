"""Data-set summaries: class counts, cue agreement, cue decodability."""

from __future__ import annotations

import pytest
import torch

from advlens.data import ImageSet, class_counts, cue_agreement, cue_decodability, twin_cue


def _toy(labels, a, b):
    n = len(labels)
    return ImageSet(images=torch.zeros(n, 1, 4, 4), labels=torch.tensor(labels), masks=None,
                    classes=["x", "y", "z"], name="toy",
                    attributes={"cue_a_class": torch.tensor(a), "cue_b_class": torch.tensor(b)})


def test_class_counts_and_agreement_on_a_toy_set():
    s = _toy([0, 0, 1, 2], [0, 0, 1, 2], [1, 0, 1, 0])
    assert class_counts(s)["count"].tolist() == [2, 1, 1]
    assert cue_agreement(s) == {"agree_a": 1.0, "agree_b": 0.5}
    plain = ImageSet(images=torch.zeros(1, 1, 2, 2), labels=torch.zeros(1, dtype=torch.long),
                     masks=None, classes=["x"], name="plain")
    with pytest.raises(ValueError, match="twin-cue"):
        cue_agreement(plain)


def test_decodability_high_for_the_label_cue_and_chance_for_the_random_one(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("ADVLENS_DATA", str(tmp_path))
    both_tr, both_te = twin_cue("train", "both", n=400), twin_cue("test", "both", n=400)
    a_tr, a_te = twin_cue("train", "a-only", n=400), twin_cue("test", "a-only", n=400)
    assert cue_decodability(both_tr, both_te, 1) > 0.9
    assert cue_decodability(a_tr, a_te, 1) < 0.2
    assert cue_decodability(a_tr, a_te, 0) > 0.6
