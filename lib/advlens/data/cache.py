"""Hash-checked download cache under :func:`advlens.paths.data_dir` (``$ADVLENS_DATA``)."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from advlens.io import atomic_write, sha256_file
from advlens.paths import data_dir

SUBDIR = "downloads"


def cached_path(filename: str) -> Path:
    """Where :func:`fetch` keeps ``filename``."""
    if not filename or Path(filename).name != filename:
        raise ValueError(f"filename must be a bare file name; got {filename!r}.")
    return data_dir() / SUBDIR / filename


def fetch(url: str, sha256: str, filename: str, *, timeout: float = 60.0) -> Path:
    """Return the path of ``filename``, downloading ``url`` first if it is missing or wrong.

    The file is verified against ``sha256`` (hex) before it is used and written atomically.
    Raises ConnectionError when the download fails (e.g. offline), saying where to put the file
    by hand; ValueError when the downloaded bytes have the wrong hash.
    """
    expected = sha256.lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 must be 64 hex digits; got {sha256!r}.")
    path = cached_path(filename)
    if path.exists():
        if sha256_file(path) == expected:
            return path
        warnings.warn(f"{path} does not match its sha256; downloading it again.", RuntimeWarning,
                      stacklevel=2)
    digest = hashlib.sha256()

    def download(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise ConnectionError(
                f"could not download {url} ({err}). If this machine is offline, download it "
                f"elsewhere and place it at {path} (sha256 {expected})."
            ) from err
        if digest.hexdigest() != expected:
            raise ValueError(f"the download of {url} has sha256 {digest.hexdigest()}, expected "
                             f"{expected}; nothing was written to {path}.")

    return atomic_write(path, download)


def copy_into_cache(source: str | Path, sha256: str, filename: str) -> Path:
    """Verify a file obtained by hand and place it where :func:`fetch` looks for it."""
    source = Path(source)
    if sha256_file(source) != sha256.lower():
        raise ValueError(f"{source} does not match sha256 {sha256}.")
    path = cached_path(filename)
    return atomic_write(path, lambda tmp: shutil.copyfile(source, tmp))
