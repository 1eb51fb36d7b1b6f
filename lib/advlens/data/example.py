"""A minimal protobuf wire-format codec for ``tf.train.Example`` (no TensorFlow, no protobuf).

Schema (tensorflow/core/example/{example,feature}.proto)::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   // entries: { key = 1; value = 2; }
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                       Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }  // readers accept packed and unpacked
    Int64List { repeated int64 value = 1 [packed]; }
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

Value = list[bytes] | np.ndarray

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint in protobuf message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes in protobuf message")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a message; LEN values are bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated length-delimited field in protobuf message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == _I64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == _I32:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > len(buf):
            raise ValueError("truncated fixed-width field in protobuf message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_feature(buf: bytes) -> Value:
    for number, _, payload in _fields(buf):
        assert isinstance(payload, bytes)
        if number == 1:
            return [bytes(v) for n, w, v in _fields(payload) if n == 1 and w == _LEN]
        if number == 2:
            floats: list[float] = []
            for n, w, v in _fields(payload):
                if n == 1 and w == _LEN:
                    floats.extend(np.frombuffer(v, dtype="<f4").tolist())
                elif n == 1 and w == _I32:
                    floats.append(struct.unpack("<f", v)[0])
            return np.asarray(floats, dtype=np.float32)
        if number == 3:
            ints: list[int] = []
            for n, w, v in _fields(payload):
                if n == 1 and w == _LEN:
                    pos = 0
                    while pos < len(v):
                        raw, pos = _varint(v, pos)
                        ints.append(_signed(raw))
                elif n == 1 and w == _VARINT:
                    ints.append(_signed(int(v)))
            return np.asarray(ints, dtype=np.int64)
    return []  # a Feature with no kind set


def parse_example(buf: bytes) -> dict[str, Value]:
    """Decode a serialised ``tf.train.Example`` to {name: list of bytes | float32/int64 array}."""
    out: dict[str, Value] = {}
    for number, wire, features in _fields(buf):
        if number != 1 or wire != _LEN:
            continue
        for n, w, entry in _fields(features):  # type: ignore[arg-type]
            if n != 1 or w != _LEN:
                continue
            key, value = None, b""
            for fn, _, fv in _fields(entry):  # type: ignore[arg-type]
                if fn == 1:
                    key = bytes(fv).decode()  # type: ignore[arg-type]
                elif fn == 2:
                    value = fv
            if key is not None:
                out[key] = _parse_feature(value)  # type: ignore[arg-type]
    return out


def _enc_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _enc_len(number: int, payload: bytes) -> bytes:
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(payload)) + payload


def encode_feature(value: bytes | str | int | float | list | np.ndarray) -> bytes:
    """Serialise one ``Feature``: bytes/str → BytesList, ints → Int64List, floats → FloatList."""
    if isinstance(value, bytes | str):
        value = [value]
    arr = value if isinstance(value, np.ndarray) else None
    if arr is None and isinstance(value, int | float):
        arr = np.asarray([value])
    if arr is None and isinstance(value, list) and value and isinstance(value[0], bytes | str):
        items = [v.encode() if isinstance(v, str) else v for v in value]
        return _enc_len(1, b"".join(_enc_len(1, v) for v in items))
    arr = np.asarray(value if arr is None else arr)
    if arr.dtype.kind in "iub":
        packed = b"".join(_enc_varint(int(v)) for v in arr.ravel())
        return _enc_len(3, _enc_len(1, packed))
    if arr.dtype.kind == "f":
        return _enc_len(2, _enc_len(1, arr.astype("<f4").tobytes()))
    raise TypeError(f"cannot encode a feature of dtype {arr.dtype}")


def encode_example(features: dict[str, bytes | str | int | float | list | np.ndarray]) -> bytes:
    """Serialise a ``tf.train.Example`` from {name: value} (see :func:`encode_feature`)."""
    entries = b"".join(
        _enc_len(1, _enc_len(1, key.encode()) + _enc_len(2, encode_feature(value)))
        for key, value in features.items())
    return _enc_len(1, entries)
