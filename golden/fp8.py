"""Bit-exact golden models of the FP8 units: exact multiplier, fused MAC, chunked dot product.

Everything works on integer codes (NumPy ``int64``/``uint64`` arrays) with integer shifts
and sticky bits; floats appear only in :func:`decode` and :func:`encode`, the bridges used
by tests and experiments. Formats are :class:`golden.formats.FPFormat` objects or names.

Rounding of an exact value ``V != 0`` to a format (``round_pack``)
    Let ``e = floor(log2 |V|)`` and ``q = max(e, emin) - mbits`` (the quantum exponent:
    subnormals are kept, never flushed). ``|V| / 2^q = K + f`` with integer ``K`` and
    ``0 <= f < 1``. The result magnitude is ``(K + up) * 2^q`` with

    * ``rne``: ``up = f > 1/2 or (f == 1/2 and K odd)`` (IEEE 754 roundTiesToEven);
    * ``stochastic``: ``t = floor(f * 2^rbits)`` (the first ``rbits`` discarded bits read
      as an unsigned integer; discarded bits below those are ignored) and
      ``up = t > rnd`` for the ``rbits``-bit random input ``rnd``. For ``rnd`` uniform on
      ``0..2^rbits-1``, ``P(up) = t / 2^rbits``, so ``E[result] = |V| - (f - t/2^rbits) 2^q``:
      unbiased up to less than ``2^-rbits`` of an ulp, always towards zero.

    Then, if ``(K + up) * 2^q`` exceeds the largest finite value: ``+-max`` when saturating,
    else ``+-Inf`` (``NaN`` for a format without infinities). The sign is that of ``V``, also
    when the result rounds to zero.

Special values (IEEE 754): NaN in -> NaN out; ``Inf * 0`` -> NaN; ``Inf - Inf`` -> NaN;
an exactly zero sum ``x + y`` is ``-0`` only if both ``x`` and ``y`` are ``-0``. Every NaN a
unit outputs is the format's canonical NaN (:attr:`FPFormat.nan_code`, sign 0); input
infinities stay infinite when saturating (saturation applies to finite overflow only).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from qrtl.golden.errors import QrtlError

from .bits import from_bytes, to_bytes
from .formats import ELEMENT_FORMATS, FP8_FORMATS, FPFormat, IntFormat, ScaleFormat, get_format

__all__ = ["Unpacked", "unpack", "product", "round_pack", "fp_add", "encode", "decode",
           "fp8_mul", "fp8_mac", "fp8_dot", "fp8_dot_prefix", "fp8_dot_stream",
           "split_lanes", "join_lanes", "ROUNDINGS", "RBITS_MAX"]

ROUNDINGS = ("rne", "stochastic")
#: Largest ``rbits`` for which the 61-bit alignment window below is provably exact.
RBITS_MAX = 32
_I64_MAX = np.int64(np.iinfo(np.int64).max)
_ZERO_EXP = -(1 << 40)   # MSB exponent given to zero operands: below everything
_WIN = 61                # golden alignment window: the larger operand's MSB sits at bit 61
_CHUNK = 1 << 20         # vectors per NumPy pass (bounds memory of the big sweeps)


class Unpacked(NamedTuple):
    """A vector of FP values ``(-1)^sign * sig * 2^exp`` plus NaN/Inf flags.

    ``sig`` is 0 for zeros, NaNs and infinities; all fields are ``int64`` / ``bool``.
    """

    sign: np.ndarray
    sig: np.ndarray
    exp: np.ndarray
    nan: np.ndarray
    inf: np.ndarray


def _i64(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint64:
        return x.astype(np.int64)
    return x.astype(np.int64, copy=False)


def _mask(n) -> np.ndarray:
    """``2^n - 1`` as int64 for ``0 <= n`` (saturating at ``2^63 - 1`` for ``n >= 63``)."""
    n = np.asarray(n)
    return np.where(n >= 63, _I64_MAX, (np.int64(1) << _clip(n, 0, 62)) - 1)


def _bitlen(x: np.ndarray) -> np.ndarray:
    """``floor(log2 x) + 1`` (0 for ``x == 0``) of non-negative int64, exactly.

    ``frexp`` of the float64 conversion is exact below 2^53; above, the conversion may round
    up to the next power of two, which the shift test undoes.
    """
    n = np.frexp(x.astype(np.float64))[1].astype(np.int64)
    return n - ((x >> np.maximum(n - 1, 0)) == 0) * (x > 0)


def _clip(x, lo, hi):
    """``min(max(x, lo), hi)`` (``np.clip`` costs several times more on small arrays)."""
    return np.minimum(np.maximum(x, lo), hi)


def unpack(codes, fmt) -> Unpacked:
    """Decode codes of ``fmt`` into :class:`Unpacked` (exact integers, no rounding).

    An :class:`IntFormat` code ``c`` unpacks to sign ``c < 0``, ``sig = |c|`` (``2^(w-1)``
    for the most negative code) and ``exp = scale_exp``; a :class:`ScaleFormat` code ``E``
    to sign 0, ``sig = 1``, ``exp = E - bias`` (NaN: ``sig = 0``). The same product and
    alignment logic then serves the MX INT8 element and the E8M0 scale.
    """
    f = get_format(fmt)
    c = _i64(codes)
    z = np.zeros(c.shape, bool)
    if isinstance(f, IntFormat):
        v = c - ((c & f.sign_bit) << 1)            # two's complement value
        return Unpacked((v < 0).astype(np.int64), np.abs(v), np.full(c.shape, f.scale_exp, np.int64), z, z)
    if isinstance(f, ScaleFormat):
        nan = c == f.nan_code
        return Unpacked(np.zeros(c.shape, np.int64), (~nan).astype(np.int64), c - f.bias, nan, z)
    m = f.mbits
    sign = (c >> (f.width - 1)) & 1
    e = (c >> m) & ((1 << f.ebits) - 1)
    man = c & ((1 << m) - 1)
    all1 = (1 << f.ebits) - 1
    if f.nan == "ieee":
        nan = (e == all1) & (man != 0)
        inf = (e == all1) & (man == 0)
    elif f.nan == "none":
        nan = inf = np.zeros(c.shape, bool)
    else:
        nan = (e == all1) & (man == (1 << m) - 1)
        inf = np.zeros(c.shape, bool)
    special = nan | inf
    sig = np.where(special, 0, np.where(e > 0, man | (1 << m), man))
    exp = np.maximum(e, 1) - f.bias - m
    return Unpacked(sign, sig, exp, nan, inf)


def product(x: Unpacked, y: Unpacked) -> Unpacked:
    """The exact product ``x * y`` (significands multiplied, exponents added)."""
    xz = (x.sig == 0) & ~x.nan & ~x.inf
    yz = (y.sig == 0) & ~y.nan & ~y.inf
    nan = x.nan | y.nan | (x.inf & yz) | (xz & y.inf)
    inf = (x.inf | y.inf) & ~nan
    return Unpacked(x.sign ^ y.sign, x.sig * y.sig, x.exp + y.exp, nan, inf)


def _check_rounding(rounding, rnd, rbits):
    if rounding not in ROUNDINGS:
        raise QrtlError(f"rounding={rounding!r} is not valid (allowed: {', '.join(ROUNDINGS)})")
    if rounding == "stochastic":
        if not 1 <= rbits <= RBITS_MAX:
            raise QrtlError(f"rbits={rbits} is out of range (allowed 1..{RBITS_MAX})")
        if rnd is None:
            raise QrtlError("rounding='stochastic' needs rnd (rbits-bit random integers)")


def round_pack(sign, mag, exp, fmt, rounding="rne", rnd=None, rbits=16, saturate=None):
    """Code of ``(-1)^sign * mag * 2^exp`` rounded to ``fmt`` (see the module docstring).

    ``mag`` is a non-negative int64 array (``< 2^63``); ``saturate=None`` takes the format's
    overflow policy; a format without Inf and NaN (``nan="none"``) always saturates. A zero
    ``mag`` gives the zero of sign ``sign``. Returns uint64 codes.
    """
    f = get_format(fmt)
    sat = (f.overflow == "saturate") if saturate is None else bool(saturate)
    sat = sat or not f.has_nan
    mag, exp, sign = _i64(mag), _i64(exp), _i64(sign)
    m = f.mbits
    e = exp + _bitlen(mag) - 1
    q = np.maximum(e, f.emin) - m
    sh = q - exp                                   # number of discarded bits
    kept = np.where(sh <= 0, mag << _clip(-sh, 0, 62), mag >> _clip(sh, 0, 63))
    rem = np.where(sh <= 0, 0, mag & _mask(sh))
    if rounding == "rne":
        g = _clip(sh - 1, 0, 63)
        guard = np.where(sh >= 1, (mag >> g) & 1, 0)
        sticky = (mag & _mask(g)) != 0
        up = (sh >= 1) & (guard == 1) & (sticky | ((kept & 1) == 1))
    elif rounding == "stochastic":
        d = sh - rbits
        top = np.where(d >= 0, rem >> _clip(d, 0, 63), rem << _clip(-d, 0, 63))
        up = top > _i64(rnd)
    else:
        raise QrtlError(f"rounding={rounding!r} is not valid (allowed: {', '.join(ROUNDINGS)})")
    kept = kept + up
    carry = kept >> (m + 1) == 1                    # rounded up to the next binade
    kept = np.where(carry, kept >> 1, kept)
    q = q + carry
    normal = kept >= (1 << m)
    code = np.where(normal, ((q + m + f.bias) << m) + kept - (1 << m), kept)
    over = code > f.max_code
    if sat:
        code = np.where(over, f.max_code, code)
        nan = np.zeros(code.shape, bool)
    elif f.has_inf:
        code = np.where(over, f.inf_code, code)
        nan = np.zeros(code.shape, bool)
    else:
        nan = over
    code = np.where(nan, f.nan_code, code | (sign << (f.width - 1)))
    return code.astype(np.uint64)


def fp_add(x: Unpacked, y: Unpacked, fmt, rounding="rne", rnd=None, rbits=16, saturate=None):
    """Code of ``round(x + y)`` in ``fmt``: the exact sum, rounded once (fused).

    The operand with the larger leading exponent is placed with its MSB at bit 61 of an
    int64; the other is shifted right to align, the bits shifted out ORed into bit 0 (sticky).
    That jammed value and the exact one lie in the same open interval ``(2k, 2k+2)`` of the
    window, and whenever bits are shifted out the sum keeps its MSB at bit 60 or above, so
    the rounding (which then discards at least 61 - 24 = 37 > ``rbits`` bits) sees the same
    first ``rbits`` discarded bits, guard and sticky as it would for the exact sum. Needs
    ``precision <= 24`` for the operands and ``fmt`` and ``rbits <= 32``.
    """
    f = get_format(fmt)
    _check_rounding(rounding, rnd, rbits)
    if f.precision > 24:
        raise QrtlError(f"fp_add: format {f.name} is wider than binary32")
    bx, by = _bitlen(x.sig), _bitlen(y.sig)
    if max(int(bx.max(initial=0)), int(by.max(initial=0))) > 48:
        raise QrtlError("fp_add: operand significands wider than 48 bits")
    ex = np.where(x.sig == 0, _ZERO_EXP, x.exp + bx - 1)
    ey = np.where(y.sig == 0, _ZERO_EXP, y.exp + by - 1)
    xbig = ex >= ey
    sb, ss = np.where(xbig, x.sign, y.sign), np.where(xbig, y.sign, x.sign)
    mb, ms = np.where(xbig, x.sig, y.sig), np.where(xbig, y.sig, x.sig)
    eb = np.where(xbig, ex, ey)
    xs_exp = np.where(xbig, y.exp, x.exp)
    bb = np.where(xbig, bx, by)
    big_w = mb << _clip(_WIN - (bb - 1), 0, 62)
    g = eb - _WIN                                  # exponent of window bit 0
    sl = xs_exp - g                                # left shift that aligns the smaller one
    r = _clip(-sl, 0, 63)
    small_w = np.where(sl >= 0, ms << _clip(sl, 0, 62),
                       (ms >> r) | ((ms & _mask(r)) != 0))
    small_w = np.where(ms == 0, 0, small_w)
    s = np.where(sb == 1, -big_w, big_w) + np.where(ss == 1, -small_w, small_w)
    sign = np.where(s == 0, x.sign & y.sign, (s < 0).astype(np.int64))
    out = round_pack(sign, np.abs(s), g, f, rounding, rnd, rbits, saturate)
    nan = x.nan | y.nan | (x.inf & y.inf & (x.sign != y.sign))
    inf = (x.inf | y.inf) & ~nan
    if f.has_inf:
        isign = np.where(x.inf, x.sign, y.sign).astype(np.uint64)
        out = np.where(inf, np.uint64(f.inf_code) | (isign << np.uint64(f.width - 1)), out)
    else:  # no infinities in the output format: an infinite result is NaN
        nan = nan | inf
    return np.where(nan, np.uint64(f.nan_code), out).astype(np.uint64)


# --- float bridges (tests, experiments, networks) -----------------------------------------

def decode(codes, fmt) -> np.ndarray:
    """float64 value of each code of ``fmt`` (exact: every format here fits in binary64)."""
    f = get_format(fmt)
    if isinstance(f, ScaleFormat):
        e = _i64(codes)
        return np.where(e == f.nan_code, np.nan, np.ldexp(1.0, (e - f.bias).astype(np.int32)))
    u = unpack(codes, f)
    val = np.ldexp(u.sig.astype(np.float64), u.exp.astype(np.int32))
    val = np.where(u.inf, np.inf, val)
    val = np.where(u.sign == 1, -val, val)
    return np.where(u.nan, np.nan, val)


def encode(values, fmt, rounding="rne", rnd=None, rbits=16, saturate=None) -> np.ndarray:
    """Codes of ``fmt`` nearest to float64 ``values`` (uint64), rounded as :func:`round_pack`.

    NaN -> canonical NaN; +-Inf -> +-Inf, or +-max when saturating, or NaN for a format
    without infinities (as ``ml_dtypes`` converts to ``float8_e4m3fn``). A format without
    Inf and NaN (``nan="none"``: E2M1, E2M3, E3M2) always saturates (+-Inf -> +-max) and
    a NaN input is an error (it has no code). :class:`ScaleFormat` and :class:`IntFormat`
    convert as their docstrings say (``rounding="rne"`` only).
    """
    f = get_format(fmt)
    if isinstance(f, (ScaleFormat, IntFormat)):
        if rounding != "rne":
            raise QrtlError(f"encode to {f.name}: rounding={rounding!r} is not valid (allowed: rne)")
        return (_encode_scale if isinstance(f, ScaleFormat) else _encode_int)(values, f, saturate)
    _check_rounding(rounding, rnd if rounding == "rne" else (0 if rnd is None else rnd), rbits)
    if rounding == "stochastic" and rnd is None:
        raise QrtlError("rounding='stochastic' needs rnd (rbits-bit random integers)")
    v = np.asarray(values, dtype=np.float64)
    nan, inf = np.isnan(v), np.isinf(v)
    if not f.has_nan and nan.any():
        raise QrtlError(f"encode: NaN has no code in {f.name} (a format without Inf and NaN)")
    sign = np.signbit(v).astype(np.int64)
    mant, ex = np.frexp(np.abs(np.where(nan | inf, 0.0, v)))
    sig = np.ldexp(mant, 53).astype(np.int64)       # exact: 53-bit integer significand
    code = round_pack(sign, sig, ex.astype(np.int64) - 53, f, rounding, rnd, rbits, saturate)
    sat = (f.overflow == "saturate") if saturate is None else bool(saturate)
    sat = sat or not f.has_nan
    sbit = sign.astype(np.uint64) << np.uint64(f.width - 1)
    if f.has_inf and not sat:
        code = np.where(inf, np.uint64(f.inf_code) | sbit, code)
    elif sat:
        code = np.where(inf, np.uint64(f.max_code) | sbit, code)
    else:
        code = np.where(inf, np.uint64(f.nan_code), code)
    if not f.has_nan:
        return code.astype(np.uint64)
    return np.where(nan, np.uint64(f.nan_code), code).astype(np.uint64)


def _encode_scale(values, f: ScaleFormat, saturate) -> np.ndarray:
    """E8M0 codes of float64 ``values`` (rule in :class:`golden.formats.ScaleFormat`)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    mant, ex = np.frexp(np.where(ok, v, 1.0))      # v = mant * 2^ex, 0.5 <= mant < 1
    e = ex.astype(np.int64) - 1 + (mant >= 0.75)    # ties (mant = 0.75) go up
    code = np.maximum(e + f.bias, 0)
    top = f.nan_code - 1
    code = np.where(code > top, top if saturate else f.nan_code, code)
    return np.where(ok, code, f.nan_code).astype(np.uint64)


