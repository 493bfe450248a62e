"""Quantizer family: golden models against exact references and published library values,
RTL against golden on Verilator (exhaustive at in_width=16, >= 1M seeded vectors at 32 bits)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden import quant as gq
from qrtl.hw.quant import QuantFixedPoint, QuantFloat, QuantShift
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify

I32 = st.integers(gq.INT32_MIN, gq.INT32_MAX)


# --- independent references: exact rationals, and the C sources transcribed literally ---

def ref_round(num: int, den: int, mode: str) -> int:
    """round(num / den) with Python's exact rationals."""
    x = Fraction(num, den)
    fl = math.floor(x)
    frac = x - fl
    if mode == "floor":
        return fl
    if frac != Fraction(1, 2):
        return fl + (frac > Fraction(1, 2))
    return {"half_up": fl + 1, "half_even": fl + (fl % 2), "half_away": fl + (x > 0)}[mode]


def c_int32(v: int) -> int:
    """Two's complement wrap to int32 (what a C cast does)."""
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def c_trunc_div(a: int, b: int) -> int:
    """C's integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def c_srdhm(a: int, b: int) -> int:
    """gemmlowp fixedpoint.h SaturatingRoundingDoublingHighMul, line by line."""
    overflow = a == b and a == gq.INT32_MIN
    ab_64 = a * b
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    ab_x2_high32 = c_int32(c_trunc_div(ab_64 + nudge, 1 << 31))
    return gq.INT32_MAX if overflow else ab_x2_high32


def c_rdbpot(x: int, exponent: int) -> int:
    """gemmlowp fixedpoint.h RoundingDivideByPOT, line by line (int32 bit operations)."""
    mask = c_int32((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + ((-1 if x < 0 else 0) & 1)
    return (x >> exponent) + ((-1 if remainder > threshold else 0) & 1)


def c_mbqm(x: int, m: int, shift: int, variant: str) -> int:
    """TFLite common.cc MultiplyByQuantizedMultiplier (int32 x); the left shift saturates as
    this suite defines it; shift codes -32 and 31 as the formulas extended exactly."""
    if variant == "single":
        total_shift = 31 - shift
        rnd = (1 << (total_shift - 1)) if total_shift > 0 else 0
        return (x * m + rnd) >> total_shift
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    xs = min(max(x * (1 << left), gq.INT32_MIN), gq.INT32_MAX)
    if right <= 31:
        return c_rdbpot(c_srdhm(xs, m), right)
    return ref_round(c_srdhm(xs, m), 1 << right, "half_away")


def tflite_round(v: float) -> int:
    """std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


# --- golden: rounding shifter and quant_shift ------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.integers(-(1 << 62), (1 << 62) - 1), st.integers(0, 66), st.sampled_from(gq.ROUNDINGS))
def test_round_shift_matches_fractions(t, s, mode):
    assert gq.round_shift(np.array([t]), s, mode)[0] == ref_round(t, 1 << s, mode)


def test_round_shift_ties_every_shift_and_mode():
    """Every exact tie k*2**s + 2**(s-1) and its neighbours, s = 0..62, against Fractions."""
    for s in range(0, 63):
        half = (1 << (s - 1)) if s else 0
        k = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5], np.int64)
        k = np.clip(k, -(1 << (62 - s)), (1 << (62 - s)) - 1)
        t = np.concatenate([(k << s) + half, (k << s) + half - 1, (k << s) + half + 1])
        for mode in gq.ROUNDINGS:
            got = gq.round_shift(t, s, mode)
            assert [int(v) for v in got] == [ref_round(int(v), 1 << s, mode) for v in t], (s, mode)


@settings(max_examples=300, deadline=None)
@given(st.integers(8, 48).flatmap(lambda w: st.tuples(
    st.just(w), st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1),
    st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1), st.integers(0, (1 << (w - 1).bit_length()) - 1),
    st.integers(2, min(16, w)), st.booleans(), st.booleans(), st.booleans(),
    st.sampled_from(gq.ROUNDINGS))))
