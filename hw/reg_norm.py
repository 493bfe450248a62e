"""Registry entry of ``bn_norm`` (Norm matters: L2 / L1 / L-inf normalization statistics)."""

from __future__ import annotations

import numpy as np

from qrtl.golden.bits import every_input
from qrtl.golden.fp8 import encode, join_lanes, split_lanes
from qrtl.golden.norm import M_MAX, NORM_FORMATS, NORMS, bn_norm, check_norm_params, elem_width
from qrtl.golden.params import ChoiceParam, IntParam

from .bn_norm import BnNorm
from .registry import UnitSpec, register, register_stream

__all__ = ["norm_stimulus", "norm_corners", "norm_values", "gaussian_channels",
           "GAUSSIAN_FRAC_BITS"]

#: Fraction bits of the integer codes of the ``gaussian`` stream (int16: range +-128).
GAUSSIAN_FRAC_BITS = {"int8": 4, "int16": 8}


def norm_values(p, x) -> np.ndarray:
    """``(N, m)`` element codes of the ``x`` port (signed for the integer formats)."""
    w = elem_width(p["fmt"])
    v = split_lanes(x, w, p["m"])
    if p["fmt"] != "fp16":
        v = np.where(v >= 1 << (w - 1), v - (1 << w), v)
    return v


def _port(p, values) -> np.ndarray:
    w = elem_width(p["fmt"])
    return join_lanes(np.asarray(values, np.int64) & ((1 << w) - 1), w)


def _golden(p, x):
    r = bn_norm(norm_values(p, x["x"]), p["m"], p["fmt"], p["norm"])
    out = {"mu": r.mu.astype(np.int64) if p["fmt"] != "fp16" else r.mu.astype(np.uint64),
           "inv_sigma": np.asarray(r.inv_sigma).astype(np.uint64), "y": _port(p, r.y)}
    return out


def norm_stimulus(p, count, rng) -> dict:
    """Channels at every spread: integer formats draw a centre uniformly and deviations
    uniform in ``+-2^s`` with ``s`` uniform in ``0..w`` (clipped to the code range), so
    ``sigma`` covers its whole range; fp16 draws a quarter of the channels as uniform
    random codes (NaN, Inf, subnormals) and the rest as Gaussians ``N(c, 2^e)`` with
    ``e`` uniform in ``-20..14`` and a centre ``c`` of a few standard deviations, rounded
    to fp16 (large ``e`` overflows the sums of squares)."""
    m, fmt = p["m"], p["fmt"]
    if fmt == "fp16":
        e = rng.integers(-20, 15, count).astype(float)
        c = rng.normal(0, 4, count) * np.exp2(e)
        v = rng.normal(0, 1, (count, m)) * np.exp2(e)[:, None] + c[:, None]
        codes = encode(v, "fp16").astype(np.int64)
        uni = rng.random(count) < 0.25
        codes[uni] = rng.integers(0, 1 << 16, (int(uni.sum()), m))
        return {"x": _port(p, codes)}
    w = elem_width(fmt)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    s = rng.integers(0, w + 1, count)
    centre = rng.integers(lo, hi + 1, count)
    dev = rng.integers(-(1 << 62), 1 << 62, (count, m)) >> (62 - s)[:, None]
    return {"x": _port(p, np.clip(centre[:, None] + dev, lo, hi))}


