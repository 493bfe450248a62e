"""bn_norm (Norm matters: L2 / L1 / L-inf normalization): the golden model against exact
rationals and against numpy's IEEE half arithmetic, its contracts (widths, sigma = 0, fp16
overflow), and the RTL against the golden model on Verilator."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from qrtl.golden.errors import QrtlError
from qrtl.golden.fp8 import decode, encode
from qrtl.golden.norm import (NORMS, bn_norm, elem_width, fp16_constants, fp_mul, fp_recip,
                              fp_scale, fp_sqrt, inv_constant, inv_frac_bits, inv_width,
                              linf_constant, norm_constant, y_frac_bits)
from qrtl.hw.bn_norm import BnNorm
from qrtl.hw.reg_norm import norm_corners, norm_stimulus, norm_values
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify

F16_MAX = Fraction(65504)


# --- exact references (plain Python) --------------------------------------------------------

def rne_int(q: Fraction) -> int:
    """Round half to even of a rational."""
    fl = math.floor(q)
    r = q - fl
    return fl + (1 if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2) else 0)


def fp16_value(code: int) -> Fraction | None:
    """Exact value of a finite fp16 code (None for Inf / NaN)."""
    e, man, s = (code >> 10) & 31, code & 1023, code >> 15
    if e == 31:
        return None
    v = Fraction(man, 1024) * Fraction(2) ** -14 if e == 0 else \
        Fraction(1024 + man, 1024) * Fraction(2) ** (e - 15)
    return -v if s else v


def round_fp16(v: Fraction, negative_zero: bool = False, saturate: bool = False) -> int:
    """fp16 code of the rational ``v`` rounded to nearest even (overflow: Inf or max)."""
    sign = 0x8000 if v < 0 or (v == 0 and negative_zero) else 0
    a = abs(v)
    if a == 0:
        return sign
    e = max(math.floor(math.log2(a)), -14)
    while Fraction(2) ** e > a:       # log2 of a rational may be off by one
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    e = max(e, -14)
    q = rne_int(a / Fraction(2) ** (e - 10))      # significand in units of the quantum
    val = q * Fraction(2) ** (e - 10)
    if val > F16_MAX:
        return sign | (0x7BFF if saturate else 0x7C00)
    return sign | int(encode(np.array([float(val)]), "fp16")[0])


# --- integer formats: the golden model against exact rationals ----------------------------

def _int_channels(m, fmt, n, seed):
    inst = configure("bn_norm", {"m": m, "fmt": fmt})
    x = norm_stimulus(inst.params, n, np.random.default_rng(seed))["x"]
    c = norm_corners(inst.params)["x"]
    return norm_values(inst.params, np.concatenate([c, x]))


@pytest.mark.parametrize("fmt", ["int8", "int16"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [2, 8, 64])
def test_int_golden_matches_exact_rationals(m, fmt, norm):
    """mu = RNE of the exact mean; inv_sigma = floor of the exact value (l2) or of K / stat
    with K the rounded constant (l1, linf), within one unit plus the constant's rounding of
    the exact 2^F / sigma; y = saturated RNE of the exact d * inv_sigma; sigma = 0 saturates."""
    x = _int_channels(m, fmt, 150, m)
    r = bn_norm(x, m, fmt, norm)
    w, F, FY = elem_width(fmt), inv_frac_bits(fmt), y_frac_bits(fmt)
    K = inv_constant(m, fmt, norm)
    iw = inv_width(m, fmt, norm)
    c = norm_constant(m, norm)
    for row, mu, inv, y in zip(x.tolist(), r.mu.tolist(), r.inv_sigma.tolist(), r.y.tolist()):
        assert mu == rne_int(Fraction(sum(row), m))
        d = [v - mu for v in row]
        stat = {"l2": sum(v * v for v in d), "l1": sum(abs(v) for v in d),
                "linf": max(abs(v) for v in d)}[norm]
        if stat == 0:
            assert inv == (1 << iw) - 1 and all(v == 0 for v in y)
            continue
        assert 0 <= inv < (1 << iw) - 1
        if norm == "l2":   # inv = floor(2^F sqrt(m / Q)): inv^2 Q <= m 2^2F < (inv+1)^2 Q
            assert inv * inv * stat <= m << (2 * F) < (inv + 1) ** 2 * stat
        else:
            assert inv == K // stat
            sigma = c * stat / (m if norm == "l1" else 1)
            assert abs(inv - 2 ** F / sigma) <= 1 + 2 ** F / sigma * 2 ** -40
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        for di, yi in zip(d, y):
            assert yi == min(max(rne_int(Fraction(di * inv, 1 << (F - FY))), lo), hi)


def test_int_widths_and_constants():
    assert linf_constant(8) == pytest.approx(0.5 * (1 + math.sqrt(math.pi * math.log(4)))
                                             / math.sqrt(2 * math.log(8)))
    # the largest inv_sigma (statistic 1) needs every bit of the port
    for m in (2, 8, 64):
        for fmt in ("int8", "int16"):
            F = inv_frac_bits(fmt)
            assert inv_width(m, "fp16", "l2") == 16
            assert inv_width(m, fmt, "l2") == math.isqrt(m << (2 * F)).bit_length()
            assert inv_width(m, fmt, "linf") == inv_constant(m, fmt, "linf").bit_length()
            assert inv_constant(m, fmt, "l1") == round(m * math.sqrt(2 / math.pi) * 2 ** F)
    u = configure("bn_norm", {"m": 4, "fmt": "int16", "norm": "l1"})
    assert {p.name: (p.width, p.signed) for p in u.ports} == {
        "x": (64, False), "mu": (16, True), "inv_sigma": (inv_width(4, "int16", "l1"), False),
        "y": (64, False)}
    assert configure("bn_norm", {"fmt": "fp16"}).port("inv_sigma").width == 16


def test_int_y_close_to_float_normalization():
    """y approximates (x - mu) / sigma of the exact statistics to the precision promised:
    half an output ulp plus the inv_sigma truncation times |d|."""
    rng = np.random.default_rng(4)
    x = np.clip(np.round(rng.normal(100, 900, (400, 16))), -32768, 32767).astype(np.int64)
    for norm in NORMS:
        r = bn_norm(x, 16, "int16", norm)
        d = x - r.mu[:, None]
        c = norm_constant(16, norm)
        stat = {"l2": np.sqrt((d * d).mean(1)), "l1": np.abs(d).mean(1),
                "linf": np.abs(d).max(1)}[norm] * c
        ref = d / stat[:, None]
        err = np.abs(r.y / 2.0 ** 12 - ref)
        assert err.max() <= 2.0 ** -13 + np.abs(d).max() * 2.0 ** -32 + 1e-12


# --- fp16 operations: exact rationals, every code ---------------------------------------------

ALL16 = np.arange(1 << 16, dtype=np.uint64)


def _canon(codes):
    """NaN codes mapped to one value, to compare with references that keep payloads."""
    c = np.asarray(codes, np.uint64)
    nan = ((c & np.uint64(0x7C00)) == np.uint64(0x7C00)) & ((c & np.uint64(0x3FF)) != 0)
    return np.where(nan, np.uint64(0x7E00), c)


def test_fp_sqrt_every_code_is_correctly_rounded():
    got = fp_sqrt(ALL16)
    for code in range(1 << 16):
        a = fp16_value(code)
        g = int(got[code])
        if a is None:
            want = 0x7C00 if code == 0x7C00 else 0x7E00
            assert g == want, hex(code)
            continue
        if a < 0:
            assert g == 0x7E00, hex(code)
            continue
        if a == 0:
            assert g == code
            continue
        # g is the nearest fp16 value to sqrt(a): the midpoints around it bracket sqrt(a)
        v = fp16_value(g)
        below = fp16_value(g - 1) if g > 0 else Fraction(0)
        above = fp16_value(g + 1)
        assert ((v + below) / 2) ** 2 < a < ((v + above) / 2) ** 2, hex(code)


def test_fp_recip_every_code_is_correctly_rounded_and_saturates():
    got = fp_recip(ALL16)
    for code in range(1 << 16):
        a = fp16_value(code)
        g = int(got[code])
        s = code & 0x8000
        if a is None:
            assert g == (s if (code & 0x3FF) == 0 else 0x7E00), hex(code)
        elif a == 0:
            assert g == s | 0x7BFF
        else:
            assert g == round_fp16(1 / a, saturate=True), hex(code)


def test_fp_mul_and_scale_against_rationals():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 1 << 16, 20000).astype(np.uint64)
    b = rng.integers(0, 1 << 16, 20000).astype(np.uint64)
    # products that land near the overflow and the subnormal range
    b[:5000] = (a[:5000] ^ np.uint64(0x7FFF)) & np.uint64(0x7FFF)
    got = fp_mul(a, b)
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist()):
        u, v = fp16_value(x), fp16_value(y)
        if u is None or v is None:
            continue
        assert g == round_fp16(u * v, negative_zero=(x ^ y) >> 15 == 1), (hex(x), hex(y))
    for k in (1, 3, 6):
        got = fp_scale(ALL16, k)
        for code in range(0, 1 << 16, 7):
            a = fp16_value(code)
            if a is not None:
                assert int(got[code]) == round_fp16(a / 2 ** k, negative_zero=code >> 15 == 1)


def _numpy_half(x: np.ndarray, m: int, norm: str) -> dict:
    """The fp16 datapath in numpy's IEEE half arithmetic (each operation computed in float32
    and rounded once to half: correctly rounded, since 24 >= 2*11 + 2)."""
    h = np.float16
    v = x.view(np.float16) if x.dtype == np.uint16 else x.astype(np.uint16).view(np.float16)
    with np.errstate(all="ignore"):
        def tree(a):
            while a.shape[1] > 1:
                a = (a[:, 0::2] + a[:, 1::2]).astype(h)
            return a[:, 0]
        mu = (tree(v) / h(m)).astype(h)
        d = (v - mu[:, None]).astype(h)
        if norm == "l2":
            sigma = np.sqrt((tree((d * d).astype(h)) / h(m)).astype(h)).astype(h)
        else:
            c = np.uint16(fp16_constants(m)[norm]).view(np.float16)
            stat = (tree(np.abs(d)) / h(m)).astype(h) if norm == "l1" else np.abs(d).max(axis=1)
            if norm == "linf":  # numpy's max of half ignores no NaN; keep it explicit
                stat = np.where(np.isnan(d).any(axis=1), h(np.nan), stat)
            sigma = (c * stat).astype(h)
        inv = (h(1) / sigma).astype(h)
        inv = np.where(np.isinf(inv) & np.isfinite(sigma), h(65504) * np.sign(inv), inv).astype(h)
        y = (d * inv[:, None]).astype(h)
    code = lambda a: _canon(np.asarray(a, np.float16).view(np.uint16).astype(np.uint64))
    return {"mu": code(mu), "inv_sigma": code(inv), "y": code(y)}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("m", [2, 8, 32])
def test_fp16_golden_matches_numpy_half(m, norm):
    inst = configure("bn_norm", {"m": m, "fmt": "fp16", "norm": norm})
    x = norm_values(inst.params, np.concatenate([norm_corners(inst.params)["x"],
                                             norm_stimulus(inst.params, 3000, np.random.default_rng(m))["x"]]))
    r = bn_norm(x, m, "fp16", norm)
    ref = _numpy_half(x, m, norm)
    assert np.array_equal(_canon(r.mu), ref["mu"])
    assert np.array_equal(_canon(r.inv_sigma), ref["inv_sigma"])
    assert np.array_equal(_canon(r.y), ref["y"])


def test_fp16_l2_overflows_where_l1_and_linf_do_not():
    """+-300 alternating: d^2 = 90000 > 65504, so the L2 sum of squares is Inf, 1/sigma = 0
    and every y collapses to 0; L1 and L-inf give y = +-1/C and report no overflow."""
    m = 8
    x = encode(np.where(np.arange(m) % 2 == 0, 300.0, -300.0)[None, :], "fp16")
    r2 = bn_norm(x, m, "fp16", "l2")
    assert r2.overflow[0] and decode(r2.inv_sigma, "fp16")[0] == 0
    assert np.all(decode(r2.y, "fp16") == 0)
    for norm in ("l1", "linf"):
        r = bn_norm(x, m, "fp16", norm)
        assert not r.overflow[0]
        y = decode(r.y, "fp16")[0]
        c = norm_constant(m, norm)
        assert np.allclose(np.abs(y), 1 / c, rtol=2e-3)
    # tiny values: the squares underflow to zero, so L2 saturates 1/sigma; L1 is exact-ish
    x = encode(np.where(np.arange(m) % 2 == 0, 2.0 ** -13, -2.0 ** -13)[None, :], "fp16")
    r2 = bn_norm(x, m, "fp16", "l2")
    assert r2.underflow[0] and r2.inv_sigma[0] == 0x7BFF
    r1 = bn_norm(x, m, "fp16", "l1")
    assert not r1.underflow[0]
    assert np.allclose(np.abs(decode(r1.y, "fp16")[0]), math.sqrt(2 / math.pi), rtol=2e-3)


def test_all_equal_inputs_saturate_inv_sigma_and_give_zero():
    for fmt in ("int8", "int16", "fp16"):
        for norm in NORMS:
            x = np.full((1, 4), 0x3E00 if fmt == "fp16" else -7, np.int64)
            r = bn_norm(x, 4, fmt, norm)
            if fmt == "fp16":
                assert r.inv_sigma[0] == 0x7BFF and not r.overflow[0] and not r.underflow[0]
                assert np.all(r.y == 0) and r.mu[0] == 0x3E00
            else:
                assert r.inv_sigma[0] == (1 << inv_width(4, fmt, norm)) - 1
                assert np.all(r.y == 0) and r.mu[0] == -7


def test_bad_parameters_are_one_line_errors(cli):
    for given, word in (({"m": 3}, "m=3"), ({"m": 128}, "m=128"), ({"fmt": "int4"}, "fmt='int4'"),
                        ({"norm": "l3"}, "norm='l3'")):
        with pytest.raises(QrtlError, match=word):
            configure("bn_norm", given)
    with pytest.raises(ValueError, match="m=6"):
        BnNorm(6)
    with pytest.raises(ValueError, match="norm='top'"):
        BnNorm(8, "int8", "top")
    with pytest.raises(QrtlError, match="int8 codes"):
        bn_norm(np.array([[200, 0]]), 2, "int8", "l2")
    code, _, err = cli("describe", "bn_norm", "-p", "m=12")
    assert code == 2 and "m=12" in err and len(err.strip().splitlines()) == 1


# --- RTL on Verilator -----------------------------------------------------------------------

RTL = (
    [dict(m=2, fmt="int8", norm=n) for n in NORMS]            # exhaustive: every 16-bit input
    + [dict(fmt=f, norm=n) for f in ("int8", "int16", "fp16") for n in NORMS]   # default m
    + [dict(m=64, fmt="int8", norm="l1"), dict(m=8, fmt="int16", norm="l2", pipeline=2),
       dict(m=2, fmt="fp16", norm="l2"), dict(m=4, fmt="fp16", norm="linf", pipeline=1)]
)


@pytest.mark.parametrize("params", RTL, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_rtl_matches_golden(params):
    inst = configure("bn_norm", params)
    res = verify(inst, vectors=20_000, seed=5)
    assert res.mismatches == 0, res.first_mismatch
    corners = len(inst.corners()["x"])
    ex = inst.exhaustive()
    assert res.vectors == corners + (len(ex["x"]) if ex is not None else 20_000)
    assert inst.latency == inst.params["pipeline"]


def test_wrong_models_are_caught_by_the_corners():
    """Plausible wrong models disagree with the RTL on the corners alone: the mean rounded
    down instead of to nearest even (int8), 1/0 as +Inf instead of saturating (fp16)."""
    inst = configure("bn_norm", {"m": 8, "fmt": "int8", "norm": "l1"})
    x = inst.corners()
    good = inst.golden(x)
    wrong = dict(good)
    v = norm_values(inst.params, x["x"])
    wrong["mu"] = v.sum(axis=1) >> 3
    assert simulate(inst, x, expected=wrong).mismatches > 0
    assert simulate(inst, x).mismatches == 0
    inst = configure("bn_norm", {"m": 8, "fmt": "fp16", "norm": "linf"})
    x = inst.corners()
    wrong = dict(inst.golden(x))
    wrong["inv_sigma"] = np.where(wrong["inv_sigma"] == 0x7BFF, np.uint64(0x7C00),
                                  wrong["inv_sigma"])
    assert simulate(inst, x, expected=wrong).mismatches > 0


# --- the study ------------------------------------------------------------------------------

def test_norm_accuracy_shows_the_fp16_l2_overflow(cli, tmp_path):
    """At std 2^8 (m = 64) the fp16 sum of squares overflows in every channel, so L2's y is
    wrong (relative error 1: y = 0), while L1 and L-inf stay accurate; at std 1 all three are
    within a few fp16 ulps. int16 inputs with 8 fraction bits saturate at std 2^8."""
    from qrtl.reports.norm_accuracy import COLUMNS, norm_accuracy, summary
    df = norm_accuracy([0, 8], channels=64, seed=3).set_index(["fmt", "norm", "log2_std"])
    assert set(COLUMNS) <= set(df.columns)
    assert df.loc[("fp16", "l2", 8), "overflow"] == 1.0
    assert df.loc[("fp16", "l2", 8), "y_rel_rms"] == pytest.approx(1.0)
    for norm in ("l1", "linf"):
        assert df.loc[("fp16", norm, 8), "overflow"] == 0.0
        assert df.loc[("fp16", norm, 8), "y_rel_rms"] < 2e-3
    for norm in NORMS:
        assert df.loc[("fp16", norm, 0), "y_rel_rms"] < 2e-3
        assert df.loc[("int16", norm, 8), "overflow"] == 1.0
    lines = summary(norm_accuracy([0, 4, 8], channels=32))
    assert any(line.startswith("fp16 l2:") and "overflow from std 2^8" in line for line in lines)
    out = tmp_path / "na.csv"
    code, text, err = cli("norm-accuracy", "--scales", "0,8", "--channels", "16", "--m", "8",
                          "--no-progress", "-o", str(out))
    assert code == 0, err
    assert "fp16 l2" in text and out.read_text().startswith("fmt,norm,log2_std")
    code, _, err = cli("norm-accuracy", "--m", "12")
    assert code == 2 and "m=12" in err and len(err.strip().splitlines()) == 1


def test_gaussian_stream_is_the_same_values_in_every_format():
    """The stream the normalization table is costed on: int16 codes (8 fraction bits) and
    fp16 codes of the same real values, the same for every norm."""
    from qrtl.hw.registry import STREAMS
    fn = STREAMS["bn_norm"]["gaussian"][0]
    p16 = {"m": 8, "fmt": "int16", "norm": "l2"}
    ph = {"m": 8, "fmt": "fp16", "norm": "l2"}
    xi = norm_values(p16, fn(p16, 500)["x"]) / 256.0
    xh = decode(norm_values(ph, fn(ph, 500)["x"]), "fp16")
    assert xi.shape == xh.shape == (500, 8)
    assert np.max(np.abs(xi - xh)) <= 2.0 ** -9 + 2.0 ** -8   # each within half an LSB
    assert 0.5 < np.std(xi - xi.mean(axis=1, keepdims=True)) < 1.5
    for norm in ("l1", "linf"):
        assert (fn({**p16, "norm": norm}, 500)["x"] == fn(p16, 500)["x"]).all()


def test_norm_claim_rule():
    """The verdict follows the stated rule: cheaper in area and energy per element in every
    format (part 1), and a strictly wider working range in fp16 (part 2)."""
    import pandas as pd

    from qrtl.reports.claims import norm_claim
    costs = [{"fmt": f, "norm": n, "m": 8, "area_um2": a, "pj_per_element": e}
             for f in ("int16", "fp16") for n, a, e in (("l2", 100, 10), ("l1", 80, 9), ("linf", 70, 8))]
    acc = pd.DataFrame([{"fmt": "fp16", "norm": n, "log2_std": s, "m": 64,
                         "y_rel_rms_e2e": 1e-3 if s <= top else 1.0,
                         "overflow": 0.0 if s <= top else 1.0}
                        for n, top in (("l2", 4), ("l1", 8), ("linf", 8)) for s in range(0, 10, 2)])
    r = norm_claim(costs, acc)
    assert r["verdict"] == "holds"
    assert "int16: l1 0.80x the area and 0.90x the energy per element of l2" in r["measured"]
    assert "l2 std 2^0..2^4" in r["measured"] and "l2 std 2^6" in r["measured"]
    costs[1]["area_um2"] = 120                                      # int16 l1 larger than l2
    assert norm_claim(costs, acc)["verdict"] == "partly"
    same = acc.assign(y_rel_rms_e2e=1e-3, overflow=0.0)            # every norm works everywhere
    assert norm_claim(costs, same)["verdict"] == "does not hold"
