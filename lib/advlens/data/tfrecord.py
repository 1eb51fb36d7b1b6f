"""TFRecord files without TensorFlow: the framing is
``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``
(little-endian) repeated to the end of the file."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from advlens.data.crc32c import masked_crc32c
from advlens.io import atomic_write


def read_records(path: str | Path, *, verify: bool = True) -> Iterator[bytes]:
    """Yield each record's payload; ValueError naming the file on truncation or a CRC mismatch."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TFRecord file {path} does not exist.")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        index = 0
        while True:
            header = handle.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"{path}: record {index} is truncated in its length header; "
                                 "re-download the file.")
            (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack(
                "<I", header[8:])
            if verify and masked_crc32c(header[:8]) != length_crc:
                raise ValueError(f"{path}: record {index} has a corrupt length (CRC mismatch); "
                                 "the file is damaged or not a TFRecord.")
            if length > size - handle.tell() - 4:  # read() would try to allocate it all
                raise ValueError(f"{path}: record {index} claims {length} bytes, more than the "
                                 f"file holds ({size} bytes); the file is truncated (re-download "
                                 "it) or not a TFRecord.")
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"{path}: record {index} is truncated ({len(data)} of {length} "
                                 "bytes); re-download the file.")
            if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{path}: record {index} fails its data CRC; the file is "
                                 "damaged, re-download it.")
            yield data
            index += 1


def encode_record(data: bytes) -> bytes:
    """One framed record."""
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked_crc32c(length)) + data
            + struct.pack("<I", masked_crc32c(data)))


def write_records(path: str | Path, records: Iterable[bytes]) -> Path:
    """Write ``records`` as a TFRecord file, atomically (for fixtures and exports)."""
    payload = b"".join(encode_record(r) for r in records)
    return atomic_write(path, lambda tmp: tmp.write_bytes(payload))
