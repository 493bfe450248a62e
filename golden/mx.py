"""Bit-exact golden model of the OCP MX dot product (``mx_dot``).

OCP Microscaling Formats (MX) v1.0, section 6 ("Dot"): for two MX blocks of ``k`` elements
``P^A_i``, ``P^B_i`` with scales ``X(A)``, ``X(B)``,

    ``Dot(A, B) = X(A) * X(B) * sum_i P^A_i * P^B_i``

and the spec leaves the internal precision and the order of the additions to the
implementation. Ours: **exact**. Every element is an integer multiple of its format's
smallest quantum ``2^lsb`` (``lsb = emin - mbits`` for a minifloat, the implicit scale
``-6`` for the INT8 element), so every product is an integer multiple of ``2^(lsbA + lsbB)``
and the sum is an integer ``S`` held exactly in a two's complement accumulator of

    ``W = bitlen(k * MA * MB) + 1``  bits  (at most ``wA + wB + log2(k) + 1``),

where ``MA = max|A| / 2^lsbA`` is the largest element magnitude in quanta (``wA`` bits).
The result is ``S * 2^(lsbA + lsbB + (eA - 127) + (eB - 127))`` for E8M0 scale codes
``eA``, ``eB``, rounded **once** to IEEE binary32 (round to nearest even, subnormals kept,
overflow to +-Inf). :func:`acc_width` gives ``W``; for k = 32 it is 14 bits (E2M1 x E2M1),
18 (E2M3), 24 (E3M2), 42 (E4M3), 70 (E5M2), 21 (INT8 x INT8) and 56 (E4M3 x E5M2).

**NVFP4** (``scale="e4m3"``): NVIDIA's variant of the same product, E2M1 elements with an
E4M3 scale per 16 elements. A scale is then a minifloat ``sX * 2^eX`` (4-bit significand),
and the exact sum is multiplied by ``sA * sB`` (8 bits more: ``W + 8``) before the one
rounding; the E4M3 sign is honoured (NVFP4 scales are positive in practice) and an E4M3
NaN scale gives NaN, a zero scale a zero (NaN with an infinite element). Any element
format works with either scale. The optional per-tensor FP32 scale of NVFP4 is not
part of the unit (one binary32 multiply of the result).

Special values (section 6: a NaN scale makes the block NaN; the FP8 elements' NaN and Inf
follow IEEE 754 as in :mod:`golden.fp8`): the result is the canonical NaN ``0x7FC00000`` if
either scale is NaN (``0xFF``), if any element is NaN, if any product is ``Inf * 0``, or if
products of both infinite signs occur; else ``+-Inf`` if any product is infinite. An exact
zero sum is ``-0`` only if every product is ``-0`` (as IEEE 754 sums them), else ``+0``.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import QrtlError
from .formats import MX_ELEMENTS, FPFormat, get_format
from .fp8 import Unpacked, product, round_pack, split_lanes, unpack

__all__ = ["element_lsb", "element_max_quanta", "acc_width", "scale_bits", "mx_block", "mx_dot",
           "mx_dot_ports", "mx_dot_general_stream",
           "check_mx_params", "K_MAX", "SCALE_FORMATS", "element_emax", "mx_quantize",
           "mx_dequantize"]

K_MAX = 64
#: Scale formats of ``mx_dot``: the MX E8M0, and E4M3 (NVFP4).
SCALE_FORMATS = ("e8m0", "e4m3")
_NAN32, _INF32 = 0x7FC00000, 0x7F800000


def element_lsb(fmt) -> int:
    """Exponent of the smallest quantum of an element format (every value is a multiple)."""
    f = get_format(fmt)
    return f.emin - f.mbits if isinstance(f, FPFormat) else f.scale_exp


def element_max_quanta(fmt) -> int:
    """Largest element magnitude in quanta ``2^element_lsb`` (``2^7`` for the INT8 element)."""
    f = get_format(fmt)
    if isinstance(f, FPFormat):
        return int(f.max_value / 2 ** element_lsb(f))
    return 1 << (f.width - 1)


def acc_width(fmt_a, fmt_b, k: int) -> int:
    """Width ``W`` of the exact two's complement accumulator of ``k`` products (module doc)."""
    return (k * element_max_quanta(fmt_a) * element_max_quanta(fmt_b)).bit_length() + 1


