"""Perturbation geometry: Lp norms, steepest-ascent directions, ball projections, random starts.

Every function works per sample on batches (N, ...); a budget ``eps`` is a float or an (N,) tensor.
"""

from __future__ import annotations

import numbers
from typing import Literal

import torch
from torch import Tensor

from advlens.checks import check_positive

Norm = Literal["l1", "l2", "linf"]
NORMS: tuple[str, ...] = ("l1", "l2", "linf")
_TINY = 1e-12


def check_norm(norm: str, allowed: tuple[str, ...] = NORMS) -> Norm:
    if norm not in allowed:
        raise ValueError(f"norm must be one of {allowed}; got {norm!r}.")
    return norm  # type: ignore[return-value]


def lp_norms(delta: Tensor, norm: Norm) -> Tensor:
    """Per-sample norm (N,) of a batch of perturbations."""
    flat = delta.flatten(1)
    if norm == "l2":  # linalg.vector_norm directly: Tensor.norm reaches it via two wrappers
        return torch.linalg.vector_norm(flat, 2, dim=1)
    if norm == "linf":  # not vector_norm(inf): its CPU kernel is several times slower
        return flat.abs().amax(dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"norm must be one of {NORMS}; got {norm!r}.")


def per_sample(value: float | Tensor, n: int, like: Tensor, name: str = "value") -> Tensor:
    """``value`` as an (N, 1, ..., 1) tensor broadcastable against ``like``; ``name`` is the
    argument it came from, for the error."""
    if isinstance(value, Tensor) and value.dtype == like.dtype and value.device == like.device:
        t = value  # what as_tensor returns, without its call (attacks pass eps every step)
    else:
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must be a number or a tensor of shape ({n},) (one value per "
                         f"image); got shape {tuple(t.shape)}.")
    return t.view(n, *([1] * (like.ndim - 1)))


def unit_l2(g: Tensor, norms: Tensor | None = None) -> Tensor:
    """``g / ||g||_2`` per sample; a zero gradient stays zero (no NaN). ``norms``: the (N,)
    ``lp_norms(g, "l2").clamp_min(1e-12)`` if already computed."""
    if norms is None:
        norms = lp_norms(g, "l2").clamp_min(_TINY)
    return g / norms.view(-1, *([1] * (g.ndim - 1)))


def ascent_direction(g: Tensor, norm: Norm) -> Tensor:
    """Steepest-ascent direction of unit ``norm``: sign(g) for L∞, g/||g||₂ for L2."""
    if norm == "linf":
        return g.sign()
    if norm == "l2":
        return unit_l2(g)
    raise ValueError(f"steepest ascent is implemented for 'l2' and 'linf'; got {norm!r}.")


def project_ball(delta: Tensor, eps: float | Tensor, norm: Norm) -> Tensor:
    """Project each perturbation onto the closed ``norm`` ball of radius eps (inside ones stay).
    A number ``eps`` must be finite and >= 0 (a negative one flipped or zeroed δ); a tensor one
    is not checked (the attacks call this every step, and on a GPU a check is a host sync)."""
    if isinstance(eps, numbers.Real):
        check_positive("eps", eps, allow_zero=True)
    e = per_sample(eps, delta.shape[0], delta, "eps")
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, e), -e)
    if norm == "l2":
        n = lp_norms(delta, "l2").view(e.shape)
        return delta * torch.clamp(e / n.clamp_min(_TINY), max=1.0)
    if norm == "l1":
        return _project_l1(delta, e.flatten())
    raise ValueError(f"norm must be one of {NORMS}; got {norm!r}.")


def _project_l1(delta: Tensor, eps: Tensor) -> Tensor:
    """Euclidean projection onto the L1 ball (Duchi et al. 2008), sorting-based, batched."""
    flat = delta.flatten(1)
    abs_ = flat.abs()
    inside = abs_.sum(1) <= eps
    mu, _ = abs_.sort(dim=1, descending=True)
    cums = mu.cumsum(1)
    k = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    cond = mu - (cums - eps[:, None]) / k > 0
    rho = cond.to(flat.dtype).mul(k).argmax(1)  # last index where cond holds
    theta = (cums.gather(1, rho[:, None]).squeeze(1) - eps) / (rho + 1).to(flat.dtype)
    projected = flat.sign() * (abs_ - theta[:, None]).clamp_min(0)
    out = torch.where(inside[:, None], flat, projected)
    return out.view_as(delta)


def random_in_ball(like: Tensor, eps: float | Tensor, norm: Norm,
                   generator: torch.Generator | None = None) -> Tensor:
    """A uniform random point in each sample's ``norm`` ball (L∞ or L2)."""
    n = like.shape[0]
    e = per_sample(eps, n, like, "eps")
    # draw on the generator's device (a CPU generator can drive a GPU attack), then move
    kw = {"generator": generator, "dtype": like.dtype,
          "device": generator.device if generator is not None else like.device}
    if norm == "linf":
        u = torch.rand(like.shape, **kw).to(like.device)
        return (2 * u - 1) * e
    if norm == "l2":
        d = like[0].numel()
        g = torch.randn(like.shape, **kw).to(like.device)
        r = torch.rand(n, **kw).to(like.device) ** (1.0 / d)
        return unit_l2(g) * r.view(e.shape) * e
    raise ValueError(f"random starts are implemented for 'l2' and 'linf'; got {norm!r}.")
