"""STL-10 from the binary release (``stl10_binary/*.bin``: uint8, each image column-major)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from advlens.checks import check_count
from advlens.data.errors import corrupt, dataset_folder, missing
from advlens.data.imageset import ImageSet
from advlens.data.transforms import resize
from advlens.paths import data_dir

FOLDER = "stl10_binary"
SIDE = 96
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
SPLITS = ("train", "test")
SPLIT_SIZES = {"train": 5_000, "test": 8_000}
_HOW = ("Download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and extract "
        "it there (so that stl10_binary/train_X.bin exists), or pass root=.")


def _folder(root: str | Path | None) -> Path:
    return dataset_folder(root, data_dir() / "stl10", FOLDER, "STL-10 (binary version)", _HOW)


def read_images(path: Path, n: int | None = None) -> np.ndarray:
    """(N, 3, 96, 96) uint8 from an STL-10 ``*_X.bin`` (stored channel, then column-major)."""
    if not path.exists():
        raise missing(path, "STL-10 image file", _HOW)
    per_image = 3 * SIDE * SIDE
    size = path.stat().st_size
    if size == 0 or size % per_image:
        raise corrupt(path, f"{size} bytes is not a multiple of {per_image} (one 3×96×96 image)")
    count = size // per_image if n is None else min(n, size // per_image)
    raw = np.fromfile(path, dtype=np.uint8, count=count * per_image)
    return raw.reshape(count, 3, SIDE, SIDE).transpose(0, 1, 3, 2)  # column-major -> (H, W)


def read_labels(path: Path, n: int | None = None) -> np.ndarray:
    """0-based int64 labels from an STL-10 ``*_y.bin`` (stored 1..10)."""
    if not path.exists():
        raise missing(path, "STL-10 label file", _HOW)
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64)[:n]
    if y.size == 0 or y.min() < 1 or y.max() > 10:
        raise corrupt(path, "labels must be 1..10")
    return y - 1


def stl10(split: str = "train", root: str | Path | None = None, n: int | None = None,
          size: int | None = None) -> ImageSet:
    """STL-10 ``split`` ("train": 5,000, "test": 8,000) in [0, 1]; ``size`` resizes (e.g. 32)."""
    if split not in SPLITS:
        raise ValueError(f"stl10 split must be 'train' or 'test'; got {split!r}.")
    n, size = check_count(n, "n"), check_count(size, "size", none="no resizing")
    folder = _folder(root)
    x = read_images(folder / f"{split}_X.bin", n)
    y = read_labels(folder / f"{split}_y.bin", n)
    if len(y) != len(x):
        raise corrupt(folder / f"{split}_y.bin", f"{len(y)} labels for {len(x)} images")
    classes = list(CLASSES)
    names_file = folder / "class_names.txt"
    if names_file.exists():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        classes = names if len(names) == 10 else classes
    images = torch.from_numpy(np.ascontiguousarray(x).astype(np.float32) / 255.0)
    if size is not None:
        images = resize(images, size)
    return ImageSet(images=images, labels=torch.from_numpy(y), masks=None, classes=classes,
                    name=f"stl10-{split}")
