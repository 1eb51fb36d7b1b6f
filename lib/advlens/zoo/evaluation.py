"""Clean and robust test accuracy of a zoo model.

Robust accuracy is the share of the first ``n`` test images that the model classifies correctly
both clean and after a fixed small untargeted L2-PGD attack (no random start, so it is
deterministic; an image counts as broken if any PGD iterate fooled the model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from advlens.attacks import pgd
from advlens.data import ImageSet
from advlens.features import predict


@dataclass(frozen=True)
class RobustEval:
    """Settings of the robust-accuracy attack (recorded in each model's metadata)."""

    eps: float = 0.5
    n: int = 500
    steps: int = 10
    norm: str = "l2"

    @property
    def key(self) -> str:
        """The metadata key: eps to 6 significant digits (the keys of earlier releases), all
        17 where 6 do not give it back (1/3 and 0.333333 got one key and one record)."""
        eps = f"{self.eps:g}" if float(f"{self.eps:g}") == self.eps else f"{self.eps!r}"
        return f"{self.norm}-eps{eps}-n{self.n}-k{self.steps}"

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def clean_accuracy(model: nn.Module, data: ImageSet) -> float:
    """Top-1 accuracy on every image of ``data``."""
    return float((predict(model, data.images).argmax(1) == data.labels).float().mean())


def robust_accuracy(model: nn.Module, data: ImageSet, settings: RobustEval,
                    batch_size: int = 250) -> float:
    """Accuracy on the first ``settings.n`` images of ``data`` under ``settings``' L2-PGD."""
    n = min(settings.n, len(data))
    if n < 1:
        raise ValueError("robust accuracy needs at least one test image.")
    correct = 0
    for start in range(0, n, batch_size):
        x = data.images[start:min(n, start + batch_size)]
        y = data.labels[start:min(n, start + batch_size)]
        clean_ok = predict(model, x).argmax(1) == y
        if settings.eps > 0:
            adv = pgd(model, x, y, eps=settings.eps, norm=settings.norm, steps=settings.steps,
                      keep="any").adv
            clean_ok &= predict(model, adv).argmax(1) == y
        correct += int(clean_ok.sum())
    return correct / n


def evaluate(model: nn.Module, data: ImageSet, settings: RobustEval) -> dict[str, float]:
    """``{"test_acc", "robust_acc"}`` of ``model`` on the test set ``data``."""
    with torch.no_grad():
        test_acc = clean_accuracy(model, data)
    return {"test_acc": test_acc, "robust_acc": robust_accuracy(model, data, settings)}
