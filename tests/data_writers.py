"""Writers of tiny data files in the real on-disk formats, for the loader tests.

Each writer lays bytes out from the format's own description (not from advlens' readers), so
the readers are checked against an independent layout.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np


def write_cifar(root: Path, train_per_batch: int = 4, n_test: int = 5, seed: int = 0
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/cifar-10-batches-py`` with 5 train batches, a test batch and batches.meta.

    Returns {"train": (uint8 images N×3×32×32, labels), "test": ...}.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out: dict[str, list] = {"train": [[], []], "test": [[], []]}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else train_per_batch
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        # the release stores each row as R plane, G plane, B plane (1024 bytes each)
        batch = {b"batch_label": name.encode(), b"labels": labels,
                 b"data": images.reshape(n, 3072), b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        split = "test" if name == "test_batch" else "train"
        out[split][0].append(images)
        out[split][1].append(np.asarray(labels))
    meta = {b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat",
                                                  "deer", "dog", "frog", "horse", "ship",
                                                  "truck")]}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def py2_pickle(obj: object) -> bytes:
    """``obj`` (a dict, list, bytes, int or 2-D uint8 array) as Python 2's cPickle wrote it at
    protocol 2 with numpy 1.x -- the layout of the official cifar-10-python.tar.gz batches:
    strings as SHORT_BINSTRING/BINSTRING, the array as ``numpy.core.multiarray._reconstruct``
    then BUILD with (version, shape, ``numpy.dtype('u1')``, fortran, raw bytes)."""

    def emit(value: object) -> bytes:
        if isinstance(value, bytes):
            return (b"U" + bytes([len(value)]) + value if len(value) < 256
                    else b"T" + struct.pack("<i", len(value)) + value)
        if isinstance(value, bool) or value is None:
            raise TypeError(value)
        if isinstance(value, int):
            return (b"K" + bytes([value]) if 0 <= value < 256 else
                    b"M" + struct.pack("<H", value) if 0 <= value < 65536 else
                    b"J" + struct.pack("<i", value))
        if isinstance(value, list):  # cPickle batches APPENDS 1000 items at a time
            return b"]" + b"".join(b"(" + b"".join(map(emit, value[i:i + 1000])) + b"e"
                                   for i in range(0, len(value), 1000))
        if isinstance(value, dict):
            return b"}(" + b"".join(emit(k) + emit(v) for k, v in value.items()) + b"u"
        if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2:
            dtype = (b"cnumpy\ndtype\n" + emit(b"u1") + emit(0) + emit(1) + b"\x87R("
                     + emit(3) + emit(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + emit(0)
                     + b"tb")
            return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + emit(0)
                    + b"\x85" + emit(b"b") + b"\x87R(" + emit(1) + emit(value.shape[0])
                    + emit(value.shape[1]) + b"\x86" + dtype + b"\x89"
                    + emit(value.tobytes()) + b"tb")
        raise TypeError(f"py2_pickle cannot write {type(value).__name__}")

    return b"\x80\x02" + emit(obj) + b"."


def write_stl(root: Path, n: int = 3, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/stl10_binary/{train,test}_{X,y}.bin``: each image channel stored column by column,
    labels as bytes 1..10. Returns the (N, 3, 96, 96) row-major images and 0-based labels."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split in ("train", "test"):
        images = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        with open(folder / f"{split}_X.bin", "wb") as handle:
            for image in images:
                for channel in image:
                    for col in range(96):
                        handle.write(channel[:, col].tobytes())  # one column after another
        (folder / f"{split}_y.bin").write_bytes(bytes((labels + 1).tolist()))
        out[split] = (images, labels)
    return out


def write_png(path: Path, array: np.ndarray) -> None:
    """Save an H×W×3 uint8 array as PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def jpeg_bytes(array: np.ndarray, quality: int = 95) -> bytes:
    """JPEG-encode an H×W×3 or H×W uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# --- TFRecord and tf.train.Example, written from the format specs ------------------------------

def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C bit by bit (reflected polynomial 0x82F63B78), independent of advlens' table."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord record: length, masked CRC of length, data, masked CRC of data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def example_bytes(image: bytes, heatmap: bytes, label: int, *, packed_label: bool = True
                  ) -> bytes:
    """A ``tf.train.Example`` with bytes features image/heatmap and an int64 label."""
    def bytes_feature(value: bytes) -> bytes:
        return _ld(1, _ld(1, value))  # Feature.bytes_list -> BytesList.value

    if packed_label:
        label_feature = _ld(3, _ld(1, _varint(label)))
    else:
        label_feature = _ld(3, _varint(1 << 3 | 0) + _varint(label))
    entries = b"".join(_ld(1, _ld(1, key.encode()) + _ld(2, feature)) for key, feature in (
        ("image", bytes_feature(image)), ("heatmap", bytes_feature(heatmap)),
        ("label", label_feature)))
    return _ld(1, entries)


def write_tfrecord(path: Path, examples: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(frame(e) for e in examples))
