"""Registry entries of the MX family: ``mx_dot`` and ``mx_dot_general`` (the element units
are ``fp8_mul`` and ``fp8_mac`` with ``fmt`` = e2m1 .. e5m2, registered in :mod:`hw.reg_fp8`)."""

from __future__ import annotations

import numpy as np

from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import MX_ELEMENTS, FPFormat
from qrtl.golden.fp8 import encode, join_lanes, split_lanes
from qrtl.golden.mx import (K_MAX, SCALE_FORMATS, check_mx_params, mx_dot_general_stream,
                            mx_dot_ports)
from qrtl.golden.params import ChoiceParam, IntParam

from .mx import MxDot, MxDotGeneral
from .reg_fp8 import special_codes
from .registry import UnitSpec, register

__all__ = ["mx_formats", "mx_blocks", "mx_corner_blocks"]

#: Scale codes every corner set uses: the extremes, around 1.0, and NaN.
SCALE_EXTREMES = np.array([0, 1, 2, 63, 126, 127, 128, 191, 253, 254, 255], np.int64)


def mx_formats(p) -> tuple:
    """``(fmt_a, fmt_b)`` format objects of a parameter dict (``fmt_b="same"``: fmt_a)."""
    fb = p["fmt_a"] if p["fmt_b"] == "same" else p["fmt_b"]
    return check_mx_params(p["fmt_a"], fb, p["k"], p["scale"])


def _check(p):
    mx_formats(p)


def _golden(p, x):
    fa, fb = mx_formats(p)
    return mx_dot_ports(x, fmt_a=fa, fmt_b=fb, k=p["k"], scale=p["scale"])


def _max_code(f) -> int:
    return f.max_code if isinstance(f, FPFormat) else (1 << (f.width - 1)) - 1


def _neg(codes, f):
    """Codes of the negated values (sign bit flip; two's complement negation, -128 stays)."""
    codes = np.asarray(codes, np.int64)
    if isinstance(f, FPFormat):
        return codes ^ f.sign_bit
    return (-codes) & ((1 << f.width) - 1)


def mx_blocks(f, kind: str, n: int, k: int, rng) -> np.ndarray:
    """``(n, k)`` element codes of format ``f`` of one kind of block data:

    * ``normal``: ``N(0, s^2)`` values with ``s`` log-uniform over the format's range,
      rounded to ``f`` (saturating), as a quantizer would produce them;
    * ``uniform``: uniform codes (NaN and Inf included where the format has them);
    * ``max``: the largest magnitude with random signs (the accumulator's extreme);
    * ``small``: mostly zeros and the smallest magnitudes (sticky and subnormal results).
    """
    if kind == "uniform":
        return rng.integers(0, 1 << f.width, (n, k))
    if kind == "max":
        m = np.full((n, k), _max_code(f))
        return np.where(rng.random((n, k)) < 0.5, _neg(m, f), m)
    if kind == "small":
        c = rng.integers(0, 4, (n, k))
        c = np.where(rng.random((n, k)) < 0.5, 0, c)
        return np.where(rng.random((n, k)) < 0.5, _neg(c, f), c)
    top = float(f.max_value)
    s = np.exp(rng.uniform(np.log(top) - 12, np.log(top), (n, 1)))
    return encode(rng.normal(0, 1, (n, k)) * s, f, saturate=True).astype(np.int64).reshape(n, k)