def norm_corners(p) -> dict:
    """All equal (zero, max, min), alternating extremes, one outlier (max against min, in
    the first and the last place), two-value channels of deviations 1 and 2 (the largest
    ``inv_sigma``), a ramp, ties of the mean's rounding; fp16 also: values whose squares
    or sums overflow, tiny values whose squares underflow, subnormals, +-Inf and NaN."""
    m, fmt = p["m"], p["fmt"]
    idx = np.arange(m)
    alt = idx % 2 == 0
    rows = []
    if fmt == "fp16":
        def f(v):
            return encode(np.asarray(v, float), "fp16").astype(np.int64)
        big = 65504.0
        vals = [np.zeros(m), np.full(m, 1.5), np.full(m, -big), np.where(alt, big, -big),
                np.where(alt, 300.0, -300.0), np.where(alt, 255.0, -255.0),
                np.where(alt, 2.0 ** -10, -2.0 ** -10), np.where(alt, 2.0 ** -14, 0.0),
                np.where(alt, 2.0 ** -24, -2.0 ** -24), idx.astype(float),
                np.where(idx == 0, big, 0.0), np.where(idx == m - 1, -1.0, 1.0),
                np.where(alt, 1e4, 1e4 + 8), idx * 2.0 ** -20]
        rows = [f(v) for v in vals]
        special = f(idx.astype(float))
        for code in (0x7C00, 0xFC00, 0x7E00, 0xFD01, 0x8000, 0x0001, 0x7BFF):
            r = special.copy()
            r[m // 2] = code
            rows.append(r)
        rows.append(np.where(alt, 0x7C00, 0xFC00))
        return {"x": _port(p, np.array(rows))}
    w = elem_width(fmt)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    vals = [np.zeros(m), np.full(m, hi), np.full(m, lo), np.where(alt, hi, lo),
            np.where(alt, lo, hi), np.where(idx == 0, hi, lo), np.where(idx == m - 1, lo, hi),
            np.where(idx == 0, 1, 0), np.where(idx == 0, -1, 0), np.where(alt, 1, 0),
            np.where(alt, 2, 0), np.where(alt, 1, -1), (idx * ((1 << w) - 1)) // (m - 1) + lo,
            np.where(idx < m // 2, 0, 1), np.where(idx == 0, m // 2, 0),
            np.where(idx == 0, 3 * (m // 2), 0), np.where(idx == 0, -(m // 2), 0),
            np.where(alt, hi, hi - 1)]
    return {"x": _port(p, np.array(vals, np.int64))}


register(UnitSpec(
    name="bn_norm",
    summary="Norm-matters normalization: mean, 1/sigma (L2 | L1 | L-inf) and y = (x-mu)/sigma "
            "over m values, int8 | int16 | fp16",
    params=(
        IntParam("m", 8, 2, M_MAX, "values per channel (a power of two)"),
        ChoiceParam("fmt", "int8", NORM_FORMATS,
                    "element format: two's-complement int8 / int16 codes, or IEEE fp16"),
        ChoiceParam("norm", "l2", NORMS, "sigma: L2 (std), L1 (sqrt(pi/2) mean|d|), "
                                         "L-inf (C(m) max|d|)"),
    ),
    build=lambda p: BnNorm(p["m"], p["fmt"], p["norm"]),
    golden=_golden,
    stimulus=norm_stimulus,
    corners=norm_corners,
    exhaustive=lambda p: every_input([("x", p["m"] * elem_width(p["fmt"]), False)]),
    check=lambda p: check_norm_params(p["m"], p["fmt"], p["norm"]),
))


def gaussian_channels(p, n, seed: int = 0) -> dict:
    """The ``gaussian`` stream: ``n`` channels of ``m`` pre-activation values, each channel
    ``N(c, 1)`` with its own mean ``c ~ N(0, 1)`` (what a batch-norm layer sees), seeded. The
    same real values for every ``norm`` and format: fp16 codes rounded to nearest even,
    integer codes ``round(x 2^F)`` saturated (``F`` = :data:`GAUSSIAN_FRAC_BITS`)."""
    rng = np.random.default_rng(seed)
    m, fmt = p["m"], p["fmt"]
    x = rng.normal(0.0, 1.0, (n, 1)) + rng.normal(0.0, 1.0, (n, m))
    if fmt == "fp16":
        return {"x": _port(p, encode(x, "fp16").astype(np.int64))}
    w = elem_width(fmt)
    codes = np.clip(np.rint(x * 2.0 ** GAUSSIAN_FRAC_BITS[fmt]), -(1 << (w - 1)), (1 << (w - 1)) - 1)
    return {"x": _port(p, codes.astype(np.int64))}


register_stream("bn_norm", "gaussian", gaussian_channels,
                "channels of m values N(c, 1), c ~ N(0, 1): the same values in every format "
                "(int8 / int16 with 4 / 8 fraction bits, fp16)")