def _encode_int(values, f: IntFormat, saturate) -> np.ndarray:
    """Codes of float64 ``values`` in the integer element format: ``round_half_even(v /
    2^scale_exp)`` saturated to the two's complement range (``saturate`` is implied)."""
    v = np.asarray(values, dtype=np.float64)
    if np.isnan(v).any():
        raise QrtlError(f"encode: NaN has no code in {f.name}")
    lo, hi = -(1 << (f.width - 1)), (1 << (f.width - 1)) - 1
    q = np.clip(np.rint(np.ldexp(np.clip(v, -2.0 ** 60, 2.0 ** 60), -f.scale_exp)), lo, hi)
    return (q.astype(np.int64) & ((1 << f.width) - 1)).astype(np.uint64)


# --- the units ---------------------------------------------------------------------------------

def _fp8(fmt, allowed=FP8_FORMATS) -> FPFormat:
    f = get_format(fmt)
    if f.name not in allowed:
        what = "an FP8" if allowed == FP8_FORMATS else "a minifloat element"
        raise QrtlError(f"fmt={f.name!r} is not {what} input format (allowed: {', '.join(allowed)})")
    return f


def fp8_mul(a, b, fmt="e4m3") -> np.ndarray:
    """``p = a * b`` exactly, as binary32 codes (uint64 array).

    ``fmt`` is any minifloat element format (:data:`golden.formats.ELEMENT_FORMATS`: e2m1,
    e2m3, e3m2, e4m3, e5m2). Every product of two such values is a binary32 normal number
    or zero (significands of at most 4 bits multiply to at most 8; exponents stay within
    ``2^-32 .. 2^32``), so no rounding happens. NaN in, ``Inf * 0`` -> canonical NaN
    ``0x7FC00000``; signs of zeros and infinities are the XOR of the input signs.

    Computed as a look-up in the table of every product (:func:`_mul_table`, made once per
    format by the integer model :func:`_fp8_mul_codes`); codes are taken modulo ``2^width``.
    """
    f = _fp8(fmt, ELEMENT_FORMATS)
    m = np.uint64((1 << f.width) - 1)
    a, b = np.asarray(a).astype(np.uint64) & m, np.asarray(b).astype(np.uint64) & m
    return _mul_table(f.name)[(a << np.uint64(f.width)) | b]


