"""Checksummed ``.npz`` caches: written atomically, verified on load, rebuilt when corrupt."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from advlens.io import READ_ONLY, atomic_write

_CHECKSUM = "__checksum__"
_META = "__meta__"


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in sorted name order)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` (+ ``meta`` as JSON and a checksum) to a compressed ``.npz`` atomically."""
    payload = dict(arrays)
    payload[_META] = np.array(json.dumps(meta, sort_keys=True))
    payload[_CHECKSUM] = np.array(arrays_checksum(arrays))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle, so numpy does not append ".npz"
            np.savez_compressed(handle, **payload)

    return atomic_write(path, write)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a cache written by :func:`save_arrays`; ValueError naming the file if it is corrupt."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # zipfile, zlib, OSError, ValueError: all mean "corrupt"
        raise ValueError(f"cache file {path} is corrupt ({type(err).__name__}: {err}).") from err
    if _CHECKSUM not in arrays or _META not in arrays:
        raise ValueError(f"cache file {path} has no checksum/metadata; "
                         "it was not written by advlens.")
    stored = str(arrays.pop(_CHECKSUM))
    meta = json.loads(str(arrays.pop(_META)))
    if arrays_checksum(arrays) != stored:
        raise ValueError(f"cache file {path} fails its checksum (contents changed or truncated).")
    return arrays, meta


def cached_arrays(path: str | Path, build: Callable[[], dict[str, np.ndarray]],
                  meta: dict[str, Any], *, use_cache: bool = True) -> dict[str, np.ndarray]:
    """Load ``path`` if it is a valid cache of ``meta``, else ``build()`` and write it.

    A corrupt or mismatching cache is rebuilt with a warning (never silently reused). Where
    ``path``'s folder may not be written (a read-only ``$ADVLENS_DATA``), the arrays built are
    returned uncached, with a warning.
    """
    path = Path(path)
    if use_cache and path.exists():
        try:
            arrays, stored_meta = load_arrays(path)
        except ValueError as err:
            warnings.warn(f"{err} Regenerating it.", RuntimeWarning, stacklevel=3)
        else:
            if stored_meta == json.loads(json.dumps(meta, sort_keys=True)):
                return arrays
            warnings.warn(f"cache file {path} was made for a different configuration; "
                          "regenerating it.", RuntimeWarning, stacklevel=3)
    arrays = build()
    if use_cache:
        try:
            save_arrays(path, arrays, meta)
        except OSError as err:  # the data is there; only its cache cannot be kept
            if err.errno not in READ_ONLY:
                raise
            warnings.warn(f"{err}. Using the arrays uncached (they are built again next time); "
                          "point $ADVLENS_DATA at a writable folder to cache them.",
                          RuntimeWarning, stacklevel=3)
    return arrays
