"""Golden model of the normalization statistics unit ``bn_norm`` (L2 / L1 / L-inf).

Hoffer, Banner, Golan, Soudry, "Norm matters: efficient and accurate normalization schemes
in deep networks" (NeurIPS 2018) replace batch norm's L2 scale by an L1 or L-infinity one.
For ``m`` values ``x_i`` of one channel, with ``d_i = x_i - mu``:

* ``l2``:   ``sigma = sqrt(mean_i d_i^2)``;
* ``l1``:   ``sigma = sqrt(pi/2) * mean_i |d_i|`` (the constant makes it the standard
  deviation of a Gaussian);
* ``linf``: ``sigma = C(m) * max_i |d_i|`` with ``C(m) = (1 + sqrt(pi ln 4)) / (2 sqrt(2 ln m))``,
  the constant of the authors' code (``TopkBatchNorm2d`` with ``k = 1``, github.com/eladhoffer/
  norm_matters). The paper's more robust mean-of-the-top-k variant is not modelled.

and ``y_i = (x_i - mu) * inv_sigma``, ``inv_sigma = 1 / sigma``. There is no ``eps``:
``sigma = 0`` (all inputs equal) is handled by saturating ``inv_sigma`` (below).

Integer formats (``int8``, ``int16``; ``w`` = 8 or 16 bits, two's-complement codes, the
values are the codes), every step exact except where a rounding is named:

* ``mu = rne(S / m)``, ``S = sum_i x_i`` exact; round half to even (``m`` a power of two, so
  a shift); ``mu`` is a ``w``-bit code (it lies between the smallest and largest input).
* ``d_i = x_i - mu`` exact (``w + 1`` bits); every statistic uses this rounded ``mu``.
* ``inv_sigma`` is unsigned fixed point with ``F = 2w`` fraction bits (:func:`inv_frac_bits`),
  ``inv_width`` bits wide (:func:`inv_width`):

  - ``l2``: ``Q = sum_i d_i^2`` exact, ``inv_sigma = floor(2^F sqrt(m / Q))``, computed as
    ``isqrt(floor(m 2^(2F) / Q))`` (equal, because ``floor(sqrt(floor(z))) = floor(sqrt(z))``):
    the exact value rounded down;
  - ``l1``: ``A = sum_i |d_i|``, ``inv_sigma = floor(K / A)``,
    ``K = round(m sqrt(2/pi) 2^F)``;
  - ``linf``: ``M = max_i |d_i|``, ``inv_sigma = floor(K / M)``, ``K = round(2^F / C(m))``

  (``K`` from the float64 constants ``math.sqrt(2 / math.pi)`` and :func:`linf_constant`,
  rounded half away from zero: :func:`inv_constant`). When the statistic is 0 (all inputs
  equal) ``inv_sigma = 2^inv_width - 1``, larger than any other value, and every ``y_i = 0``.
* ``y_i = sat(rne(d_i * inv_sigma / 2^(F - FY)))``: signed ``w``-bit fixed point with
  ``FY = w - 4`` fraction bits (:func:`y_frac_bits`; range ``[-8, 8)``), round half to even
  of the exact product, saturated to ``[-2^(w-1), 2^(w-1) - 1]``.

``fp16`` (IEEE binary16 from :data:`golden.formats.FORMATS`): every operation is one fp16
operation rounded to nearest even, as a half-precision datapath computes it, with IEEE
infinities and NaN (overflow to Inf is real), subnormals kept:

1. ``S = tree_sum(x)`` (pairwise, adjacent pairs: ``((x0+x1)+(x2+x3))+...``, one rounding
   per addition), ``mu = S / m`` (a rounded scaling by ``2^-log2 m``);
2. ``d_i = x_i - mu``;
3. ``l2``: ``V = tree_sum(d_i * d_i) / m``, ``sigma = sqrt(V)`` (correctly rounded);
   ``l1``: ``sigma = c1 * (tree_sum(|d_i|) / m)``, ``c1 = fp16(sqrt(pi/2))``;
   ``linf``: ``sigma = cinf * max_i |d_i|``, ``cinf = fp16(C(m))``;
4. ``inv_sigma = 1 / sigma`` correctly rounded, **saturating**: a quotient beyond the
   largest finite value, and ``1 / 0``, give ``65504``; ``1 / Inf = 0``; NaN stays NaN;
5. ``y_i = d_i * inv_sigma``.

Every NaN output is the canonical quiet NaN ``0x7E00``. Products, quotients and roots are
computed exactly on integers and rounded once (:func:`golden.fp8.round_pack`), additions by
:func:`golden.fp8.fp_add`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from qrtl.golden.errors import QrtlError

from .formats import get_format
from .fp8 import Unpacked, encode, fp_add, product, round_pack, unpack

__all__ = ["NORMS", "NORM_FORMATS", "M_MIN", "M_MAX", "NormResult", "bn_norm", "elem_width",
           "inv_frac_bits", "y_frac_bits", "inv_width", "inv_constant", "linf_constant",
           "norm_constant", "fp16_constants", "fp_mul", "fp_scale", "fp_sqrt", "fp_recip",
           "RECIP_BITS", "SQRT_SHIFT", "check_norm_params"]

NORMS = ("l2", "l1", "linf")
NORM_FORMATS = ("int8", "int16", "fp16")
M_MIN, M_MAX = 2, 64
FP16 = get_format("fp16")
#: ``1/s`` is ``floor(2^RECIP_BITS / sig)`` with a sticky bit, then rounded once.
RECIP_BITS = 24
#: ``sqrt(v)`` is the integer root of ``sig << (2 SQRT_SHIFT + odd)`` with a sticky bit.
SQRT_SHIFT = 13


class NormResult(NamedTuple):
    """Outputs of :func:`bn_norm` for ``N`` channels of ``m`` values.

    ``mu`` (N,), ``inv_sigma`` (N,), ``y`` (N, m): int64 codes (integer formats; ``mu`` and
    ``y`` signed, ``inv_sigma`` unsigned) or uint64 fp16 codes. ``overflow`` / ``underflow``
    (N,) bool: some step of the channel overflowed (fp16: an operation of finite operands
    gave +-Inf or saturated; integers: a ``y`` saturated) or underflowed (fp16: a product or
    scaling of nonzero finite operands rounded to zero; integers: never).
    """

    mu: np.ndarray
    inv_sigma: np.ndarray
    y: np.ndarray
    overflow: np.ndarray
    underflow: np.ndarray


def check_norm_params(m: int, fmt: str, norm: str) -> int:
    """``log2 m``; a one-line :class:`QrtlError` for a bad ``m``, ``fmt`` or ``norm``."""
    if fmt not in NORM_FORMATS:
        raise QrtlError(f"fmt={fmt!r} is not valid (allowed: {', '.join(NORM_FORMATS)})")
    if norm not in NORMS:
        raise QrtlError(f"norm={norm!r} is not valid (allowed: {', '.join(NORMS)})")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not M_MIN <= m <= M_MAX \
            or m & (m - 1):
        raise QrtlError(f"m={m} is not valid (allowed: a power of two {M_MIN}..{M_MAX})")
    return int(m).bit_length() - 1


def elem_width(fmt: str) -> int:
    """Bits of one element code: 8 (int8) or 16 (int16, fp16)."""
    return 8 if fmt == "int8" else 16


def inv_frac_bits(fmt: str) -> int:
    """Fraction bits ``F = 2w`` of the fixed-point ``inv_sigma`` (integer formats)."""
    return 2 * elem_width(fmt)


def y_frac_bits(fmt: str) -> int:
    """Fraction bits ``FY = w - 4`` of the fixed-point ``y`` (integer formats)."""
    return elem_width(fmt) - 4


def linf_constant(m: int) -> float:
    """``C(m) = (1 + sqrt(pi ln 4)) / (2 sqrt(2 ln m))``: ``C(m) max|d|`` estimates the standard
    deviation of ``m`` Gaussian samples (the authors' ``TopkBatchNorm2d``, ``k = 1``)."""
    return 0.5 * (1 + math.sqrt(math.pi * math.log(4))) / math.sqrt(2 * math.log(m))


def norm_constant(m: int, norm: str) -> float:
    """``c`` of ``sigma = c * stat``: 1 (l2, ``stat = sqrt(mean d^2)``), ``sqrt(pi/2)`` (l1,
    ``stat = mean|d|``), ``C(m)`` (linf, ``stat = max|d|``)."""
    return {"l2": 1.0, "l1": math.sqrt(math.pi / 2), "linf": linf_constant(m)}[norm]


def inv_constant(m: int, fmt: str, norm: str) -> int:
    """The integer numerator ``K`` of ``inv_sigma`` (integer formats; module docstring):
    ``m 2^(2F)`` (l2, under the square root), ``round(m sqrt(2/pi) 2^F)`` (l1),
    ``round(2^F / C(m))`` (linf)."""
    check_norm_params(m, fmt, norm)
    F = inv_frac_bits(fmt)
    if norm == "l2":
        return m << (2 * F)
    value = m * math.sqrt(2 / math.pi) if norm == "l1" else 1 / linf_constant(m)
    return int(math.floor(value * 2.0 ** F + 0.5))


def inv_width(m: int, fmt: str, norm: str) -> int:
    """Width of the ``inv_sigma`` port: bits of its largest value (statistic = 1), so the
    all-ones saturation code for ``sigma = 0`` exceeds every real value (fp16: 16)."""
    if fmt == "fp16":
        return 16
    K = inv_constant(m, fmt, norm)
    return (math.isqrt(K) if norm == "l2" else K).bit_length()


def fp16_constants(m: int) -> dict:
    """fp16 codes of the constants: ``c1 = sqrt(pi/2)`` and ``cinf = C(m)`` (RNE of the
    float64 values)."""
    return {"l1": int(encode(np.array([norm_constant(m, "l1")]), FP16)[0]),
            "linf": int(encode(np.array([linf_constant(m)]), FP16)[0])}


# --- integer formats ------------------------------------------------------------------------

def _rne_shift(v: np.ndarray, s: int) -> np.ndarray:
    """``v / 2^s`` rounded half to even (int64, ``s >= 1``)."""
    q = v >> s
    r = v & ((1 << s) - 1)
    half = 1 << (s - 1)
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def _isqrt_obj(v: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.isqrt, 1, 1)(v)


def _norm_int(x: np.ndarray, m: int, fmt: str, norm: str) -> NormResult:
    w, F, FY = elem_width(fmt), inv_frac_bits(fmt), y_frac_bits(fmt)
    k = m.bit_length() - 1
    x = x.astype(np.int64)
    mu = _rne_shift(x.sum(axis=1), k)
    d = x - mu[:, None]
    ad = np.abs(d)
    K = inv_constant(m, fmt, norm)
    if norm == "l2":
        stat = (d * d).sum(axis=1)
    elif norm == "l1":
        stat = ad.sum(axis=1)
    else:
        stat = ad.max(axis=1)
    zero = stat == 0
    safe = np.where(zero, 1, stat)
    if norm == "l2":  # m 2^(2F) exceeds 64 bits for int16: Python integers here
        inv = _isqrt_obj(K // safe.astype(object)).astype(np.int64)
    else:
        inv = K // safe
    iw = inv_width(m, fmt, norm)
    inv = np.where(zero, (1 << iw) - 1, inv)
    # d * inv < 2^(w + iw) <= 2^62: exact in int64; d = 0 whenever inv saturates
    y = _rne_shift(d * np.where(zero, 0, inv)[:, None], F - FY)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    over = ((y < lo) | (y > hi)).any(axis=1)
    y = np.clip(y, lo, hi)
    return NormResult(mu, inv, y, over, np.zeros(len(x), bool))


# --- fp16 operations --------------------------------------------------------------------------

def _finite(u: Unpacked) -> np.ndarray:
    return ~u.nan & ~u.inf


def _round_exact(u: Unpacked, f=FP16, saturate=False) -> np.ndarray:
    """Code of the exact value ``u`` rounded to ``f`` (RNE), specials passed through."""
    code = round_pack(u.sign, u.sig, u.exp, f, saturate=saturate)
    sbit = u.sign.astype(np.uint64) << np.uint64(f.width - 1)
    code = np.where(u.inf, np.uint64(f.inf_code) | sbit, code)
    return np.where(u.nan, np.uint64(f.nan_code), code).astype(np.uint64)


def fp_mul(a, b, f=FP16) -> np.ndarray:
    """Codes of ``round(a * b)`` (RNE, IEEE specials: ``Inf * 0`` is NaN)."""
    return _round_exact(product(unpack(a, f), unpack(b, f)), f)


def fp_scale(a, k: int, f=FP16) -> np.ndarray:
    """Codes of ``round(a * 2^-k)`` (exact unless the result is subnormal)."""
    u = unpack(a, f)
    return _round_exact(u._replace(exp=u.exp - k), f)


def _isqrt64(v: np.ndarray) -> np.ndarray:
    """``floor(sqrt(v))`` of int64 ``v < 2^52``, exactly (float64 root, then corrected)."""
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > v, r - 1, r)
    return np.where((r + 1) * (r + 1) <= v, r + 1, r)


def fp_sqrt(a, f=FP16) -> np.ndarray:
    """Codes of the correctly rounded (RNE) ``sqrt(a)``: ``sqrt(+-0) = +-0``,
    ``sqrt(+Inf) = +Inf``, negative or NaN -> NaN.

    With ``a = sig 2^e`` and ``odd = e mod 2``: ``X = sig << (2 SQRT_SHIFT + odd)``,
    ``r = isqrt(X)`` (at least ``SQRT_SHIFT + 1`` bits, so two more than the precision),
    and ``(2r + (r^2 != X)) 2^(floor(e/2) - SQRT_SHIFT - 1)`` is rounded once: the jammed
    sticky bit lies below the guard bit, so the rounding is that of the exact root.
    """
    u = unpack(a, f)
    odd = u.exp & 1
    X = u.sig << (2 * SQRT_SHIFT + odd)
    r = _isqrt64(X)
    mag = (r << 1) | (r * r != X)
    code = round_pack(u.sign, mag, (u.exp >> 1) - SQRT_SHIFT - 1, f)
    nan = u.nan | ((u.sign == 1) & ((u.sig != 0) | u.inf))
    code = np.where(u.inf, np.uint64(f.inf_code), code)
    return np.where(nan, np.uint64(f.nan_code), code).astype(np.uint64)


def fp_recip(a, f=FP16) -> np.ndarray:
    """Codes of ``1 / a`` correctly rounded (RNE) and saturating: beyond the largest finite
    value, and for ``a = +-0``, the result is ``+-max``; ``1/+-Inf = +-0``; NaN -> NaN.

    ``a = sig 2^e``: ``q, r = divmod(2^RECIP_BITS, sig)`` (``q`` has at least 14 bits) and
    ``(2q + (r != 0)) 2^(-e - RECIP_BITS - 1)`` is rounded once.
    """
    u = unpack(a, f)
    zero = _finite(u) & (u.sig == 0)
    sig = np.where(u.sig == 0, 1, u.sig)
    q, r = np.divmod(np.int64(1) << RECIP_BITS, sig)
    mag = (q << 1) | (r != 0)
    code = round_pack(u.sign, mag, -u.exp - RECIP_BITS - 1, f, saturate=True)
    sbit = u.sign.astype(np.uint64) << np.uint64(f.width - 1)
    code = np.where(zero, np.uint64(f.max_code) | sbit, code)
    code = np.where(u.inf, sbit, code)
    return np.where(u.nan, np.uint64(f.nan_code), code).astype(np.uint64)


def _add(a, b, f=FP16):
    return fp_add(unpack(a, f), unpack(b, f), f)


def _sub(a, b, f=FP16):
    ub = unpack(b, f)
    return fp_add(unpack(a, f), ub._replace(sign=ub.sign ^ 1), f)


def _tree_sum(v: np.ndarray) -> np.ndarray:
    """Pairwise sum over axis 1 (adjacent pairs, level by level), one rounding per add."""
    while v.shape[1] > 1:
        v = _add(v[:, 0::2], v[:, 1::2])
    return v[:, 0]


class _Flags:
    """Accumulates per-channel overflow / underflow of fp16 steps (see :class:`NormResult`)."""

    def __init__(self, n):
        self.over = np.zeros(n, bool)
        self.under = np.zeros(n, bool)

    def _rows(self, mask):
        return mask.reshape(len(self.over), -1).any(axis=1)

    def check(self, out, *ins, zero_is_underflow=False):
        o = unpack(out, FP16)
        finite_in = np.ones(np.shape(out), bool)
        nonzero_in = np.ones(np.shape(out), bool)
        for a in ins:
            u = unpack(np.broadcast_to(a, np.shape(out)), FP16)
            finite_in &= _finite(u)
            nonzero_in &= u.sig != 0
        self.over |= self._rows(finite_in & o.inf)
        if zero_is_underflow:
            self.under |= self._rows(finite_in & nonzero_in & _finite(o) & (o.sig == 0))
        return out


def _norm_fp16(x: np.ndarray, m: int, norm: str) -> NormResult:
    k = m.bit_length() - 1
    x = x.astype(np.uint64)
    fl = _Flags(len(x))
    v = x
    while v.shape[1] > 1:
        v = fl.check(_add(v[:, 0::2], v[:, 1::2]), v[:, 0::2], v[:, 1::2])
    S = v[:, 0]
    mu = fl.check(fp_scale(S, k), S, zero_is_underflow=True)
    d = fl.check(_sub(x, mu[:, None]), x, mu[:, None])
    consts = fp16_constants(m)
    if norm == "l2":
        sq = fl.check(fp_mul(d, d), d, d, zero_is_underflow=True)
        v = sq
        while v.shape[1] > 1:
            v = fl.check(_add(v[:, 0::2], v[:, 1::2]), v[:, 0::2], v[:, 1::2])
        V = fl.check(fp_scale(v[:, 0], k), v[:, 0], zero_is_underflow=True)
        sigma = fp_sqrt(V)
    else:
        a = d & np.uint64(0x7FFF)
        if norm == "l1":
            v = a
            while v.shape[1] > 1:
                v = fl.check(_add(v[:, 0::2], v[:, 1::2]), v[:, 0::2], v[:, 1::2])
            stat = fl.check(fp_scale(v[:, 0], k), v[:, 0], zero_is_underflow=True)
        else:
            stat = a.max(axis=1)  # magnitude codes order like values (NaN above Inf)
        c = np.full(len(x), consts[norm], np.uint64)
        sigma = fl.check(fp_mul(c, stat), c, stat, zero_is_underflow=True)
    inv = fl.check(fp_recip(sigma), sigma)
    us = unpack(sigma, FP16)
    # 1/sigma beyond the largest finite value saturated: an overflow; sigma = 0 although
    # some deviation is not: the statistic underflowed (all-equal inputs flag nothing)
    fl.over |= _finite(us) & (us.sig != 0) & ((inv & np.uint64(0x7FFF)) == FP16.max_code)
    fl.under |= _finite(us) & (us.sig == 0) & ((d & np.uint64(0x7FFF)) != 0).any(axis=1)
    y = fl.check(fp_mul(d, inv[:, None]), d, inv[:, None], zero_is_underflow=True)
    return NormResult(mu, inv, y, fl.over, fl.under)


def bn_norm(x, m: int, fmt: str = "int8", norm: str = "l2") -> NormResult:
    """Normalization statistics and outputs of ``N`` channels (module docstring).

    ``x``: ``(N, m)`` element codes (int formats: signed integers; fp16: 16-bit codes).
    Returns a :class:`NormResult`.
    """
    check_norm_params(m, fmt, norm)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != m:
        raise QrtlError(f"bn_norm expects an (N, {m}) matrix of codes (got shape {x.shape})")
    if fmt == "fp16":
        return _norm_fp16(x, int(m), norm)
    w = elem_width(fmt)
    if x.size and (x.min() < -(1 << (w - 1)) or x.max() >= 1 << (w - 1)):
        raise QrtlError(f"bn_norm: {fmt} codes must lie in {-(1 << (w - 1))}..{(1 << (w - 1)) - 1}")
    return _norm_int(x, int(m), fmt, norm)
