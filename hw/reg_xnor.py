"""Registry entry of ``xnor_popcount``: hardware, golden model, stimulus, corners."""

from __future__ import annotations


import numpy as np

from qrtl.golden.bits import random_codes, to_bytes
from qrtl.golden.xnor import xnor_popcount

from qrtl.golden.params import ChoiceParam, IntParam
from .registry import UnitSpec, register
from .xnor_popcount import XnorPopcount, dot_width

__all__: list[str] = []


# --- xnor_popcount -------------------------------------------------------------------

def _xnor_golden(p, x):
    if p["threshold"]:
        dot, y = xnor_popcount(x["a"], x["w"], p["n"], x["thr"])
        return {"dot": dot, "y": y}
    return {"dot": xnor_popcount(x["a"], x["w"], p["n"])}


def _xnor_stimulus(p, count, rng):
    n = p["n"]
    x = {"a": random_codes(rng, count, n, False), "w": random_codes(rng, count, n, False)}
    if p["threshold"]:
        # Thresholds where they matter: the reachable range -n..n+1, clipped to what the
        # signed thr port holds (for n = 2**k - 1, n + 1 does not fit).
        hi = min(n + 1, (1 << (dot_width(n) - 1)) - 1)
        x["thr"] = rng.integers(-n, hi + 1, size=count).astype(np.int64)
    return x


def _xnor_corners(p):
    """All equal, all opposite, single agreeing/disagreeing bit, alternating patterns."""
    n = p["n"]
    ones = np.full((1, (n + 7) // 8), 0xFF, np.uint8)
    zero = np.zeros_like(ones)
    rows_a, rows_w = [], []
    patterns = [(zero, zero), (ones, ones), (ones, zero), (zero, ones),
                (np.full_like(ones, 0x55), np.full_like(ones, 0x55)),
                (np.full_like(ones, 0x55), np.full_like(ones, 0xAA))]
    for i in sorted({0, n // 2, n - 1}):
        single = zero.copy()
        single[0, i // 8] |= 1 << (i % 8)
        patterns += [(single, zero), (single, ones), (single, single)]
    for a, w in patterns:
        rows_a.append(a)
        rows_w.append(w)
    a = to_bytes(np.concatenate(rows_a), n)
    w = to_bytes(np.concatenate(rows_w), n)
    if n <= 64:
        from qrtl.golden.bits import from_bytes
        a, w = from_bytes(a, n, False), from_bytes(w, n, False)
    x = {"a": a, "w": w}
    if p["threshold"]:
        dots = xnor_popcount(a, w, n)
        # thresholds exactly at, just above and just below each dot value
        x = {k: np.concatenate([v, v, v]) for k, v in x.items()}
        x["thr"] = np.concatenate([dots, dots + 1, dots - 1]).astype(np.int64)
        lim = (1 << (dot_width(n) - 1))
        x["thr"] = np.clip(x["thr"], -lim, lim - 1)
    return x


def _xnor_exhaustive(p):
    """Every (a, w) pair for n <= 8 (and every threshold for n <= 4)."""
    n = p["n"]
    if n > 8:
        return None
    a, w = np.meshgrid(np.arange(1 << n, dtype=np.uint64), np.arange(1 << n, dtype=np.uint64),
                       indexing="ij")
    x = {"a": a.ravel(), "w": w.ravel()}
    if p["threshold"]:
        dw = dot_width(n)
        thr = np.arange(-(1 << (dw - 1)), 1 << (dw - 1), dtype=np.int64)
        if n > 4:  # keep it under 2**20 points: thresholds near the reachable range
            thr = np.arange(-n - 1, n + 2, dtype=np.int64)
            thr = np.clip(thr, -(1 << (dw - 1)), (1 << (dw - 1)) - 1)
            thr = np.unique(thr)
        idx, t = np.meshgrid(np.arange(len(x["a"])), thr, indexing="ij")
        x = {"a": x["a"][idx.ravel()], "w": x["w"][idx.ravel()], "thr": t.ravel()}
    return x


register(UnitSpec(
    name="xnor_popcount",
    summary="binary dot product dot = 2*popcount(~(a^w)) - n, optional threshold y = dot >= thr",
    params=(
        IntParam("n", 64, 1, 4096, "vector length"),
        IntParam("pipeline", 0, 0, 8, "register stages (0 = combinational)"),
        IntParam("threshold", 0, 0, 1, "also output y = dot >= thr"),
        ChoiceParam("popcount", "tree", ("tree", "naive"),
                    "Wallace compressor tree, or the naive adder chain baseline"),
    ),
    build=lambda p: XnorPopcount(p["n"], p["pipeline"], bool(p["threshold"]), p["popcount"]),
    golden=_xnor_golden,
    stimulus=_xnor_stimulus,
    corners=_xnor_corners,
    exhaustive=_xnor_exhaustive,
))
