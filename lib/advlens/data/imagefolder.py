"""ImageNet-style ImageFolder: ``root/<class>/<image>``, classes in sorted folder order; or a
flat folder of images labelled by Kaggle's ImageNet ``LOC_val_solution.csv``. Classes named by
ImageNet-1k wnids keep the 1,000-class indices of the published models, also for a subset, and
so do ImageNetV2's folders named by the index (``0`` ... ``999``)."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from advlens.checks import check_count, check_positive_int
from advlens.data.errors import corrupt, missing
from advlens.data.imageset import ImageSet

# torchvision's IMG_EXTENSIONS, matched case-insensitively as its ImageFolder does, so that the
# same files (and so the same indices) are read
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL filters by the names of torchvision's InterpolationMode / timm's pretrained configs
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
# Kaggle's ImageNet release ("imagenet-object-localization-challenge"): the validation images
# flat in ILSVRC/Data/CLS-LOC/val, labelled by the solution CSV at the top of the download (its
# PredictionString starts with the wnid), the class order in the synset mapping beside it
KAGGLE_LABELS = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
KAGGLE_SPLIT_DIR = Path("ILSVRC", "Data", "CLS-LOC")


def resized_size(w: int, h: int, short: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``short``, as torchvision's ``Resize(short)``."""
    # torchvision truncates the longer side (int(), not round())
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def crop_box(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) of torchvision's ``CenterCrop(size)`` of a w×h image."""
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return left, top, left + size, top + size


def imagenet_wnids() -> list[str] | None:
    """The 1,000 ImageNet-1k wnids in the published models' index order (timm's copy of the
    list: sorted, as the 1,000 class folders sort); None without timm."""
    try:
        from timm.data import ImageNetInfo
    except ImportError:  # pragma: no cover - timm is a dependency
        return None
    return list(ImageNetInfo().label_names())


def model_classes(classes: list[str]) -> list[str]:
    """``classes`` in label order, or ImageNet-1k's 1,000 wnids when ``classes`` are some of
    them: a copy of ImageNet holding a subset of the classes (its sorted folders would number
    n02105855 4th, not 230th) is then labelled as the models index it. The 1,000 folders
    ``0`` ... ``999`` (ImageNetV2's, named by the class index) are labelled by their number
    (sorted as text, folder ``10`` would be 3rd)."""
    wnids = imagenet_wnids()
    if wnids is not None and set(classes) <= set(wnids):
        return wnids
    numbered = [str(i) for i in range(1000)]
    return numbered if set(classes) == set(numbered) else classes


def _check_mixed(classes: list[str], base: Path) -> None:
    """ValueError when a few folders under ``base`` beside more ImageNet-1k wnid folders are not
    named like wnids: sorted with them, the wnid folders would not get the published models'
    indices (folders of other wnids, ImageNet-21k's, keep the sorted order)."""
    wnids = set(imagenet_wnids() or ())
    odd = [name for name in classes if not re.fullmatch(r"n\d{8}", name)]
    known = sum(name in wnids for name in classes)
    if odd and known > len(odd):
        raise ValueError(f"{known} folder(s) under {base} are ImageNet-1k wnids but "
                         f"{len(odd)} are not, e.g. {', '.join(odd[:3])} (a NAS's "
                         "@eaDir thumbnails, __MACOSX, a stray folder); each folder is a class, "
                         "and in sorted folder order the wnid folders would not get the published "
                         f"models' indices: move them out of {base}.")


