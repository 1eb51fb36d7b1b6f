"""CIFAR-10 from the python pickles (``cifar-10-batches-py/``, the layout torchvision extracts)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from advlens.checks import check_count
from advlens.data.errors import corrupt, dataset_folder, missing
from advlens.data.imageset import ImageSet
from advlens.paths import data_dir

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
SPLITS = ("train", "test")
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
_HOW = ("Download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
        "extract it there (so that cifar-10-batches-py/data_batch_1 exists), or pass root=.")


URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def download_cifar10(root: str | Path | None = None) -> Path:
    """Fetch the CIFAR-10 archive through the hash-checked cache (:func:`advlens.data.cache.
    fetch`; offline, it says where to put the file by hand) and extract it under ``root``
    (default ``data_dir()/cifar10``). Returns the ``cifar-10-batches-py`` folder.

    The archive is extracted into a private folder beside it and renamed into place, so an
    interrupted extraction leaves no partial folder that :func:`has_cifar10` accepts, and
    processes extracting at once (a batch over seeds) never read a file another one is still
    writing: the first complete folder renamed into place is kept."""
    import shutil
    import tarfile
    import tempfile

    from advlens.data.cache import fetch
    from advlens.io import extract_tar, file_lock

    base = Path(root).expanduser() if root is not None else data_dir() / "cifar10"
    archive = fetch(URL, ARCHIVE_SHA256, ARCHIVE)
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-extracting-", dir=base) as tmp:
        with tarfile.open(archive, "r:gz") as tar:
            extract_tar(tar, tmp)  # its SHA-256 checked by fetch
        extracted, target = Path(tmp) / FOLDER, base / FOLDER
        if not (extracted / TRAIN_FILES[0]).is_file():
            raise corrupt(archive, f"it holds no {FOLDER}/{TRAIN_FILES[0]}")
        # one process at a time: two replacing a partial folder at once, the second renamed its
        # folder in while the first was between removing it and renaming (OSError there)
        with file_lock(base / f".{FOLDER}.lock"):
            try:
                extracted.rename(target)  # onto nothing (or an empty folder): atomic
            except OSError:
                if not has_cifar10(base):  # a partial folder of an earlier, older extraction
                    shutil.rmtree(target, ignore_errors=True)
                    extracted.rename(target)
                # else another process put its complete folder there first: keep that one
    return _folder(base)


def _folder(root: str | Path | None) -> Path:
    return dataset_folder(root, data_dir() / "cifar10", FOLDER, "CIFAR-10 (python version)", _HOW)


def has_cifar10(root: str | Path | None = None) -> bool:
    """Whether ``root`` (default ``data_dir()/cifar10``) holds the extracted python batches
    (every train and test batch file)."""
    try:
        folder = _folder(root)
    except FileNotFoundError:
        return False
    return all((folder / name).is_file() for name in TRAIN_FILES + TEST_FILES)


def _latin1(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as a Python 3 pickle of protocol < 3 rebuilds ``bytes`` with it
    (``encode(text, "latin1")``), and no other encoding."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is "
                                     "not how a pickle stores bytes")
    return text.encode("latin1")


def _batch_globals() -> dict[tuple[str, str], object]:
    """The globals a CIFAR-10 batch pickle names: numpy's array and scalar rebuilders under
    the module names numpy 1.x (the official release) and 2.x write, and bytes as Python 3
    pickles them at protocol 2. Nothing that can run other code."""
    try:  # numpy >= 2 moved them to numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    found: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray,
                                             ("numpy", "dtype"): np.dtype,
                                             ("_codecs", "encode"): _latin1}
    for core in ("numpy.core", "numpy._core"):
        found |= {(f"{core}.multiarray", "_reconstruct"): _reconstruct,
                  (f"{core}.multiarray", "scalar"): scalar,
                  (f"{core}.numeric", "_frombuffer"): _frombuffer}
    return found


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays only: a pickle can call any
    function it names, so one passed off as a CIFAR-10 batch could run code when read."""

    allowed = _batch_globals()

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR-10 batch "
                                         "(dicts, lists, bytes and numpy arrays) never holds; "
                                         "unpickling it could run code from the file")
        return self.allowed[module, name]


def _unpickle(path: Path) -> dict:
    if not path.exists():
        raise missing(path, "CIFAR-10 batch file", _HOW)
    try:
        with open(path, "rb") as handle:
            obj = _BatchUnpickler(handle, encoding="bytes").load()
    except Exception as err:
        raise corrupt(path, f"{type(err).__name__}: {err}") from err
    if not isinstance(obj, dict):
        raise corrupt(path, "the pickle does not hold a dict")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def cifar10(split: str = "train", root: str | Path | None = None, n: int | None = None) -> ImageSet:
    """CIFAR-10 ``split`` ("train": 50,000, "test": 10,000) as 3×32×32 images in [0, 1].

    ``root`` holds ``cifar-10-batches-py/`` (default ``data_dir()/cifar10``); ``n`` keeps the
    first ``n`` images.
    """
    if split not in SPLITS:
        raise ValueError(f"cifar10 split must be 'train' or 'test'; got {split!r}.")
    n = check_count(n, "n")
    folder = _folder(root)
    images, labels = [], []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        batch = _unpickle(folder / name)
        try:
            raw = np.asarray(batch["data"])
            if raw.dtype != np.uint8 and not (np.issubdtype(raw.dtype, np.integer) and raw.size
                                              and 0 <= raw.min() and raw.max() <= 255):
                raise ValueError(f"'data' is {raw.dtype}"
                                 + (f" in [{raw.min()}, {raw.max()}]" if raw.size else "")
                                 + ", expected uint8 pixels 0-255")
            if raw.ndim != 2 or raw.shape[1] != 3 * 32 * 32:  # a row per image, R, G, B planes
                raise ValueError(f"'data' has shape {raw.shape}, expected (N, 3072)")
            data = raw.astype(np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(batch["labels"], dtype=np.int64)
        except (KeyError, ValueError) as err:
            raise corrupt(folder / name, f"bad 'data'/'labels': {err}") from err
        if len(y) != len(data) or (y.size and (y.min() < 0 or y.max() > 9)):
            raise corrupt(folder / name, "labels do not match the images")
        images.append(data)
        labels.append(y)
        if n is not None and sum(map(len, labels)) >= n:
            break
    classes = list(CLASSES)
    if (folder / "batches.meta").exists():
        meta = _unpickle(folder / "batches.meta")
        names = meta.get("label_names")
        if names is not None and len(names) == 10:
            classes = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
    x, y = np.concatenate(images)[:n], np.concatenate(labels)[:n]
    return ImageSet(images=torch.from_numpy(x.astype(np.float32) / 255.0),
                    labels=torch.from_numpy(y), masks=None, classes=classes,
                    name=f"cifar10-{split}")
