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
    ab, wb = to_bytes(a, n), to_bytes(w, n)
    xn = ~(ab ^ wb)
    if n % 8:
        xn[:, -1] &= (1 << (n % 8)) - 1
    dot = 2 * popcount_bytes(xn) - n
    if thr is None:
        return dot
    return dot, (dot >= np.asarray(thr, dtype=np.int64)).astype(np.uint64)
