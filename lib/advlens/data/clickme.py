"""ClickMe human importance maps (Linsley et al.) without TensorFlow.

Three on-disk forms, all returned as an :class:`ImageSet` with the map in ``masks`` (K = 1):

- Harmonization TFRecords: ``tf.train.Example`` with ``image`` (JPEG 256×256×3), ``heatmap``
  (JPEG 256×256×1) and ``label`` (int64). As in the Harmonization loader, the JPEGs are decoded
  as ``tf.io.decode_jpeg`` decodes them by default (fast integer IDCT: simplejpeg with
  ``fastdct=True``; Pillow's accurate IDCT differs by up to several levels), the image is resized
  bilinearly (half-pixel centres, no antialiasing, as ``tf.image.resize``) to ``size`` and the
  heatmap is resized to 64×64, blurred (kernel 10, σ 10) and resized to ``size``
  (:func:`advlens.data.standin.clickme_blur`).
- Raw TFRecords (Adversarial-Alignment): ``image`` = float32 bytes 224×224×3 in 0–255 (or
  in [0, 1], read as such up to :data:`UNIT_MAX`, as for ``.npz`` images),
  ``heatmap`` = float32 bytes 224×224×1 (already processed: not blurred again), ``label``.
- Per-image ``.npz`` files with ``image`` (H×W×3 or 3×H×W; integers 0–255, 0–255 floats, or
  floats in [0, 1], read as such up to :data:`UNIT_MAX` for the overshoot of resampling),
  ``heatmap`` (H×W, H×W×1 or 1×H×W) and ``label`` (the class index, or the one-hot
  vector of 1000 Harmonization's loader makes of it).

Every label must be one class index in 0–999 (a record's ``label`` one int64, as
``tf.io.FixedLenFeature([], tf.int64)`` requires); anything else is refused, naming the file.

The format of each TFRecord is detected from its ``image`` bytes (JPEG magic or raw length).
Maps are scaled to peak 1 per image; a map with negative values is min-max scaled to [0, 1]
instead, as Harmonization's raw-format path does (either way rank measures such as the Spearman
alignment are unchanged; clipping negatives at 0 would tie them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from advlens.checks import check_count
from advlens.data.errors import corrupt, missing
from advlens.data.example import parse_example
from advlens.data.imageset import ImageSet
from advlens.data.standin import clickme_blur
from advlens.data.tfrecord import read_records
from advlens.paths import data_dir

RAW_SIDE = 224
# a float .npz image up to this is a [0, 1] image (bicubic resizing overshoots 1 at sharp edges;
# clipped), above it a 0–255 one: a 0–255 image that dark would be black anyway
UNIT_MAX = 2.0
# Harmonization's downloader caches shard i as clickme_{val,train}_{i}, without an extension
# (tf.keras.utils.get_file(f"clickme_val_{i}", ..., cache_subdir="datasets/click-me"))
_KERAS = re.compile(r"clickme_(val|train)_(\d+)")
# ... from the bucket's val/val-{i}.tfrecords and train/train-{i}.tfrecords (CLICKME_BASE_URL)
_BUCKET = re.compile(r"(val|train)-(\d+)\.tfrecords?")
_SHARD = re.compile(r"\.tfrecords?(-\d+-of-\d+)?$|\.npz$")
NUM_CLASSES = 1000
_HOW = ("Download the ClickMe shards (Harmonization: clickme val-*.tfrecords) or the "
        "Adversarial-Alignment TFRecord and put them there, or point path= at the Keras cache "
        "where Harmonization's load_clickme_val() saved them (~/.keras/datasets/click-me, files "
        "clickme_val_0 ... clickme_val_16).")


def _natural(path: Path) -> tuple[list[str | int], str]:
    """Sort key reading digit runs as numbers: val-2 before val-10, as the shards are numbered
    (then the name itself, so that val-01 and val-1 keep one order)."""
    parts = re.split(r"(\d+)", path.name)  # text at even positions, digits at odd ones
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], path.name


def _split_of(path: Path) -> str | None:
    """The split a shard's Harmonization name gives (``clickme_val_3``, ``train-12.tfrecords``),
    None for other names."""
    m = _KERAS.fullmatch(path.name) or _BUCKET.fullmatch(path.name)
    return m.group(1) if m else None


def _shards(folder: Path) -> list[Path]:
    """The shard files of ``folder`` (not dot-files: atomic_write's .tmp leftovers)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and (_SHARD.search(p.name) or _KERAS.fullmatch(p.name))), key=_natural)


def _files(path: Path, split: str | None = None) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        found = _shards(path)
        named = {s for p in found if (s := _split_of(p))}
        if len(named) > 1 and split is None:  # both splits side by side: never mix them
            raise ValueError(f"{path} holds both the val and the train ClickMe shards of "
                             f"Harmonization; pass split='val' or split='train'.")
        if split is not None and named and split not in named:  # never another split instead
            have = " or ".join(repr(s) for s in sorted(named))
            raise ValueError(f"{path} holds Harmonization's ClickMe shards of split {have}, "
                             f"none of split {split!r}; pass split={have}, or path= a folder "
                             f"of {split} shards.")
        if split is not None:
            found = [p for p in found if _split_of(p) in (None, split)]
        if found:
            return found
        # the bucket's layout (click-me/val/val-<i>.tfrecords, click-me/train/...): the data
        # is there, one level down; "not found ... download" said otherwise
        folders = [s for s in ("val", "train") if (path / s).is_dir() and _shards(path / s)]
        if folders:
            shown = " and ".join(f"{s}/" for s in folders)
            raise ValueError(f"{path} holds no ClickMe shards itself but the split folder(s) "
                             f"{shown} (the layout of Harmonization's bucket); pass "
                             f"split={folders[0]!r} (notebook 03: in data_kw) or path= "
                             f"{path / folders[0]}.")
    raise missing(path, "ClickMe data (.tfrecord/.tfrecords shards, clickme_val_<i> shards "
                  "of the Keras cache, or per-image .npz)", _HOW)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    # TensorFlow's tf.image.resize(bilinear) = half-pixel centres, no antialiasing.
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _jpeg(data: bytes, channels: int, where: str) -> np.ndarray:
    """Decode like TensorFlow's default ``tf.io.decode_jpeg``: libjpeg-turbo with the fast
    integer IDCT (JDCT_IFAST) and fancy chroma upsampling. Pillow uses the accurate IDCT, which
    moves pixels by several levels; simplejpeg (libjpeg-turbo) with ``fastdct=True`` gave
    TensorFlow 2.21's output bit for bit on 4:2:0, 4:2:2, 4:4:4 and greyscale JPEGs."""
    import simplejpeg

    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="RGB" if channels == 3 else "GRAY",
                                     fastdct=True, fastupsample=False)
    except ValueError as err:
        raise ValueError(f"{where}: cannot decode JPEG ({err})") from err
    return arr.astype(np.float32).reshape(arr.shape[0], arr.shape[1], channels)


