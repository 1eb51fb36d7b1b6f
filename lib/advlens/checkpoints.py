"""Reading checkpoint files safely: tensors and plain containers only, unless trusted.

A ``.pt``/``.pth``/``.ckpt`` file is a pickle, and unpickling can run arbitrary code. Every
checkpoint is read with ``torch.load(weights_only=True)``, which only rebuilds tensors, plain
containers and the globals allow-listed in :data:`SAFE_GLOBALS` (those that published
checkpoints such as the Salman et al. robust ImageNet files and timm/torchvision weights hold:
numpy scalars and dtypes next to the state dicts). A file that needs anything else is refused
with an :class:`UntrustedCheckpointError` naming the globals it asks for; full unpickling is
only done with ``trust=True`` (or ``$ADVLENS_TRUST_CHECKPOINTS=1``), for files you trust.
``.safetensors`` files hold tensors only and are always safe.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRUST_ENV = "ADVLENS_TRUST_CHECKPOINTS"


def _numpy_globals() -> list[Any]:
    """numpy objects that state dicts of published checkpoints contain (scalars, dtypes)."""
    found: list[Any] = [np.dtype, np.ndarray]
    try:  # numpy >= 2 moved the scalar reconstructor and has one class per dtype
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    found += [scalar, _reconstruct]
    # files written under numpy 1.x (most published checkpoints) name them numpy.core.multiarray
    found += [(obj, f"numpy.core.multiarray.{obj.__name__}") for obj in (scalar, _reconstruct)
              if obj.__module__ != "numpy.core.multiarray"]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:  # every numeric and bool dtype class: plain descriptors (a uint8 or
        # float16 scalar in a checkpoint was read as a corrupt file, "download it again")
        found += [getattr(dtypes, n) for n in sorted(dir(dtypes))
                  if n.endswith("DType") and isinstance(getattr(dtypes, n), type)
                  and not n.startswith(("Object", "Void", "String", "Str", "Bytes"))]
    return found


SAFE_GLOBALS: list[Any] = _numpy_globals()


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs globals beyond the allow-list; it is only unpickled when trusted."""