def scale_bits(scale) -> int:
    """Bits of the product of two scale significands: 0 for E8M0 (powers of two), 8 for
    E4M3 (``15 * 15 = 225``). The exact scaled magnitude has ``W - 1 + scale_bits`` bits."""
    f = get_format(scale)
    return 2 * f.precision if isinstance(f, FPFormat) else 0


def check_mx_params(fmt_a, fmt_b, k, scale="e8m0") -> tuple:
    """The element formats (objects) after checking them, ``k`` and ``scale`` (one-line
    QrtlError)."""
    if getattr(scale, "name", scale) not in SCALE_FORMATS:
        raise QrtlError(f"scale={getattr(scale, 'name', scale)!r} is not a scale format "
                        f"(allowed: {', '.join(SCALE_FORMATS)})")
    for what, f in (("fmt_a", fmt_a), ("fmt_b", fmt_b)):
        name = getattr(f, "name", f)
        if name not in MX_ELEMENTS:
            raise QrtlError(f"{what}={name!r} is not an MX element format "
                            f"(allowed: {', '.join(MX_ELEMENTS)})")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= K_MAX \
            or k & (k - 1):
        raise QrtlError(f"k={k!r} is not valid (allowed: a power of two 1..{K_MAX})")
    return get_format(fmt_a), get_format(fmt_b)


