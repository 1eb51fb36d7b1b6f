"""Uniform, actionable errors for missing and damaged data files."""

from __future__ import annotations

from pathlib import Path


def missing(path: str | Path, what: str, how: str) -> FileNotFoundError:
    """A FileNotFoundError naming ``path``, what should be there and how to get it."""
    return FileNotFoundError(f"{what} not found at {path}. {how}")


def dataset_folder(root: str | Path | None, default: Path, folder: str, what: str,
                   how: str) -> Path:
    """``root/folder`` (or ``root`` itself when it is that folder), else a clear missing error;
    ``root=None`` looks under ``default``."""
    base = Path(root).expanduser() if root is not None else default
    if (base / folder).is_dir():
        return base / folder
    if base.name == folder and base.is_dir():
        return base
    raise missing(base / folder, what, how)


def corrupt(path: str | Path, why: str) -> ValueError:
    """A ValueError naming the damaged file and suggesting a fresh download."""
    return ValueError(f"{path} is corrupt or not in the expected format ({why}); "
                      "delete it and download/extract it again.")