def _read(path: Path, size: int | None, crop_fraction: float,
          interpolation: str = "bilinear") -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            # 16-bit: convert("RGB") would saturate it at 255 (PNG and PGM open as "I;16", or
            # as "I" in Pillow before 10.3)
            if img.mode.startswith("I;16") or (img.mode == "I" and img.format in ("PNG", "PPM")):
                wide = np.asarray(img, dtype=np.float64) / 65535.0
                img = Image.fromarray(np.round(wide * 255.0).astype(np.uint8), "L")
            elif img.mode in ("I", "F"):  # 32-bit (TIFF): of no known range
                kind = "32-bit integers" if img.mode == "I" else "floats"
                raise ValueError(f"{path}: its pixels are {kind} (PIL mode {img.mode!r}), whose "
                                 "range is unknown; save it as an 8- or 16-bit image.")
            img = img.convert("RGB")
            if size is not None:
                # ImageNet evaluation as timm's transforms_imagenet_eval: shorter side to
                # floor(size / crop_fraction), then torchvision's centre crop
                new = resized_size(*img.size, math.floor(size / crop_fraction))
                if new != img.size:
                    img = img.resize(new, Image.Resampling[interpolation.upper()])
                img = img.crop(crop_box(*img.size, size))
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise corrupt(path, f"cannot decode the image: {err}") from err


def _class_files(folder: Path) -> list[Path]:
    """The images under ``folder``, sub-folders included, in the order torchvision's
    ``make_dataset`` lists them (``sorted(os.walk(...))``, then sorted names)."""
    found = []
    for dirpath, _, names in sorted(os.walk(folder, followlinks=True)):
        # not dot-files: macOS leaves "._x.png" metadata beside each image on other disks
        if any(part.startswith(".") for part in Path(dirpath).relative_to(folder).parts):
            continue
        found += [Path(dirpath) / f for f in sorted(names)
                  if Path(f).suffix.lower() in EXTENSIONS and not f.startswith(".")]
    return found


def _find_labels(base: Path) -> Path | None:
    """Kaggle's solution CSV in ``base`` or one of its four parents (the download's top folder
    holds it, four levels above ``ILSVRC/Data/CLS-LOC/val``)."""
    for folder in [base, *list(base.resolve().parents)[:4]]:
        if (folder / KAGGLE_LABELS).is_file():
            return folder / KAGGLE_LABELS
    return None


def flat_labels(labels: str | Path) -> tuple[list[str], dict[str, str]]:
    """The classes (in index order) and each image's class from Kaggle's ImageNet solution CSV
    (``ImageId,PredictionString``; the string's first word is the image's wnid).

    The order is that of ``LOC_synset_mapping.txt`` beside the CSV (the 1,000 wnids sorted, as
    the class folders sort), else the CSV's wnids sorted (:func:`model_classes`: ImageNet-1k's
    1,000 when they are among them).
    """
    path = Path(labels)
    if not path.is_file():
        raise missing(path, f"image labels ({KAGGLE_LABELS})",
                      "Give the solution CSV of Kaggle's ImageNet download (ImageId,"
                      "PredictionString).")
    # utf-8-sig: a CSV re-saved by Excel or PowerShell starts with a byte-order mark
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if rows and len(rows[0]) == 1 and rows[0][0].strip().isdigit():
        # ILSVRC2012_validation_ground_truth.txt: ids of the devkit's meta.mat, whose order is
        # not the models' (sorted wnids); "corrupt ... download it again" sent users astray
        raise ValueError(f"{path} holds one number a line, as the ImageNet devkit's "
                         "ILSVRC2012_validation_ground_truth.txt (ILSVRC2012_IDs, numbered in "
                         "the devkit's meta.mat order, not the models' class order), which is "
                         "not read: sort the images into one folder per wnid (valprep.sh), or "
                         f"give Kaggle's {KAGGLE_LABELS}.")
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise corrupt(path, "expected the header 'ImageId,PredictionString'")
    wnid_of = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].split():
            raise corrupt(path, f"line {line} holds no image id and wnid: {row!r}")
        wnid_of[row[0].strip()] = row[1].split()[0]
    synsets = path.with_name(KAGGLE_SYNSETS)
    if synsets.is_file():
        classes = [ln.split()[0] for ln in synsets.read_text(encoding="utf-8-sig").splitlines()
                   if ln.strip()]
        unknown = sorted(set(wnid_of.values()) - set(classes))
        if unknown:
            raise corrupt(path, f"wnids {unknown[:3]} are not in {synsets}")
    else:
        classes = model_classes(sorted(set(wnid_of.values())))
    return classes, wnid_of


