"""Atomic writes and content hashes: nothing half-written is ever read back as valid."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import re
import secrets
import socket
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
    # the writer's pid and place (host, pid namespace) in the name: a later write can tell a
    # dead writer's leftover
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.p{os.getpid()}@{_HOST}.tmp")
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
    _sync_folder(path.parent)
    _remove_stale_temporaries(path)
    return path


def _sync_folder(folder: Path) -> None:
    """fsync ``folder``, so that a rename into it survives a power loss (the file's own fsync
    does not cover its name); skipped where folders cannot be opened or synced (Windows, some
    network file systems)."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _writer_place() -> str:
    """This host and PID namespace, as 12 hex digits: two containers may share a host name
    (``--network host``) but not their process ids, so a pid is only looked up where both
    match (a live writer's temporary was removed from the other namespace)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # no /proc (macOS, Windows): the host name alone
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:12]


_HOST = _writer_place()
_WRITER = re.compile(r"\.p(\d+)@(.+)\.tmp$")


# a temporary file of ``path`` older than this was left by a writer killed mid-write (a zoo
# checkpoint's: megabytes, for good); no live write of one file takes this long
STALE_TEMPORARY_S = 24 * 3600.0


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of ``path`` that killed writers left: those written on this
    host by a process that no longer runs, and any older than :data:`STALE_TEMPORARY_S` (another
    host's, whose writers this one cannot see); a live writer's are left alone. (Before, only
    the second rule: a resumed build rewrote a checkpoint within minutes and kept the killed
    writer's temporary, megabytes, for good.)"""
    cutoff = time.time() - STALE_TEMPORARY_S
    for left in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or another writer's cleanup won
            if _writer_is_gone(left.name) or left.stat().st_mtime < cutoff:
                left.unlink()


def _writer_is_gone(name: str) -> bool:
    """Whether the temporary file ``name`` was written on this host, in this PID namespace, by
    a process that has exited (False where the name does not say, or the process may still
    run)."""
    match = _WRITER.search(name)
    if match is None or match.group(2) != _HOST or os.name == "nt":  # (Windows: kill kills)
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):  # another user's live process
        return False
    return False


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


def _open_lock_file(path: Path) -> int | None:
    """A descriptor of the lock file ``path``, created if missing; None where it can be neither
    opened nor created (a read-only folder). Another user's lock file (a shared temporary
    folder, a lab's shared zoo) is opened for reading where it may not be written: flock needs
    no write access, and opening it for writing failed there, so that the second user ran
    unlocked beside the first. A file this call creates is made writable by everyone, for the
    same reason. An existing file is never opened with O_CREAT: in a sticky world-writable
    folder (/tmp) Linux refuses that for another user's file (fs.protected_regular)."""
    if path.is_dir():  # (os.open raised IsADirectoryError, a traceback naming no way out)
        raise ValueError(f"{path} is a folder where a lock file goes; remove or rename "
                                "it and rerun.")
    for _ in range(3):  # the file may come or go between the calls below: try again
        for flags in (os.O_WRONLY | os.O_APPEND, os.O_RDONLY):
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                break
            except OSError as err:  # not writable by this user: read-only will do for flock
                if err.errno not in READ_ONLY:
                    raise
        else:
            return None  # an unreadable lock file: nothing to lock on
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as err:
            if err.errno not in READ_ONLY:
                raise
            return None
        with contextlib.suppress(OSError):  # past the umask: other users lock it too
            os.fchmod(fd, 0o666)
        return fd
    return None


class LockHeld(RuntimeError):
    """Another process holds the lock that :func:`file_lock` was told not to wait for."""


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive advisory ``flock`` on the file ``path`` while inside, so that
    read-modify-writes of a file several processes update (a grid point's ``done.json``, the
    tolerance table) run one at a time and lose no process's update. ``path`` (in a folder
    that exists) is created if missing and never deleted; the lock goes with the process
    holding it, even one killed, so none is left stale; another user's lock file is locked
    too (:func:`_open_lock_file`). A no-op where ``fcntl`` is unavailable (Windows), where
    ``path`` cannot be created (a read-only folder, where the write itself fails naming its
    file) and, with a warning, on a file system without ``flock`` (a Lustre or NFS mount
    without locking). ``wait=False``: raise :class:`LockHeld` at once where another process
    holds the lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    fd = _open_lock_file(Path(path))
    if fd is None:
        yield
        return
    with os.fdopen(fd, "rb", buffering=0) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise LockHeld(f"{path} is locked by another process") from None
        except OSError as err:
            # NFS emulates flock with byte-range locks, which refuse a read-only descriptor
            read_only = (err.errno == errno.EBADF
                         and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY)
            if err.errno not in _NO_FLOCK and not read_only:
                raise
            # every zoo load and grid point failed there: run unlocked, as on Windows
            why = ("another user's lock file, which this file system locks only for its "
                   "writers: make it writable by both users" if read_only else
                   "this file system does not support file locks")
            warnings.warn(f"{path}: {why} ({err}); continuing without a lock, so do not run "
                          "two processes on this folder at once (or mount it with locking, "
                          "e.g. Lustre's -o flock).", RuntimeWarning, stacklevel=3)
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
        written: dict[str, Any] = {}
        for key in obj:  # {1: a, "1": b} kept one of them, silently
            if (text := _key(key)) in written:
                raise ValueError(f"keys {written[text]!r} and {key!r} are both written {text!r} "
                                 "in JSON, so one value would be lost; give the mapping keys "
                                 "that differ as strings.")
            written[text] = key
        return {text: _strict(value) for text, value in zip(written, obj.values(), strict=True)}
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
