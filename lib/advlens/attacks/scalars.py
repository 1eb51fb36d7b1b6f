"""Fixed numbers as cached 0-dim tensors, for the attacks' per-step arithmetic.

A Python number in a tensor op (``x * 0.5``, ``c >= 0``) is wrapped in a fresh 0-dim double
tensor and cast to the operand's dtype at every call: two more small ops, about 2.5 µs each time
on a CPU in torch 2.14.1, as much as the op itself on a small batch (ALMA and C&W took a dozen a
step). A 0-dim CPU tensor of the operand's dtype is the number that cast makes, read without
either op: results are bitwise the same. The attacks' images and logits are float32 or float64
(:func:`~advlens.attacks.core.prepare` and ``model_logits`` refuse half precision), where that
holds for every op.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


def scalar(value: float, dtype: torch.dtype) -> Tensor:
    """``value`` as a cached 0-dim CPU tensor of ``dtype``, to use in place of the Python number
    in an op with a tensor of that dtype (a CPU scalar works beside tensors on any device).

    Parameters
    ----------
    value: a number fixed for the run (a setting, a literal). One that changes every step gains
        nothing (each would be a new tensor) and only churns the cache.
    dtype: the tensor operand's dtype (a floating one: an integer tensor would truncate the
        number, where torch promotes the op to float).

    Returns
    -------
    A 0-dim tensor shared by every call: never modify it in place. Made outside inference mode,
    so that an autograd graph may save it, and on the CPU whatever the default device. A
    subnormal value cached while ``torch.set_flush_denormal(True)`` was on stays flushed to 0.
    """
    # the sign of zero is part of the key: 0.0 == -0.0 would share an entry
    return _cached(value, math.copysign(1.0, value) < 0, dtype)


@functools.lru_cache(maxsize=256)
def _cached(value: float, negative: bool, dtype: torch.dtype) -> Tensor:
    if not dtype.is_floating_point:
        raise TypeError(f"scalar() stands in for a number beside a floating tensor; got {dtype} "
                        "(an integer tensor would truncate it where torch promotes to float).")
    with torch.inference_mode(False):
        return torch.tensor(value, dtype=dtype, device="cpu")