def _cancel(fa, fb, n, k, rng):
    """Blocks whose products cancel exactly in pairs (``a_j b_j + (-a_j) b_j``), one pair
    in four then nudged by one code so the result is a tiny residue, not zero."""
    h = max(k // 2, 1)
    a = mx_blocks(fa, "normal", n, h, rng)
    b = mx_blocks(fb, "normal", n, h, rng)
    if k == 1:
        return a, b
    a2 = _neg(a, fa)
    nudge = rng.random(n) < 0.25
    a2[:, 0] = np.where(nudge & (a2[:, 0] & ((1 << (fa.width - 1)) - 1) > 0), a2[:, 0] - 1, a2[:, 0])
    return np.concatenate([a, a2], 1), np.concatenate([b, b], 1)


def _ports(fa, fb, a, b, sa, sb) -> dict:
    return {"a": join_lanes(a, fa.width), "b": join_lanes(b, fb.width),
            "sa": np.asarray(sa, np.uint64), "sb": np.asarray(sb, np.uint64)}


def _stimulus(p, n, rng, kinds=(0.4, 0.15, 0.15, 0.1, 0.2), nan_scale=0.05):
    """``n`` block pairs: 40% normal data, 15% uniform codes, 15% exact cancellation
    (a quarter nudged to a tiny residue), 10% max-magnitude, 20% small values (``kinds``);
    scales mostly near 1.0, 25% uniform codes, 5% the NaN code 0xFF (``nan_scale``)."""
    fa, fb = mx_formats(p)
    k = p["k"]
    kinds = rng.choice(5, n, p=list(kinds))
    a = np.zeros((n, k), np.int64)
    b = np.zeros((n, k), np.int64)
    for i, kind in enumerate(("normal", "uniform", None, "max", "small")):
        sel = np.flatnonzero(kinds == i)
        if kind is None:
            a[sel], b[sel] = _cancel(fa, fb, len(sel), k, rng)
        else:
            a[sel], b[sel] = mx_blocks(fa, kind, len(sel), k, rng), mx_blocks(fb, kind, len(sel), k, rng)
    if p["scale"] == "e8m0":
        near = lambda: rng.integers(117, 138, n)                    # 2^-10 .. 2^10
    else:  # E4M3 codes of 2^-5 .. 2^5 (positive)
        near = lambda: rng.integers(0x10, 0x60, n)
    sa, sb = (np.where(rng.random(n) < 0.7, near(),
                       np.where(rng.random(n) < 1 - nan_scale / 0.3, rng.integers(0, 255, n), 255))
              for _ in range(2))
    return _ports(fa, fb, a, b, sa, sb)


def mx_corner_blocks(fa, fb, k: int) -> tuple:
    """``(a, b)`` corner blocks: all +0, all -0 (and mixed zero signs), all max magnitude of
    each sign combination, all smallest magnitude, an exact cancellation, and every special
    code of each format (NaN, Inf, extremes) placed in element 0 of otherwise unit blocks."""
    one = lambda f: int(encode(np.array([1.0]), f)[0])
    za, zb = np.zeros(k, np.int64), np.zeros(k, np.int64)
    ma, mb = np.full(k, _max_code(fa)), np.full(k, _max_code(fb))
    unit = np.ones(k, np.int64)                      # code 1: the smallest magnitude
    rows = [(za, zb), (_neg(za, fa), zb), (_neg(za, fa), _neg(zb, fb)),
            (ma, mb), (_neg(ma, fa), mb), (_neg(ma, fa), _neg(mb, fb)),
            (unit, unit), (unit, _neg(unit, fb))]
    if k > 1:  # exact cancellation of the largest products: +M*M ... -M*M
        rows.append((np.where(np.arange(k) < k // 2, ma, _neg(ma, fa)), mb))
    for f, side in ((fa, 0), (fb, 1)):
        specials = special_codes(f) if isinstance(f, FPFormat) else \
            np.array([0, 1, 0x7F, 0x80, 0xFF], np.int64)
        for c in specials:
            x = np.full(k, one(fa)), np.full(k, one(fb))
            x[side][0] = int(c)
            rows.append(x)
    a = np.array([r[0] for r in rows], np.int64)
    b = np.array([r[1] for r in rows], np.int64)
    return a, b


def _corners(p):
    """Every corner block pair under every pair of extreme scales (:data:`SCALE_EXTREMES`;
    for E4M3 scales its :func:`special_codes`: zeros, subnormals, max, NaN, negatives)."""
    fa, fb = mx_formats(p)
    a, b = mx_corner_blocks(fa, fb, p["k"])
    ext = SCALE_EXTREMES if p["scale"] == "e8m0" else special_codes(p["scale"]).astype(np.int64)
    ns, nb = len(ext), len(a)
    sa, sb = (g.ravel() for g in np.meshgrid(ext, ext, indexing="ij"))
    return _ports(fa, fb, np.repeat(a, ns * ns, 0), np.repeat(b, ns * ns, 0),
                  np.tile(sa, nb), np.tile(sb, nb))


#: The parameters of both MX units (one block pair, or a stream of them).
MX_PARAMS = (
    ChoiceParam("fmt_a", "e4m3", MX_ELEMENTS, "element format of block A (MX FP8/FP6/FP4/INT8)"),
    ChoiceParam("fmt_b", "same", ("same",) + MX_ELEMENTS, "element format of block B"),
    IntParam("k", 32, 1, K_MAX, "elements per block (a power of two)"),
    ChoiceParam("scale", "e8m0", SCALE_FORMATS, "scale format (e4m3 with e2m1, k=16: NVFP4)"),
)


def _build(p):
    fa, fb = mx_formats(p)
    return MxDot(fa.name, fb.name, p["k"], p["scale"])


register(UnitSpec(
    name="mx_dot",
    summary="OCP MX block dot product 2^(sa+sb-254) * sum a_i*b_i, exact sum, one rounding to fp32",
    params=MX_PARAMS,
    build=_build,
    golden=_golden,
    stimulus=_stimulus,
    corners=_corners,
    check=_check,
))


# --- mx_dot_general --------------------------------------------------------------------------

def _take(ports: dict, idx) -> dict:
    """Rows ``idx`` of port arrays (byte matrices for wide ports, values otherwise)."""
    return {k: np.asarray(v)[idx] for k, v in ports.items()}


def _lanes(p) -> int:
    """Element pairs per cycle of ``mx_dot_general`` (``lanes=0``: the whole block, k)."""
    return p["lanes"] or p["k"]


def _general_check(p):
    mx_formats(p)
    n = _lanes(p)
    if n > p["k"] or p["k"] % n or n & (n - 1):
        raise QrtlError(f"lanes={n} is not valid (allowed: 0 = k, or a power of two dividing k={p['k']})")


def _general_golden(p, x):
    fa, fb = mx_formats(p)
    return mx_dot_general_stream(x, fmt_a=fa, fmt_b=fb, k=p["k"], scale=p["scale"], lanes=_lanes(p))


def _chunked(p, x: dict, rng) -> dict:
    """A block-per-cycle stream ``x`` cut into ``k / lanes`` cycles per cycle: chunk ``j``
    carries elements ``j*lanes ..``; the scales and ``last`` are random junk on every chunk
    but the final one (the unit must ignore them); an idle cycle becomes idle cycles."""
    fa, fb = mx_formats(p)
    n, k = _lanes(p), p["k"]
    c = k // n
    if c == 1:
        return x
    cyc = len(x["sa"])
    out = {}
    for port, f in (("a", fa), ("b", fb)):
        el = split_lanes(x[port], f.width, k).reshape(cyc * c, n)
        out[port] = join_lanes(el, f.width)
    final = np.tile(np.arange(c) == c - 1, cyc)
    for port, hi in (("sa", 256), ("sb", 256), ("last", 2)):
        junk = rng.integers(0, hi, cyc * c).astype(np.uint64)
        out[port] = np.where(final, np.repeat(np.asarray(x[port]).astype(np.uint64), c), junk)
    out["valid"] = np.repeat(np.asarray(x["valid"]).astype(np.uint64), c)
    return out


def _cycles(blocks: dict, lengths, rng, idle=0.1) -> dict:
    """A cycle stream of the block pairs ``blocks`` (port arrays, in order), cut into dot
    products of ``lengths`` blocks; before about ``idle`` of the cycles an idle cycle
    (``valid = 0``, random ``last``) carries another, random block as junk."""
    n = len(blocks["sa"])
    ends = set(np.cumsum(lengths) - 1)
    src, valid, last = [], [], []
    for i in range(n):
        if rng.random() < idle:
            src.append(int(rng.integers(0, n)))
            valid.append(0)
            last.append(int(rng.integers(0, 2)))
        src.append(i)
        valid.append(1)
        last.append(int(i in ends))
    out = _take(blocks, np.array(src))
    out["valid"], out["last"] = np.array(valid, np.uint64), np.array(last, np.uint64)
    return out


def _general_stimulus(p, n, rng):
    """``n`` cycles of dot products of 1..64 blocks (log-uniform), block data as
    :func:`_stimulus` with fewer specials (2% uniform codes, 0.2% NaN scales, so that long
    sums are mostly finite), about 10% idle cycles of junk. A final dot product cut short by
    ``n`` is left open (no ``last``)."""
    nb = -(-n // (p["k"] // _lanes(p)))
    blocks = _stimulus(p, nb, rng, kinds=(0.5, 0.02, 0.2, 0.08, 0.2), nan_scale=0.002)
    lengths = [int(np.exp(rng.uniform(0, np.log(65)))) for _ in range(nb)]
    x = _chunked(p, _cycles(blocks, lengths, rng), rng)
    return {k: v[:n] for k, v in x.items()}


def _general_corners(p):
    """Every :func:`_corners` block pair alone (a one-block dot product), then followed by
    itself with ``a`` negated (two blocks that cancel exactly), then four times in a row
    (sums that carry, overflow to Inf, or stay NaN)."""
    fa, fb = mx_formats(p)
    c = _corners(p)
    n = len(c["sa"])
    lanes = split_lanes(c["a"], fa.width, p["k"])
    c_neg = dict(c, a=join_lanes(_neg(lanes, fa), fa.width))
    order, last = [], []
    for i in range(n):
        order += [(0, i), (0, i), (1, i)] + [(0, i)] * 4
        last += [1, 0, 1, 0, 0, 0, 1]
    src = [c, c_neg]
    x = {k: np.concatenate([np.asarray(src[s][k])[[i]] for s, i in order]) for k in c}
    x["valid"] = np.ones(len(order), np.uint64)
    x["last"] = np.array(last, np.uint64)
    return _chunked(p, x, np.random.default_rng(1))


def _build_general(p):
    fa, fb = mx_formats(p)
    return MxDotGeneral(fa.name, fb.name, p["k"], p["scale"], _lanes(p))


register(UnitSpec(
    name="mx_dot_general",
    summary="OCP MX DotGeneral: lanes element pairs per cycle, each exact block Dot added to an fp32 accumulator",
    params=MX_PARAMS + (IntParam("lanes", 0, 0, K_MAX, "element pairs per cycle (0: the whole block, k)"),),
    build=_build_general,
    golden=_general_golden,
    stimulus=_general_stimulus,
    corners=_general_corners,
    check=_general_check,
    stream=True,
))
