"""Registry entry of ``int_mac``: hardware, golden model, stimulus, corners, exhaustive."""

from __future__ import annotations

import numpy as np

from qrtl.golden.bits import random_codes
from qrtl.golden.intmac import int_mac

from .intmac import IntMac
from qrtl.golden.params import IntParam
from .registry import UnitSpec, register

__all__ = ["acc_set"]


def _range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def acc_set(p) -> np.ndarray:
    """Accumulator values every check includes: 0, +-1, both ends of the range and their
    neighbours (where a product wraps), and a few fixed interior values."""
    lo, hi = _range(p["acc_width"], bool(p["signed"]))
    vals = {0, 1, lo, lo + 1, hi, hi - 1, hi // 2, lo // 2 + 1, (hi + lo) // 3}
    if p["signed"]:
        vals |= {-1, -2}
    return np.array(sorted(v for v in vals if lo <= v <= hi),
                    dtype=np.int64 if p["signed"] else np.uint64)


def _cast(x, signed: bool):
    return x.astype(np.int64) if signed else x.astype(np.uint64)


def _golden(p, x):
    return {"acc_out": int_mac(x["a"], x["b"], x["acc_in"], acc_width=p["acc_width"],
                               signed=bool(p["signed"]))}


def _stimulus(p, count, rng):
    s = bool(p["signed"])
    return {"a": random_codes(rng, count, p["a_width"], s),
            "b": random_codes(rng, count, p["b_width"], s),
            "acc_in": random_codes(rng, count, p["acc_width"], s)}


def _corners(p):
    """Extreme operands (the largest products of both signs) against every accumulator of
    :func:`acc_set`, so both wrap directions are exercised."""
    s = bool(p["signed"])
    av = sorted(set(_range(p["a_width"], s)) | {0, 1} | ({-1} if s else set()))
    bv = sorted(set(_range(p["b_width"], s)) | {0, 1} | ({-1} if s else set()))
    a, b, c = np.meshgrid(np.array(av), np.array(bv), acc_set(p), indexing="ij")
    return {"a": _cast(a.ravel(), s), "b": _cast(b.ravel(), s), "acc_in": _cast(c.ravel(), s)}


def _exhaustive(p):
    """Every (a, b) pair times :func:`acc_set` when a_width + b_width <= 12 (<= 2**16 pairs)."""
    if p["a_width"] + p["b_width"] > 12:
        return None
    s = bool(p["signed"])
    alo, ahi = _range(p["a_width"], s)
    blo, bhi = _range(p["b_width"], s)
    a, b, c = np.meshgrid(np.arange(alo, ahi + 1), np.arange(blo, bhi + 1), acc_set(p),
                          indexing="ij")
    return {"a": _cast(a.ravel(), s), "b": _cast(b.ravel(), s), "acc_in": _cast(c.ravel(), s)}


register(UnitSpec(
    name="int_mac",
    summary="integer multiply-accumulate acc_out = acc_in + a*b, wrapping at acc_width",
    params=(
        IntParam("a_width", 8, 2, 32, "activation width"),
        IntParam("b_width", 8, 2, 32, "weight width"),
        IntParam("acc_width", 32, 2, 64, "accumulator width (the sum wraps modulo 2**acc_width)"),
        IntParam("signed", 1, 0, 1, "two's complement operands and accumulator"),
    ),
    build=lambda p: IntMac(p["a_width"], p["b_width"], p["acc_width"], bool(p["signed"])),
    golden=_golden,
    stimulus=_stimulus,
    corners=_corners,
    exhaustive=_exhaustive,
))