@lru_cache(maxsize=None)
def _mul_table(fmt: str) -> np.ndarray:
    """Every product of format ``fmt``: entry ``(a << width) | b`` is :func:`_fp8_mul_codes`."""
    n = 1 << get_format(fmt).width
    codes = np.arange(n, dtype=np.uint64)
    return _fp8_mul_codes(np.repeat(codes, n), np.tile(codes, n), fmt)


def _fp8_mul_codes(a, b, fmt) -> np.ndarray:
    """:func:`fp8_mul` computed from the codes with integer significands and exponents."""
    f = get_format(fmt)
    p = product(unpack(a, f), unpack(b, f))
    fp32 = get_format("fp32")
    out = round_pack(p.sign, p.sig, p.exp, fp32)
    sbit = p.sign.astype(np.uint64) << np.uint64(31)
    out = np.where(p.inf, np.uint64(fp32.inf_code) | sbit, out)
    return np.where(p.nan, np.uint64(fp32.nan_code), out).astype(np.uint64)


def fp8_mac(a, b, acc_in, *, fmt="e4m3", acc="fp16", rounding="rne", rnd=None, rbits=16,
            saturate=False) -> np.ndarray:
    """``acc_out = round(acc_in + a * b)`` in format ``acc``: one rounding of the exact sum.

    ``a``, ``b``: codes of ``fmt`` (any of :data:`golden.formats.ELEMENT_FORMATS`);
    ``acc_in``: codes of ``acc``; ``rnd``: ``rbits``-bit random integers for
    ``rounding="stochastic"``. ``saturate``: finite overflow gives ``+-max`` instead of
    ``+-Inf``. Returns uint64 codes of ``acc``.
    """
    f, fa = _fp8(fmt, ELEMENT_FORMATS), get_format(acc)
    _check_rounding(rounding, rnd, rbits)
    a, b, c = np.broadcast_arrays(np.asarray(a), np.asarray(b), np.asarray(acc_in))
    r = np.broadcast_to(np.asarray(rnd), a.shape) if rnd is not None else None
    shape = a.shape
    a, b, c = a.ravel(), b.ravel(), c.ravel()
    r = r.ravel() if r is not None else None
    if rounding == "rne" and _mac_float64_exact(f, fa):
        return _mac_binary16(a, b, c, f, fa, bool(saturate)).reshape(shape)
    out = np.empty(a.shape, np.uint64)
    for lo in range(0, len(a), _CHUNK):
        s = slice(lo, lo + _CHUNK)
        p = product(unpack(a[s], f), unpack(b[s], f))
        out[s] = fp_add(p, unpack(c[s], fa), fa, rounding, None if r is None else r[s], rbits,
                        bool(saturate))
    return out.reshape(shape)