def trusted_by_env() -> bool:
    """Whether ``$ADVLENS_TRUST_CHECKPOINTS`` is set to a true value (1, true, yes)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


# what a download that failed quietly leaves instead of the weights, by their first bytes
_PLACEHOLDERS = ((b"version https://git-lfs", "a Git LFS pointer (the weights were never fetched: "
                  "run `git lfs pull`, or download the file itself)"),
                 (b"<!doctype html", "an HTML page (a login or error page saved in its place)"),
                 (b"<html", "an HTML page (a login or error page saved in its place)"))


# weights of other frameworks, which torch cannot read (their load failed as a "corrupt
# download": "download it again" sent users to fetch the same file)
_FOREIGN = ((b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras/TensorFlow weights, e.g. serre-lab's "
             "harmonized models' .h5)"),)
_NOT_TORCH = ("advlens reads PyTorch weights only (a torch.save state dict or safetensors): "
              "convert the model to PyTorch first, or take its PyTorch release")


def _refuse_placeholder(path: Path) -> None:
    with path.open("rb") as f:
        raw = f.read(64)
    if not raw:
        raise ValueError(f"{path} is empty, not a checkpoint; download it again.")
    head = raw.lstrip().lower()
    for start, what in _PLACEHOLDERS:
        if head.startswith(start):
            raise ValueError(f"{path} is {what}, not a checkpoint.")
    for start, what in _FOREIGN:
        if raw.startswith(start):
            raise ValueError(f"{path} is {what}; {_NOT_TORCH}.")
    if raw.startswith(b"PK\x03\x04") and _is_npz(path):
        raise ValueError(f"{path} is a NumPy .npz archive (arrays of another framework's "
                         f"weights?); {_NOT_TORCH}.")


def _is_npz(path: Path) -> bool:
    """Whether zip file ``path`` holds NumPy arrays and no torch pickle (``data.pkl``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` holds safetensors data whatever its name (hub weights saved as ``.pth``):
    an 8-byte little-endian header length that fits the file, then the JSON header's ``{``."""
    with path.open("rb") as f:
        head = f.read(9)
    size = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 0 < size <= path.stat().st_size - 8


def load_checkpoint(path: str | Path, *, trust: bool | None = None) -> Any:
    """The object stored in checkpoint ``path``, on the CPU.

    Parameters
    ----------
    path: a ``torch.save`` file (zip or legacy pickle, also written with ``dill``) or a
        safetensors file (recognised by its contents, whatever its suffix).
    trust: allow full unpickling (may run code from the file) when the safe load refuses it;
        ``None`` reads ``$ADVLENS_TRUST_CHECKPOINTS``.

    Returns
    -------
    What was saved (usually a dict holding a state dict).

    Raises FileNotFoundError for a missing file, :class:`UntrustedCheckpointError` naming the
    extra globals (or a legacy ``.tar`` checkpoint, torch <= 0.1's format, which only full
    unpickling reads) and the trust option, ValueError for a file torch cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}.")
    _refuse_placeholder(path)
    if path.suffix == ".safetensors" or _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err}); download it "
                             "again.") from err
    trust = trusted_by_env() if trust is None else trust
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        extra = _unsafe_globals(path, err)
        # no global asked for, or a name cut off by the end of a partial file: the pickle itself
        # is broken
        cut = _truncated_legacy(path)
        if (not extra or cut) and not trust:
            raise ValueError(f"{path} is not a readable torch checkpoint ("
                             f"{_CUT if cut else _reason(err)}); download it again.") from None
        if not trust:
            raise UntrustedCheckpointError(
                f"{path} needs more than tensors to load ({', '.join(extra)}); unpickling it can "
                f"run code from the file. If you trust it, pass trust=True (trust_checkpoints=True "
                f"in the zoo) or set ${TRUST_ENV}=1.") from None
    except (RuntimeError, EOFError, OSError, struct.error, IndexError, UnicodeDecodeError) as err:
        if _LEGACY_TAR in str(err):  # torch <= 0.1's format: never readable with weights_only
            if not _is_legacy_tar(path):
                raise ValueError(f"{path} is a tar archive, not a checkpoint; extract it (tar -xf) "
                                 "and pass the checkpoint file inside.") from None
            if not trust:
                raise UntrustedCheckpointError(
                    f"{path} is a legacy .tar checkpoint (torch <= 0.1), which torch only reads "
                    "by full unpickling; that can run code from the file. If you trust it, pass "
                    f"trust=True (trust_checkpoints=True in the zoo) or set ${TRUST_ENV}=1."
                ) from None
        else:
            # (a legacy file cut short: IndexError from a pickle with no byte left to read,
            # struct.error from one cut inside a length or integer field)
            cut = isinstance(err, (IndexError, struct.error)) or not str(err)
            reason = _CUT if cut else err
            raise ValueError(f"{path} is not a readable torch checkpoint ({reason}); download "
                             "it again.") from err
    import dill

    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=dill)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, struct.error) as err:
        raise ValueError(f"{path} is not a readable torch checkpoint ({err}); download it "
                         "again.") from err


def _unsafe_globals(path: Path, err: pickle.UnpicklingError) -> list[str]:
    """The globals beyond the allow-list that checkpoint ``path`` asks for (empty when the safe
    load failed for another reason, e.g. a corrupt file)."""
    # legacy (non-zip) files cannot be scanned; the error names the first global refused
    found = re.findall(r"GLOBAL (\S+) was not an allowed global", str(err))
    # (a class refused while building an object names itself differently)
    found += re.findall(r"but got <class '([^']+)'>", str(err))
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            found += torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a readable zip checkpoint: the message is all there is
        pass
    return sorted(set(found))


_CUT = "it ends inside its pickled data: a partial download?"
# torch's refusal of a legacy .tar checkpoint under weights_only=True
_LEGACY_TAR = "legacy .tar format"


def _truncated_legacy(path: Path) -> bool:
    """Whether a legacy (pre-zip) checkpoint ends inside its pickles -- the magic number,
    protocol, system info, object and storage keys, five pickles before the tensors' bytes --
    as a partial download does (a global's name cut short reads as an unknown global)."""
    if zipfile.is_zipfile(path):
        return False
    with path.open("rb") as f:
        try:
            for _ in range(5):
                for _ in pickletools.genops(f):
                    pass
        except ValueError:  # cut short, or not a pickle at all (e.g. an old tar checkpoint)
            return f.tell() >= path.stat().st_size
    return False


def _is_legacy_tar(path: Path) -> bool:
    """Whether tar file ``path`` holds the members a legacy (torch <= 0.1) checkpoint has."""
    import tarfile

    try:
        with tarfile.open(path, "r:") as tar:
            return {"pickle", "storages", "tensors"} <= set(tar.getnames())
    except (tarfile.TarError, OSError):
        return False


def _reason(err: Exception) -> str:
    """The cause in torch's long weights-only error (e.g. ``Unsupported operand 110``)."""
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(err))
    return found.group(1) if found else str(err).splitlines()[0]


def state_dict_of(checkpoint: Any, path: str | Path,
                  keys: tuple[str, ...] = ("model", "state_dict", "model_state_dict",
                                           "state_dict_ema")) -> dict[str, torch.Tensor]:
    """The state dict inside ``checkpoint`` (the object itself, or under one of ``keys``)."""
    if isinstance(checkpoint, dict):
        for key in keys:
            if isinstance(checkpoint.get(key), dict):
                return checkpoint[key]
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
    raise ValueError(f"{path} holds no state dict (a dict of tensors, or one under "
                     f"{', '.join(repr(k) for k in keys)}).")


def rekeyed(state: Mapping[str, torch.Tensor], rename: Callable[[str], str | None]
            ) -> dict[str, torch.Tensor]:
    """``state`` with every key renamed by ``rename`` (dropped where it returns None), keeping
    the per-module versions ``state_dict()`` records (``_metadata``) under the renamed modules:
    a plain dict loses them, and modules that read their version when loading (torchvision's
    MNASNet, BatchNorm, ViT's MLP block) then refuse the file or treat it as their oldest one."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        if (new := rename(key)) is not None:
            out[new] = value
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        kept: OrderedDict[str, Any] = OrderedDict()
        for module, info in metadata.items():  # module names have no final dot; "" is the root
            new = rename(f"{module}.")
            if new is not None and (new == "" or new.endswith(".")):
                kept[new.removesuffix(".")] = info
        out._metadata = kept  # type: ignore[attr-defined]
    return out
