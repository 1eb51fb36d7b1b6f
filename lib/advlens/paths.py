"""Where advlens reads and writes: repository root, data cache, zoo cache, figures."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``$ADVLENS_HOME`` when set (it wins over the checkout too), else the
    folder holding ``pyproject.toml`` above ``lib/advlens``, else (a non-editable install) the
    current directory.
    """
    if "ADVLENS_HOME" in os.environ:
        return Path(os.environ["ADVLENS_HOME"]).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def data_dir() -> Path:
    """Cache for downloads and generated data; ``$ADVLENS_DATA`` overrides ``<repo>/data``."""
    path = Path(os.environ.get("ADVLENS_DATA", repo_root() / "data")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def zoo_dir() -> Path:
    """Model-zoo checkpoints; ``$ADVLENS_ZOO`` overrides ``<data>/zoo``."""
    path = Path(os.environ.get("ADVLENS_ZOO", data_dir() / "zoo")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """Default output folder of the notebooks (``<repo>/figures``)."""
    return repo_root() / "figures"


def notebooks_dir() -> Path:
    """The numbered notebooks (``<repo>/notebooks``)."""
    return repo_root() / "notebooks"
