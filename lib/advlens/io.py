"""Atomic writes and content hashes: nothing half-written is ever read back as valid."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import secrets
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# errnos of a write refused because the file system or folder may not be written: a read-only
# mount (EROFS), a folder without write permission (EACCES, EPERM)
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` atomically.

    The temporary file is created with mode 0666 filtered by the process umask (as ``open``
    does), so the result has the usual permissions; the umask is never read or changed. A
    folder this process may not write raises OSError (its errno kept, in :data:`READ_ONLY`)
    naming ``path``, not the temporary file.
    """
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        if err.errno not in READ_ONLY:
            raise
        raise OSError(err.errno, f"cannot write {path}: its folder is read-only or not "
                                 f"writable by this user ({err.strerror}); "
                                 "make it writable or choose a writable folder") from err
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    _remove_stale_temporaries(path)
    return path


# a temporary file of ``path`` older than this was left by a writer killed mid-write (a zoo
# checkpoint's: megabytes, for good); no live write of one file takes this long
STALE_TEMPORARY_S = 24 * 3600.0


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of ``path`` that killed writers left (older than
    :data:`STALE_TEMPORARY_S`); a live writer's, younger, are left alone."""
    cutoff = time.time() - STALE_TEMPORARY_S
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or another writer's cleanup won
            if left.stat().st_mtime < cutoff:
                left.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


# flock refused by the file system itself: Lustre mounted without -o flock (ENOSYS), NFS
# without its lock daemon (ENOLCK), some FUSE and SMB mounts (EOPNOTSUPP)
_NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP})


def temp_lock_path(kind: str, target: str | Path) -> Path:
    """A lock file for updates of ``target`` kept in the temporary folder, named by ``kind``
    and ``target``'s resolved path: for targets where a lock file beside them would be a stray
    file (the package's tolerance table, a book folder)."""
    import tempfile

    key = hashlib.sha256(str(Path(target).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"advlens-{kind}-{key}.lock"


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory ``flock`` on the file ``path`` while inside, so that
    read-modify-writes of a file several processes update (a grid point's ``done.json``, the
    tolerance table) run one at a time and lose no process's update. ``path`` (in a folder
    that exists) is created if missing and never deleted; the lock goes with the process
    holding it, even one killed, so none is left stale. A no-op where ``fcntl`` is unavailable
    (Windows), where ``path`` cannot be created (a read-only folder, where the write itself
    fails naming its file) and, with a warning, on a file system without ``flock`` (a Lustre
    or NFS mount without locking)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    try:
        handle = open(path, "a")
    except OSError as err:
        if err.errno not in READ_ONLY:
            raise
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            locked = True
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                raise
            # every zoo load and grid point failed there: run unlocked, as on Windows
            warnings.warn(f"{path}: this file system does not support file locks ({err}); "
                          "continuing without one, so do not run two processes on this folder "
                          "at once (or mount it with locking, e.g. Lustre's -o flock).",
                          RuntimeWarning, stacklevel=3)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def json_text(obj: Any) -> str:
    """``obj`` as indented, key-sorted JSON (numpy arrays, tensors, paths and dataclasses
    included; sets as sorted lists). NaN and ±inf are written as ``null``: strict readers
    (browsers, jq) refuse the bare ``NaN`` Python's ``json`` writes by default. Keys are
    written as strings, as JSON has them (numpy scalars and mixed key types included)."""
    return json.dumps(_strict(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    return atomic_write_bytes(path, json_text(obj).encode())


def read_json(path: str | Path) -> Any:
    """Read JSON, naming the file in the error if it is corrupt."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it and rerun.") from err


def extract_tar(tar: tarfile.TarFile, folder: str | Path) -> None:
    """Extract every member of a trusted ``tar`` (this repository's own, or one whose SHA-256 was
    checked) into ``folder``, with the ``"data"`` filter where Python has it: extraction filters
    came with 3.11.4, and requires-python admits 3.11.0-3.11.3 (Debian 12's python3.11 is
    3.11.2), whose ``extractall`` takes no ``filter`` (a TypeError there)."""
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(folder, **safe)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _strict(obj: Any) -> Any:
    """``obj`` made of JSON's own types, every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, dict):
        return {_key(key): _strict(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(value) for value in obj]
    if isinstance(obj, (set, frozenset)):
        values = [_strict(value) for value in obj]
        return sorted(values, key=lambda v: json.dumps(v, sort_keys=True))
    return _strict(_json_default(obj))


def _key(key: Any) -> str:
    """A dict key as the string JSON writes for it (``1`` -> ``"1"``, ``True`` -> ``"true"``,
    ``None`` -> ``"null"``); numpy scalars by their value, NaN as ``"NaN"``, anything else by
    ``str``. All keys strings: mixed key types still sort."""
    if isinstance(key, str):
        return key
    if hasattr(key, "item") and not hasattr(key, "__len__"):  # a numpy scalar
        key = key.item()
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