def test_quant_shift_matches_exact_reference(case):
    w, acc, bias, s, n, sgn, use_bias, relu, mode = case
    t = acc + (bias if use_bias else 0)
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if sgn else (0, (1 << n) - 1)
    lo = max(lo, 0) if relu else lo
    ref = min(max(ref_round(t, 1 << s, mode), lo), hi)
    got = gq.quant_shift(np.array([acc]), np.array([s]), in_width=w, out_width=n, signed_out=sgn,
                         rounding=mode, bias=np.array([bias]) if use_bias else None, relu=relu)
    assert got[0] == ref


def test_quant_shift_published_style_values():
    """Hand-checked values: 2.5 -> 3/2/3, -2.5 -> -2/-2/-3 (half_up/half_even/half_away)."""
    t = np.array([10, -10, 14, -14, 12, 1000, -1000])  # /4: 2.5 -2.5 3.5 -3.5 3 250 -250
    exp = {"half_up": [3, -2, 4, -3, 3, 127, -128], "half_even": [2, -2, 4, -4, 3, 127, -128],
           "half_away": [3, -3, 4, -4, 3, 127, -128], "floor": [2, -3, 3, -4, 3, 127, -128]}
    for mode, e in exp.items():
        assert gq.quant_shift(t, 2, rounding=mode).tolist() == e
    assert gq.quant_shift(t, 2, relu=True).tolist() == [3, 0, 4, 0, 3, 127, 0]
    assert gq.quant_shift(t, 2, signed_out=False).tolist() == [3, 0, 4, 0, 3, 250, 0]
    # the bias is added exactly, before rounding: no in_width wrap-around
    big = (1 << 31) - 1
    assert gq.quant_shift(np.array([big]), 24, bias=np.array([big])).tolist() == [127]
    assert gq.quant_shift(np.array([big]), 30, bias=np.array([big])).tolist() == [4]


# --- golden: gemmlowp / TFLite -----------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(I32, I32)
def test_srdhm_matches_gemmlowp_source(a, b):
    assert gq.srdhm(np.array([a]), np.array([b]))[0] == c_srdhm(a, b)


@settings(max_examples=500, deadline=None)
@given(I32, st.integers(0, 31))
def test_rdbpot_matches_gemmlowp_source(x, e):
    assert gq.rounding_divide_by_pot(np.array([x]), e)[0] == c_rdbpot(x, e)


