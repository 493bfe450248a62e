"""Conversions between port values and bit/byte representations.

Ports up to 64 bits travel as ``int64`` (signed) or ``uint64`` (unsigned) arrays; wider
ports as ``uint8`` matrices ``(vectors, ceil(width/8))`` of little-endian bytes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nbytes", "to_bytes", "from_bytes", "popcount_bytes", "wrap", "random_codes",
           "every_input"]

_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def nbytes(width: int) -> int:
    return (width + 7) // 8


def to_bytes(values: np.ndarray, width: int) -> np.ndarray:
    """Little-endian byte matrix ``(N, nbytes(width))`` of a port value array."""
    values = np.asarray(values)
    nb = nbytes(width)
    if values.ndim == 2:
        if values.shape[1] != nb:
            raise ValueError(f"byte matrix has {values.shape[1]} columns, width {width} needs {nb}")
        out = values.astype(np.uint8, copy=True)
    else:
        v = values.astype(np.int64).view(np.uint64) if values.dtype.kind == "i" else values.astype(np.uint64)
        le = v.astype("<u8").view(np.uint8).reshape(-1, 8)
        if nb <= 8:
            out = le[:, :nb].copy()
        else:
            out = np.zeros((len(v), nb), np.uint8)
            out[:, :8] = le
    if width % 8:
        out[:, -1] &= (1 << (width % 8)) - 1
    return out


def from_bytes(b: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`to_bytes`: ints for widths <= 64, else the byte matrix."""
    b = np.asarray(b, dtype=np.uint8)
    if width > 64:
        return b
    if b.ndim == 2 and b.shape[1] in (1, 2, 4, 8) and b.strides[1] == 1:
        # the field's bytes read in place as one little-endian integer (no padding copy)
        v = b.view(f"<u{b.shape[1]}")[:, 0].astype(np.uint64)
    else:
        padded = np.zeros((b.shape[0], 8), np.uint8)
        padded[:, :b.shape[1]] = b
        v = padded.view("<u8").reshape(-1).astype(np.uint64)
    if width < 64:
        v &= np.uint64((1 << width) - 1)
    if signed:
        return wrap(v, width, True)
    return v


def wrap(values, width: int, signed: bool) -> np.ndarray:
    """Reduce integers modulo ``2**width``; two's complement view if ``signed``."""
    v = np.asarray(values)
    u = v.astype(np.int64).view(np.uint64) if v.dtype.kind == "i" else v.astype(np.uint64)
    if width < 64:
        u = u & np.uint64((1 << width) - 1)
    if not signed:
        return u
    # sign-extend: move the sign bit to bit 63, then shift back arithmetically
    up = np.uint64(64 - width)
    return (u << up).view(np.int64) >> np.int64(64 - width)


def popcount_bytes(b: np.ndarray) -> np.ndarray:
    """Number of one bits in each row of a byte matrix."""
    return _POP8[np.asarray(b, dtype=np.uint8)].sum(axis=1)


def random_codes(rng: np.random.Generator, n: int, width: int, signed: bool) -> np.ndarray:
    """``n`` uniform random values of a ``width``-bit port (byte matrix above 64 bits)."""
    if width > 64:
        return to_bytes(rng.integers(0, 256, size=(n, nbytes(width)), dtype=np.uint8), width)
    raw = rng.integers(0, 1 << width, size=n, dtype=np.uint64, endpoint=False)
    return wrap(raw, width, signed)


def every_input(ports, limit_bits: int = 20) -> dict | None:
    """Every combination of values of ``ports`` (``[(name, width, signed), ...]``, each at
    most 64 bits), or None when their widths add up to more than ``limit_bits``.

    Point ``k`` gives the first port bits ``0..w0-1`` of ``k``, the next port the next
    bits, and so on, so ``2**sum(widths)`` points cover the whole input space once.
    """
    total = sum(w for _, w, _ in ports)
    if total > limit_bits:
        return None
    k = np.arange(1 << total, dtype=np.uint64)
    out, shift = {}, 0
    for name, width, signed in ports:
        out[name] = wrap(k >> np.uint64(shift), width, signed)
        shift += width
    return out
