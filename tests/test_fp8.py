"""FP8 family: formats, golden models (against ml_dtypes and exact fractions), RTL on Verilator.

Oracles: ``ml_dtypes`` (float8_e4m3fn, float8_e5m2, bfloat16) and NumPy (float16, float32)
wherever those types decide the answer, i.e. when the exact result is a float64 that one
cast rounds (checked with an error-free TwoSum); exact :class:`fractions.Fraction`
arithmetic with the rounding rule written out (``ref_round``) everywhere else: e6m9,
stochastic rounding, sums float64 cannot hold exactly, and fused-vs-double rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden.formats import (ACC_FORMATS, FLOAT_FORMATS, FORMATS, FP8_FORMATS, FPFormat,
                                 get_format)
from qrtl.golden.fp8 import (decode, encode, fp8_dot, fp8_dot_prefix, fp8_dot_stream, fp8_mac,
                        fp8_mul, join_lanes, split_lanes)
from qrtl.golden.errors import QrtlError
from qrtl.hw.fp8 import Fp8Dot, Fp8Mac, Fp8Mul
from qrtl.hw.reg_fp8 import acc_values, all_pairs
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify

NP_TYPES = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2,
            "fp16": np.float16, "bf16": ml_dtypes.bfloat16, "fp32": np.float32}
UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


@pytest.fixture(autouse=True)
def _float_oracles_quiet():
    """The float oracles meet NaN and overflow on purpose (warnings are errors here)."""
    with np.errstate(invalid="ignore", over="ignore"):
        yield


# --- exact reference (Fractions) -------------------------------------------------------------

def ref_decode(code: int, f: FPFormat):
    """``("nan",)``, ``("inf", sign)`` or ``(Fraction, sign)`` straight from the field rules."""
    code = int(code)
    s = code >> (f.width - 1) & 1
    e = code >> f.mbits & ((1 << f.ebits) - 1)
    m = code & ((1 << f.mbits) - 1)
    top = (1 << f.ebits) - 1
    if e == top and (f.nan == "ieee" and m or f.nan == "ones" and m == (1 << f.mbits) - 1):
        return ("nan",)
    if e == top and f.has_inf:
        return ("inf", s)
    v = Fraction(m, 1 << f.mbits) * Fraction(2) ** (1 - f.bias) if e == 0 else \
        Fraction((1 << f.mbits) + m, 1 << f.mbits) * Fraction(2) ** (e - f.bias)
    return (-v if s else v, s)


def _floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def ref_round(v: Fraction, zero_sign: int, f: FPFormat, rounding="rne", rnd=0, rbits=16,
              saturate=False) -> int:
    """Code of the exact ``v`` rounded to ``f`` by the rule of the golden module docstring."""
    if v == 0:
        return zero_sign << (f.width - 1)
    s, a = int(v < 0), abs(v)
    q = max(_floor_log2(a), f.emin) - f.mbits
    scaled = a / Fraction(2) ** q
    k = math.floor(scaled)
    frac = scaled - k
    if rounding == "rne":
        k += frac > Fraction(1, 2) or (frac == Fraction(1, 2) and k % 2 == 1)
    else:
        k += math.floor(frac * (1 << rbits)) > rnd
    if k * Fraction(2) ** q > f.max_value:
        if saturate or not f.has_nan:  # a format without Inf and NaN always saturates
            return (s << (f.width - 1)) | f.max_code
        return (s << (f.width - 1)) | f.inf_code if f.has_inf else f.nan_code
    if k == 1 << (f.mbits + 1):
        k, q = k >> 1, q + 1
    if k >= 1 << f.mbits:
        return (s << (f.width - 1)) | ((q + f.mbits + f.bias) << f.mbits) | (k - (1 << f.mbits))
    return (s << (f.width - 1)) | k


def ref_add(x, y, f: FPFormat, rounding="rne", rnd=0, rbits=16, saturate=False) -> int:
    """``round(x + y)`` of two ``ref_decode`` results, IEEE special cases."""
    if x[0] == "nan" or y[0] == "nan":
        return f.nan_code
    if x[0] == "inf" or y[0] == "inf":
        if x[0] == "inf" and y[0] == "inf" and x[1] != y[1]:
            return f.nan_code
        s = x[1] if x[0] == "inf" else y[1]
        return (s << (f.width - 1)) | f.inf_code if f.has_inf else f.nan_code
    return ref_round(x[0] + y[0], x[1] & y[1], f, rounding, rnd, rbits, saturate)


def ref_mul(a, b, f: FPFormat):
    """Exact product of two ``ref_decode`` results (same tuple form)."""
    if a[0] == "nan" or b[0] == "nan":
        return ("nan",)
    s = a[1] ^ b[1]
    if a[0] == "inf" or b[0] == "inf":
        other = b if a[0] == "inf" else a
        return ("nan",) if other[0] == 0 else ("inf", s)
    return (a[0] * b[0], s)


def ref_mac(a, b, c, fmt, acc, rounding="rne", rnd=0, rbits=16, saturate=False) -> int:
    f, fa = get_format(fmt), get_format(acc)
    p = ref_mul(ref_decode(a, f), ref_decode(b, f), f)
    return ref_add(p, ref_decode(c, fa), fa, rounding, rnd, rbits, saturate)


# --- formats ---------------------------------------------------------------------------------

def test_named_formats():
    facts = {name: (FORMATS[name].width, float(FORMATS[name].max_value), FORMATS[name].has_inf)
             for name in FLOAT_FORMATS}
    assert facts["e4m3"] == (8, 448.0, False)
    assert facts["e5m2"] == (8, 57344.0, True)
    assert facts["fp16"] == (16, 65504.0, True)
    assert facts["bf16"] == (16, float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), True)
    assert facts["e6m9"] == (16, (2 - 2 ** -9) * 2.0 ** 31, True)
    assert facts["fp32"] == (32, float(np.finfo(np.float32).max), True)
    for name in FLOAT_FORMATS:  # the max finite / NaN codes decode as the format says
        f = FORMATS[name]
        assert decode(np.array([f.max_code]), f)[0] == float(f.max_value)
        assert f.has_nan == (f.nan_code is not None)
        if f.has_nan:
            assert np.isnan(decode(np.array([f.nan_code]), f)[0])
        assert get_format(name) is f and get_format(f) is f


@pytest.mark.parametrize("kwargs, match", [
    (dict(ebits=1, mbits=3, bias=0), "ebits=1"),
    (dict(ebits=4, mbits=0, bias=7), "mbits=0"),
    (dict(ebits=4, mbits=3, bias=15), "bias=15"),
    (dict(ebits=4, mbits=3, bias=7, has_inf=True, nan="ones"), "has_inf"),
    (dict(ebits=4, mbits=3, bias=7, has_inf=False, nan="ieee"), "has_inf"),
    (dict(ebits=4, mbits=3, bias=7, nan="payload"), "nan='payload'"),
    (dict(ebits=4, mbits=3, bias=7, overflow="wrap"), "overflow='wrap'"),
])
def test_invalid_formats_are_rejected(kwargs, match):
    with pytest.raises(QrtlError, match=match) as exc:
        FPFormat("bad", **kwargs)
    assert "\n" not in str(exc.value)


def test_unknown_format_name():
    with pytest.raises(QrtlError, match="unknown format 'e3m4'"):
        get_format("e3m4")


# --- decode / encode -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["e4m3", "e5m2", "fp16", "bf16", "fp32", "e6m9"])
def test_decode_every_code(name):
    f = get_format(name)
    codes = (np.arange(1 << 16, dtype=np.uint64) if f.width <= 16 else
             np.random.default_rng(0).integers(0, 1 << 32, 1 << 16, dtype=np.uint64))
    codes = codes[codes < (1 << f.width)]
    got = decode(codes, f)
    if name in NP_TYPES:
        ref = codes.astype(UINT[f.width]).view(NP_TYPES[name]).astype(np.float64)
    else:
        ref = np.array([np.nan if r[0] == "nan" else (-np.inf if r[1] else np.inf) if r[0] == "inf"
                        else float(r[0]) if r[0] != 0 else (-0.0 if r[1] else 0.0)
                        for r in (ref_decode(c, f) for c in codes)])
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(got[ok], ref[ok])
    assert np.array_equal(np.signbit(got[ok]), np.signbit(ref[ok]))
    # encode is the inverse on every non-NaN code
    assert np.array_equal(encode(got[ok], f), codes[ok])


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "fp16", "bf16", "fp32"])
def test_encode_rne_matches_ml_dtypes(name):
    f = get_format(name)
    rng = np.random.default_rng(1)
    top = float(f.max_value) * 1.2
    v = np.concatenate([rng.normal(0, 1, 100_000) * np.exp(rng.uniform(-40, 40, 100_000)),
                        rng.uniform(-top, top, 50_000),
                        np.ldexp(rng.uniform(0.5, 1, 50_000), f.emin - f.mbits + rng.integers(-3, 6, 50_000))])
    v = v[np.abs(v) < 1e300]
    if name != "fp32":
        # ml_dtypes converts float64 through float32 (a double rounding: it takes
        # 400.0000006 to 384 in e4m3, not 416), so compare on float32-exact inputs; the
        # fraction test below covers float64 inputs.
        v = v.astype(np.float32).astype(np.float64)
    ref = v.astype(NP_TYPES[name])
    got = encode(v, f)
    ref_codes = ref.view(UINT[f.width]).astype(np.uint64)
    nan = np.isnan(ref.astype(np.float64))
    assert np.array_equal(got[~nan], ref_codes[~nan])
    assert np.all(got[nan] == f.nan_code)


def test_encode_saturate_and_specials():
    e4, e5 = get_format("e4m3"), get_format("e5m2")
    v = np.array([1e9, -1e9, np.inf, -np.inf, np.nan, 464.0, 465.0])
    assert list(encode(v, e4, saturate=True)) == [0x7E, 0xFE, 0x7E, 0xFE, 0x7F, 0x7E, 0x7E]
    assert list(encode(v, e4)) == [0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7E, 0x7F]
    assert list(encode(v[:4], e5)) == [0x7C, 0xFC, 0x7C, 0xFC]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FLOAT_FORMATS), st.fractions(), st.integers(-60, 60),
       st.sampled_from(["rne", "stochastic"]), st.integers(0, (1 << 16) - 1), st.booleans())
def test_encode_matches_fraction_rounding(name, frac, shift, rounding, rnd, sat):
    f = get_format(name)
    v = float(frac * Fraction(2) ** shift)
    x = Fraction(v)  # the exact float64 value that is encoded
    got = int(encode(np.array([v]), f, rounding, np.array([rnd]), 16, sat)[0])
    assert got == ref_round(x, int(math.copysign(1, v) < 0), f, rounding, rnd, 16, sat)


# --- fp8_mul golden --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FP8_FORMATS)
def test_mul_golden_every_pair(fmt):
    a, b = all_pairs()
    p = fp8_mul(a, b, fmt)
    dt = NP_TYPES[fmt]
    with np.errstate(invalid="ignore"):
        ref = (a.astype(np.uint8).view(dt).astype(np.float32) * b.astype(np.uint8).view(dt).astype(np.float32))
    ref_codes = ref.view(np.uint32).astype(np.uint64)
    nan = np.isnan(ref)
    assert np.array_equal(p[~nan], ref_codes[~nan])   # exact, signs of zeros and Infs included
    assert np.all(p[nan] == 0x7FC00000)
    if fmt == "e5m2":  # Inf * 0 -> NaN, Inf * -1 -> -Inf
        assert fp8_mul(np.array([0x7C, 0x7C]), np.array([0x00, 0xBC]), fmt).tolist() == [0x7FC00000, 0xFF800000]


# --- fp8_mac golden --------------------------------------------------------------------------

def _two_sum_exact(x, y):
    with np.errstate(all="ignore"):
        s = x + y
        bp = s - x
        err = (x - (s - bp)) + (y - bp)
    return s, np.isfinite(s) & (err == 0)


@pytest.mark.parametrize("acc", ACC_FORMATS)
def test_sweep_accumulator_values_span_the_format(acc):
    """The 64 accumulator values of the exhaustive sweep: +-0, +-subnormals, normals,
    values at and next to overflow, +-Inf and NaN."""
    f = get_format(acc)
    codes = acc_values(acc, "e4m3")
    v = decode(codes, acc)
    assert len(codes) == 64 and len(np.unique(codes)) >= 60
    assert {0, f.sign_bit} <= set(codes.tolist())                       # +0, -0
    tiny = float(f.min_subnormal) * (1 << f.mbits)                       # smallest normal
    assert np.any((v > 0) & (v < tiny)) and np.any((v < 0) & (v > -tiny))
    assert {f.max_code, f.max_code - 1, f.max_code | f.sign_bit} <= set(codes.tolist())
    assert np.any(v == np.inf) and np.any(v == -np.inf) and np.isnan(v).sum() >= 2
    assert np.sum(np.isfinite(v) & (np.abs(v) >= tiny)) >= 40            # normals


def check_mac_against_oracles(x, out, fmt, acc, fraction_samples=1500):
    """``out`` (RNE MAC results of vectors ``x``) against NumPy/ml_dtypes where one cast of
    the exactly computed float64 sum decides, and against exact fractions elsewhere."""
    fa = get_format(acc)
    prod = decode(x["a"], fmt) * decode(x["b"], fmt)
    s, exact = _two_sum_exact(decode(x["acc_in"], acc), prod)
    ok = exact & (s != 0)
    if acc in NP_TYPES:
        ref = s[ok].astype(NP_TYPES[acc]).view(UINT[fa.width]).astype(np.uint64)
    else:  # e6m9: encode (checked against fractions above) rounds the exact float64 sum once
        ref = encode(s[ok], fa)
    assert np.array_equal(out[ok], ref)
    assert ok.sum() > len(out) // 3
    rest = np.flatnonzero(~ok)  # zeros, specials, sums float64 cannot hold exactly
    pick = np.random.default_rng(2).choice(rest, min(fraction_samples, len(rest)), replace=False)
    for i in pick:
        assert int(out[i]) == ref_mac(x["a"][i], x["b"][i], x["acc_in"][i], fmt, acc), i


@pytest.mark.parametrize("fmt, acc", [("e4m3", "fp16"), ("e5m2", "bf16"), ("e5m2", "e6m9")])
def test_mac_golden_rne_sample(fmt, acc):
    """Golden model alone on 300k of the exhaustive vectors (the RTL test below checks all)."""
    from qrtl.hw.reg_fp8 import mac_exhaustive
    x = mac_exhaustive({"rounding": "rne", "fmt": fmt, "acc": acc})
    pick = np.random.default_rng(1).choice(len(x["a"]), 300_000, replace=False)
    x = {k: v[pick] for k, v in x.items()}
    check_mac_against_oracles(x, fp8_mac(x["a"], x["b"], x["acc_in"], fmt=fmt, acc=acc), fmt, acc, 500)


@pytest.mark.parametrize("fmt, acc", [("e4m3", "e6m9"), ("e5m2", "fp16")])
def test_mac_is_fused(fmt, acc):
    """The MAC rounds the exact ``acc_in + a*b`` once. Rounding the product to the
    accumulator first only matters when the product is not representable there: e5m2
    products below fp16's subnormal quantum 2^-24 (e4m3's 8-bit products above 2^-18 fit
    fp16, bf16 and e6m9 exactly)."""
    from qrtl.hw.reg_fp8 import mac_exhaustive
    x = mac_exhaustive({"rounding": "rne", "fmt": fmt, "acc": acc})
    pick = np.random.default_rng(3).choice(len(x["a"]), 4000, replace=False)
    x = {k: v[pick] for k, v in x.items()}
    out = fp8_mac(x["a"], x["b"], x["acc_in"], fmt=fmt, acc=acc)
    prod_rounded = encode(decode(x["a"], fmt) * decode(x["b"], fmt), acc)
    fa = get_format(acc)
    differ = 0
    for i in range(len(out)):
        fused = ref_mac(x["a"][i], x["b"][i], x["acc_in"][i], fmt, acc)
        assert int(out[i]) == fused
        differ += ref_add(ref_decode(prod_rounded[i], fa), ref_decode(x["acc_in"][i], fa), fa) != fused
    assert differ > 0 if (fmt, acc) == ("e5m2", "fp16") else differ == 0


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FP8_FORMATS), st.sampled_from(ACC_FORMATS), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, (1 << 32) - 1), st.sampled_from(["rne", "stochastic"]),
       st.integers(1, 32), st.integers(0, (1 << 32) - 1), st.booleans())
def test_mac_golden_matches_fractions(fmt, acc, a, b, c, rounding, rbits, rnd, sat):
    fa = get_format(acc)
    c &= (1 << fa.width) - 1
    rnd &= (1 << rbits) - 1
    got = fp8_mac(np.array([a]), np.array([b]), np.array([c]), fmt=fmt, acc=acc, rounding=rounding,
                  rnd=np.array([rnd]), rbits=rbits, saturate=sat)
    assert int(got[0]) == ref_mac(a, b, c, fmt, acc, rounding, rnd, rbits, sat)


def _near_vectors(fmt, acc, n, seed):
    """Random finite (a, b, acc_in) whose exact sum is not representable in ``acc``."""
    from qrtl.hw.reg_fp8 import _mac_stimulus
    x = _mac_stimulus({"fmt": fmt, "acc": acc, "rounding": "rne", "rbits": 16}, 4 * n,
                      np.random.default_rng(seed))
    prod = decode(x["a"], fmt) * decode(x["b"], fmt)
    c = decode(x["acc_in"], acc)
    s, exact = _two_sum_exact(c, prod)
    with np.errstate(invalid="ignore"):
        inexact = exact & (np.abs(s) < float(get_format(acc).max_value) / 2) \
            & (decode(encode(s, acc), acc) != s)
    idx = np.flatnonzero(inexact)[:n]
    return {k: v[idx] for k, v in x.items()}, s[idx]


def _ulp(s, f):
    e = np.frexp(np.abs(s))[1] - 1
    return np.ldexp(1.0, np.maximum(e, f.emin) - f.mbits)


def _check_unbiased(fixed, draws, result_codes, acc, rbits):
    """Per fixed vector, the mean of ``draws`` stochastic results equals the exact sum
    within 5 standard errors of the Bernoulli(t) round-up count, plus the documented
    ``2^-rbits`` ulp bias bound of ignoring the bits below the first ``rbits``."""
    f = get_format(acc)
    vals = decode(result_codes, acc).reshape(len(fixed), draws)
    ulp = _ulp(fixed, f)
    err = (vals - fixed[:, None]) / ulp[:, None]                 # in ulps, each draw
    frac = (np.abs(fixed) / ulp) % 1.0                         # exact in float64
    t = np.floor(frac * 2.0 ** rbits) / 2.0 ** rbits           # P(round up) by the rule
    se = np.sqrt(t * (1 - t) / draws)
    mean = err.mean(axis=1)
    assert np.all(np.abs(mean) <= 5 * se + 2.0 ** -rbits + 1e-12), (mean, se)
    assert np.all(np.abs(err) < 1)                               # one of the two neighbours
    return mean


@pytest.mark.parametrize("fmt, acc, rbits", [("e4m3", "fp16", 16), ("e5m2", "e6m9", 8),
                                             ("e4m3", "bf16", 4)])
def test_stochastic_rounding_golden_unbiased(fmt, acc, rbits):
    x, s = _near_vectors(fmt, acc, 40, seed=7)
    draws = 20_000
    rng = np.random.default_rng(8)
    rnd = rng.integers(0, 1 << rbits, (len(s), draws), dtype=np.uint64)
    out = fp8_mac(np.repeat(x["a"], draws), np.repeat(x["b"], draws), np.repeat(x["acc_in"], draws),
                  fmt=fmt, acc=acc, rounding="stochastic", rnd=rnd.ravel(), rbits=rbits)
    _check_unbiased(s, draws, out, acc, rbits)
    rne = decode(fp8_mac(x["a"], x["b"], x["acc_in"], fmt=fmt, acc=acc), acc)
    assert np.any(rne != s)  # RNE is biased on these vectors; SR's mean is not


# --- fp8_dot golden --------------------------------------------------------------------------

def test_lane_packing_roundtrip():
    rng = np.random.default_rng(0)
    for width, lanes in ((8, 1), (8, 8), (12, 4), (16, 5)):
        f = rng.integers(0, 1 << width, (100, lanes))
        assert np.array_equal(split_lanes(join_lanes(f, width), width, lanes), f)


@pytest.mark.parametrize("fmt, chunk, lanes", [("e4m3", 1, 1), ("e4m3", 16, 2), ("e5m2", 64, 4)])
def test_dot_golden_against_float_reference(fmt, chunk, lanes):
    """fp16 chunks into an fp32 outer sum, replayed with NumPy casts (exact float64 sums)."""
    rng = np.random.default_rng(chunk)
    n = 300
    a = encode(rng.normal(0, 1, (20, n)), fmt)
    b = encode(rng.normal(0.5, 1, (20, n)), fmt)
    got = fp8_dot(a, b, fmt=fmt, acc="fp16", chunk=chunk, outer="fp32", lanes=lanes)
    prods = decode(a, fmt) * decode(b, fmt)
    pad = (-n) % lanes
    prods = np.concatenate([prods, np.zeros((20, pad))], 1)
    c = np.zeros(20, np.float16)
    o = np.zeros(20, np.float32)
    for k in range(n + pad):
        c = (c.astype(np.float64) + prods[:, k]).astype(np.float16)
        if (k + 1) % chunk == 0 or k == n + pad - 1:
            o = (o.astype(np.float64) + c.astype(np.float64)).astype(np.float32)
            c = np.zeros(20, np.float16)
    assert np.array_equal(got, o.view(np.uint32).astype(np.uint64))


def test_dot_prefix_and_stream_agree_with_dot():
    rng = np.random.default_rng(4)
    p = dict(fmt="e5m2", acc="e6m9", chunk=8, outer="fp16", lanes=2, rounding="stochastic", rbits=8)
    a = encode(rng.normal(0, 2, (6, 100)), "e5m2")
    b = encode(rng.normal(0, 2, (6, 100)), "e5m2")
    r = rng.integers(0, 256, (6, 100))
    lengths = [2, 8, 10, 64, 100]
    pre = fp8_dot_prefix(a, b, lengths, rnd=r, **p)
    for j, L in enumerate(lengths):
        assert np.array_equal(pre[:, j], fp8_dot(a[:, :L], b[:, :L], rnd=r[:, :L], **p))
    # the same six dot products as one cycle stream, with idle cycles of junk in between
    cycles = []
    for t in range(6):
        for k in range(50):
            if k % 7 == 3:
                cycles.append((0, 1, [255, 255], [255, 255], [1, 1]))
            cycles.append((1, int(k == 49), a[t, 2 * k:2 * k + 2], b[t, 2 * k:2 * k + 2],
                           r[t, 2 * k:2 * k + 2]))
    x = {"valid": np.array([c[0] for c in cycles], np.uint64),
         "last": np.array([c[1] for c in cycles], np.uint64),
         "a": join_lanes(np.array([c[2] for c in cycles]), 8),
         "b": join_lanes(np.array([c[3] for c in cycles]), 8),
         "rnd": join_lanes(np.array([c[4] for c in cycles]), 8)}
    out = fp8_dot_stream(x, **p)
    ends = np.flatnonzero(out["result_valid"])
    assert len(ends) == 6
    assert np.array_equal(out["result"][ends], pre[:, -1])
    assert out["result"][0] == 0 and out["result"][-1] == pre[-1, -1]


# --- RTL on Verilator --------------------------------------------------------------------------

def test_constructors_validate():
    with pytest.raises(ValueError, match="fmt='fp16'"):
        Fp8Mul("fp16")
    with pytest.raises(ValueError, match="acc='e4m3'"):
        Fp8Mac(acc="e4m3")
    with pytest.raises(ValueError, match="rbits=33"):
        Fp8Mac(rounding="stochastic", rbits=33)
    with pytest.raises(ValueError, match="chunk=6"):
        Fp8Dot(chunk=6, lanes=4)


def test_dot_contract(cli):
    code, out, err = cli("describe", "fp8_dot", "-p", "lanes=2", "-p", "chunk=8", "--json")
    assert code == 0
    import json
    d = json.loads(out)
    assert d["latency"] == 1 and d["clock"] == "clk" and d["reset"] == "rst"
    assert {p["name"]: (p["direction"], p["width"]) for p in d["ports"]} == {
        "valid": ("in", 1), "last": ("in", 1), "a": ("in", 16), "b": ("in", 16),
        "result": ("out", 32), "result_valid": ("out", 1)}
    code, out, err = cli("describe", "fp8_dot", "-p", "lanes=4", "-p", "chunk=6")
    assert code == 2 and "chunk=6" in err and err.count("\n") == 1


@pytest.mark.parametrize("fmt", FP8_FORMATS)
def test_rtl_mul_every_pair(fmt):
    res = verify(configure("fp8_mul", {"fmt": fmt}))
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 65_536


def test_rtl_mismatch_is_reported():
    inst = configure("fp8_mul", {"fmt": "e4m3"})
    a, b = all_pairs()
    exp = {"p": fp8_mul(a, b, "e4m3")}
    exp["p"][40_000] ^= 1
    res = simulate(inst, {"a": a, "b": b}, expected=exp)
    assert res.mismatches == 1 and res.first_mismatch["index"] == 40_000


@pytest.mark.parametrize("acc", ACC_FORMATS)
@pytest.mark.parametrize("fmt", FP8_FORMATS)
def test_rtl_mac_rne_exhaustive(fmt, acc):
    """All 65,536 pairs x 64 accumulator values (plus corners): RTL bit-exact against the
    golden model (in the testbench), and both against the oracles (RTL == golden, so the
    oracle check of the RTL outputs checks the golden model on all 4.2M vectors too)."""
    inst = configure("fp8_mac", {"fmt": fmt, "acc": acc})
    ex, corners = inst.exhaustive(), inst.corners()
    x = {k: np.concatenate([corners[k].astype(ex[k].dtype), ex[k]]) for k in ex}
    res = simulate(inst, x, keep_outputs=True)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 65_536 * 64
    check_mac_against_oracles(x, res.outputs["acc_out"], fmt, acc)


@pytest.mark.parametrize("params", [
    dict(fmt="e4m3", acc="fp16", rounding="stochastic", rbits=16),
    dict(fmt="e5m2", acc="e6m9", rounding="stochastic", rbits=8, pipeline=3, saturate=1),
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_rtl_mac_stochastic(params):
    """>= 1M vectors bit-exact: random ones, plus 40 fixed inexact sums x 20,000 random
    draws each, whose mean results must be unbiased."""
    inst = configure("fp8_mac", params)
    rng = np.random.default_rng(11)
    rand = inst.stimulus(300_000, rng)
    fixed, s = _near_vectors(params["fmt"], params["acc"], 40, seed=12)
    draws = 20_000
    rep = {k: np.repeat(v, draws) for k, v in fixed.items() if k != "rnd"}
    rep["rnd"] = rng.integers(0, 1 << params["rbits"], len(s) * draws, dtype=np.uint64)
    corners = inst.corners()
    x = {k: np.concatenate([corners[k], rand[k], rep[k]]) for k in rand}
    res = simulate(inst, x, keep_outputs=True)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 1_000_000
    out = res.outputs["acc_out"][-len(s) * draws:]
    _check_unbiased(s, draws, out, params["acc"], params["rbits"])


def test_rtl_mac_saturate_and_pipeline():
    """Saturation (e5m2 products overflow fp16 often) with two pipeline stages; the
    stochastic test above covers pipeline=3."""
    params = dict(fmt="e5m2", acc="fp16", saturate=1, pipeline=2)
    inst = configure("fp8_mac", params)
    assert inst.latency == params["pipeline"]
    x = {k: np.concatenate([inst.corners()[k], v])
         for k, v in inst.stimulus(500_000, np.random.default_rng(5)).items()}
    res = simulate(inst, x)
    assert res.mismatches == 0, res.first_mismatch


DOT_CASES = [
    dict(),
    dict(fmt="e5m2", acc="e6m9", chunk=32, outer="fp16", lanes=2),
    dict(fmt="e4m3", acc="fp16", chunk=8, outer="bf16", lanes=4, rounding="stochastic", rbits=12),
    dict(fmt="e5m2", acc="fp32", chunk=1, lanes=1),
]


@pytest.mark.parametrize("params", DOT_CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_rtl_dot(params):
    """Dot products of lengths 1..4096 (normal, biased and uniform-code data, idle cycles of
    junk in between), every output cycle bit-exact, the state carried across harness batches."""
    inst = configure("fp8_dot", params)
    x = inst.stimulus(80_000, np.random.default_rng(6))
    res = simulate(inst, x, keep_outputs=True)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors == 80_000
    assert res.outputs["result_valid"].sum() >= 40


# --- the accuracy experiment -------------------------------------------------------------------

def test_fp8_accuracy_table_and_claim():
    """Growing sums (N(1,1) data): plain fp16 accumulation drifts, chunking tracks fp32
    much better, fp32 is accurate to binary32 precision."""
    from qrtl.reports.fp8_accuracy import fp8_accuracy, pivot
    methods = ("fp16 chunk=1", "fp16 chunk=32", "fp32")
    df = fp8_accuracy((64, 1024), fmts=("e4m3",), data=("normal_mean1",), methods=methods, trials=8)
    assert list(df.columns) == ["fmt", "data", "method", "length", "trials", "rel_err_rms",
                                "rel_err_median", "nonfinite"]
    assert len(df) == 2 * len(methods) and df["nonfinite"].sum() == 0
    t = pivot(df)[1024]
    err = {m: t[("e4m3", "normal_mean1", m)] for m in methods}
    assert err["fp16 chunk=1"] > 2 * err["fp16 chunk=32"] > 0
    assert err["fp32"] < 1e-6


def test_fp8_accuracy_cli(cli, tmp_path):
    out = tmp_path / "acc.csv"
    code, stdout, err = cli("fp8-accuracy", "--lengths", "16,32", "--trials", "2", "--fmt", "e5m2",
                            "--data", "normal", "-o", str(out), "--no-progress")
    assert code == 0, err
    import pandas as pd
    df = pd.read_csv(out)
    assert set(df["length"]) == {16, 32} and set(df["fmt"]) == {"e5m2"}
    assert "fp16 chunk=32" in stdout and "wrote" in stdout
    for bad, word in ((["--fmt", "fp16"], "fmt='fp16'"), (["--lengths", "a,b"], "--lengths"),
                      (["--data", "cifar"], "cifar"), (["--trials", "0"], "trials=0")):
        code, _, err = cli("fp8-accuracy", "--lengths", "16", "-o", str(out), "--no-progress", *bad)
        assert code == 2 and word in err and err.count("\n") == 1, err
