"""Lean baselines (issue 19): narrow multipliers of quant_fixedpoint (m0_width) and narrow
scale formats of quant_float (scale_fmt). Golden models against independent references
(the gemmlowp/TFLite C transcription, exact rationals, ml_dtypes), the default
configurations unchanged, and the lean table on a few images and vectors."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden import quant as gq
from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import get_format
from qrtl.hw.units import configure
from qrtl.reports import lean

from .test_quant import c_mbqm

I32 = st.integers(gq.INT32_MIN, gq.INT32_MAX)


# --- quant_fixedpoint m0_width -----------------------------------------------------------

def _frac_round_away(x: Fraction) -> int:
    """Nearest integer, ties away from zero, exactly."""
    a = abs(x)
    n = int(a) + (1 if a - int(a) >= Fraction(1, 2) else 0)
    return n if x >= 0 else -n


@settings(max_examples=400, deadline=None)
@given(I32, st.integers(-31, 31), st.integers(16, 32))
def test_reduce_multiplier_is_nearest(m0, shift, w):
    """The reduced multiplier is the original rounded to w bits (ties away from zero), with
    a carry into 2**(w-1) renormalised exactly (or saturated at shift 31)."""
    r, s = gq.reduce_multiplier(np.array([m0]), np.array([shift]), w)
    r, s = int(r[0]), int(s[0])
    assert -(1 << (w - 1)) <= r < (1 << (w - 1))
    want = _frac_round_away(Fraction(m0, 1 << (32 - w)))
    if want == 1 << (w - 1):
        if shift < 31:
            assert (r, s) == (1 << (w - 2), shift + 1)
        else:
            assert (r, s) == ((1 << (w - 1)) - 1, shift)
    else:
        assert (r, s) == (want, shift)


def test_reduce_multiplier_edges():
    m0 = np.array([1202590843, (1 << 31) - 1, (1 << 31) - (1 << 15), (1 << 31) - (1 << 15) - 1,
                   gq.INT32_MIN, -(1 << 30) - (1 << 15), 1 << 15, 3 << 15])
    r, s = gq.reduce_multiplier(m0, np.array([-4, 3, 30, 0, 0, 0, 0, 0]), 16)
    # 1202590843 / 2**16 = 18350.1; 2**31 - 1 -> carry -> 2**14 at shift + 1; the exact tie
    # 2**31 - 2**15 also carries; just below it does not; -2**31 -> -2**15; ties away from 0
    assert r.tolist() == [18350, 1 << 14, 1 << 14, 32767, -(1 << 15), -(1 << 14) - 1, 1, 2]
    assert s.tolist() == [-4, 4, 31, 0, 0, 0, 0, 0]
    r, s = gq.reduce_multiplier(np.array([(1 << 31) - 1]), np.array([31]), 20)
    assert (int(r[0]), int(s[0])) == ((1 << 19) - 1, 31)   # no exponent left: saturates
    m = np.arange(-1000, 1000) * 2_000_003
    assert np.array_equal(gq.reduce_multiplier(m, m % 7, 32)[0], m)


@settings(max_examples=400, deadline=None)
@given(I32, st.integers(16, 31), st.integers(-32, 31), st.integers(-256, 255),
       st.sampled_from(gq.VARIANTS), st.data())
def test_narrow_fixedpoint_matches_tflite_source(x, w, s, zp, variant, data):
    """A w-bit multiplier is TFLite's MultiplyByQuantizedMultiplier (the C code transcribed
    in test_quant) with m0 = m0r * 2**(32 - w)."""
    m = data.draw(st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1))
    ref = min(max(zp + c_mbqm(x, m << (32 - w), s, variant), -128), 127)
    got = gq.quant_fixedpoint(np.array([x]), np.array([m]), np.array([s]), np.array([zp]),
                              variant=variant, m0_width=w)
    assert got[0] == ref


def test_m0_width_32_is_the_exact_unit():
    """m0_width=32 is today's unit: same Verilog, ports and golden outputs."""
    for extra in ({}, {"variant": "single", "out_width": 4}):
        a = configure("quant_fixedpoint", extra)
        b = configure("quant_fixedpoint", {**extra, "m0_width": 32})
        assert a.verilog() == b.verilog()
        x = a.stimulus(20_000, np.random.default_rng(3))
        assert np.array_equal(a.golden(x)["q"], gq.quant_fixedpoint(
            x["acc"], x["m0"], x["shift"], x["zp"], out_width=a.params["out_width"],
            variant=a.params["variant"]))
    n = configure("quant_fixedpoint", {"m0_width": 16})
    assert n.port("m0").width == 16 and n.verilog() != a.verilog()


