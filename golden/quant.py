"""Golden models of the quantizer family: int32 accumulator -> low-bit activation.

Three requantization operations, bit-exact, vectorised NumPy on ``int64`` arrays (floats are
never used to compute a result; binary32 values travel as ``uint32``-valued bit patterns):

* :func:`quant_shift`: the shift-and-round operation (optionally fused with a bias add and a
  ReLU) of Geng et al., "Dataflow-based Joint Quantization for Deep Neural
  Networks" (DCC 2019): ``q = clamp(round((acc + bias) / 2**shift))``.
* :func:`quant_fixedpoint`: the integer-only requantization of Jacob et al. (2018) as gemmlowp
  and TensorFlow Lite compute it: ``q = clamp(zp + MultiplyByQuantizedMultiplier(acc, m0,
  shift))``, in gemmlowp's double-rounding form or TFLite's single-rounding form.
* :func:`quant_float`: the float-scale baseline, ``q = clamp(rint(f32(f32(acc) * scale)) + zp)``.

Helpers turn a real scale into the parameters of each unit: :func:`quantize_multiplier`
(TFLite's ``QuantizeMultiplier``) and :func:`pow2_shift` (the power-of-two choice).

Sources transcribed (read them side by side with this file):

* gemmlowp ``fixedpoint/fixedpoint.h``: ``SaturatingRoundingDoublingHighMul`` (the ARM NEON
  VQRDMULH semantics) and ``RoundingDivideByPOT``.
* TensorFlow Lite ``tensorflow/lite/kernels/internal/common.cc``:
  ``MultiplyByQuantizedMultiplier(int32_t x, int32_t quantized_multiplier, int shift)``, both
  the default double-rounding branch and the ``TFLITE_SINGLE_ROUNDING`` branch.
* TensorFlow Lite ``tensorflow/lite/kernels/internal/quantization_util.cc``:
  ``QuantizeMultiplier`` (``std::frexp``, ``TfLiteRound`` = ``std::round``, the
  ``q_fixed == 2**31`` renormalisation and the flush of shifts below -31 to zero).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ROUNDINGS", "VARIANTS", "INT32_MIN", "INT32_MAX", "out_range", "round_shift",
    "quant_shift", "srdhm", "rounding_divide_by_pot", "saturating_left_shift",
    "multiply_by_quantized_multiplier", "quant_fixedpoint", "f32_from_int", "f32_mul",
    "f32_to_int32", "quant_float", "quantize_multiplier", "pow2_shift",
    "M0_WIDTH_MIN", "M0_WIDTH_MAX", "reduce_multiplier", "SCALE_FMTS", "fp_from_int", "fp_mul",
    "fp_to_int32", "scale_to_format",
]

#: Rounding modes of :func:`round_shift` / ``quant_shift`` (see :func:`round_shift`).
ROUNDINGS = ("half_up", "half_even", "half_away", "floor")
#: Forms of MultiplyByQuantizedMultiplier (see :func:`multiply_by_quantized_multiplier`).
VARIANTS = ("double", "single")
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x).astype(np.int64, copy=False)


def out_range(out_width: int, signed_out: bool, relu: bool = False) -> tuple[int, int]:
    """``(qmin, qmax)`` of an ``out_width``-bit output: ``[-2**(w-1), 2**(w-1)-1]`` if
    signed, else ``[0, 2**w - 1]``; ``relu`` raises the lower bound to 0."""
    if signed_out:
        lo, hi = -(1 << (out_width - 1)), (1 << (out_width - 1)) - 1
    else:
        lo, hi = 0, (1 << out_width) - 1
    return (max(lo, 0) if relu else lo), hi


def round_shift(t, s, rounding: str = "half_up") -> np.ndarray:
    """``round(t / 2**s)`` for int64 ``t`` and shifts ``s >= 0`` (scalar or array).

    Rounding modes (``q = floor(t / 2**s)``, ``g`` = the first discarded bit, ``st`` = any
    later discarded bit, so the discarded fraction is ``> 1/2`` iff ``g & st`` and ``= 1/2``
    iff ``g & ~st``):

    * ``floor``: ``floor(t / 2**s)`` (truncation of the two's complement value);
    * ``half_up``: ``floor(t / 2**s + 1/2)``, ties toward +inf;
    * ``half_even``: nearest, ties to the even result;
    * ``half_away``: nearest, ties away from zero.

    Computed as ``q + up`` with ``up`` from ``(g, st, q & 1, t < 0)``, so no intermediate
    exceeds ``t``'s own range (``t + 2**(s-1)`` could overflow int64 for ``|t|`` near 2**62).
    Exact for every ``|t| < 2**63`` and every ``s >= 0``.
    """
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} is not one of {', '.join(ROUNDINGS)}")
    t = _i64(t)
    s = _i64(s)
    if np.any(s < 0):
        raise ValueError("round_shift needs shifts s >= 0")
    sc = np.minimum(s, 63)                     # t >> 63 is already the sign: floor for s >= 63
    if rounding == "floor":
        return t >> sc
    if t.size and t.min() > -(1 << 62) and t.max() < (1 << 62):
        return _round_shift_small(t, sc, rounding)
    q = t >> sc
    s1 = np.clip(s - 1, 0, 63)
    g = np.where(s > 0, (t >> s1) & 1, 0)
    # sticky: bits 0..s-2 of t (bits above 62 are copies of the sign bit)
    mask = np.where(s1 >= 63, np.int64(np.iinfo(np.int64).max),
                    (np.int64(1) << np.minimum(s1, 62)) - 1)
    st = ((t & mask) != 0) | ((s - 2 >= 63) & (t < 0))
    if rounding == "half_up":
        up = g
    elif rounding == "half_even":
        up = g & (st | (q & 1).astype(bool))
    else:  # half_away: a tie rounds up only for t >= 0 (a negative tie is already away)
        up = g & (st | (t >= 0))
    return q + up.astype(np.int64)


def _round_shift_small(t: np.ndarray, s: np.ndarray, rounding: str) -> np.ndarray:
    """:func:`round_shift` for ``|t| < 2**62`` and ``0 <= s <= 63``, with the half added
    before the shift (``t + 2**(s-1)`` cannot overflow there): ``half_up`` is
    ``(t + h) >> s`` with ``h = 2**(s-1)`` (0 for ``s = 0``); ``half_away`` the same on
    ``|t|``, sign restored; ``half_even`` moves an odd result of an exact tie (the
    discarded bits equal ``h``) down by one. For ``s = 63`` no tie is possible and
    ``(t + 2**62) >> 63 = 0`` is the rounding of ``|t / 2**63| < 1/2``."""
    h = np.where(s > 0, np.int64(1) << np.maximum(s - 1, 0), 0)
    if rounding == "half_up":
        return (t + h) >> s
    if rounding == "half_away":
        q = (np.abs(t) + h) >> s
        return np.where(t < 0, -q, q)
    q = (t + h) >> s
    tie = (s > 0) & ((t & ((np.int64(1) << np.minimum(s, 62)) - 1)) == h)
    return q - (tie & ((q & 1) == 1))


def quant_shift(acc, shift, *, in_width: int = 32, out_width: int = 8, signed_out: bool = True,
                rounding: str = "half_up", bias=None, relu: bool = False) -> np.ndarray:
    """The shift-and-round quantizer: ``q = clamp(round((acc + bias) / 2**shift), qmin, qmax)``.

    ``acc`` (and ``bias``) are ``in_width``-bit signed integers; ``t = acc + bias`` is exact
    (``in_width + 1`` bits, no wrap-around). ``round`` is :func:`round_shift` with
    ``rounding``. ``[qmin, qmax]`` is :func:`out_range` of ``out_width``/``signed_out``, with
    the lower bound raised to 0 under ``relu``. ``shift`` is an int or an array (the runtime
    shift port); any ``shift >= 0`` is exact. Returns int64.
    """
    del in_width  # the widths of acc and bias bound t; the arithmetic is exact for any width
    t = _i64(acc)
    if bias is not None:
        t = t + _i64(bias)
    lo, hi = out_range(out_width, signed_out, relu)
    return np.clip(round_shift(t, shift, rounding), lo, hi)


# --- gemmlowp / TFLite fixed-point requantization ---------------------------------------

def srdhm(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul(int32 a, int32 b)`` (NEON VQRDMULH).

    The C code computes ``ab = a*b`` (int64), ``nudge = ab >= 0 ? 2**30 : 1 - 2**30`` and
    ``(ab + nudge) / 2**31`` with C's truncating division; that equals
    ``floor((ab + 2**30) / 2**31)`` for both signs (for ``ab < 0``: ``trunc(v / 2**31) =
    floor((v + 2**31 - 1) / 2**31)`` with ``v = ab + 1 - 2**30``), i.e. ``ab / 2**31``
    rounded to nearest with ties toward +inf. The one overflow, ``a = b = INT32_MIN``,
    saturates to ``INT32_MAX``.
    """
    a, b = _i64(a), _i64(b)
    r = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, r)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT(x, exponent)``: ``x / 2**exponent`` rounded to nearest,
    ties away from zero (``remainder > (mask >> 1) + (x < 0)`` adds one to ``x >> exponent``).

    gemmlowp asserts ``0 <= exponent <= 31``; the same formula is exact for any
    ``exponent >= 0`` (quant_fixedpoint uses 32 for the shift code -32).
    """
    return round_shift(x, exponent, "half_away")


def saturating_left_shift(x, left_shift) -> np.ndarray:
    """``x * 2**left_shift`` saturated to int32.

    TFLite's double-rounding MultiplyByQuantizedMultiplier computes ``x * (1 << left_shift)``
    in int32, where an overflow is undefined behaviour in C (and wraps on common compilers).
    This suite defines it as saturating (like gemmlowp's ``SaturatingRoundingMultiplyByPOT``):
    every result that does not overflow is unchanged.
    """
    v = _i64(x) << np.minimum(_i64(left_shift), 31)  # |x| <= 2**31: fits int64 up to << 31
    return np.clip(v, INT32_MIN, INT32_MAX)


def multiply_by_quantized_multiplier(x, m0, shift, variant: str = "double") -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 m0, int shift)`` ~ ``x * m0 *
    2**(shift - 31)``, as an exact int64 result.

    * ``double`` (TFLite's default build, gemmlowp arithmetic):
      ``RoundingDivideByPOT(SRDHM(sat32(x << max(shift, 0)), m0), max(-shift, 0))``;
      the left shift saturates (see :func:`saturating_left_shift`).
    * ``single`` (``TFLITE_SINGLE_ROUNDING``): ``(x * m0 + 2**(30 - shift)) >> (31 - shift)``
      in int64: ``x * m0 / 2**(31 - shift)`` rounded once, ties toward +inf. TFLite
      DCHECKs that this fits int32; here it is kept exact (the quantizer clamps it anyway, so
      this equals saturating it to int32 first).

    ``shift`` may be any of the 6-bit codes -32..31. TFLite allows -31..30; the two extra
    codes follow the same formulas computed exactly (``double``: RoundingDivideByPOT by 32,
    left shift by 31 saturating; ``single``: total shift 63, and 0 with no rounding term).
    ``m0`` may be any int32 (TFLite's single form DCHECKs ``m0 >= 0``; its formula is exact
    for negative ``m0`` too).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not one of {', '.join(VARIANTS)}")
    x, m0, shift = _i64(x), _i64(m0), _i64(shift)
    if variant == "double":
        left = np.maximum(shift, 0)
        right = np.maximum(-shift, 0)
        return rounding_divide_by_pot(srdhm(saturating_left_shift(x, left), m0), right)
    return round_shift(x * m0, 31 - shift, "half_up")


#: Range of ``m0_width``, the bits of quant_fixedpoint's multiplier (32 = TFLite's int32).
M0_WIDTH_MIN, M0_WIDTH_MAX = 16, 32


def quant_fixedpoint(acc, m0, shift, zp, *, out_width: int = 8, signed_out: bool = True,
                     variant: str = "double", m0_width: int = 32) -> np.ndarray:
    """Integer-only requantization (Jacob et al. 2018; gemmlowp / TFLite):
    ``q = clamp(zp + MultiplyByQuantizedMultiplier(acc, m0 * 2**(32 - m0_width), shift),
    qmin, qmax)``.

    ``acc``: int32; ``m0``: an ``m0_width``-bit signed multiplier (``m0_width = 32``: TFLite's
    int32 Q0.31 ``m0``, bit-exact gemmlowp/TFLite); ``shift``: -32..31 (TFLite's exponent,
    > 0 left, < 0 right); ``zp``: the zero point (``out_width + 1`` bits signed). The sum
    ``zp + r`` is exact (no int32 wrap-around), so a saturated ``r`` stays saturated. See
    :func:`multiply_by_quantized_multiplier` for ``variant``.

    A narrow multiplier (``m0_width < 32``, see :func:`reduce_multiplier` for how a TFLite
    ``m0`` becomes one) is the Q0.(m0_width-1) value ``m0 / 2**(m0_width-1)``: it is the int32
    ``m0 * 2**(32 - m0_width)`` whose low bits are zero, and the whole gemmlowp computation is
    unchanged on it. In hardware that product is ``acc * m0`` (32 x m0_width bits) and the
    SRDHM rounding shift is by ``m0_width - 1`` instead of 31 (the same rounding: ties toward
    +inf; the INT32_MIN x INT32_MIN saturation becomes INT32_MIN x -2**(m0_width-1)).
    """
    m0_width = int(m0_width)
    if not M0_WIDTH_MIN <= m0_width <= M0_WIDTH_MAX:
        raise ValueError(f"m0_width={m0_width} is out of range (allowed {M0_WIDTH_MIN}..{M0_WIDTH_MAX})")
    m0 = _i64(m0) << (32 - m0_width)
    r = multiply_by_quantized_multiplier(acc, m0, shift, variant)
    lo, hi = out_range(out_width, signed_out)
    return np.clip(r + _i64(zp), lo, hi)


# --- IEEE 754 binary32 on integer bit patterns ------------------------------------------

F32_QNAN = 0x7FC00000


def _bit_length(v) -> np.ndarray:
    """Bit length of non-negative int64 values below 2**53 (exact via frexp)."""
    return np.frexp(np.asarray(v, np.float64))[1].astype(np.int64)


def _round_pack(sign, p, e) -> np.ndarray:
    """binary32 bits of ``(-1)**sign * p * 2**e`` rounded to nearest even (``0 <= p < 2**53``).

    Results below the normal range are rounded at the subnormal quantum ``2**-149``
    (gradual underflow, no flush to zero); results at or above ``2**128`` become infinity.
    """
    sign, p, e = _i64(sign), _i64(p), _i64(e)
    lead = _bit_length(p) - 1 + e                  # p * 2**e lies in [2**lead, 2**(lead+1))
    qe = np.maximum(lead - 23, -149)               # exponent of the last kept bit
    sh = qe - e
    r_right = round_shift(p, np.clip(sh, 0, 62), "half_even")
    r_left = p << np.clip(-sh, 0, 62)
    r = np.where(sh > 0, r_right, r_left)
    carry = r >= (1 << 24)                         # rounding up to the next binade
    r = np.where(carry, r >> 1, r)
    qe = qe + carry
    normal = r >= (1 << 23)
    biased = np.where(normal, qe + 150, 0)
    frac = np.where(normal, r - (1 << 23), r)
    inf = normal & (biased >= 255)
    bits = np.where(inf, 0x7F800000, (biased << 23) | frac)
    bits = np.where(p == 0, 0, bits)
    return ((sign << 31) | bits).astype(np.int64)


def _unpack(bits):
    b = _i64(bits) & 0xFFFFFFFF
    sign, exp, frac = b >> 31, (b >> 23) & 0xFF, b & 0x7FFFFF
    sig = np.where(exp > 0, frac | (1 << 23), frac)
    e = np.maximum(exp, 1) - 150                   # value = sig * 2**e for finite numbers
    return sign, exp, frac, sig, e


def f32_from_int(x) -> np.ndarray:
    """binary32 bits (as int64 holding a uint32) of ``float32(x)`` for int32 ``x``, rounded to
    nearest even (C's ``(float)x``)."""
    x = _i64(x)
    return _round_pack((x < 0).astype(np.int64), np.abs(x), 0)


def f32_mul(a, b) -> np.ndarray:
    """binary32 bits of ``a * b`` (IEEE 754 multiplication, round to nearest even, subnormal
    inputs and outputs kept). NaN results are the quiet NaN ``0x7FC00000``; the sign of a
    zero or infinite product is the XOR of the signs.
    """
    sa, ea, fa, ma, xa = _unpack(a)
    sb, eb, fb, mb, xb = _unpack(b)
    sign = sa ^ sb
    nan_a, nan_b = (ea == 255) & (fa != 0), (eb == 255) & (fb != 0)
    inf_a, inf_b = (ea == 255) & (fa == 0), (eb == 255) & (fb == 0)
    zero_a, zero_b = (ea == 0) & (fa == 0), (eb == 0) & (fb == 0)
    nan = nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a)
    inf = (inf_a | inf_b) & ~nan
    finite = _round_pack(sign, ma * mb, xa + xb)   # ma * mb < 2**48
    out = np.where(inf, (sign << 31) | 0x7F800000, finite)
    return np.where(nan, F32_QNAN, out).astype(np.int64)


def f32_to_int32(bits) -> np.ndarray:
    """binary32 -> int32, rounding to nearest even and saturating, NaN -> 0 (the semantics of
    Arm's ``FCVTNS``; C's ``(int32_t)rintf(x)`` where it is defined)."""
    sign, exp, frac, sig, e = _unpack(bits)
    nan = (exp == 255) & (frac != 0)
    big = (exp == 255) | (e > 8)                   # |x| >= 2**32: saturate (incl. infinity)
    mag = np.where(e >= 0, sig << np.clip(e, 0, 8),
                   round_shift(sig, np.clip(-e, 0, 62), "half_even"))
    r = np.where(sign == 1, -mag, mag)
    r = np.where(big, np.where(sign == 1, INT32_MIN, INT32_MAX), r)
    r = np.clip(r, INT32_MIN, INT32_MAX)
    return np.where(nan, 0, r).astype(np.int64)


def quant_float(acc, scale_bits, zp, *, out_width: int = 8, signed_out: bool = True,
                scale_fmt: str = "fp32") -> np.ndarray:
    """The float-scale quantizer: ``q = clamp(rint(f32(f32(acc) * scale)) + zp, qmin, qmax)``.

    ``scale_fmt`` (``fp32``, ``fp16``, ``bf16``; :data:`SCALE_FMTS`) is the format of the
    scale, of the converted accumulator and of the product: ``f32`` above becomes ``F``,
    rounding to that format (RNE, IEEE: subnormals kept, overflow to +-Inf). Then
    ``q = clamp(rint(F(F(acc) * scale)) + zp)``: an accumulator beyond the format's range
    (fp16: ``|acc| >= 65520``) becomes +-Inf and saturates ``q`` (NaN when the scale is 0,
    so ``q = clamp(zp)``). ``scale_fmt="fp32"`` is the function below, unchanged.

    ``f32(acc)`` and the product are rounded to nearest even (:func:`f32_from_int`,
    :func:`f32_mul`: subnormal scales and products kept, no flush to zero); ``rint`` rounds
    ties to even. NaN/Inf policy (that of :func:`f32_to_int32`): a NaN product (NaN scale, or
    infinite scale times ``acc = 0``) gives ``r = 0``, so ``q = clamp(zp)``; an infinite or
    out-of-range product saturates, so ``q`` is ``qmax`` or ``qmin`` by its sign.
    ``scale_bits`` are binary32 bit patterns (uint32 values). Returns int64.
    """
    if scale_fmt != "fp32":
        if scale_fmt not in SCALE_FMTS:
            raise ValueError(f"scale_fmt={scale_fmt!r} is not one of {', '.join(SCALE_FMTS)}")
        r = fp_to_int32(fp_mul(fp_from_int(acc, scale_fmt), scale_bits, scale_fmt), scale_fmt)
        lo, hi = out_range(out_width, signed_out)
        return np.clip(r + _i64(zp), lo, hi)
    p = f32_mul(f32_from_int(acc), scale_bits)
    r = f32_to_int32(p)
    lo, hi = out_range(out_width, signed_out)
    return np.clip(r + _i64(zp), lo, hi)


# --- narrower scales: other IEEE formats of the formats table --------------------------

#: Formats of quant_float's scale (and of its accumulator conversion and product).
SCALE_FMTS = ("fp32", "fp16", "bf16")


def _ieee(fmt):
    from .formats import get_format
    f = get_format(fmt)
    if f.nan != "ieee" or f.overflow != "infnan":
        raise ValueError(f"format {f.name} is not an IEEE-style format (NaN/Inf, overflow to Inf)")
    return f


def fp_from_int(x, fmt) -> np.ndarray:
    """Codes of ``x`` (int32) in ``fmt``, rounded to nearest even; beyond the largest finite
    value (after rounding) +-Inf. For ``fp32`` this is :func:`f32_from_int`."""
    from .fp8 import round_pack
    _ieee(fmt)
    x = _i64(x)
    return round_pack((x < 0).astype(np.int64), np.abs(x), np.zeros_like(x), fmt).astype(np.int64)


def fp_mul(a, b, fmt) -> np.ndarray:
    """Codes of ``a * b`` in ``fmt`` (IEEE multiplication, RNE, subnormals kept, overflow to
    +-Inf). A NaN result is the format's canonical quiet NaN; Inf and zero carry the XOR of
    the signs. For ``fp32`` this is :func:`f32_mul`."""
    from .fp8 import product, round_pack, unpack
    f = _ieee(fmt)
    p = product(unpack(a, f), unpack(b, f))
    code = round_pack(p.sign, p.sig, p.exp, f).astype(np.int64)
    code = np.where(p.inf, (p.sign << (f.width - 1)) | f.inf_code, code)
    return np.where(p.nan, f.nan_code, code).astype(np.int64)


def fp_to_int32(bits, fmt) -> np.ndarray:
    """``fmt`` -> int32, rounding to nearest even and saturating, NaN -> 0 (the policy of
    :func:`f32_to_int32`)."""
    from .fp8 import unpack
    f = _ieee(fmt)
    u = unpack(bits, f)
    big = u.inf | (_bit_length(u.sig) + u.exp > 32)      # |x| >= 2**32: saturate
    mag = np.where(u.exp >= 0, u.sig << np.clip(u.exp, 0, 31),
                   round_shift(u.sig, np.clip(-u.exp, 0, 62), "half_even"))
    r = np.where(u.sign == 1, -mag, mag)
    r = np.where(big, np.where(u.sign == 1, INT32_MIN, INT32_MAX), r)
    r = np.clip(r, INT32_MIN, INT32_MAX)
    return np.where(u.nan, 0, r).astype(np.int64)


def scale_to_format(f32_bits, fmt) -> np.ndarray:
    """A binary32 scale (bit patterns) rounded to ``fmt`` (RNE, overflow to +-Inf, NaN to the
    canonical NaN): how the lean quant_float gets its scale from a model's binary32 scale."""
    from .fp8 import round_pack, unpack
    f = _ieee(fmt)
    if f.name == "fp32":
        return _i64(f32_bits)
    u = unpack(f32_bits, "fp32")
    code = round_pack(u.sign, u.sig, u.exp, f).astype(np.int64)
    code = np.where(u.inf, (u.sign << (f.width - 1)) | f.inf_code, code)
    return np.where(u.nan, f.nan_code, code).astype(np.int64)


# --- from a real scale to unit parameters ----------------------------------------------

def quantize_multiplier(scale: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier(double)`` (default build): ``(m0, shift)`` with
    ``scale ~ m0 * 2**(shift - 31)``, ``m0`` in ``[2**30, 2**31)`` (negated for a negative
    scale).

    ``q, shift = frexp(scale)``; ``m0 = round(q * 2**31)`` with ``std::round`` (ties away from
    zero); ``m0 == 2**31`` becomes ``2**30`` with ``shift + 1``; ``shift < -31`` flushes to
    ``(0, 0)``; ``scale == 0`` gives ``(0, 0)``. Example: ``0.035 -> (1202590843, -4)``.
    Raises ValueError for a non-finite scale or one whose shift exceeds 30 (``|scale| >=
    2**30``), which no quant_fixedpoint shift code in TFLite's range represents.
    """
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale={scale!r} is not finite")
    if scale == 0.0:
        return 0, 0
    q, shift = math.frexp(scale)
    # std::round (ties away from zero) of the exact double q * 2**31; a - int(a) is exact.
    a = abs(q) * (1 << 31)
    m0 = int(a) + (1 if a - int(a) >= 0.5 else 0)
    m0 = -m0 if q < 0 else m0
    if m0 == (1 << 31):
        m0 //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"scale={scale!r} is too large: its shift {shift} exceeds 30")
    return m0, shift


def reduce_multiplier(m0, shift, m0_width: int) -> tuple[np.ndarray, np.ndarray]:
    """A TFLite ``(m0, shift)`` (int32 Q0.31 multiplier, exponent) as an ``m0_width``-bit
    multiplier for quant_fixedpoint: ``(m0r, shift')`` with ``m0r * 2**(32 - m0_width) *
    2**(shift' - 31)`` nearest to ``m0 * 2**(shift - 31)``.

    ``m0r = round(m0 / 2**(32 - m0_width))``, to nearest with ties away from zero (as TFLite's
    ``QuantizeMultiplier`` rounds, ``std::round``). Rounding up can carry into
    ``2**(m0_width-1)``, which a signed ``m0_width``-bit port cannot hold: then (as TFLite does
    for ``2**31``) the multiplier is renormalised, ``m0r = 2**(m0_width-2)``, ``shift' =
    shift + 1``, which is exact; at ``shift = 31`` (no larger exponent code) it saturates to
    ``2**(m0_width-1) - 1``. A negative ``m0`` rounds to at least ``-2**(m0_width-1)``,
    always representable. ``m0_width = 32`` returns ``(m0, shift)`` unchanged. Vectorised.
    """
    m0_width = int(m0_width)
    if not M0_WIDTH_MIN <= m0_width <= M0_WIDTH_MAX:
        raise ValueError(f"m0_width={m0_width} is out of range (allowed {M0_WIDTH_MIN}..{M0_WIDTH_MAX})")
    m0, shift = _i64(m0), _i64(shift)
    r = round_shift(m0, 32 - m0_width, "half_away")
    top = 1 << (m0_width - 1)
    carry = r >= top
    renorm = carry & (shift < 31)
    r = np.where(renorm, top >> 1, np.where(carry, top - 1, r))
    return r, shift + renorm


def pow2_shift(scale: float) -> tuple[int, float]:
    """The power of two nearest to ``scale`` as a right shift: ``(s, rel_err)`` with
    ``2**-s`` the power of two closest in value to ``scale`` and
    ``rel_err = (2**-s - scale) / scale`` (signed; |rel_err| <= 1/3).

    With ``scale = m * 2**e``, ``m`` in [0.5, 1): the candidates are ``2**(e-1)`` and
    ``2**e``; ``2**e`` is nearer iff ``m > 3/4`` (at ``m = 3/4`` both are 1/3 away; the tie
    goes to ``2**e``, the smaller shift). ``s`` may be negative (a scale above 1.5 needs a
    left shift, which quant_shift does not offer). Raises ValueError unless ``scale`` is
    finite and positive.
    """
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale={scale!r} must be finite and positive")
    m, e = math.frexp(scale)
    s = -e if m >= 0.75 else 1 - e
    return s, (math.ldexp(1.0, -s) - scale) / scale
