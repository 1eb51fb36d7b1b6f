"""Provenance records: what produced a result (parameters, versions, commit, seed, wall time),
and whether a run's notebook completed (its ``run.json``)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from advlens import __version__
from advlens.io import read_json
from advlens.paths import repo_root

# pillow and simplejpeg decode the real data sets' images (ImageFolder, ClickMe's JPEGs: a
# decoder's IDCT moves pixels), robustness builds the paper zoo's published models
_PACKAGES = ("torch", "torchvision", "numpy", "scipy", "pandas", "scikit-learn", "timm",
             "matplotlib", "seaborn", "papermill", "pillow", "simplejpeg", "robustness")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes the numbers."""
    versions = {"python": platform.python_version(), "advlens": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# verify's tolerance table: only verify reads it, and `verify --measure` rewrites it (in an
# installed copy too), which made every later run "dirty" (or of unknown code) and reran it
NOT_CODE = "tolerances.json"
# what decides the numbers: outputs a run writes into figures/ (tracked) must not make it dirty
CODE_PATHS = ("lib", "notebooks", "pyproject.toml", "Makefile",
              f":(exclude)lib/advlens/{NOT_CODE}")


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True, timeout=10,
                          check=True).stdout


def _package_dir() -> Path:
    """The folder of the advlens package that runs."""
    return Path(__file__).resolve().parent


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (bytecode caches and :data:`NOT_CODE` left out) by its
    relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
            and p.relative_to(folder).as_posix() != NOT_CODE}


def _runs_from(root: Path) -> bool:
    """Whether the advlens that runs is ``<root>/lib/advlens``: that folder itself (an
    editable install), or an installed copy of it file for file (``pip install .`` with
    ``$ADVLENS_HOME`` naming the checkout)."""
    package, source = _package_dir().resolve(), root / "lib" / "advlens"
    return package == source or (source.is_dir() and _files(package) == _files(source))


@functools.cache
def git_commit() -> str:
    """The repository's HEAD commit, suffixed ``-dirty-<hash>`` when the code differs from it.

    Only :data:`CODE_PATHS` count (a run's own outputs in ``figures/`` do not); ``<hash>`` is
    a short hash of the uncommitted changes there (tracked diff and untracked files), so two
    dirty states can be told apart. ``"unknown"`` without git, and where the advlens that
    runs is neither ``lib/advlens`` of the repository's top folder nor a copy of it (an
    installed advlens run from another project's repository, or from a checkout edited since,
    a source tarball extracted inside another repository): the commit git finds there says
    nothing of the code that ran. Read once per process.
    """
    try:
        root = repo_root().resolve()
        top = Path(os.fsdecode(_git("rev-parse", "--show-toplevel").strip())).resolve()
        if top != root or not _runs_from(root):
            return "unknown"
        commit = _git("rev-parse", "HEAD").decode().strip()
        if not _git("status", "--porcelain", "--", *CODE_PATHS).strip():
            return commit
        digest = hashlib.sha256(_git("diff", "--binary", "HEAD", "--", *CODE_PATHS))
        # a new, not yet added module changes behaviour too; git diff does not show it
        for name in _git("ls-files", "--others", "--exclude-standard", "-z", "--",
                         *CODE_PATHS).split(b"\0"):
            if not name:
                continue
            digest.update(name + b"\0")
            path = repo_root() / name.decode()
            # a link (even a dangling one) by its target; a nested repository (listed as a
            # folder) by its name only
            if path.is_symlink():
                digest.update(os.fsencode(os.readlink(path)))
            elif path.is_file():
                digest.update(path.read_bytes())
    except (OSError, subprocess.SubprocessError, UnicodeError):
        return "unknown"
    return f"{commit}-dirty-{digest.hexdigest()[:12]}"


def read_figure_record(path: str | Path) -> dict[str, Any]:
    """A figure's or table's ``*.provenance.json``; ValueError naming the file when it is not
    the object :mod:`advlens.plots` writes (``parameters`` and ``compute`` objects), e.g. in a
    run folder copied from elsewhere with a damaged or foreign record."""
    found = read_json(path)
    bad = (type(found).__name__ if not isinstance(found, dict) else
           next((f"its {key!r} is {type(found[key]).__name__}" for key in ("parameters", "compute")
                 if not isinstance(found.get(key, {}), dict)), None))
    if bad:
        raise ValueError(f"{path} is not a provenance record (a JSON object with "
                         f"'parameters' and 'compute' objects; {bad}); rerun its notebook or "
                         "delete the file.")
    return found


RUN_RECORD = "run.json"
COMPLETED = "completed"


def run_record(folder: str | Path) -> dict[str, Any] | None:
    """``<folder>/run.json``, the record :mod:`advlens.runner` writes for every notebook it runs
    (``status``: ``running`` / ``completed`` / ``failed``, ``params``, ``error``...); None when
    there is none (a legacy run, or the committed ``figures/``). An unreadable record reads as
    ``{"status": "unreadable run.json (...)"}``: not complete."""
    path = Path(folder) / RUN_RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"status": f"unreadable {RUN_RECORD} ({err})"}
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        return {"status": f"{RUN_RECORD} without a status"}
    return record


def run_status(folder: str | Path) -> str | None:
    """The status of a notebook's output folder (see :func:`run_record`); None when it has no
    ``run.json``, which is accepted as complete."""
    record = run_record(folder)
    return None if record is None else str(record["status"])


def incomplete_notebooks(run: str | Path) -> dict[str, str]:
    """``{notebook folder: what its run.json says}`` for every ``<run>/<notebook>/`` whose
    ``run.json`` exists and does not say ``completed`` (the error included when recorded)."""
    found = {}
    for folder in sorted(p for p in Path(run).glob("*/") if p.is_dir()):
        record = run_record(folder)
        if record is not None and record["status"] != COMPLETED:
            error = record.get("error")
            found[folder.name] = f"{record['status']}" + (f" ({error})" if error else "")
    return found


_COMPUTE_ENV = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "CUBLAS_WORKSPACE_CONFIG", "ADVLENS_DEVICE", "CUDA_VISIBLE_DEVICES")


def compute_settings() -> dict[str, Any]:
    """How torch computes here: the settings that make results bitwise different elsewhere.

    Returns
    -------
    ``cpu_capability`` (the instruction set torch's CPU kernels use: ``DEFAULT``, ``AVX2``,
    ``AVX512``...; set it with ``ATEN_CPU_CAPABILITY``), intra-/inter-op ``threads``, the
    deterministic-algorithm flags, cuDNN's flags and the environment variables that set them;
    the CUDA ``gpus`` torch sees (the paper zoo's models run there, and training with
    ``$ADVLENS_DEVICE=cuda``), the ``cuda_version`` torch was built with and the
    ``cudnn_version`` it loads (its convolution algorithms; None without), and whether float32
    matmuls / cuDNN convolutions may run in ``tf32`` (on by default for convolutions: 10
    mantissa bits instead of 23).
    """
    import torch

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda_available": torch.cuda.is_available(),
        "gpus": gpus,
        "cuda_version": torch.version.cuda,
        "cudnn_version": _cudnn_version(),
        "tf32": {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
                 "cudnn": bool(torch.backends.cudnn.allow_tf32)},
        "env": {name: os.environ.get(name) for name in _COMPUTE_ENV},
    }


def _cudnn_version() -> int | None:
    """The cuDNN version torch loads; None without one, or where asking initialises a CUDA that
    is not there (the first call loads the library: a CUDA-built torch without a driver)."""
    import torch

    try:
        return torch.backends.cudnn.version()
    except (RuntimeError, AssertionError):
        return None


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
