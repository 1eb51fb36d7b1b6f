"""The zoo's checkpoint cache: one ``.pt`` state dict + one ``.json`` metadata file per model.

Files are named ``<name with / → _>-<config hash>`` under the zoo root
(``advlens.paths.zoo_dir()``, i.e. ``$ADVLENS_ZOO`` or ``data/zoo``). Both are written
atomically, the checkpoint first and the metadata last, so a model whose metadata exists was
saved completely; an interrupted build keeps every model finished before the interruption.

Several processes may share one zoo: :func:`model_lock` serialises training of one config
(an advisory ``flock`` on ``<stem>.lock``), so a second process waits and then loads the model
the first one saved instead of training it again.

On load the metadata must name the same config and hash, the checkpoint's SHA-256 must match
the one recorded, and every tensor's shape must match both the metadata and a freshly built
model. Anything else — a truncated, edited or foreign file — is reported with
``warnings.warn`` naming the file, and the caller retrains; a bad file is never used.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlens.io import READ_ONLY, atomic_write, atomic_write_json, file_lock, read_json, sha256_file
from advlens.paths import zoo_dir
from advlens.zoo.architectures import ZooNet, build_model
from advlens.zoo.config import TRAINING_CODE_VERSION, ModelConfig


class CacheWarning(UserWarning):
    """A cached zoo file was unusable (corrupt, mismatched or incomplete) and is replaced."""


@dataclass(frozen=True)
class CachePaths:
    """The checkpoint and metadata files of one config."""

    checkpoint: Path
    meta: Path


def cache_root(root: str | Path | None = None) -> Path:
    """``root`` if given (created if missing), else :func:`advlens.paths.zoo_dir`."""
    if root is None:
        return zoo_dir()
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_paths(config: ModelConfig, root: str | Path | None = None) -> CachePaths:
    """Where ``config``'s checkpoint and metadata live."""
    stem = f"{config.name.replace('/', '_')}-{config.hash}"
    base = cache_root(root)
    return CachePaths(base / f"{stem}.pt", base / f"{stem}.json")


@contextlib.contextmanager
def model_lock(config: ModelConfig, root: str | Path | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``config``'s cache entry (no-op where ``fcntl`` is
    unavailable, e.g. on Windows, and in a zoo this process may not write, such as a shared zoo
    mounted read-only: its models load as they are, files being replaced atomically, never
    seen half-written; a model missing there is refused before training,
    :func:`check_writable`; with a warning, on a file system without ``flock``:
    :func:`advlens.io.file_lock`)."""
    with file_lock(cache_paths(config, root).meta.with_suffix(".lock")):
        yield


def tensor_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Shape of every tensor of the state dict (parameters and buffers)."""
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def save(model: nn.Module, config: ModelConfig, meta: dict[str, Any],
         root: str | Path | None = None) -> dict[str, Any]:
    """Write ``model``'s state dict and its metadata (``meta`` plus config, hash, SHA-256,
    shapes); returns the full metadata written."""
    paths = cache_paths(config, root)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write(paths.checkpoint, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    full = {
        **meta,
        "name": config.name,
        "hash": config.hash,
        "config": config.to_dict(),
        "training_code_version": TRAINING_CODE_VERSION,
        "checkpoint": paths.checkpoint.name,
        "sha256": sha256_file(paths.checkpoint),
        "param_shapes": tensor_shapes(model),
        "n_params": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(paths.meta, full)
    return full


def update_meta(config: ModelConfig, meta: dict[str, Any],
                root: str | Path | None = None) -> None:
    """Rewrite ``config``'s metadata (e.g. after adding a robust-accuracy entry). In a zoo this
    process may not write (a shared zoo mounted read-only) the entry is not kept, with a
    :class:`CacheWarning`: the evaluation just made is still returned, and made again next time."""
    try:
        atomic_write_json(cache_paths(config, root).meta, meta)
    except OSError as err:
        if err.errno not in READ_ONLY:
            raise
        warnings.warn(f"zoo cache: {err}; {config.name}'s new evaluation is used but not "
                      "recorded (it is measured again next time).", CacheWarning, stacklevel=3)


def check_writable(config: ModelConfig, root: str | Path | None = None) -> None:
    """Raise PermissionError, before any training, if ``config`` could not be saved: its zoo
    folder may not be written (a shared zoo mounted read-only). The save failed only after the
    model had trained, naming a temporary file."""
    folder = cache_paths(config, root).checkpoint.parent
    if not os.access(folder, os.W_OK):
        raise PermissionError(
            f"{config.name} is not in the zoo at {folder} (or its files are unusable) and must "
            f"be trained, but that folder is read-only for this process. Set $ADVLENS_ZOO to a "
            f"writable folder (a copy of this zoo there keeps its models), or build the model "
            f"where the zoo is writable.")


class _Unusable(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


def _describes(stored: Any, config: ModelConfig) -> bool:
    """Whether stored metadata describes ``config``; fields added after a model was saved
    (``LATER_FIELDS``) take their defaults, as in the hash."""
    if not isinstance(stored, dict):
        return False
    try:
        return ModelConfig.from_dict(stored) == config
    except (TypeError, ValueError):
        return False


def _verified(config: ModelConfig, paths: CachePaths) -> tuple[ZooNet, dict[str, Any]]:
    if not paths.meta.exists():
        raise _Unusable(paths.checkpoint, "checkpoint without metadata (an interrupted save)")
    try:
        meta = read_json(paths.meta)
    except ValueError as err:
        raise _Unusable(paths.meta, f"unreadable metadata ({err})") from err
    if not isinstance(meta, dict) or meta.get("hash") != config.hash \
            or not _describes(meta.get("config"), config):
        raise _Unusable(paths.meta, "metadata describes a different config")
    if not paths.checkpoint.exists():
        raise _Unusable(paths.checkpoint, "checkpoint missing")
    digest = sha256_file(paths.checkpoint)
    if digest != meta.get("sha256"):
        raise _Unusable(paths.checkpoint, f"SHA-256 {digest[:12]}… differs from the recorded "
                                          f"{str(meta.get('sha256'))[:12]}… (corrupt or edited)")
    try:
        state = torch.load(paths.checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means unusable
        raise _Unusable(paths.checkpoint, f"cannot be read by torch.load ({err})") from err
    model = build_model(config.arch, config.dataset, seed=config.seed,
                        num_classes=config.num_classes)
    expected = tensor_shapes(model)
    found = {k: list(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if found != expected or meta.get("param_shapes") != expected:
        raise _Unusable(paths.checkpoint, "tensor names/shapes differ from the architecture")
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def load_cached(config: ModelConfig,
                root: str | Path | None = None) -> tuple[ZooNet, dict[str, Any]] | None:
    """The cached, verified model and metadata of ``config``; ``None`` if it must be trained
    (never cached, or unusable — the latter with a :class:`CacheWarning` naming the file)."""
    paths = cache_paths(config, root)
    if not paths.meta.exists() and not paths.checkpoint.exists():
        return None
    try:
        return _verified(config, paths)
    except _Unusable as err:
        warnings.warn(f"zoo cache: {err}; retraining {config.name}.", CacheWarning,
                      stacklevel=3)
        return None