def _flat_files(base: Path, labels: Path) -> tuple[list[str], dict[str, list[Path]]]:
    """The classes and each class's images, for a folder of images labelled by ``labels``."""
    classes, wnid_of = flat_labels(labels)
    images = sorted(p for p in base.iterdir()
                    if p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))
    # Kaggle's ids are the names without extension; a CSV listing file names works too
    ids = {p: p.stem if p.stem in wnid_of else p.name for p in images}
    unlabelled = [p.name for p in images if ids[p] not in wnid_of]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} image(s) under {base} have no row in {labels}, e.g. "
                         f"{', '.join(unlabelled[:3])}: give the solution CSV of these images.")
    listed: dict[str, list[Path]] = {name: [] for name in classes}
    for p in images:
        listed[wnid_of[ids[p]]].append(p)
    return classes, listed


def _check_read(size: int | None, crop_fraction: float, interpolation: str) -> int | None:
    """The resize arguments of :func:`imagefolder` checked; returns ``size``."""
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1]; got {crop_fraction!r}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; "
                         f"got {interpolation!r}.")
    return None if size is None else check_count(size, "size")


def _listing(root: str | Path, split: str | None, max_per_class: int | None, n: int | None,
             seed: int, labels: str | Path | None
             ) -> tuple[Path, list[str], list[tuple[Path, int]]]:
    """The folder read, the classes in label order and the (file, label) pairs that
    :func:`imagefolder` reads, in its order."""
    n, max_per_class = check_count(n, "n"), check_count(max_per_class, "max_per_class")
    base = Path(root).expanduser()
    if split is not None and (base / split).is_dir():
        base = base / split
    elif split is not None and (base / KAGGLE_SPLIT_DIR / split).is_dir():
        base = base / KAGGLE_SPLIT_DIR / split
    if not base.is_dir():
        raise missing(base, "ImageFolder root", "Put one sub-folder of images per class there "
                      "(e.g. the ImageNet validation set sorted into class folders), or the "
                      f"images flat with Kaggle's {KAGGLE_LABELS}.")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    flat = labels if labels is not None else None if classes else _find_labels(base)
    if flat is not None:
        classes, listed = _flat_files(base, Path(flat))
        empty: list[str] = []  # a class of the CSV without images here: a subset, not a shift
    else:
        listed = {name: _class_files(base / name) for name in classes}
        empty = [name for name in classes if not listed[name]]
        _check_mixed(classes, base)
        classes = model_classes(classes)
    files = [(p, label) for label, name in enumerate(classes)
             for p in listed.get(name, [])[:max_per_class]]
    if not files and flat is None and any(p.suffix.lower() in EXTENSIONS
                                          and not p.name.startswith(".") for p in base.iterdir()):
        raise missing(base, "labels of the images lying flat there (the images inside class "
                      f"folders or Kaggle's {KAGGLE_LABELS} beside or up to four levels above)",
                      "Sort them into one folder per wnid (the official validation tar: "
                      "valprep.sh), or pass labels= the solution CSV.")
    if not files:
        raise missing(base, "images (in class sub-folders)",
                      f"Expected files ending in {', '.join(EXTENSIONS)} inside class folders "
                      f"(or flat, with Kaggle's {KAGGLE_LABELS} beside or above them).")
    if empty:  # as torchvision's ImageFolder: an empty folder would shift every later label
        raise ValueError(f"{len(empty)} folder(s) under {base} hold no image, e.g. "
                         f"{', '.join(empty[:3])}; each folder is a class (its sorted position "
                         f"its label): remove them or move them out of {base}.")
    if n is not None and n < len(files):
        keep = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:n]
        files = [files[i] for i in keep.sort().values.tolist()]
    return base, classes, files


