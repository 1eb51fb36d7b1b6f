"""CRC-32C (Castagnoli), the checksum of TFRecord framing, in numpy (no compiled extension).

:func:`crc32c_reference` is the textbook byte-at-a-time table loop. :func:`crc32c` computes the
same value fast for long inputs: CRC arithmetic is linear over GF(2), so the data is cut into
many equal chunks that run the table loop side by side as numpy lanes, and the chunk CRCs are
then folded pairwise with the matrix that appends ``L`` zero bytes to a CRC register.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_LANES = 1024


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table[i] = crc
    return table


def crc32c_reference(data: bytes) -> int:
    """CRC-32C of ``data`` with the byte-at-a-time loop (slow; the definition)."""
    table = [int(v) for v in _table()]
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _run(states: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """Advance CRC registers ``states`` (M,) over the bytes ``chunks`` (M, L), lane-parallel."""
    table = _table()
    for j in range(chunks.shape[1]):
        states = table[(states ^ chunks[:, j]) & 0xFF] ^ (states >> 8)
    return states


def _apply(matrix: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Apply a GF(2) linear map (given by its 32 column images) to uint32 registers."""
    bits = (states[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    return np.bitwise_xor.reduce(np.where(bits.astype(bool), matrix[None, :], 0), axis=1)


@lru_cache(maxsize=64)
def _zeros_matrix(n_bytes: int) -> np.ndarray:
    """Column images of the map 'feed ``n_bytes`` zero bytes' on a raw (un-inverted) register."""
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    if n_bytes <= 256:
        return _run(basis, np.zeros((32, n_bytes), np.uint8))
    half = _zeros_matrix(n_bytes // 2)
    matrix = _apply(half, half)  # half ∘ half
    return _run(matrix, np.zeros((32, n_bytes % 2), np.uint8))


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data`` (``crc32c(b"123456789") == 0xE3069283``)."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    n = buf.size
    if n < 4 * _LANES:
        return crc32c_reference(bytes(buf))
    length = -(-n // _LANES)
    # Leading zero bytes leave a zero raw register unchanged, so pad the front.
    padded = np.zeros(_LANES * length, np.uint8)
    padded[padded.size - n:] = buf
    states = _run(np.zeros(_LANES, np.uint32), padded.reshape(_LANES, length))
    span = length
    while states.size > 1:  # fold neighbours: crc(A||B) = zeros_|B|(crc(A)) ^ crc(B)
        states = _apply(_zeros_matrix(span), states[0::2]) ^ states[1::2]
        span *= 2
    # The 0xFFFFFFFF initial register contributes zeros_n(0xFFFFFFFF); then the final inversion.
    init = _apply(_zeros_matrix(n), np.array([0xFFFFFFFF], np.uint32))
    return int(states[0] ^ init[0]) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant (mod 2**32)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
