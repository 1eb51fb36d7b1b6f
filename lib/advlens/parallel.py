"""A distributed map for scale-out (paper preset): dask.distributed when a scheduler is given,
an in-process loop with a progress bar otherwise. Results come back in input order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "ADVLENS_SCHEDULER"


def _client(client: Any | None, timeout_s: float = 10.0) -> Any | None:
    if client is not None:
        return client
    address = os.environ.get(SCHEDULER_ENV)
    if not address:
        return None
    from dask.distributed import Client

    try:
        return Client(address, timeout=f"{timeout_s}s")
    except OSError as err:
        raise ConnectionError(f"cannot reach the dask scheduler at {address} (from "
                              f"${SCHEDULER_ENV}); start it or unset the variable.") from err


def pmap(fn: Callable[[T], R], items: Iterable[T], *, client: Any | None = None,
         progress: bool = True, desc: str = "tasks", connect_timeout_s: float = 10.0) -> list[R]:
    """``[fn(item) for item in items]``, on a dask cluster if ``client`` (or ``$ADVLENS_SCHEDULER``)
    is given. ``fn`` and the items must be picklable for a multi-process cluster."""
    items = list(items)
    active = _client(client, connect_timeout_s)
    if active is None:
        return [fn(item) for item in tqdm(items, desc=desc, disable=not progress)]
    from dask.distributed import as_completed

    futures = active.map(fn, items, pure=False)
    index = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    for future in tqdm(as_completed(futures), total=len(futures), desc=desc,
                       disable=not progress):
        results[index[future.key]] = future.result()
    return results