def _mbqm_cases(rng, n):
    """Random and edge (x, m0, shift): uniform codes, realistic multipliers, ties."""
    x = np.concatenate([rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, n),
                        np.repeat([gq.INT32_MIN, gq.INT32_MAX, -1, 0, 1, 1 << 30], 64)])
    m = np.concatenate([rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, n // 2),
                        rng.integers(1 << 30, 1 << 31, n - n // 2),
                        np.tile([gq.INT32_MIN, gq.INT32_MAX, 1 << 30, 0, 1, -1, 3, 1202590843], 48)])
    s = np.concatenate([rng.integers(-32, 32, n), np.tile(np.arange(-32, 32), 6)])
    return x, m, s


@pytest.mark.parametrize("variant", gq.VARIANTS)
def test_mbqm_matches_tflite_source(variant):
    x, m, s = _mbqm_cases(np.random.default_rng(7), 20_000)
    got = gq.multiply_by_quantized_multiplier(x, m, s, variant)
    ref = [c_mbqm(int(a), int(b), int(c), variant) for a, b, c in zip(x, m, s)]
    assert got.tolist() == ref


@settings(max_examples=300, deadline=None)
@given(I32, I32, st.integers(-32, 31), st.integers(-256, 255), st.sampled_from(gq.VARIANTS),
       st.booleans())
def test_quant_fixedpoint_matches_reference(x, m, s, zp, variant, sgn):
    lo, hi = (-128, 127) if sgn else (0, 255)
    ref = min(max(zp + c_mbqm(x, m, s, variant), lo), hi)
    got = gq.quant_fixedpoint(np.array([x]), np.array([m]), np.array([s]), np.array([zp]),
                              signed_out=sgn, variant=variant)
    assert got[0] == ref


def test_srdhm_ties_and_saturation():
    """VQRDMULH semantics: ties toward +inf (2**30/2**31 -> 1, -2**30/2**31 -> 0);
    INT32_MIN * INT32_MIN saturates to INT32_MAX."""
    a = np.array([1, -1, 1 << 15, -(1 << 15), 3, gq.INT32_MIN, gq.INT32_MIN, gq.INT32_MAX])
    b = np.array([1 << 30, 1 << 30, 1 << 15, 1 << 15, 1 << 30, gq.INT32_MIN, gq.INT32_MAX,
                  gq.INT32_MAX])
    assert gq.srdhm(a, b).tolist() == [1, 0, 1, 0, 2, gq.INT32_MAX, -(gq.INT32_MAX),
                                       gq.INT32_MAX - 1]
    # RoundingDivideByPOT: ties away from zero
    assert gq.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist() == \
        [3, -3, 3, -3, 4, -4]


def test_left_shift_overflow_saturates():
    """x << left_shift beyond int32 saturates (C would overflow: undefined, in practice a
    wrap). Visible: 2**30 << 2 wraps to 0 but saturates to INT32_MAX."""
    assert gq.saturating_left_shift(np.array([1 << 30, -(1 << 30) - 1, 5, -1]),
                                    np.array([2, 1, 3, 31])).tolist() == \
        [gq.INT32_MAX, gq.INT32_MIN, 40, gq.INT32_MIN]
    r = gq.multiply_by_quantized_multiplier(np.array([1 << 30]), np.array([1 << 30]), 2)
    assert r.tolist() == [1 << 30]  # SRDHM(INT32_MAX, 2**30) = 2**30; a wrap would give 0
    assert gq.quant_fixedpoint(np.array([1 << 30, -(1 << 30)]), np.array([1 << 30] * 2),
                               np.array([2, 2]), np.array([0, 0])).tolist() == [127, -128]


# Published values: tensorflow/lite/kernels/internal/quantization_util_test.cc
QM_PUBLISHED = [
    (0.25, (1073741824, -1)), (0.50 - 5e-9, (2147483627, -1)), (0.50 - 1e-10, (1073741824, 0)),
    (0.50, (1073741824, 0)), (0.75, (1610612736, 0)), (1 - 1e-9, (2147483646, 0)),
    (1 + 1e-11, (1073741824, 1)), (1.25, (1342177280, 1)), (1.50, (1610612736, 1)),
    (1.75, (1879048192, 1)), (2 - 1e-9, (2147483647, 1)), (2 - 1e-11, (1073741824, 2)),
    (2.0, (1073741824, 2)), (math.ldexp(1.0, -31), (1073741824, -30)),
    (math.ldexp(1.0, -32), (1073741824, -31)),
    (math.ldexp(float(np.float32(0.99)), -32), (0, 0)), (math.ldexp(1.0, -33), (0, 0)),
    (-4, (-1073741824, 3)), (-0.125, (-1073741824, -2)), (0.0, (0, 0)), (4, (1073741824, 3)),
    (0.035, (1202590843, -4)),  # the example
]


@pytest.mark.parametrize("scale,expected", QM_PUBLISHED)
def test_quantize_multiplier_published(scale, expected):
    assert gq.quantize_multiplier(scale) == expected


# MultiplyByQuantizedMultiplierInt32 test of the same file: (x, multiplier) -> result.
MBQM_PUBLISHED = [(0, 0.1, 0), (1, 0, 0), (10000, 0.00097656, 10), (-10000, 0.00097656, -10),
                  (gq.INT32_MIN, 0.00001, -21475), (gq.INT32_MAX, 0.00001, 21475)]
MBQM_PUBLISHED_NEG = [(10000, -0.00097656, -10), (-10000, -0.00097656, 10),
                      (gq.INT32_MIN, -0.00001, 21475), (gq.INT32_MAX, -0.00001, -21475)]


@pytest.mark.parametrize("variant", gq.VARIANTS)
def test_mbqm_published(variant):
    cases = MBQM_PUBLISHED + (MBQM_PUBLISHED_NEG if variant == "double" else [])
    for x, scale, expected in cases:
        m0, shift = gq.quantize_multiplier(scale)
        assert gq.multiply_by_quantized_multiplier(np.array([x]), m0, shift, variant)[0] == expected
    # maximum x and multiplier at shift -3: TfLiteRound(x * m / 2**34) computed in double
    x = m = gq.INT32_MAX
    expected = tflite_round(float(x * m) / float(1 << 34))
    assert gq.multiply_by_quantized_multiplier(np.array([x, -x]), m, -3, variant).tolist() == \
        [expected, -expected]


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=2.0 ** -31, max_value=2.0 ** 29, allow_nan=False))
def test_quantize_multiplier_is_nearest(scale):
    """m0 * 2**(shift-31) is within half a unit of m0's last place of the scale."""
    m0, shift = gq.quantize_multiplier(scale)
    assert (1 << 30) <= m0 < (1 << 31)
    err = Fraction(m0) * Fraction(2) ** (shift - 31) - Fraction(scale)
    assert abs(err) <= Fraction(2) ** (shift - 32)