def test_narrow_multiplier_changes_some_outputs():
    """The reduction is not a no-op: on realistic scales a 16-bit m0 changes a few outputs."""
    rng = np.random.default_rng(5)
    scales = np.exp2(rng.uniform(-14, -4, 20_000))
    qm = np.array([gq.quantize_multiplier(s) for s in scales])
    acc = (rng.uniform(-130, 130, len(scales)) / scales).astype(np.int64)  # outputs in range
    r, s = gq.reduce_multiplier(qm[:, 0], qm[:, 1], 16)
    exact = gq.quant_fixedpoint(acc, qm[:, 0], qm[:, 1], 0)
    narrow = gq.quant_fixedpoint(acc, r, s, 0, m0_width=16)
    assert 0 < np.count_nonzero(exact != narrow) < 0.01 * len(acc)
    assert np.all(np.abs(exact - narrow) <= 1)


# --- quant_float scale_fmt ---------------------------------------------------------------

ML = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16}


def _exact_round(v: Fraction, fmt) -> float:
    """``v`` rounded to ``fmt`` (RNE, overflow to Inf), exactly, as a float."""
    f = get_format(fmt)
    if v == 0:
        return 0.0
    sign, a = (-1 if v < 0 else 1), abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q = Fraction(2) ** (max(e, f.emin) - f.mbits)           # quantum
    k = a / q
    n = int(k)
    rem = k - n
    n += 1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2) else 0
    r = n * q
    return sign * (float("inf") if r > f.max_value else float(r))


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_fp_from_int_exact(fmt):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, 3000),
                        rng.integers(-70000, 70000, 3000), [65504, 65519, 65520, -65520, 0,
                                                           gq.INT32_MIN, gq.INT32_MAX, 257, 259]])
    got = gq.fp_from_int(x, fmt).astype(np.uint16).view(ML[fmt]).astype(np.float64)
    ref = np.array([_exact_round(Fraction(int(v)), fmt) for v in x])
    assert np.array_equal(got, ref)


def _fmt_bits(rng, n, fmt):
    """Random codes of fmt: uniform patterns, plus scales 2**-20..2**2 (realistic)."""
    b = rng.integers(0, 1 << 16, n)
    real = np.exp2(rng.uniform(-20, 2, n)).astype(ML[fmt]).view(np.uint16).astype(np.int64)
    return np.where(rng.random(n) < 0.5, b, real)


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_quant_float_narrow_matches_ml_dtypes(fmt):
    """rint(F(F(acc) * scale)) + zp with F = RNE to fmt: the product of two fmt values is
    exact in float32, so ml_dtypes' float32 -> fmt cast rounds it once, like the hardware;
    F(acc) is checked against exact rationals above. NaN -> 0, Inf saturates."""
    rng = np.random.default_rng(2)
    n = 200_000
    acc = np.where(rng.random(n) < 0.3, rng.integers(gq.INT32_MIN, gq.INT32_MAX + 1, n),
                   rng.integers(-(1 << 17), 1 << 17, n) >> rng.integers(0, 17, n))
    scale = _fmt_bits(rng, n, fmt)
    zp = rng.integers(-256, 256, n)
    got = gq.quant_float(acc, scale, zp, scale_fmt=fmt)
    fa = gq.fp_from_int(acc, fmt).astype(np.uint16).view(ML[fmt]).astype(np.float32)
    fs = scale.astype(np.uint16).view(ML[fmt]).astype(np.float32)
    with np.errstate(all="ignore"):
        p = (fa * fs).astype(ML[fmt]).astype(np.float64)
        r = np.rint(p)
    r = np.where(np.isnan(r), 0.0, np.clip(r, gq.INT32_MIN, gq.INT32_MAX))
    ref = np.clip(r.astype(np.int64) + zp, -128, 127)
    assert np.array_equal(got, ref)
    inside = (got > -128) & (got < 127)
    assert inside.mean() > 0.1                               # not all saturated
    # the narrow format matters: the same scale in binary32 gives other outputs somewhere
    assert np.count_nonzero(got != gq.quant_float(acc, _to_f32(scale, fmt), zp)) > 0


