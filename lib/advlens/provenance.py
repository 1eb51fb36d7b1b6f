"""Provenance records: what produced a result (parameters, versions, commit, seed, wall time)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from typing import Any

from advlens import __version__
from advlens.paths import repo_root

_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "timm",
             "matplotlib", "seaborn", "papermill")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes the numbers."""
    versions = {"python": platform.python_version(), "advlens": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The repository's HEAD commit, suffixed ``-dirty`` when tracked files are modified."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def record(params: dict[str, Any], *, seed: int | None = None,
           wall_time_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance dict for a figure or result file."""
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "parameters": params,
        "seed": seed,
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        **extra,
    }