@lru_cache(maxsize=None)
def _value_table(fmt: str) -> np.ndarray:
    """float64 value of every code of ``fmt`` (NaN for its NaN codes)."""
    return decode(np.arange(1 << get_format(fmt).width, dtype=np.uint64), fmt)


def _mac_float64_exact(f: FPFormat, fa: FPFormat) -> bool:
    """Whether :func:`_mac_binary16` computes ``fp8_mac`` for ``fmt=f, acc=fa`` (RNE).

    ``fa`` must be IEEE binary16 (NumPy's float64 -> float16 conversion rounds once, to
    nearest even, with subnormals, overflowing to Inf). Every product ``a * b`` is exact in
    float64 (at most 8 significant bits) and a multiple of ``2^L1``, ``L1 = 2 (emin_f -
    mbits_f)``; every accumulator value a multiple of ``2^L2``, ``L2 = emin_fa - mbits_fa``.
    So the exact sum ``s`` is a multiple of ``2^L``, ``L = min(L1, L2)``: exact in float64
    while ``|s| < 2^(L + 53)``. If ``2^(L + 53) >= 2^(emax_fa + 1)`` (the overflow
    threshold of ``fa`` lies below it), a larger ``|s|`` overflows ``fa`` and so does its
    float64 rounding (which is monotonic and keeps it ``>= 2^(L + 53)``): one correct
    rounding either way. E4M3 and E5M2 with fp16: ``L = -18`` and ``-32``, both fine.
    """
    binary16 = (fa.ebits, fa.mbits, fa.bias, fa.has_inf, fa.nan) == (5, 10, 15, True, "ieee")
    low = min(2 * (f.emin - f.mbits), fa.emin - fa.mbits)
    return binary16 and low + 53 >= fa.emax + 1


