"""Independent references shared by tests: plain float64 numpy, no advlens code."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def numpy_linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA in the feature-space form, straight from the definition."""
    a, b = a - a.mean(0), b - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def numpy_debiased_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA with the unbiased HSIC of Song et al. (2012), written out on Gram matrices."""
    def hsic(k: np.ndarray, l: np.ndarray) -> float:
        n = k.shape[0]
        k, l = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
        return (np.trace(k @ l) + k.sum() * l.sum() / ((n - 1) * (n - 2))
                - 2 / (n - 2) * k.sum(0) @ l.sum(0)) / (n * (n - 3))

    k, l = a @ a.T, b @ b.T
    return float(hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l)))


def penultimate(model: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    """A Sequential model's input to its last layer, in float64."""
    with torch.no_grad():
        return model[:-1](x).double().numpy()