def _label(value: object, where: str, *, one_hot: bool = False) -> int:
    """The class index ``value`` holds: one integral number in 0–999, or with ``one_hot`` a
    one-hot vector of :data:`NUM_CLASSES` (Harmonization's ``tf.one_hot(label, 1_000)``);
    ValueError naming ``where`` otherwise."""
    arr = np.asarray(value)
    if one_hot and arr.size == NUM_CLASSES and arr.dtype.kind in "iuf" \
            and np.isin(arr, (0, 1)).all() and arr.sum() == 1:
        return int(arr.reshape(-1).argmax())
    number = arr.reshape(-1)[0] if arr.size == 1 and arr.dtype.kind in "iuf" else None
    if number is None or not float(number).is_integer() or not 0 <= number < NUM_CLASSES:
        shown = arr.reshape(-1)[:4].tolist() if arr.size else "no value"
        raise ValueError(f"{where} must be one class index in 0..{NUM_CLASSES - 1}"
                         f"{f' (or a one-hot vector of {NUM_CLASSES})' if one_hot else ''}; got "
                         f"{shown}{' ...' if arr.size > 4 else ''} (shape {arr.shape}, "
                         f"{arr.dtype})")
    return int(number)


def _peak(heatmap: torch.Tensor) -> torch.Tensor:
    low = heatmap.amin()
    if low < 0:
        # a map with negative values (raw float or .npz maps; Harmonization's JPEG maps never
        # are): min-max to [0, 1] as the official raw-format path does; clipping at 0 tied every
        # negative pixel and changed the Spearman alignment (0.630 against the official 0.656 on
        # a map 43 % negative)
        span = heatmap.amax() - low
        return (heatmap - low) / span if span > 0 else torch.zeros_like(heatmap)
    peak = heatmap.amax()
    return heatmap / peak if peak > 0 else heatmap


