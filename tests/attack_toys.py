"""Tiny models with known geometry for the attack tests (not a test module)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

SHAPE = (1, 4, 4)
DIM = 16


def affine_model(k: int = 2, seed: int = 0, scale: float = 1.0) -> nn.Sequential:
    """logits = W·flatten(x) + b with random W (k, 16), in float64 for exact closed forms."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(DIM, k).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(k, DIM, generator=g, dtype=torch.float64) * scale)
        lin.bias.copy_(torch.randn(k, generator=g, dtype=torch.float64) * 0.1)
    return nn.Sequential(nn.Flatten(), lin)


def centre_images(n: int, seed: int = 1, spread: float = 0.05) -> Tensor:
    """Images near 0.5 (far from the box edges) in float64."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + spread * (2 * torch.rand(n, *SHAPE, generator=g, dtype=torch.float64) - 1))


def l2_distance_to_boundary(model: nn.Sequential, x: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form minimal L2 perturbation of an affine classifier (box ignored) and its label.

    min over j≠y of (z_y − z_j)/||w_y − w_j||₂, y = the predicted class.
    """
    return _distance(model, x, dual=2)


def linf_distance_to_boundary(model: nn.Sequential, x: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form minimal L∞ perturbation: min over j≠y of (z_y − z_j)/||w_y − w_j||₁."""
    return _distance(model, x, dual=1)


def _distance(model: nn.Sequential, x: Tensor, dual: float) -> tuple[Tensor, Tensor]:
    lin = model[1]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double().flatten(1) @ w.T + b
    y = z.argmax(1)
    zy = z.gather(1, y[:, None])
    wdiff = w[y][:, None, :] - w[None, :, :]  # (N, k, D)
    d = (zy - z) / wdiff.norm(p=dual, dim=2).clamp_min(1e-300)
    d = d.scatter(1, y[:, None], float("inf"))
    return d.amin(1), y


def tiny_cnn(seed: int = 0, k: int = 3) -> nn.Module:
    """A small conv net with BatchNorm and Dropout (to test eval-mode handling)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * DIM, k))


def random_images(n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g, dtype=dtype)