def mx_block(a, b, sa, sb, *, fmt_a="e4m3", fmt_b="e4m3", scale="e8m0") -> Unpacked:
    """The exact value ``X(sa) * X(sb) * sum_i a_i * b_i`` of each block pair, unrounded:
    :class:`~qrtl.golden.fp8.Unpacked` with ``sig`` the magnitude in units of ``2^exp``
    (a Python-int object array when it may exceed 62 bits, else int64), ``sign`` the sign
    of the result (of the infinity when ``inf``), ``nan``/``inf`` by the rules of the module
    docstring. Shapes: ``a``, ``b`` ``(N, k)``; ``sa``, ``sb`` ``(N,)``; fields ``(N,)``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise QrtlError(f"mx_dot: a and b must have the same shape (..., k), got {a.shape} and {b.shape}")
    fa, fb = check_mx_params(fmt_a, fmt_b, a.shape[-1], scale)
    k = a.shape[-1]
    sa, sb = (np.broadcast_to(np.asarray(s).astype(np.int64), a.shape[:1]) for s in (sa, sb))
    x = product(unpack(sa, scale), unpack(sb, scale))   # the block scale X(A) * X(B), exact
    p = product(unpack(a, fa), unpack(b, fb))
    la, lb = element_lsb(fa), element_lsb(fb)
    shift = p.exp - (la + lb)                    # >= 0: every product is a multiple of 2^(la+lb)
    wide = acc_width(fa, fb, k) + scale_bits(scale) > 62   # E5M2 sums need up to 70 bits
    sig = p.sig.astype(object) if wide else p.sig
    term = sig << (shift.astype(object) if wide else shift)
    s = np.where(p.sign == 1, -term, term).sum(axis=1)
    neg = s < 0
    mag = np.where(neg, -s, s) * (x.sig.astype(object) if wide else x.sig)
    zero_sign = np.all((p.sign == 1) & (p.sig == 0) & ~p.inf & ~p.nan, axis=1)
    pinf = np.any(p.inf & (p.sign == 0), axis=1)
    ninf = np.any(p.inf & (p.sign == 1), axis=1)
    nan = np.any(p.nan, axis=1) | (pinf & ninf) | x.nan | ((pinf | ninf) & (x.sig == 0))
    inf = (pinf | ninf) & ~nan
    sign = np.where(inf, ninf, np.where(s == 0, zero_sign, neg)).astype(np.int64) ^ x.sign
    return Unpacked(sign, mag, la + lb + x.exp, nan, inf)


def _jam62(mag, exp):
    """``(m, e)`` int64 with ``m < 2^62`` and ``m * 2^e`` rounding (to binary32, RNE) as
    ``mag * 2^exp`` does: bits below the top 62 are ORed into bit 0 (sticky)."""
    if mag.dtype != object:
        return mag, exp
    bl = np.array([int(v).bit_length() for v in mag], np.int64)
    d = np.maximum(bl - 62, 0)
    kept = np.array([int(v) >> int(n) | (int(v) & ((1 << int(n)) - 1) != 0)
                     for v, n in zip(mag, d)], np.int64)
    return kept, exp + d


def mx_dot(a, b, sa, sb, *, fmt_a="e4m3", fmt_b="e4m3", scale="e8m0") -> np.ndarray:
    """binary32 codes (uint64) of ``X(sa) * X(sb) * sum_i a_i * b_i``, exact then rounded
    once (module docstring); ``X(s) = 2^(s-127)`` for E8M0 scales.

    ``a``, ``b``: element codes, shape ``(..., k)`` (``k`` a power of two up to 64);
    ``sa``, ``sb``: scale codes (``scale``: ``"e8m0"`` or ``"e4m3"``), shape ``(...)``.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 1:
        raise QrtlError(f"mx_dot: a and b must have the same shape (..., k), got {a.shape} and {b.shape}")
    lead, k = a.shape[:-1], a.shape[-1]
    sa, sb = (np.broadcast_to(np.asarray(s).astype(np.int64), lead).ravel() for s in (sa, sb))
    v = mx_block(a.reshape(-1, k), b.reshape(-1, k), sa, sb, fmt_a=fmt_a, fmt_b=fmt_b, scale=scale)
    mag, g = _jam62(v.sig, v.exp)   # the jam keeps at least 62 - 24 bits below the rounding
    out = round_pack(v.sign, mag, g, "fp32")
    out = np.where(v.inf, np.uint64(_INF32) | (v.sign.astype(np.uint64) << np.uint64(31)), out)
    out = np.where(v.nan, np.uint64(_NAN32), out)
    return out.astype(np.uint64).reshape(lead)


def _to_fp32(v: int, e: int) -> int:
    """binary32 code of the exact nonzero ``v * 2^e`` (Python ints), rounded once (RNE):
    ``v`` jammed to 53 bits (round to odd, exact in float64) then cast, which rounds as the
    exact value would since float64 keeps more than 24 + 1 bits."""
    a = abs(v)
    d = max(a.bit_length() - 53, 0)
    a = (a >> d) | (a & ((1 << d) - 1) != 0)
    with np.errstate(over="ignore"):
        f = np.float32(math.ldexp(float(a), e + d))
    return int(f.view(np.uint32)) | ((v < 0) << 31)