def _decode_record(features: dict, size: int, blur: bool | None,
                   where: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    try:
        image_bytes, heat_bytes, label_value = (features["image"][0], features["heatmap"][0],
                                                features["label"])
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"{where}: missing image/heatmap/label feature ({err})") from err
    label = _label(label_value, f"{where}: label")
    scale = 255.0
    # raw first: the first two bytes of a float32 image are ff d8 (the JPEG magic) by chance
    if len(image_bytes) == RAW_SIDE * RAW_SIDE * 3 * 4:  # raw float32
        if len(heat_bytes) != RAW_SIDE * RAW_SIDE * 4:
            raise ValueError(f"{where}: raw heatmap has {len(heat_bytes)} bytes, expected "
                             f"{RAW_SIDE * RAW_SIDE * 4}")
        image = torch.from_numpy(np.frombuffer(image_bytes, "<f4").reshape(
            RAW_SIDE, RAW_SIDE, 3).copy()).permute(2, 0, 1)[None]
        heat = torch.from_numpy(np.frombuffer(heat_bytes, "<f4").reshape(
            1, 1, RAW_SIDE, RAW_SIDE).copy())
        for name, values in (("image", image), ("heatmap", heat)):
            if not bool(torch.isfinite(values).all()):
                raise ValueError(f"{where}: raw {name} holds NaN or inf values")
        if float(image.min()) < -0.5:  # as for .npz images: normalised model inputs
            raise ValueError(f"{where}: raw image holds values down to {float(image.min()):.3g}, "
                             "expected 0–255 or [0, 1]; store the pixels before normalisation")
        # 0–255 as Adversarial-Alignment stores them; one in [0, 1] (the .npz rule, UNIT_MAX)
        # was divided by 255 too and loaded black without a word (their code min-max scales)
        if float(image.max()) <= UNIT_MAX:
            scale = 1.0
        heat = clickme_blur(heat, size) if blur else _resize(heat, size)
        image = _resize(image, size)
    elif image_bytes[:2] == b"\xff\xd8":  # Harmonization: JPEG image and heatmap
        image = torch.from_numpy(_jpeg(image_bytes, 3, where)).permute(2, 0, 1)[None]
        heat = torch.from_numpy(_jpeg(heat_bytes, 1, where)).permute(2, 0, 1)[None]
        image = _resize(image, size)
        heat = clickme_blur(heat, size) if blur in (None, True) else _resize(heat, size)
    else:
        raise ValueError(f"{where}: 'image' is neither JPEG nor {RAW_SIDE}×{RAW_SIDE}×3 float32 "
                         f"({len(image_bytes)} bytes)")
    return (image[0] / scale).clamp(0.0, 1.0), _peak(heat[0]), label


def _npz_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The image and heatmap as float32, the label, and whether the image was stored as
    integers (0–255, whatever its largest value)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = np.asarray(data["image"])
            image = raw.astype(np.float32)
            heat = np.asarray(data["heatmap"], dtype=np.float32)
            label_value = np.asarray(data["label"])
    except Exception as err:
        raise corrupt(path, f"{type(err).__name__}: {err}; expected image/heatmap/label") from err
    try:
        label = _label(label_value, "label", one_hot=True)
    except ValueError as err:
        raise corrupt(path, str(err)) from err
    for name, values in (("image", image), ("heatmap", heat)):
        if not np.isfinite(values).all():
            raise corrupt(path, f"{name} holds {int((~np.isfinite(values)).sum())} NaN or inf "
                                "values")
    return image, heat, label, bool(np.issubdtype(raw.dtype, np.integer))


