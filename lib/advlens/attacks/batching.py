"""Run an attack over an image set in chunks (bounded memory, one progress bar)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.core import NonFiniteOutput, tqdm_disabled
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor, check_labels, check_positive_int


def run_batched(attack: Callable[..., AttackResult], model: nn.Module, x: Tensor, y: Tensor, *,
                batch_size: int = 256, targets: Tensor | None = None,
                progress: bool | None = None, **kwargs: Any) -> AttackResult:
    """``attack(model, x_chunk, y_chunk, **kwargs)`` over chunks of ``batch_size`` images,
    joined into one result (passes and forwards add up over chunks).

    A tensor or NumPy keyword argument with one row per image (first dimension N: a per-image
    ``eps``, a warm ``start``, ``init_eps``) is cut into the same chunks; so is a list or tuple
    of N numbers (``pgd(eps=[...])``, ``fmn(max_step=[...])``), taken as a tensor (float64
    unless every number is an int, as the attacks take such a list themselves). A random start drawn
    from a shared ``generator`` is drawn chunk by chunk, so it differs from one whole-batch
    call; so do :func:`~advlens.attacks.cw_l2` and :func:`~advlens.attacks.ead` with
    ``abort_early`` (their early abort tests the batch's summed objective). The other attacks
    treat each image on its own: chunks change their results only at float rounding."""
    batch_size = check_positive_int(batch_size, "batch_size")
    x = as_tensor(x, "x")
    if x.ndim == 0 or x.shape[0] == 0:  # no chunk to run: "concat needs at least one result"
        raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}); pass at least one "
                         "image.")
    y = check_labels(y, x.shape[0], "y")
    # a per-image list was passed whole to every chunk: "must be ... of shape (batch_size,)"
    kwargs = {k: _listed_per_image(v, x.shape[0]) for k, v in kwargs.items()}
    if targets is not None:
        targets = check_labels(targets, x.shape[0], "targets")
    results = []
    starts = range(0, x.shape[0], batch_size)
    for s in tqdm(starts, desc=getattr(attack, "__name__", "attack"),
                  disable=tqdm_disabled(progress), leave=False):
        chunk = slice(s, s + batch_size)
        extra = {} if targets is None else {"targets": targets[chunk]}
        extra.update({k: v[chunk] for k, v in kwargs.items() if _per_image(v, x.shape[0])})
        rest = {k: v for k, v in kwargs.items() if k not in extra}
        try:
            results.append(attack(model, x[chunk], y[chunk], **extra, **rest))
        except NonFiniteOutput as error:  # named by their indices in the whole set
            raise error.reindexed(s, x.shape[0]) from None
    return AttackResult.concat(results)


def _listed_per_image(value: Any, n: int) -> Any:
    """``value`` as a tensor if it is a list or tuple of ``n`` numbers, else itself."""
    if not isinstance(value, list | tuple) or len(value) != n:
        return value
    if not all(isinstance(v, numbers.Real) for v in value):
        return value
    if all(isinstance(v, numbers.Integral) for v in value):
        return torch.as_tensor(value)
    return torch.as_tensor(value, dtype=torch.float64)


def _per_image(value: Any, n: int) -> bool:
    # NumPy too: the attacks take an array eps, and an uncut one was refused chunk by chunk
    return isinstance(value, Tensor | np.ndarray) and value.ndim >= 1 and value.shape[0] == n
