"""Golden model of the XNOR-popcount binary dot product."""

from __future__ import annotations

import numpy as np

from .bits import popcount_bytes, to_bytes

__all__ = ["xnor_popcount", "dot_width"]


def dot_width(n: int) -> int:
    """Signed width of ``dot`` for length ``n``: ``dot`` spans ``-n..n``."""
    return n.bit_length() + 1


def xnor_popcount(a, w, n: int, thr=None):
    """``dot = 2 * popcount(~(a ^ w)) - n`` on n-bit vectors (bit 1 = +1, bit 0 = -1).

    ``a`` and ``w`` are port arrays (ints for n <= 64, little-endian byte matrices
    above). Returns ``dot`` (int64) or ``(dot, y)`` with ``y = dot >= thr`` when ``thr``
    is given. Equals ``sum_i s(a_i) * s(w_i)`` with ``s(1) = +1, s(0) = -1``.
    """
    if n <= 64 and np.asarray(a).ndim == 1 and np.asarray(w).ndim == 1:
        # integer ports: one popcount per vector on the 64-bit agreement word
        agree = ~(_u64(a) ^ _u64(w)) & np.uint64((1 << n) - 1 if n < 64 else 2**64 - 1)
        dot = 2 * np.bitwise_count(agree).astype(np.int64) - n
    else:
        ab, wb = to_bytes(a, n), to_bytes(w, n)
        xn = ~(ab ^ wb)
        if n % 8:
            xn[:, -1] &= (1 << (n % 8)) - 1
        dot = 2 * popcount_bytes(xn) - n
    if thr is None:
        return dot
    return dot, (dot >= np.asarray(thr, dtype=np.int64)).astype(np.uint64)


def _u64(x) -> np.ndarray:
    """Port values as uint64 bit patterns (two's complement for signed values)."""
    x = np.asarray(x)
    return x.astype(np.int64).view(np.uint64) if x.dtype.kind == "i" else x.astype(np.uint64)
