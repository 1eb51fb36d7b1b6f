"""Run an attack over an image set in chunks (bounded memory, one progress bar)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import Tensor, nn
from tqdm.auto import tqdm

from advlens.attacks.core import tqdm_disabled
from advlens.attacks.result import AttackResult
from advlens.checks import as_tensor, check_labels, check_positive_int


def run_batched(attack: Callable[..., AttackResult], model: nn.Module, x: Tensor, y: Tensor, *,
                batch_size: int = 256, targets: Tensor | None = None,
                progress: bool | None = None, **kwargs: Any) -> AttackResult:
    """``attack(model, x_chunk, y_chunk, **kwargs)`` over chunks of ``batch_size`` images,
    joined into one result (passes and forwards add up over chunks).

    A tensor or NumPy keyword argument with one row per image (first dimension N: a per-image
    ``eps``, a warm ``start``, ``init_eps``) is cut into the same chunks. A random start drawn
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
        results.append(attack(model, x[chunk], y[chunk], **extra, **rest))
    return AttackResult.concat(results)


def _per_image(value: Any, n: int) -> bool:
    # NumPy too: the attacks take an array eps, and an uncut one was refused chunk by chunk
    return isinstance(value, Tensor | np.ndarray) and value.ndim >= 1 and value.shape[0] == n
