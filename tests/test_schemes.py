"""Number formats with their scaling (MX, NVFP4, per-tensor FP / INT): conversion against
``ml_dtypes`` and the OCP MX algorithm, dot products against exact rationals, the
``normal`` streams through the RTL, the accuracy study and the FP-vs-INT claim rule."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import get_format
from qrtl.golden.mx import element_emax, mx_dequantize, mx_quantize
from qrtl.golden.schemes import SCHEMES, dot, quantize

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2,
      "e3m2": ml_dtypes.float6_e3m2fn, "e2m3": ml_dtypes.float6_e2m3fn,
      "e2m1": ml_dtypes.float4_e2m1fn}


def _reference_mx(v: np.ndarray, fmt: str, k: int) -> np.ndarray:
    """OCP MX v1.0 section 6.3 written out block by block with math and ml_dtypes."""
    out = np.empty_like(v)
    f = get_format(fmt)
    for r in range(v.shape[0]):
        for j in range(0, v.shape[1], k):
            blk = v[r, j:j + k]
            amax = float(np.abs(blk).max())
            x = -127 if amax == 0 else min(127, max(-127, math.floor(math.log2(amax)) - element_emax(fmt)))
            p = blk / 2.0 ** x
            if fmt == "mxint8":
                q = np.clip(np.rint(p * 64), -128, 127) / 64
            else:
                top = float(f.max_value)
                q = np.clip(p, -top, top).astype(ML[fmt]).astype(np.float64)
            out[r, j:j + k] = q * 2.0 ** x
    return out


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "mxint8"])
def test_mx_quantize_is_the_spec_conversion(fmt):
    rng = np.random.default_rng(1)
    v = rng.normal(0, 1, (64, 64)) * np.exp2(rng.integers(-20, 20, (64, 1)))
    v[3] = 0.0                                     # an all-zero block pair
    v[5, :32] = 2.0 ** -140                        # below E8M0's range: the smallest scale
    codes, scales = mx_quantize(v, fmt)
    assert scales.shape == (64, 2) and codes.shape == v.shape
    got = mx_dequantize(codes, scales, fmt)
    np.testing.assert_array_equal(got, _reference_mx(v, fmt, 32))
    assert element_emax(fmt) == {"e4m3": 8, "e5m2": 15, "e3m2": 4, "e2m3": 2, "e2m1": 2,
                                 "mxint8": 0}[fmt]


def test_nvfp4_scale_is_e4m3_of_block_max_over_six():
    rng = np.random.default_rng(2)
    v = rng.normal(0, 1, (32, 64))
    q = quantize(v, "NVFP4")
    blocks = (v / q.scale).reshape(32, 4, 16)
    want = (np.abs(blocks).max(axis=2) / 6).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    from qrtl.golden.fp8 import decode
    np.testing.assert_array_equal(decode(q.scales, "e4m3"), want)
    # every block's largest element is within one E2M1 step of 6 * scale
    assert np.abs(q.values).max() <= 6 * want.max() * q.scale * (1 + 1e-12)
    assert q.scale == float(np.float32(np.abs(v).max() / (6 * 448)))


def test_bad_input_is_one_line():
    with pytest.raises(QrtlError, match="multiple of k=32"):
        mx_quantize(np.zeros((2, 40)), "e4m3")
    with pytest.raises(QrtlError, match="finite"):
        mx_quantize(np.full((1, 32), np.inf), "e4m3")


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_dot_against_exact_rationals(scheme):
    """The unit's result is the exact dot product of the quantized operands up to the
    roundings the unit makes (FP32 per block / per MAC, the two scale multiplies)."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (16, 128)), rng.standard_t(3, (16, 128))
    qa, qb = quantize(a, scheme), quantize(b, scheme)
    r, ovf = dot(qa, qb, scheme)
    assert not ovf.any()
    s = SCHEMES[scheme]
    steps = {"mx": 128 // 32, "nvfp4": 128 // 16, "tensor_fp": 128, "tensor_int": 0}[s.kind] + 2
    for i in range(16):
        terms = [Fraction(float(x)) * Fraction(float(y)) for x, y in zip(qa.values[i], qb.values[i])]
        exact = sum(terms)
        bound = sum(abs(t) for t in terms) * Fraction(steps, 1 << 24) * Fraction(11, 10)
        assert abs(Fraction(float(r[i])) - exact) <= bound, (scheme, i)
        if s.kind == "tensor_int":  # exact integer sum, then two binary32 multiplies
            total = int(np.sum(qa.codes[i] * qb.codes[i]))
            assert r[i] == float(np.float32(float(np.float32(total * qa.scale)) * qb.scale))


def test_int_accumulator_overflow_is_flagged():
    b = np.ones((2, 4096))
    b[1, ::2] = -1                                   # alternating: partial sums stay small
    q = quantize(np.ones((2, 4096)), "INT4")         # codes 7: products +-49, 16-bit acc
    _, ovf = dot(q, quantize(b, "INT4"), "INT4")
    assert ovf.tolist() == [True, False]


def test_accuracy_study_orders_the_formats():
    from qrtl.reports.mx_accuracy import mlp_accuracy, mx_accuracy
    df = mx_accuracy(length=256, trials=64, images=10).set_index(["data", "scheme"])
    err = df["dot_rel_err_rms"]
    n = err.loc["normal"]
    assert n["MXINT8"] < n["MXFP8 E4M3"] < n["MXFP8 E5M2"] < n["MXFP4 E2M1"]
    assert n["INT8"] < n["FP8 E4M3"] and n["MXFP6 E2M3"] < n["MXFP6 E3M2"]
    t = err.loc["student_t"]
    # heavy tails: one scale per tensor wastes INT4's range, a scale per block does not
    assert t["INT4"] > 3 * t["MXFP4 E2M1"] and t["INT8"] > 2 * t["MXINT8"]
    assert (df["nonfinite"] == 0).all() and (df["overflow"] == 0).all()
    assert df.loc[("normal", "MXFP8 E4M3"), "bits_per_element"] == 8.25
    mlp = mlp_accuracy(["MXFP8 E4M3", "INT4"], images=100).set_index("scheme")["accuracy_pct"]
    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.mlp import float_forward
    split = load_split()
    ref = 100 * np.mean(np.argmax(float_forward(split.x_test[:100]), 1) == split.y_test[:100])
    assert mlp["float32"] == ref and abs(mlp["MXFP8 E4M3"] - ref) <= 2


def test_fp_int_claim_rule():
    from qrtl.reports.claims import fp_int_claim
    rows = [{"format": "INT8", "pj_per_mac": 1.0, "area_um2_per_mac": 100.0, "clock_ns": 10.0},
            {"format": "FP8 E4M3", "pj_per_mac": 2.0, "area_um2_per_mac": 180.0},
            {"format": "FP8 E5M2", "pj_per_mac": 1.2, "area_um2_per_mac": 150.0}]
    c = fp_int_claim(rows)
    assert c["verdict"] == "partly" and "2.00x the energy" in c["measured"]
    assert fp_int_claim(rows[:2])["verdict"] == "holds"
    rows[1]["pj_per_mac"] = 3.0
    assert fp_int_claim(rows[:2])["verdict"] == "does not hold"
    assert fp_int_claim(rows[:1])["verdict"] == "not measured"


@pytest.mark.parametrize("unit,params", [
    ("mx_dot", {"fmt_a": "e2m1", "k": 16, "scale": "e4m3"}),
    ("fp8_mac", {"fmt": "e2m1", "acc": "fp32"}),
    ("int_mac", {"a_width": 4, "b_width": 4, "acc_width": 16}),
])
def test_normal_stream_on_the_rtl(unit, params):
    """The energy measurement's operands are legal inputs the RTL agrees on."""
    from qrtl.hw.registry import STREAMS
    from qrtl.hw.units import configure
    from qrtl.sim.runner import simulate
    inst = configure(unit, params)
    x = STREAMS[unit]["normal"][0](inst.params, 3000)
    r = simulate(inst, x)
    assert r.vectors == 3000 and r.mismatches == 0, r.first_mismatch


def test_cli_mx_accuracy(cli, tmp_path):
    out = tmp_path / "mx.csv"
    code, stdout, err = cli("mx-accuracy", "--schemes", "MXFP4 E2M1,INT4", "--data", "normal",
                            "--length", "64", "--trials", "8", "--no-progress", "-o", str(out))
    assert code == 0, err
    assert "MXFP4 E2M1" in stdout and out.is_file() and (tmp_path / "mx_mlp.csv").is_file()
    code, _, err = cli("mx-accuracy", "--schemes", "FP9", "--no-progress", "-o", "-")
    assert code == 2 and err.count("\n") == 1 and "FP9" in err