def mx_dot_general_stream(x: dict, *, fmt_a="e4m3", fmt_b="e4m3", k=32, scale="e8m0",
                          lanes=None) -> dict:
    """Every output cycle of ``mx_dot_general``: MX ``DotGeneral`` (section 6), the sum of
    the ``Dot`` of consecutive block pairs, accumulated in binary32.

    ``x``: per-cycle ``valid``, ``last``, ``a``, ``b``, ``sa``, ``sb`` (port values as for
    :func:`mx_dot_ports`, ``lanes`` element pairs per cycle). With ``lanes = k`` (default)
    every valid cycle carries a whole block pair; with ``lanes < k`` (a power of two) a
    block arrives in ``k / lanes`` valid cycles (chunks, element 0 first), and the scales
    and ``last`` are taken from its final chunk (ignored on the others). A block's exact
    value (:func:`mx_block`) is added to the accumulator ``acc`` with one rounding (``acc =
    round(acc + Dot_exact)``, RNE, IEEE 754 special cases, overflow to Inf) in the cycle of
    its final chunk; with ``last`` that sum is the result and ``acc`` restarts at ``+0``.
    Output of cycle ``t`` (registers after cycle ``t``; the RTL shows them one clock later,
    latency 1): ``result_valid`` (a final chunk with ``last``) and ``result`` = the latest
    result (``+0`` before any). A block cut short by the end of the stream is not added.
    """
    fa, fb = check_mx_params(fmt_a, fmt_b, k, scale)
    lanes = k if lanes is None else int(lanes)
    if not 1 <= lanes <= k or k % lanes or lanes & (lanes - 1):
        raise QrtlError(f"lanes={lanes} is not valid (allowed: a power of two dividing k={k})")
    chunks = k // lanes
    valid = np.asarray(x["valid"]).astype(np.int64) & 1
    vidx = np.flatnonzero(valid)
    nblk = len(vidx) // chunks
    body = vidx[:nblk * chunks]
    idx = body[chunks - 1::chunks]                      # the final chunk of each block
    final = np.zeros(len(valid), bool)
    final[idx] = True
    last = (np.asarray(x["last"]).astype(np.int64) & 1).astype(bool) & final
    a = split_lanes(np.asarray(x["a"])[body], fa.width, lanes).reshape(nblk, k)
    b = split_lanes(np.asarray(x["b"])[body], fb.width, lanes).reshape(nblk, k)
    sa, sb = (np.asarray(x[n]).astype(np.int64)[idx] for n in ("sa", "sb"))
    v = mx_block(a, b, sa, sb, fmt_a=fa, fmt_b=fb, scale=scale) if len(idx) else None
    fp32 = get_format("fp32")
    result = np.zeros(len(valid), np.uint64)
    acc, res = 0, 0
    for j, t in enumerate(idx):
        asign, aexp = acc >> 31, (acc >> 23) & 0xFF
        afrac = acc & 0x7FFFFF
        anan, ainf = aexp == 0xFF and afrac != 0, aexp == 0xFF and afrac == 0
        bsign, bnan, binf = int(v.sign[j]), bool(v.nan[j]), bool(v.inf[j])
        if anan or bnan or (ainf and binf and asign != bsign):
            acc = fp32.nan_code
        elif ainf or binf:
            acc = 0x7F800000 | ((asign if ainf else bsign) << 31)
        else:
            amag = (afrac | (1 << 23)) if aexp else afrac
            ae = max(aexp, 1) - 150
            be, bmag = int(v.exp[j]), int(v.sig[j])
            e0 = min(ae, be)
            total = ((-amag if asign else amag) << (ae - e0)) + ((-bmag if bsign else bmag) << (be - e0))
            acc = (asign & bsign) << 31 if total == 0 else _to_fp32(total, e0)
        if last[t]:
            res, acc = acc, 0
        result[t] = res
    # idle cycles and the other chunks hold the latest result
    held = np.maximum.accumulate(np.where(final, np.arange(len(valid)), -1))
    result = np.where(held >= 0, result[np.maximum(held, 0)], 0).astype(np.uint64)
    return {"result": result, "result_valid": last.astype(np.uint64)}


def mx_dot_ports(x: dict, *, fmt_a="e4m3", fmt_b="e4m3", k=32, scale="e8m0") -> dict:
    """:func:`mx_dot` on port values: ``a`` (``k`` codes side by side, element 0 in the
    LSBs), ``b`` likewise, ``sa``, ``sb``; returns ``{"result": binary32 codes}``."""
    fa, fb = check_mx_params(fmt_a, fmt_b, k, scale)
    a = split_lanes(x["a"], fa.width, k)
    b = split_lanes(x["b"], fb.width, k)
    return {"result": mx_dot(a, b, x["sa"], x["sb"], fmt_a=fa, fmt_b=fb, scale=scale)}


# --- conversion of real values to MX blocks (OCP MX v1.0 section 6.3) -----------------------

