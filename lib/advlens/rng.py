"""A seeded random state that leaves the caller's untouched, on the CPU and every CUDA device."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: torch's global RNGs seeded with ``seed``; on exit: the caller's states back.

    ``torch.manual_seed`` seeds every CUDA generator too, so those are saved and restored along
    with the CPU's (``fork_rng(devices=[])`` restored only the CPU's, leaving a CUDA caller's
    generator reseeded).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def name_seed(seed: int, name: str) -> int:
    """A seed for ``name``'s own random stream under ``seed``: the first 8 bytes of
    SHA-256("<seed>/<name>"), stable across processes and machines (``hash()`` is salted), and
    the same whichever other names draw beside it."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