def _mac_binary16(a, b, c, f: FPFormat, fa: FPFormat, saturate: bool) -> np.ndarray:
    """``fp8_mac`` with RNE into binary16 as float64 arithmetic (valid when
    :func:`_mac_float64_exact`): ``round16(value(a) * value(b) + value(c))``. IEEE float64
    gives the special cases of the module docstring (NaN in, ``Inf * 0``, ``Inf - Inf`` ->
    NaN, made canonical here; the sign of an exact zero sum)."""
    ta = _value_table(f.name)
    m = np.uint64((1 << f.width) - 1)
    a, b = np.asarray(a).astype(np.uint64) & m, np.asarray(b).astype(np.uint64) & m
    acc = (np.asarray(c).astype(np.uint64) & np.uint64(0xFFFF)).astype(np.uint16)
    with np.errstate(invalid="ignore", over="ignore"):
        s = ta[a] * ta[b] + acc.view(np.float16).astype(np.float64)
        h = s.astype(np.float16)
    out = h.view(np.uint16).astype(np.uint64)
    if saturate:  # finite overflow -> +-max; infinite inputs stay infinite
        over = np.isinf(h) & np.isfinite(s)
        out = np.where(over, np.uint64(fa.max_code) | (out & np.uint64(fa.sign_bit)), out)
    return np.where(np.isnan(s), np.uint64(fa.nan_code), out)


