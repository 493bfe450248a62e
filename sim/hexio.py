"""Vectorised ``$readmemh`` / ``$writememh`` text for the streaming harness.

One line per vector: the harness word in hex, most significant digit first. Each port
occupies a byte-aligned field, so a word is the concatenation of the ports' little-endian
byte matrices, reversed into big-endian order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode", "decode"]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIB = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIB[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIB[_c] = 10 + _i


def encode(words: np.ndarray) -> bytes:
    """``words``: ``(N, B)`` uint8, little-endian bytes of each word -> hex text."""
    be = words[:, ::-1]
    n, b = be.shape
    out = np.empty((n, 2 * b + 1), dtype=np.uint8)
    out[:, 0:2 * b:2] = _HEX[be >> 4]
    out[:, 1:2 * b:2] = _HEX[be & 15]
    out[:, -1] = ord("\n")
    return out.tobytes()


def decode(text: bytes, n: int, b: int) -> np.ndarray:
    """Inverse of :func:`encode` for ``n`` words of ``b`` bytes (``$writememh`` output).

    Verilator writes exactly ``2*b`` hex digits per line (the memory width rounded up to
    a nibble, which the harness makes a whole number of bytes), no comments.
    """
    arr = np.frombuffer(text, dtype=np.uint8)
    arr = arr[arr != ord("\r")]
    lines = arr.reshape(n, 2 * b + 1)
    if np.any(lines[:, -1] != ord("\n")):
        raise ValueError("unexpected $writememh layout")
    nib = _NIB[lines[:, :-1]]
    if np.any(nib == 255):
        raise ValueError("X or Z in simulator output")
    be = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return be[:, ::-1].copy()