def _decode_npz(path: Path, size: int, blur: bool | None
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
    image, heat, label, integer = _npz_arrays(path)
    if image.ndim != 3 or 3 not in (image.shape[0], image.shape[-1]):
        raise corrupt(path, f"image has shape {image.shape}, expected H×W×3 or 3×H×W")
    if image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.transpose(2, 0, 1)
    if integer and image.max() > 255:  # uint16: divided by 255 it was white
        raise corrupt(path, f"image holds integers up to {int(image.max())}, expected 0–255; "
                            "store 8-bit pixels or floats in [0, 1]")
    if image.min() < -0.5:  # mean/std normalised model inputs: clipped at 0 they were dark
        raise corrupt(path, f"image holds values down to {float(image.min()):.3g}, expected "
                            "0–255 or [0, 1]; store the pixels before normalisation")
    # integers are 0–255 (a dark image's largest value may be 1); floats above UNIT_MAX too
    if integer or image.max() > UNIT_MAX:
        image = image / 255.0
    heat = np.squeeze(heat)
    if heat.ndim != 2:
        raise corrupt(path, f"heatmap has shape {heat.shape}, expected H×W")
    img_t = _resize(torch.from_numpy(np.ascontiguousarray(image))[None], size)[0]
    heat_t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
    heat_t = clickme_blur(heat_t, size) if blur else _resize(heat_t, size)
    return img_t.clamp(0.0, 1.0), _peak(heat_t[0]), label


def _items(files: list[Path], size: int, blur: bool | None, verify: bool
           ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    for file in files:
        if file.suffix == ".npz":
            yield _decode_npz(file, size, blur)
            continue
        for index, record in enumerate(read_records(file, verify=verify)):
            where = f"{file} (record {index})"
            try:
                features = parse_example(record)
            except ValueError as err:
                raise corrupt(file, f"record {index} is not a tf.train.Example: {err}") from err
            try:
                yield _decode_record(features, size, blur, where)
            except ValueError as err:
                raise corrupt(file, str(err)) from err


def clickme(path: str | Path | None = None, split: str | None = None, *, n: int | None = None,
            size: int = 224, blur: bool | None = None, verify: bool = True,
            max_per_class: int | None = None, progress: bool = True) -> ImageSet:
    """ClickMe images and human maps from ``path`` (a shard, an ``.npz`` or a folder of them).

    ``path`` defaults to ``data_dir()/clickme``; ``split`` picks ``path/split`` when it exists,
    else the shards Harmonization's names give to that split (``val-<i>.tfrecords`` /
    ``clickme_val_<i>``; ValueError if there are only shards of the other split there, or both
    splits and no ``split``). Shards are read in the order of their numbers (``val-2`` before
    ``val-10``).
    ``blur``: ``None`` = the format's own recipe (blur Harmonization heatmaps only), ``True`` /
    ``False`` forces it. ``verify`` checks TFRecord CRCs. ``n`` stops after ``n`` images.
    ``max_per_class`` keeps only the first ``max_per_class`` images of each class (in reading
    order, the others skipped): Linsley et al.'s subset holds one image per class, and the
    shards hold many images of a class, so their first ``n`` records need not cover ``n``
    classes.
    """
    n, max_per_class = check_count(n, "n"), check_count(max_per_class, "max_per_class")
    base = Path(path) if path is not None else data_dir() / "clickme"
    if split is not None and (base / split).is_dir():
        base = base / split
    if not base.exists():
        raise missing(base, "ClickMe data", _HOW)
    images, maps, labels = [], [], []
    kept: dict[int, int] = {}  # images kept per class (max_per_class)
    bar = tqdm(total=n, desc="reading ClickMe", disable=not progress)
    for image, heat, label in _items(_files(base, split), size, blur, verify):
        if max_per_class is not None and kept.get(label, 0) >= max_per_class:
            continue
        kept[label] = kept.get(label, 0) + 1
        images.append(image)
        maps.append(heat)
        labels.append(label)
        bar.update()
        if n is not None and len(labels) >= n:
            break
    bar.close()
    if not labels:
        raise corrupt(base, "no records found")
    return ImageSet(images=torch.stack(images).float().contiguous(),
                    labels=torch.tensor(labels, dtype=torch.long),
                    masks=torch.stack(maps).float().contiguous(),
                    classes=[str(i) for i in range(NUM_CLASSES)], name=f"clickme-{base.name}")