def _dot_checks(fmt, acc, chunk, outer, lanes):
    _fp8(fmt)
    get_format(acc), get_format(outer)
    if lanes < 1 or chunk < 1 or chunk % lanes:
        raise QrtlError(f"chunk={chunk} must be a positive multiple of lanes={lanes}")


def fp8_dot_prefix(a, b, lengths, *, fmt="e4m3", acc="fp16", chunk=64, outer="fp32", lanes=1,
                   rounding="rne", rnd=None, rbits=16) -> np.ndarray:
    """:func:`fp8_dot` of every prefix ``a[..., :L], b[..., :L]`` for ``L`` in ``lengths``,
    in one pass (each ``L`` a multiple of ``lanes``). Returns codes, shape ``(..., len(lengths))``.
    """
    _dot_checks(fmt, acc, chunk, outer, lanes)
    _check_rounding(rounding, rnd, rbits)
    a, b = np.asarray(a), np.asarray(b)
    lead, n = a.shape[:-1], a.shape[-1]
    lengths = [int(x) for x in lengths]
    if any(L < 1 or L > n or L % lanes for L in lengths):
        raise QrtlError(f"prefix lengths must be multiples of lanes={lanes} within 1..{n}")
    a, b = a.reshape(-1, n), b.reshape(-1, n)
    r = None if rnd is None else np.broadcast_to(np.asarray(rnd), lead + (n,)).reshape(-1, n)
    fa, fo, fi = get_format(acc), get_format(outer), get_format(fmt)
    zero = np.zeros(len(a), np.uint64)
    c, o, count = zero.copy(), zero.copy(), 0
    want = {L // lanes: i for i, L in enumerate(lengths)}
    out = np.zeros((len(a), len(lengths)), np.uint64)
    nmax = max(lengths)
    # the exact products once, up front; then each step is fp8_mac's fp_add alone
    prods = product(unpack(a[:, :nmax], fi), unpack(b[:, :nmax], fi))
    for cyc in range(nmax // lanes):
        for lane in range(lanes):
            k = cyc * lanes + lane
            pk = Unpacked(*(np.ascontiguousarray(field[:, k]) for field in prods))
            c = fp_add(pk, unpack(c, fa), fa, rounding, None if r is None else r[:, k], rbits, False)
        count += lanes
        checkpoint = (cyc + 1) in want
        if count == chunk or checkpoint:
            o1 = fp_add(unpack(c, fa), unpack(o, fo), fo)
            if checkpoint:
                out[:, want[cyc + 1]] = o1
            if count == chunk:
                o, c, count = o1, zero.copy(), 0
    return out.reshape(lead + (len(lengths),))


def fp8_dot(a, b, *, fmt="e4m3", acc="fp16", chunk=64, outer="fp32", lanes=1, rounding="rne",
            rnd=None, rbits=16) -> np.ndarray:
    """Chunked FP8 dot product ``sum_k a[..., k] * b[..., k]``, additions in hardware order.

    Products enter ``lanes`` at a time (a length not a multiple of ``lanes`` is padded with
    ``+0 * +0`` products, as the hardware is fed); within a cycle lane 0 goes first. Each
    product is added to the chunk accumulator ``c`` (format ``acc``) with one rounding
    (:func:`fp8_mac`, ``rnd[..., k]`` for product ``k``). After every ``chunk`` products,
    and after the last one, ``o = round_rne(o + c)`` in format ``outer`` and ``c = +0``.
    Returns the final ``o`` (uint64 codes of ``outer``, shape ``a.shape[:-1]``).
    """
    _dot_checks(fmt, acc, chunk, outer, lanes)
    a, b = np.asarray(a), np.asarray(b)
    n = a.shape[-1]
    if n < 1:
        raise QrtlError("fp8_dot needs at least one product")
    pad = (-n) % lanes
    if pad:
        z = np.zeros(a.shape[:-1] + (pad,), a.dtype)
        a, b = np.concatenate([a, z], -1), np.concatenate([b, z.astype(b.dtype)], -1)
        if rnd is not None:
            rnd = np.broadcast_to(np.asarray(rnd), a.shape[:-1] + (n,))
            rnd = np.concatenate([rnd, np.zeros(a.shape[:-1] + (pad,), rnd.dtype)], -1)
    return fp8_dot_prefix(a, b, [n + pad], fmt=fmt, acc=acc, chunk=chunk, outer=outer,
                          lanes=lanes, rounding=rounding, rnd=rnd, rbits=rbits)[..., 0]


# --- the clocked unit, cycle by cycle --------------------------------------------------------

def split_lanes(x, width: int, lanes: int) -> np.ndarray:
    """Port values of ``lanes * width`` bits -> ``(N, lanes)`` int64 fields (lane 0 = LSBs)."""
    total = lanes * width
    bits = np.unpackbits(to_bytes(x, total), axis=1, bitorder="little")[:, :total]
    bits = bits.reshape(-1, lanes, width).astype(np.int64)
    return (bits << np.arange(width, dtype=np.int64)).sum(axis=2)


def join_lanes(fields, width: int) -> np.ndarray:
    """Inverse of :func:`split_lanes`: ``(N, lanes)`` fields -> port values (uint64 or bytes)."""
    fields = np.asarray(fields, dtype=np.int64)
    n, lanes = fields.shape
    bits = ((fields[:, :, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    packed = np.packbits(bits.reshape(n, lanes * width), axis=1, bitorder="little")
    return from_bytes(packed, lanes * width, False)


def fp8_dot_stream(inputs: dict, *, fmt="e4m3", acc="fp16", chunk=64, outer="fp32", lanes=1,
                   rounding="rne", rbits=16) -> dict:
    """Every output cycle of the ``fp8_dot`` unit for a stream of input cycles.

    ``inputs``: per-cycle arrays ``valid``, ``last``, ``a``, ``b`` (``lanes`` 8-bit codes side
    by side, lane 0 in the LSBs) and ``rnd`` (``lanes`` fields of ``rbits``) for stochastic
    rounding. A cycle with ``valid = 0`` changes nothing. A valid cycle adds its products
    (:func:`fp8_dot` order, chunk flushes when ``chunk`` products have entered the chunk);
    with ``last = 1`` the chunk is flushed into the outer sum, which is the result, and both
    accumulators and the product count restart at zero. Output of cycle ``k`` (the unit's
    registers after cycle ``k``; the RTL shows it one clock later, ``latency = 1``):
    ``result_valid = valid & last`` and ``result`` = the most recent result (0 before any).
    """
    _dot_checks(fmt, acc, chunk, outer, lanes)
    valid = np.asarray(inputs["valid"]).astype(np.int64) & 1
    last = (np.asarray(inputs["last"]).astype(np.int64) & 1) & valid
    ncyc = len(valid)
    a = split_lanes(inputs["a"], 8, lanes)
    b = split_lanes(inputs["b"], 8, lanes)
    r = split_lanes(inputs["rnd"], rbits, lanes) if rounding == "stochastic" else None
    vidx = np.flatnonzero(valid)
    seg = np.concatenate([[0], np.cumsum(last[vidx])[:-1]]) if len(vidx) else np.zeros(0, np.int64)
    nseg = int(seg[-1]) + 1 if len(vidx) else 0
    complete = np.zeros(nseg, bool)
    if nseg:
        complete[:int(last[vidx].sum())] = True
    seglen = np.bincount(seg, minlength=nseg) if nseg else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(seglen)[:-1]]) if nseg else np.zeros(0, np.int64)
    pos = np.arange(len(vidx)) - starts[seg] if nseg else np.zeros(0, np.int64)
    lmax = int(seglen.max()) if nseg else 0
    grid_a = np.zeros((nseg, lmax, lanes), np.int64)
    grid_b = np.zeros_like(grid_a)
    grid_a[seg, pos], grid_b[seg, pos] = a[vidx], b[vidx]
    grid_r = None
    if r is not None:
        grid_r = np.zeros_like(grid_a)
        grid_r[seg, pos] = r[vidx]
    fa, fo = get_format(acc), get_format(outer)
    c = np.zeros(nseg, np.uint64)
    o = np.zeros(nseg, np.uint64)
    count = np.zeros(nseg, np.int64)
    results = np.zeros(nseg, np.uint64)
    for j in range(lmax):
        active = j < seglen
        idx = np.flatnonzero(active)
        cj = c[idx]
        for lane in range(lanes):
            cj = fp8_mac(grid_a[idx, j, lane], grid_b[idx, j, lane], cj, fmt=fmt, acc=fa,
                         rounding=rounding, rnd=None if grid_r is None else grid_r[idx, j, lane],
                         rbits=rbits)
        cnt = count[idx] + lanes
        fin = complete[idx] & (j == seglen[idx] - 1)
        flush = fin | (cnt == chunk)
        o1 = fp_add(unpack(cj, fa), unpack(o[idx], fo), fo)
        results[idx[fin]] = o1[fin]
        o[idx] = np.where(flush, np.where(fin, np.uint64(0), o1), o[idx])
        c[idx] = np.where(flush, np.uint64(0), cj)
        count[idx] = np.where(flush, 0, cnt)
    # result register: the latest completed segment's result at or before each cycle
    end_cycles = vidx[last[vidx] == 1]
    k = np.searchsorted(end_cycles, np.arange(ncyc), side="right")
    result = np.where(k > 0, results[np.maximum(k - 1, 0)] if nseg else 0, 0).astype(np.uint64)
    return {"result": result, "result_valid": last.astype(np.uint64)}