def test_quantize_multiplier_rejects():
    for bad in (float("nan"), float("inf"), 2.0 ** 31):
        with pytest.raises(ValueError, match="scale="):
            gq.quantize_multiplier(bad)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-30, max_value=1e30, allow_nan=False))
def test_pow2_shift_is_nearest_power_of_two(scale):
    s, err = gq.pow2_shift(scale)
    best = min(range(s - 3, s + 4), key=lambda k: (abs(Fraction(2) ** -k - Fraction(scale)), k))
    assert s == best
    assert err == pytest.approx((2.0 ** -s - scale) / scale, rel=1e-12, abs=1e-15)
    assert abs(err) <= 1 / 3 + 1e-12


def test_pow2_shift_values():
    assert gq.pow2_shift(0.035) == (5, (1 / 32 - 0.035) / 0.035)
    assert gq.pow2_shift(1 / 256) == (8, 0.0)
    assert gq.pow2_shift(0.75)[0] == 0 and gq.pow2_shift(0.74)[0] == 1  # tie to the larger
    assert gq.pow2_shift(3.0)[0] == -2
    with pytest.raises(ValueError, match="positive"):
        gq.pow2_shift(-1.0)


# --- golden: binary32 pipeline against NumPy float32 ------------------------------------

def _f32(bits):
    return np.asarray(bits).astype(np.uint32).view(np.float32)


def _random_f32_bits(rng, n):
    """Uniform patterns, plus subnormals, zeros, and exponents near 1.0 (useful products)."""
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.int64)
    b[::4] &= 0x807FFFFF                                         # zero / subnormal
    b[1::4] = (b[1::4] & 0x807FFFFF) | (rng.integers(90, 140, len(b[1::4])) << 23)
    b[2::16] = rng.choice(gq_scale_edges(), len(b[2::16]))
    return b


def gq_scale_edges():
    from qrtl.hw.reg_quant import SCALE_EDGES
    return SCALE_EDGES


def test_f32_from_int_matches_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, 200_000),
                        np.arange(-70000, 70000), (1 << 24) + np.arange(-9, 9),
                        [gq.INT32_MIN, gq.INT32_MAX, gq.INT32_MAX - 64, gq.INT32_MAX - 63]])
    ref = np.float32(x.astype(np.float64)).view(np.uint32)  # float64 holds int32 exactly
    assert np.array_equal(gq.f32_from_int(x), ref.astype(np.int64))


