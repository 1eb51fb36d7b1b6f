"""Independent references shared by tests: plain float64 numpy, no advlens code."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def numpy_linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA in the feature-space form, straight from the definition."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def penultimate(model: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """A Sequential model's input to its last layer, in float64."""
    with torch.no_grad():
        return model[:-1](x).double().numpy()
