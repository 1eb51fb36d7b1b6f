"""The small digits CNN the benchmarks attack and invert, and its training loop (shared by the
benchmark scripts; they run as scripts, so this folder is on sys.path)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DigitsCNN(nn.Module):
    """Two conv layers (16×16 digits), normalisation inside, the linear head registered last;
    ``hidden`` adds a Linear+ReLU layer of that width before the head."""

    def __init__(self, hidden: int | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.3))
        self.register_buffer("std", torch.tensor(0.4))
        features = 32 * 4 * 4
        layers: list[nn.Module] = [
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
        if hidden is not None:
            layers += [nn.Linear(features, hidden), nn.ReLU()]
            features = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body((x - self.mean) / self.std))


def train_digits_cnn(x: Tensor, y: Tensor, *, hidden: int | None = None, epochs: int = 8,
                     seed: int = 0) -> nn.Module:
    """A :class:`DigitsCNN` trained with Adam (lr 3e-3, batch 64) on (x, y); eval mode.

    Seeds torch's global RNG (the initialisation) and a generator (the batch order) with ``seed``.
    """
    torch.manual_seed(seed)
    model = DigitsCNN(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