def test_f32_mul_matches_numpy():
    rng = np.random.default_rng(2)
    a, b = _random_f32_bits(rng, 400_000), _random_f32_bits(rng, 400_000)
    with np.errstate(all="ignore"):
        ref = _f32(a) * _f32(b)
    got = _f32(gq.f32_mul(a, b))
    nan = np.isnan(ref)
    assert np.array_equal(nan, np.isnan(got))
    assert np.array_equal(ref.view(np.uint32)[~nan], got.view(np.uint32)[~nan])
    # the sample really covers subnormal products and overflow to infinity
    fin = ref[~nan]
    assert np.count_nonzero((fin != 0) & (np.abs(fin) < np.finfo(np.float32).tiny)) > 1000
    assert np.count_nonzero(np.isinf(fin)) > 1000


def numpy_quant_float(acc, scale_bits, zp, out_width=8, signed_out=True):
    """The reference pipeline in NumPy float32 arithmetic (np.rint: ties to even); the
    suite's NaN/Inf policy: NaN -> 0, +-Inf and out-of-range saturate."""
    with np.errstate(all="ignore"):
        p = np.float32(acc.astype(np.float64)) * _f32(scale_bits)
        r = np.rint(p).astype(np.float64)
    r = np.where(np.isnan(r), 0.0, np.clip(r, gq.INT32_MIN, gq.INT32_MAX))
    lo, hi = gq.out_range(out_width, signed_out)
    return np.clip(r.astype(np.int64) + zp, lo, hi)


@pytest.mark.parametrize("out_width,signed_out", [(8, True), (4, False), (16, True)])
def test_quant_float_matches_numpy(out_width, signed_out):
    rng = np.random.default_rng(out_width)
    n = 300_000
    acc = np.where(rng.random(n) < 0.5, rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, n),
                   (rng.integers(-(1 << 20), 1 << 20, n) >> rng.integers(0, 21, n)))
    # realistic scales 2**-30 .. 2**2 of both signs, plus random patterns and edges
    real = np.float32(np.exp2(rng.uniform(-30, 2, n)) * rng.choice([-1, 1], n)).view(np.uint32)
    scale = np.where(rng.random(n) < 0.7, real.astype(np.int64), _random_f32_bits(rng, n))
    zp = rng.integers(-(1 << out_width), 1 << out_width, n)
    from qrtl.hw.reg_quant import float_corners
    c = float_corners({"out_width": out_width, "signed_out": int(signed_out)})
    acc = np.concatenate([acc, c["acc"]])
    scale = np.concatenate([scale, c["scale"].astype(np.int64)])
    zp = np.concatenate([zp, c["zp"]])
    got = gq.quant_float(acc, scale, zp, out_width=out_width, signed_out=signed_out)
    assert np.array_equal(got, numpy_quant_float(acc, scale, zp, out_width, signed_out))
    lo, hi = gq.out_range(out_width, signed_out)
    inside = (got > lo) & (got < hi)
    assert inside.mean() > 0.2  # not all saturated: the test discriminates


def test_quant_float_special_scales():
    """NaN scale -> q = zp; +-Inf -> saturate by sign (Inf x 0 is NaN -> zp); zero and
    subnormal scales -> q = zp; negative scale flips the sign; rint ties to even."""
    acc = np.array([5, -5, 0, 5, 0, 2 ** 31 - 1, 3, 5, 7, -5])
    scale = np.array([0x7FC00000, 0x7F800000, 0x7F800000, 0xFF800000, 0x7F800001, 0x00000001,
                      0x80000000, 0x3F000000, 0x3F000000, 0xBF000000])  # ..., 0.5, 0.5, -0.5
    zp = np.array([3, 3, 3, 3, -4, 2, 1, 0, 0, 0])
    assert gq.quant_float(acc, scale, zp).tolist() == [3, -128, 3, -128, -4, 2, 1, 2, 4, 2]


# --- parameters: one-line errors -------------------------------------------------------

