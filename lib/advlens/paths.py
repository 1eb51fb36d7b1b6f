"""Where advlens reads and writes: repository root, data cache, zoo cache, figures."""

from __future__ import annotations

import os
from pathlib import Path


def _env(name: str) -> str | None:
    """``$name``, or None where it is unset or empty: ``ADVLENS_DATA=`` (``export VAR=`` to clear
    it, docker-compose's ``VAR: ${VAR}`` with the host's unset) was the path ``.``, so the
    caches and the zoo went into whatever folder the process started in (a notebook kernel's:
    ``notebooks/``), a second zoo trained there from scratch."""
    return os.environ.get(name) or None


def repo_root() -> Path:
    """The repository root: ``$ADVLENS_HOME`` when set (it wins over the checkout too), else the
    folder holding ``pyproject.toml`` above ``lib/advlens``, else (a non-editable install) the
    current directory. A variable set to the empty string counts as unset (see :func:`_env`).
    """
    if home := _env("ADVLENS_HOME"):
        return Path(home).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def data_dir() -> Path:
    """Cache for downloads and generated data; ``$ADVLENS_DATA`` overrides ``<repo>/data``."""
    path = Path(_env("ADVLENS_DATA") or repo_root() / "data").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def zoo_dir() -> Path:
    """Model-zoo checkpoints; ``$ADVLENS_ZOO`` overrides ``<data>/zoo``."""
    path = Path(_env("ADVLENS_ZOO") or data_dir() / "zoo").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_dir() -> Path:
    """Default output folder of the notebooks (``<repo>/figures``)."""
    return repo_root() / "figures"


def notebooks_dir() -> Path:
    """The numbered notebooks (``<repo>/notebooks``)."""
    return repo_root() / "notebooks"
