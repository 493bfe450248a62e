"""Golden model of the integer multiply-accumulate unit ``int_mac``."""

from __future__ import annotations

import numpy as np

__all__ = ["int_mac", "mac_chain"]


def _u64(x) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.int64).view(np.uint64) if x.dtype.kind == "i" else x.astype(np.uint64)


def int_mac(a, b, acc_in, *, acc_width: int = 32, signed: bool = True) -> np.ndarray:
    """``(acc_in + a * b) mod 2**acc_width``, two's complement if ``signed``.

    ``a``, ``b``, ``acc_in`` are integer arrays already in their port ranges (int64 when
    signed, uint64 otherwise). The arithmetic is done modulo 2**64 on uint64 views, which
    is exact modulo 2**acc_width for every acc_width <= 64 (no NumPy overflow warnings,
    no float detour). Returns int64 (signed) or uint64 (unsigned).
    """
    s = _u64(acc_in) + _u64(a) * _u64(b)
    if not signed:
        return s & np.uint64((1 << acc_width) - 1) if acc_width < 64 else s
    # Sign-extend bit acc_width-1: shift it to bit 63, then shift back arithmetically.
    # (Valid for every width 1..64, and never forms 2**63 as a Python int.)
    up = np.uint64(64 - acc_width)
    return (s << up).view(np.int64) >> np.int64(64 - acc_width)


def mac_chain(a, b, acc0=None, *, acc_width: int = 32, signed: bool = True) -> np.ndarray:
    """Running sums of dot products as a chain of MACs.

    ``a`` and ``b`` have shape ``(..., K)``; ``acc0`` (shape ``(...)``, default 0) is the
    initial accumulator. Returns ``acc`` of shape ``(..., K + 1)`` with ``acc[..., 0] =
    acc0`` and ``acc[..., k + 1] = int_mac(a[..., k], b[..., k], acc[..., k])``, i.e. the
    value after each MAC step, the sequence a MAC unit sees in a weight-stationary loop.
    """
    a, b = np.asarray(a), np.asarray(b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    acc = np.empty(shape[:-1] + (shape[-1] + 1,), np.int64 if signed else np.uint64)
    acc[..., 0] = 0 if acc0 is None else int_mac(0, 0, acc0, acc_width=acc_width, signed=signed)
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    for k in range(shape[-1]):
        acc[..., k + 1] = int_mac(a[..., k], b[..., k], acc[..., k], acc_width=acc_width,
                                  signed=signed)
    return acc
