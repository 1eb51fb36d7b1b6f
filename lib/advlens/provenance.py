"""Provenance records: what produced a result (parameters, versions, commit, seed, wall time)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
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


_COMPUTE_ENV = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "CUBLAS_WORKSPACE_CONFIG")


def compute_settings() -> dict[str, Any]:
    """How torch computes here: the settings that make results bitwise different elsewhere.

    Returns
    -------
    ``cpu_capability`` (the instruction set torch's CPU kernels use: ``DEFAULT``, ``AVX2``,
    ``AVX512``...; set it with ``ATEN_CPU_CAPABILITY``), intra-/inter-op ``threads``, the
    deterministic-algorithm flags, cuDNN's flags and the environment variables that set them.
    """
    import torch

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda_available": torch.cuda.is_available(),
        "env": {name: os.environ.get(name) for name in _COMPUTE_ENV},
    }


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
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpu_count": os.cpu_count()},
        "compute": compute_settings(),
        **extra,
    }