def _stack(arrays: list[np.ndarray], base: Path) -> torch.Tensor:
    """Decoded images as one float tensor in [0, 1], N×3×H×W (all of one size)."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images under {base} have different sizes {sorted(shapes)[:3]}...; "
                         "pass size= to resize and centre-crop them.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)


def imagefolder(root: str | Path, split: str | None = None, *, size: int | None = None,
                crop_fraction: float = 0.875, interpolation: str = "bilinear",
                max_per_class: int | None = None, n: int | None = None, seed: int = 0,
                labels: str | Path | None = None, progress: bool = True) -> ImageSet:
    """Images under ``root`` (or ``root/split`` when that folder exists), one folder per class
    (its sub-folders included, as torchvision's ``ImageFolder``).

    A folder of images without class folders is read with ``labels``, Kaggle's ImageNet
    solution CSV (by default ``LOC_val_solution.csv`` found in the folder or up to four
    levels above it; :func:`flat_labels`); ``root`` may also be the top of Kaggle's download
    (``split`` is then read from ``ILSVRC/Data/CLS-LOC/<split>``). The images, labels and
    their order are those of the same images sorted into class folders. Folders named by
    ImageNet-1k wnids are labelled by their index among the 1,000 (:func:`model_classes`), so
    that a copy holding only some of the classes is scored as the published models index them
    (ValueError when a few folders beside them are not wnids), and ImageNetV2's folders
    ``0`` ... ``999`` by their number.

    ``size`` resizes the shorter side to ``floor(size / crop_fraction)`` with ``interpolation``
    (PIL's filter of that name, as torchvision's ``Resize``) and centre-crops ``size``
    (ImageNet's 256 → 224 at the default 0.875, as torchvision's ``Resize(256)`` +
    ``CenterCrop(224)``); without it every image must share one size.
    ``n`` reads only ``n`` files drawn at random (``seed``) from the listing, in listing order
    (a 1,000-image evaluation subset of the 50,000 ImageNet validation images).
    :func:`imagefolder_batches` reads the same images a batch at a time.
    """
    size = _check_read(size, crop_fraction, interpolation)
    base, classes, files = _listing(root, split, max_per_class, n, seed, labels)
    arrays = [_read(p, size, crop_fraction, interpolation)
              for p, _ in tqdm(files, desc=f"reading {base.name}", disable=not progress)]
    x = _stack(arrays, base)
    y = torch.tensor([label for _, label in files], dtype=torch.long)
    return ImageSet(images=x.contiguous(), labels=y, masks=None, classes=classes,
                    name=f"imagefolder-{base.name}")


def imagefolder_batches(root: str | Path, split: str | None = None, *, size: int | None = None,
                        crop_fraction: float = 0.875, interpolation: str = "bilinear",
                        max_per_class: int | None = None, n: int | None = None, seed: int = 0,
                        labels: str | Path | None = None, batch_size: int = 256,
                        workers: int | None = None, progress: bool = True
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The images and labels of :func:`imagefolder` (same arguments, order and pixels) as
    ``(images, labels)`` batches of ``batch_size``, so that a whole folder -- ImageNet's
    50,000 validation images, 30 GB as one float tensor at 224 pixels -- is never held at once.
    ``workers`` threads decode each batch (default: up to 8, one per CPU core)."""
    from concurrent.futures import ThreadPoolExecutor

    size = _check_read(size, crop_fraction, interpolation)
    batch_size = check_positive_int(batch_size, "batch_size")
    workers = check_count(workers, "workers", none="up to 8, one per core") \
        or min(8, os.cpu_count() or 1)
    base, _, files = _listing(root, split, max_per_class, n, seed, labels)
    starts = range(0, len(files), batch_size)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
        for start in tqdm(starts, desc=f"reading {base.name}", disable=not progress,
                          unit="batch"):
            chunk = files[start:start + batch_size]
            arrays = list(pool.map(lambda f: _read(f[0], size, crop_fraction, interpolation),
                                   chunk))
            yield _stack(arrays, base), torch.tensor([label for _, label in chunk],
                                                     dtype=torch.long)