def element_emax(fmt) -> int:
    """``emax_elem`` of OCP MX v1.0 (table 1): exponent of the largest power of two the
    element format holds (8 for E4M3, 15 for E5M2, 4 for E3M2, 2 for E2M3 and E2M1, 0 for
    the INT8 element, whose values are ``-2 .. 1 + 63/64``)."""
    f = get_format(fmt)
    return f.emax if isinstance(f, FPFormat) else f.width - 2 + f.scale_exp


def mx_quantize(values, fmt="e4m3", k: int = 32, scale="e8m0") -> tuple:
    """Real values -> MX blocks: ``(element codes, scale codes)`` of shapes ``(..., n)`` and
    ``(..., n / k)``; blocks are ``k`` consecutive values of the last axis.

    ``scale="e8m0"`` is the conversion of OCP MX v1.0 section 6.3 (the algorithm of its
    reference library): the shared exponent ``X = floor(log2(max_i |V_i|)) - emax_elem``
    (:func:`element_emax`), clamped to the E8M0 range, and ``P_i = V_i / 2^X``
    rounded to the element format (nearest even, saturating). A block of zeros gets the
    smallest scale. ``scale="e4m3"`` (NVFP4): the scale is ``max_i |V_i| / max_elem``
    rounded to E4M3 (nearest even, saturating), ``P_i = V_i / scale`` as above; a zero
    scale gives zero elements. The caller divides by a per-tensor scale first if it uses
    one (NVFP4's FP32 tensor scale keeps ``max / max_elem`` inside E4M3's range).
    """
    from .fp8 import decode, encode
    v = np.asarray(values, dtype=np.float64)
    check_mx_params(fmt, fmt, k, scale)
    if v.ndim < 1 or v.shape[-1] % k:
        raise QrtlError(f"mx_quantize: the last axis ({v.shape[-1] if v.ndim else 0}) is not a "
                        f"multiple of k={k}")
    if not np.isfinite(v).all():
        raise QrtlError("mx_quantize: the values must be finite")
    blocks = v.reshape(*v.shape[:-1], -1, k)
    amax = np.abs(blocks).max(axis=-1)
    if scale == "e8m0":
        f = get_format("e8m0")
        _, ex = np.frexp(np.where(amax > 0, amax, 1.0))          # amax = m 2^ex, 0.5 <= m < 1
        shared = np.where(amax > 0, ex.astype(np.int64) - 1 - element_emax(fmt), f.emin)
        shared = np.clip(shared, f.emin, f.emax)
        scodes = (shared + f.bias).astype(np.uint64)
        x = np.ldexp(1.0, shared.astype(np.int32))
    else:
        scodes = encode(amax / float(get_format(fmt).max_value), "e4m3", saturate=True)
        x = decode(scodes, "e4m3")
    safe = np.where(x > 0, x, 1.0)
    codes = encode(np.where(x[..., None] > 0, blocks / safe[..., None], 0.0), fmt, saturate=True)
    return codes.reshape(v.shape), scodes


def mx_dequantize(codes, scales, fmt="e4m3", k: int = 32, scale="e8m0") -> np.ndarray:
    """The real values ``X * P_i`` of MX blocks (float64, exact), inverse of
    :func:`mx_quantize`'s layout."""
    from .fp8 import decode
    c = np.asarray(codes)
    f = get_format(fmt)
    if isinstance(f, FPFormat):
        p = decode(c, f)
    else:
        p = np.ldexp(np.where(c >= f.sign_bit, c.astype(np.int64) - (1 << f.width),
                              c.astype(np.int64)).astype(np.float64), f.scale_exp)
    x = decode(np.asarray(scales), scale) if scale != "e8m0" else np.where(
        np.asarray(scales) == get_format("e8m0").nan_code, np.nan,
        np.ldexp(1.0, np.asarray(scales).astype(np.int32) - get_format("e8m0").bias))
    return (p.reshape(*c.shape[:-1], -1, k) * x[..., None]).reshape(c.shape)