@pytest.mark.parametrize("unit,args,message", [
    ("quant_shift", ["in_width=8", "out_width=9", "shift=2"], "out_width=9 exceeds in_width=8"),
    ("quant_shift", ["shift=32"], "shift=32 is out of range (allowed 0..31)"),
    ("quant_shift", ["in_width=16", "shift=16"], "shift=16 is out of range (allowed 0..15)"),
    ("quant_shift", ["rounding=nearest"], "rounding='nearest' is not a valid choice "
                                          "(allowed: half_up, half_even, half_away, floor)"),
    ("quant_shift", ["in_width=49"], "in_width=49 is out of range (allowed 8..48)"),
    ("quant_fixedpoint", ["variant=triple"], "allowed: double, single"),
    ("quant_fixedpoint", ["out_width=17"], "out_width=17 is out of range (allowed 2..16)"),
    ("quant_float", ["out_width=1"], "out_width=1 is out of range (allowed 2..16)"),
    ("quant_float", ["rounding=half_up"], "unknown parameter 'rounding'"),
    ("quant_fixedpoint", ["m0_width=15"], "m0_width=15 is out of range (allowed 16..32)"),
    ("quant_float", ["scale_fmt=e4m3"], "allowed: fp32, fp16, bf16"),
])
def test_bad_parameters_are_one_line_errors(cli, unit, args, message):
    argv = ["describe", unit]
    for a in args:
        argv += ["-p", a]
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_constructors_validate():
    with pytest.raises(ValueError, match="out_width=9 exceeds in_width=8"):
        QuantShift(8, 9, shift=2)
    with pytest.raises(ValueError, match="shift=40"):
        QuantShift(32, 8, shift=40)
    with pytest.raises(ValueError, match="rounding='up'"):
        QuantShift(rounding="up")
    with pytest.raises(ValueError, match="variant='x'"):
        QuantFixedPoint(variant="x")
    with pytest.raises(ValueError, match="out_width=20"):
        QuantFloat(20)


def test_contract():
    d = configure("quant_shift", {"bias": 1, "runtime_shift": 1, "signed_out": 0}).describe()
    assert d["latency"] == 0 and d["clock"] is None
    assert d["ports"] == [{"name": "acc", "direction": "in", "width": 32, "signed": True},
                          {"name": "bias", "direction": "in", "width": 32, "signed": True},
                          {"name": "shift", "direction": "in", "width": 5, "signed": False},
                          {"name": "q", "direction": "out", "width": 8, "signed": False}]
    d = configure("quant_fixedpoint", {"out_width": 4}).describe()
    assert [(p["name"], p["width"], p["signed"]) for p in d["ports"]] == \
        [("acc", 32, True), ("m0", 32, True), ("shift", 6, True), ("zp", 5, True), ("q", 4, True)]
    d = configure("quant_float", {"signed_out": 0}).describe()
    assert [(p["name"], p["width"], p["signed"]) for p in d["ports"]] == \
        [("acc", 32, True), ("scale", 32, False), ("zp", 9, True), ("q", 8, False)]


# --- RTL on Verilator ----------------------------------------------------------------------
# Builds are the cost here (~5-10 s each), so each configuration below also varies the
# output width, signedness and ReLU to cover them without extra builds.

EXHAUSTIVE_16 = [  # runtime shift: every accumulator x every shift 0..15 (2**20 inputs)
    dict(in_width=16, runtime_shift=1, rounding="half_up"),
    dict(in_width=16, runtime_shift=1, rounding="half_even", out_width=4, signed_out=0),
    dict(in_width=16, runtime_shift=1, rounding="half_away", relu=1),
    dict(in_width=16, runtime_shift=1, rounding="floor", out_width=16),
    # static shifts (a different datapath: slicing, no barrel shifter)
    dict(in_width=16, shift=0, rounding="half_even", out_width=16),
    dict(in_width=16, shift=15, rounding="half_away", out_width=2),
    dict(in_width=16, shift=5, rounding="half_up", out_width=8, signed_out=0, relu=1),
]


