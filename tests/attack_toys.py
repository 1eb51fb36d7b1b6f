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


def boundary_gap(model: nn.Sequential, x: Tensor, dual: float = 2) -> Tensor:
    """Distance to the second-nearest class boundary over the distance to the nearest (inf for
    two classes): near 1, two boundaries compete and a local method may settle on either."""
    lin = model[1]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double().flatten(1) @ w.T + b
    y = z.argmax(1)
    d = (z.gather(1, y[:, None]) - z) / (w[y][:, None, :] - w[None, :, :]).norm(p=dual, dim=2)
    d = d.scatter(1, y[:, None], float("inf")).sort(dim=1).values
    return d[:, 1] / d[:, 0]


def runner_up_nearest(model: nn.Sequential, x: Tensor, dual: float = 2) -> Tensor:
    """Mask of images whose nearest boundary (closed form) is the one with the runner-up class.

    Gradient attacks on the logit margin (and C&W) descend towards the runner-up class's
    boundary; on an affine model another class's boundary can be nearer, and then no local
    method is expected to find it. The closed-form tests use images where the two agree.
    """
    lin = model[1]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double().flatten(1) @ w.T + b
    top2 = z.topk(2, dim=1).indices
    y, runner = top2[:, 0], top2[:, 1]
    zy = z.gather(1, y[:, None])
    d = (zy - z) / (w[y][:, None, :] - w[None, :, :]).norm(p=dual, dim=2).clamp_min(1e-300)
    d = d.scatter(1, y[:, None], float("inf"))
    return d.argmin(1) == runner


def closed_form_point(model: nn.Sequential, x: Tensor, norm: str) -> Tensor:
    """The minimal adversarial point towards the nearest boundary (box ignored)."""
    lin = model[1]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    z = x.double().flatten(1) @ w.T + b
    y = z.argmax(1)
    dual = 2 if norm == "l2" else 1
    dw = w[y][:, None, :] - w[None, :, :]
    d = ((z.gather(1, y[:, None]) - z) / dw.norm(p=dual, dim=2).clamp_min(1e-300))
    j = d.scatter(1, y[:, None], float("inf")).argmin(1)
    v = w[y] - w[j]
    dist = d.gather(1, j[:, None])
    step = v / v.norm(dim=1, keepdim=True) if norm == "l2" else v.sign()
    return (x.double().flatten(1) - dist * step).view_as(x)


class SideOnly(nn.Module):
    """An affine model on (1, side, side) float64 images that refuses any other size, as a
    published model of one input size would be fed the wrong one."""

    def __init__(self, side: int, k: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.side = side
        self.lin = nn.Linear(side * side, k).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(k, side * side, generator=g, dtype=torch.float64))
            self.lin.bias.copy_(torch.randn(k, generator=g, dtype=torch.float64) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        assert tuple(x.shape[-2:]) == (self.side, self.side), f"fed {tuple(x.shape)}"
        return self.lin(x.flatten(1))

    @classmethod
    def seen_through(cls, small: SideOnly, side: int) -> SideOnly:
        """A model of side ``side`` that resamples its input down to ``small``'s side and
        applies ``small`` (a linear map: the bicubic resampling, unclamped): the two agree on
        most images at their own sides."""
        from advlens.resample import _resize

        basis = torch.eye(side * side, dtype=torch.float64).view(-1, 1, side, side)
        down = _resize(basis, small.side).flatten(1).T  # (small², side²)
        big = cls(side, k=small.lin.out_features)
        with torch.no_grad():
            big.lin.weight.copy_(small.lin.weight @ down)
            big.lin.bias.copy_(small.lin.bias)
        return big