def _to_f32(bits, fmt):
    return bits.astype(np.uint16).view(ML[fmt]).astype(np.float32).view(np.uint32).astype(np.int64)


def test_scale_to_format_is_rne():
    rng = np.random.default_rng(4)
    f32 = np.concatenate([rng.integers(0, 1 << 32, 100_000), [0x7F800000, 0x7FC00000, 0x477FF000,
                                                              0x477FEFFF, 0x33000000, 0x33000001]])
    v = f32.astype(np.uint32).view(np.float32)
    for fmt in ("fp16", "bf16"):
        got = gq.scale_to_format(f32, fmt).astype(np.uint16)
        with np.errstate(all="ignore"):
            ref = v.astype(ML[fmt]).view(np.uint16)
        nan = np.isnan(v)
        assert np.array_equal(got[~nan], ref[~nan])
        assert np.all(got[nan] == get_format(fmt).nan_code)


def test_fp16_loses_by_range():
    """fp16's largest finite value is 65504: a larger accumulator is Inf and saturates,
    whatever the (finite, non-zero) scale."""
    s = int(gq.scale_to_format(int(np.float32(2 ** -10).view(np.uint32)), "fp16"))
    acc = np.array([65504, 65519, 65520, 100_000, -100_000])
    assert gq.quant_float(acc, s, 0, scale_fmt="fp16").tolist() == [64, 64, 127, 127, -128]
    assert gq.quant_float(acc, int(np.float32(2 ** -10).view(np.uint32)), 0).tolist() == \
        [64, 64, 64, 98, -98]


def test_scale_fmt_fp32_is_the_exact_unit():
    a, b = configure("quant_float"), configure("quant_float", {"scale_fmt": "fp32"})
    assert a.verilog() == b.verilog()
    assert configure("quant_float", {"scale_fmt": "bf16"}).port("scale").width == 16


# --- the lean table ------------------------------------------------------------------------

def test_mismatch_and_accuracy_on_the_network():
    """Exact configurations match themselves; the narrow ones differ on a few outputs of
    the network's real accumulators; fp16 differs most (accumulators beyond its range)."""
    k = 30
    per = lean._requant_per_image("quant_fixedpoint")
    assert lean.mismatch("quant_fixedpoint", {"m0_width": 32}, k) == (0, per * k)
    assert lean.mismatch("quant_float", {"scale_fmt": "fp32"}, k) == (0, per * k)
    bad16, total = lean.mismatch("quant_float", {"scale_fmt": "fp16"}, k)
    assert bad16 > 0.01 * total
    assert lean.mismatch("quant_fixedpoint", {"m0_width": 16}, k)[0] < bad16
    exact = lean.lean_accuracy("quant_fixedpoint", {}, k)
    from qrtl.golden.nets import run
    assert exact == run("int8", {"scheme": "fixedpoint"}, k)["accuracy"]
    assert lean.lean_accuracy("quant_float", {"scale_fmt": "fp32"}, k) == \
        run("int8", {"scheme": "float"}, k)["accuracy"]


@pytest.mark.xdist_group("report")
def test_compare_lean_rows():
    """Two configurations on 20 images and 256 vectors: every column present, ratios are
    the quotient of the areas/energies, the exact family member is the reference."""
    rows = lean.compare_lean(jobs=1, vectors=256, images=20, progress=False,
                             configs=["quant_float scale_fmt=fp32", "quant_float scale_fmt=bf16"])
    assert [r["config"] for r in rows] == ["quant_float scale_fmt=fp32",
                                           "quant_float scale_fmt=bf16", "quant_shift runtime"]
    full, narrow, shift = rows
    assert full["mismatch_pct"] == 0 and full["lossless"]
    assert narrow["params"]["scale_fmt"] == "bf16"
    assert narrow["area_um2"] < full["area_um2"]          # an 8x8-bit significand product
    assert full["area_x_shift"] == pytest.approx(full["area_um2"] / shift["area_um2"], rel=1e-3)
    assert narrow["energy_x_shift"] == pytest.approx(
        narrow["energy_pj_per_op"] / shift["energy_pj_per_op"], rel=1e-3)
    best = lean.leanest_lossless(rows)
    assert best is not None and best["lossless"]
    assert best["area_um2"] == min(r["area_um2"] for r in rows if r["lossless"])
    with pytest.raises(QrtlError, match="unknown lean configuration"):
        lean.compare_lean(configs=["quant_fixedpoint m0_width=17"], progress=False)