@pytest.mark.parametrize("params", EXHAUSTIVE_16, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_rtl_quant_shift_exhaustive_16(params):
    inst = configure("quant_shift", params)
    x = inst.exhaustive()
    shifts = 16 if params.get("runtime_shift") else 1
    assert len(x["acc"]) == (1 << 16) * shifts
    res = verify(inst)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= len(x["acc"])
    # the check discriminates: every other rounding mode disagrees somewhere on this set
    # (except half_up vs half_away when qmin >= 0: they differ only on negative ties)
    p = inst.params
    same = {"half_up", "half_away"} if gq.out_range(p["out_width"], p["signed_out"], p["relu"])[0] >= 0 else set()
    if p["runtime_shift"] or p["shift"] > 0:
        e = inst.golden(x)["q"]
        for r in gq.ROUNDINGS:
            if r != p["rounding"] and {r, p["rounding"]} != same:
                assert np.any(configure("quant_shift", {**params, "rounding": r}).golden(x)["q"] != e)


def _near(rng, n, scale_bits):
    """Accumulators spread log-uniformly up to 2**scale_bits in magnitude, both signs."""
    mag = rng.integers(0, 1 << 62, n) >> (62 - rng.integers(0, scale_bits + 1, n))
    return np.where(rng.random(n) < 0.5, -mag, mag)


def _run(inst, parts):
    x = {p.name: np.concatenate([np.asarray(q[p.name]) for q in parts]) for p in inst.inputs}
    res = simulate(inst, x)
    assert res.mismatches == 0, res.first_mismatch
    return res, x


QUANT_SHIFT_32 = [
    dict(),  # the default configuration
    dict(bias=1, relu=1, runtime_shift=1, rounding="half_even"),
    dict(in_width=48, bias=1, runtime_shift=1, rounding="half_away", out_width=16, signed_out=0),
]


@pytest.mark.parametrize("params", QUANT_SHIFT_32, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_rtl_quant_shift_random(params):
    inst = configure("quant_shift", params)
    p = inst.params
    rng = np.random.default_rng(11)
    n = 500_000 if p["in_width"] == 32 else 100_000
    w = p["in_width"]
    near = {"acc": _near(rng, n, w - 2)}
    if p["bias"]:
        near["bias"] = _near(rng, n, w - 2)
    if p["runtime_shift"]:
        near["shift"] = rng.integers(0, 1 << inst.port("shift").width, n).astype(np.uint64)
    res, x = _run(inst, [inst.corners(), inst.stimulus(n, rng), near])
    assert res.vectors >= 2 * n
    q = inst.golden(x)["q"]
    assert len(np.unique(q)) > 100  # outputs across the range, not only saturation


@pytest.mark.parametrize("params", [dict(), dict(variant="single", signed_out=0, out_width=4),
                                    dict(m0_width=16), dict(m0_width=23, variant="single")],
                         ids=["double,default", "single,u4", "double,m0_16", "single,m0_23"])
def test_rtl_quant_fixedpoint_random(params):
    inst = configure("quant_fixedpoint", params)
    rng = np.random.default_rng(12)
    w = inst.params["m0_width"]
    n = 500_000 if w == 32 else 200_000
    # realistic: m0/shift from real scales 2**-20 .. 2**4, accumulators near the output range
    # (a narrow multiplier: TFLite's m0 rounded to m0_width bits, as the lean network does)
    scales = np.exp2(rng.uniform(-20, 4, 4096))
    qm = np.array([gq.quantize_multiplier(s) for s in scales])
    qm = np.stack(gq.reduce_multiplier(qm[:, 0], qm[:, 1], w), axis=1)
    pick = rng.integers(0, len(qm), n)
    real = {"acc": np.clip(_near(rng, n, 31), gq.INT32_MIN, gq.INT32_MAX), "m0": qm[pick, 0],
            "shift": qm[pick, 1],
            "zp": rng.integers(-(1 << inst.params["out_width"]), 1 << inst.params["out_width"], n)}
    corners = inst.corners()
    res, x = _run(inst, [corners, inst.stimulus(n, rng), real])
    assert res.vectors >= 2 * n
    assert len(corners["acc"]) > 10_000
    # the corner set tells the variants apart, and the saturating shift from a wrapping one
    other = "single" if inst.params["variant"] == "double" else "double"
    mine = inst.golden(corners)["q"]
    assert np.any(configure("quant_fixedpoint", {**params, "variant": other}).golden(corners)["q"] != mine)
    if w < 32:  # and the narrow rounding shift from the full one (SRDHM ties of the narrow product)
        wide = gq.quant_fixedpoint(corners["acc"], corners["m0"], corners["shift"], corners["zp"],
                                   out_width=inst.params["out_width"],
                                   signed_out=bool(inst.params["signed_out"]),
                                   variant=inst.params["variant"])
        assert np.any(wide != mine)


@pytest.mark.parametrize("params", [dict(), dict(out_width=16, signed_out=0)],
                         ids=["default", "u16"])
def test_rtl_quant_float_random(params):
    inst = configure("quant_float", params)
    rng = np.random.default_rng(13)
    n = 500_000
    scale = np.float32(np.exp2(rng.uniform(-32, 2, n)) * rng.choice([-1, 1], n)).view(np.uint32)
    real = {"acc": np.clip(_near(rng, n, 31), gq.INT32_MIN, gq.INT32_MAX),
            "scale": scale.astype(np.uint64),
            "zp": rng.integers(-(1 << inst.params["out_width"]), 1 << inst.params["out_width"], n)}
    sub = {"acc": real["acc"][:50_000], "zp": real["zp"][:50_000],  # subnormal scales
           "scale": rng.integers(0, 1 << 23, 50_000).astype(np.uint64) | np.uint64(1 << 31) *
           rng.integers(0, 2, 50_000).astype(np.uint64)}
    res, x = _run(inst, [inst.corners(), inst.stimulus(n, rng), real, sub])
    assert res.vectors >= 2 * n
    q = inst.golden(real)["q"]
    lo, hi = gq.out_range(inst.params["out_width"], bool(inst.params["signed_out"]))
    assert np.mean((q > lo) & (q < hi)) > 0.2


@pytest.mark.parametrize("params", [dict(scale_fmt="fp16"),
                                    dict(scale_fmt="bf16", out_width=16, signed_out=0)],
                         ids=["fp16", "bf16,u16"])
def test_rtl_quant_float_narrow_scale(params):
    """A 16-bit scale: every scale code against 16 accumulators (2**20 inputs), the corners
    (fp16's range edge 65504/65520 included), and realistic scales on random accumulators."""
    inst = configure("quant_float", params)
    fmt = inst.params["scale_fmt"]
    x = inst.exhaustive()
    assert len(x["acc"]) == 1 << 20
    res = verify(inst)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= len(x["acc"]) + len(inst.corners()["acc"])
    rng = np.random.default_rng(14)
    n = 200_000
    f32 = np.float32(np.exp2(rng.uniform(-24, 2, n)) * rng.choice([-1, 1], n)).view(np.uint32)
    real = {"acc": np.clip(_near(rng, n, 31), gq.INT32_MIN, gq.INT32_MAX),
            "scale": gq.scale_to_format(f32.astype(np.int64), fmt).astype(np.uint64),
            "zp": rng.integers(-(1 << inst.params["out_width"]), 1 << inst.params["out_width"], n)}
    res, _ = _run(inst, [real])
    q = inst.golden(real)["q"]
    lo, hi = gq.out_range(inst.params["out_width"], bool(inst.params["signed_out"]))
    assert np.mean((q > lo) & (q < hi)) > 0.1
    # the exhaustive set tells the format from binary32 with the same scale values
    wide = gq.quant_float(x["acc"], _fmt_to_f32(x["scale"], fmt),
                          x["zp"], out_width=inst.params["out_width"],
                          signed_out=bool(inst.params["signed_out"]))
    assert np.any(wide != inst.golden(x)["q"])


def _fmt_to_f32(codes, fmt):
    """binary32 patterns of the same values as 16-bit ``fmt`` codes (exact widening)."""
    import ml_dtypes
    dt = np.float16 if fmt == "fp16" else ml_dtypes.bfloat16
    v = np.asarray(codes).astype(np.uint16).view(dt).astype(np.float32)
    return v.view(np.uint32).astype(np.int64)
