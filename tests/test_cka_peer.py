"""Parity with torch_cka (AntixK/PyTorch-Model-Compare), when the peer is installed in .peers."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advlens.cka import MinibatchCKA

sys.path.append(str(Path(__file__).resolve().parents[1] / ".peers"))  # after site-packages
torch_cka = pytest.importorskip("torch_cka")


def test_minibatch_cka_matches_torch_cka_on_same_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 12, generator=g)
    models = []
    with torch.random.fork_rng(devices=[]):  # nn.Linear initialises from the global RNG
        for width in (8, 16):
            torch.manual_seed(width)
            models.append(nn.Sequential(nn.Linear(12, width), nn.Tanh(), nn.Linear(width, 3)))
    loader = DataLoader(TensorDataset(x, torch.zeros(60)), batch_size=20, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = torch_cka.CKA(models[0], models[1], model1_name="a", model2_name="b",
                             model1_layers=["1"], model2_layers=["1"], device="cpu")
        peer.compare(loader)
    theirs = float(peer.export()["CKA"][0, 0])

    ours = MinibatchCKA()
    with torch.no_grad():
        for (batch, _) in loader:
            ours.update({"a": models[0][:2](batch), "b": models[1][:2](batch)})
    assert ours.compute().loc["a", "b"] == pytest.approx(theirs, abs=1e-5)
