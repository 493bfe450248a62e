"""MX family: the OCP MX formats (FP4/FP6 elements, E8M0 scale, INT8 element), the minifloat
element units (``fp8_mul``/``fp8_mac`` over E2M1..E5M2) and ``mx_dot``.

Oracles: ``ml_dtypes`` (float4_e2m1fn, float6_e2m3fn, float6_e3m2fn, float8_e8m0fnu) where its
casts follow the same rules as ours, exact :class:`fractions.Fraction` arithmetic elsewhere
(``ref_round`` and friends from :mod:`tests.test_fp8`). Where ml_dtypes differs, the test
names the inputs and checks that the difference is the documented one.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import ACC_FORMATS, ELEMENT_FORMATS, FORMATS, get_format
from qrtl.golden.fp8 import decode, encode, fp8_mac, fp8_mul
from qrtl.hw.reg_fp8 import all_pairs
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify

from .test_fp8 import check_mac_against_oracles, ref_mac

ML = {"e2m1": ml_dtypes.float4_e2m1fn, "e2m3": ml_dtypes.float6_e2m3fn,
      "e3m2": ml_dtypes.float6_e3m2fn, "e4m3": ml_dtypes.float8_e4m3fn,
      "e5m2": ml_dtypes.float8_e5m2, "e8m0": ml_dtypes.float8_e8m0fnu}
NEW = ("e2m1", "e2m3", "e3m2")


@pytest.fixture(autouse=True)
def _float_oracles_quiet():
    with np.errstate(invalid="ignore", over="ignore"):
        yield


def _ml_codes(values, name):
    """ml_dtypes's codes for float32 ``values`` (its narrow types live in one byte)."""
    return np.asarray(values, np.float32).astype(ML[name]).view(np.uint8).astype(np.uint64)


# --- formats ---------------------------------------------------------------------------------

def test_mx_format_facts():
    """The numbers of OCP MX v1.0 section 5 (and gfloat's spot checks of the spec tables)."""
    facts = {n: (FORMATS[n].width, float(FORMATS[n].max_value)) for n in NEW + ("e8m0", "mxint8")}
    assert facts == {"e2m1": (4, 6.0), "e2m3": (6, 7.5), "e3m2": (6, 28.0),
                     "e8m0": (8, 2.0 ** 127), "mxint8": (8, 1 + 63 / 64)}
    assert [float(FORMATS[n].min_subnormal) for n in NEW] == [0.5, 0.125, 0.0625]
    assert all(not FORMATS[n].has_inf and not FORMATS[n].has_nan for n in NEW)
    assert decode(np.array([0, 0x7F, 0xFE, 0xFF]), "e8m0")[:3].tolist() == [2.0 ** -127, 1.0, 2.0 ** 127]
    assert np.isnan(decode(np.array([0xFF]), "e8m0")[0])
    assert decode(np.array([0x00, 0x01, 0x7F, 0x80, 0xFF]), "mxint8").tolist() == \
        [0.0, 2.0 ** -6, 1 + 63 / 64, -2.0, -(2.0 ** -6)]


@pytest.mark.parametrize("kwargs, match", [
    (dict(ebits=2, mbits=1, bias=1, has_inf=False, nan="none"), "overflow='infnan'"),
    (dict(ebits=2, mbits=1, bias=1, has_inf=True, nan="none", overflow="saturate"), "has_inf"),
])
def test_finite_only_format_rules(kwargs, match):
    from qrtl.golden.formats import FPFormat
    with pytest.raises(QrtlError, match=match) as exc:
        FPFormat("bad", **kwargs)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name", NEW + ("e8m0",))
def test_decode_every_code_matches_ml_dtypes(name):
    f = get_format(name)
    codes = np.arange(1 << f.width, dtype=np.uint64)
    got = decode(codes, name)
    ref = codes.astype(np.uint8).view(ML[name]).astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.array_equal(got[ok], ref[ok]) and np.array_equal(np.signbit(got[ok]), np.signbit(ref[ok]))
    assert np.array_equal(encode(got[ok], name), codes[ok])   # encode inverts decode


def test_mxint8_every_code():
    codes = np.arange(256, dtype=np.uint64)
    v = decode(codes, "mxint8")
    assert np.array_equal(v, codes.astype(np.uint8).view(np.int8) / 64.0)
    assert np.array_equal(encode(v, "mxint8"), codes)


def _probe_values(f, n=200_000, seed=1):
    """float32-exact values over and beyond the format's range: random, every midpoint
    between neighbouring codes (the ties), and just beside each midpoint."""
    rng = np.random.default_rng(seed)
    top = float(f.max_value)
    v = [rng.normal(0, 1, n) * np.exp2(rng.uniform(np.log2(float(f.min_subnormal)) - 3,
                                                   np.log2(top) + 3, n)),
         rng.uniform(-2 * top, 2 * top, n)]
    mags = np.unique(np.abs(decode(np.arange(1 << f.width, dtype=np.uint64), f)))
    mid = (mags[1:] + mags[:-1]) / 2
    mid = np.concatenate([mid, [mags[-1] * 1.0625, mags[-1] * 2]])
    for m in (mid, np.nextafter(mid.astype(np.float32), 0), np.nextafter(mid.astype(np.float32), np.inf)):
        v += [m, -m]
    v = np.concatenate(v).astype(np.float32).astype(np.float64)
    return np.concatenate([v, [np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30]])


@pytest.mark.parametrize("name", NEW)
def test_encode_matches_ml_dtypes(name):
    """Round to nearest even and saturate: ml_dtypes's float32 casts do the same (Inf
    saturates too). The difference: NaN, which has no code; ml_dtypes gives -0, we refuse."""
    f = get_format(name)
    v = _probe_values(f)
    got = encode(v, name)
    assert np.array_equal(got, _ml_codes(v, name))
    assert np.array_equal(got[v == np.inf], [f.max_code])            # saturation
    assert int(_ml_codes([np.nan], name)[0]) == f.sign_bit           # ml_dtypes: NaN -> -0
    with pytest.raises(QrtlError, match=f"NaN has no code in {name}"):
        encode(np.array([1.0, np.nan]), name)


def test_encode_e8m0_matches_ml_dtypes_on_float32_normals():
    """E8M0: nearest power of two, ties (1.5 * 2^e) up, overflow and every non-positive,
    infinite or NaN value -> NaN: as ml_dtypes on float32 normal inputs. The difference:
    ml_dtypes takes some float32 subnormals below 2^-126 to 2^-126 (1.4 * 2^-127, nearer to
    2^-127, gives code 1), we round them to the nearest code like any other value."""
    rng = np.random.default_rng(3)
    e = rng.integers(-126, 128, 100_000)
    v = np.ldexp(rng.uniform(1, 2, 100_000), e)
    ties = np.ldexp(1.5, np.arange(-126, 128))
    v = np.concatenate([v, ties, np.nextafter(ties.astype(np.float32), 0), 2.0 ** np.arange(-126, 128),
                        [0.0, -0.0, -1.0, -2.0 ** -100, np.inf, -np.inf, np.nan, 3.4e38]])
    v = v.astype(np.float32).astype(np.float64)
    got = encode(v, "e8m0")
    assert np.array_equal(got, _ml_codes(v, "e8m0"))
    assert encode(np.array([1.5, 3.0, 0.75]), "e8m0").tolist() == [128, 129, 127]  # ties go up
    sub = np.array([1.4 * 2.0 ** -127, 2.0 ** -140])
    assert encode(sub, "e8m0").tolist() == [0, 0]
    assert _ml_codes(sub[:1], "e8m0").tolist() == [1]                  # the named difference
    assert encode(np.array([2.0 ** 128]), "e8m0", saturate=True).tolist() == [254]


def test_encode_mxint8_rounds_half_even_and_saturates():
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.uniform(-3, 3, 100_000), (np.arange(-300, 300) + 0.5) / 64,
                        [np.inf, -np.inf, 1e300, -1e300]])
    ref = np.clip(np.rint(v * 64), -128, 127).astype(np.int64) & 0xFF
    assert np.array_equal(encode(v, "mxint8"), ref.astype(np.uint64))
    with pytest.raises(QrtlError, match="NaN has no code in mxint8"):
        encode(np.array([np.nan]), "mxint8")


# --- element units: golden ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", NEW)
def test_mul_golden_every_pair(fmt):
    """Every pair: the exact product (float32 holds it) as ml_dtypes values multiply."""
    w = get_format(fmt).width
    a, b = all_pairs(1 << w)
    ref = (a.astype(np.uint8).view(ML[fmt]).astype(np.float32) * b.astype(np.uint8).view(ML[fmt]).astype(np.float32))
    assert np.array_equal(fp8_mul(a, b, fmt), ref.view(np.uint32).astype(np.uint64))


@pytest.mark.parametrize("acc", ACC_FORMATS)
@pytest.mark.parametrize("fmt", NEW)
def test_mac_golden_exhaustive(fmt, acc):
    """Every (a, b) pair x 64 accumulator values: NumPy/ml_dtypes casts of exact float64
    sums, exact fractions on the rest (specials, zeros, sums float64 cannot hold)."""
    inst = configure("fp8_mac", {"fmt": fmt, "acc": acc})
    x = inst.exhaustive()
    out = fp8_mac(x["a"], x["b"], x["acc_in"], fmt=fmt, acc=acc)
    check_mac_against_oracles(x, out, fmt, acc, fraction_samples=300)


def test_mac_golden_saturating_and_stochastic_fractions():
    rng = np.random.default_rng(5)
    for fmt in NEW:
        for acc in ACC_FORMATS:
            fa = get_format(acc)
            w = get_format(fmt).width
            a, b = rng.integers(0, 1 << w, 40), rng.integers(0, 1 << w, 40)
            c = rng.integers(0, 1 << fa.width, 40)
            r = rng.integers(0, 1 << 8, 40)
            got = fp8_mac(a, b, c, fmt=fmt, acc=acc, rounding="stochastic", rnd=r, rbits=8, saturate=True)
            for i in range(40):
                assert int(got[i]) == ref_mac(a[i], b[i], c[i], fmt, acc, "stochastic", r[i], 8, True)


def test_element_units_validate():
    from qrtl.hw.fp8 import Fp8Mac, Fp8Mul
    with pytest.raises(ValueError, match="fmt='mxint8'"):
        Fp8Mul("mxint8")
    with pytest.raises(ValueError, match="fmt='e8m0'"):
        Fp8Mac("e8m0")
    # through the registry: a bare component that is never elaborated warns when collected
    assert [configure("fp8_mul", {"fmt": f}).port("a").width for f in ELEMENT_FORMATS] == [4, 6, 6, 8, 8]
    with pytest.raises(QrtlError, match="fmt='e2m1' is not an FP8 input format"):
        from qrtl.golden.fp8 import fp8_dot
        fp8_dot(np.zeros((1, 4)), np.zeros((1, 4)), fmt="e2m1")


# --- element units: RTL on Verilator -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", NEW)
def test_rtl_mul_every_pair(fmt):
    res = verify(configure("fp8_mul", {"fmt": fmt}))
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 1 << (2 * get_format(fmt).width)


@pytest.mark.parametrize("fmt, acc", [("e2m1", "fp16"), ("e2m3", "bf16"), ("e3m2", "e6m9"),
                                      ("e3m2", "fp32")])
def test_rtl_mac_exhaustive(fmt, acc):
    """Every pair x 64 accumulator values plus corners, RTL == golden (and the golden is
    checked against the oracles on all of them above). One accumulator per element format
    keeps simulator builds few; the golden test covers every combination."""
    inst = configure("fp8_mac", {"fmt": fmt, "acc": acc})
    ex, corners = inst.exhaustive(), inst.corners()
    x = {k: np.concatenate([corners[k].astype(ex[k].dtype), ex[k]]) for k in ex}
    res = simulate(inst, x)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= (1 << (2 * get_format(fmt).width)) * 64


# --- mx_dot: golden -------------------------------------------------------------------------------

from fractions import Fraction  # noqa: E402

from qrtl.golden.formats import MX_ELEMENTS  # noqa: E402
from qrtl.golden.fp8 import split_lanes  # noqa: E402
from qrtl.golden.mx import acc_width, element_lsb, element_max_quanta, mx_dot  # noqa: E402
from qrtl.hw.reg_mx import mx_formats  # noqa: E402

from .test_fp8 import ref_decode, ref_round  # noqa: E402

FP32 = get_format("fp32")
DOT_PAIRS = [("e4m3", "e4m3"), ("e5m2", "e5m2"), ("mxint8", "mxint8"), ("e2m1", "e2m1"),
             ("e2m3", "e3m2"), ("e4m3", "e5m2"), ("mxint8", "e2m1")]


def ref_element(code, f):
    """``ref_decode`` of :mod:`tests.test_fp8`, plus the INT8 element straight from the
    spec's definition (two's complement times 2^-6)."""
    if f.name == "mxint8":
        c = int(code) - (256 if int(code) & 0x80 else 0)
        return (Fraction(c, 64), int(c < 0))
    return ref_decode(code, f)


def ref_scale(code, scale):
    """``(value, sign)`` of a scale code, or ``("nan",)``: E8M0 from the spec's definition
    (2^(E-127), 0xFF NaN), E4M3 by ``ref_decode``."""
    if scale == "e8m0":
        return ("nan",) if code == 0xFF else (Fraction(2) ** (int(code) - 127), 0)
    return ref_decode(code, get_format(scale))


def ref_block(a, b, sa, sb, fa, fb, scale="e8m0"):
    """The exact value of one block pair's Dot with Fractions and the IEEE 754 special
    rules: ``("nan",)``, ``("inf", sign)`` or ``(Fraction, sign of a zero)``."""
    xa, xb = ref_scale(sa, scale), ref_scale(sb, scale)
    if xa[0] == "nan" or xb[0] == "nan":
        return ("nan",)
    scl, xs = xa[0] * xb[0], xa[1] ^ xb[1]
    prods = []
    for x, y in zip(a, b):
        x, y = ref_element(x, fa), ref_element(y, fb)
        if x[0] == "nan" or y[0] == "nan":
            return ("nan",)
        s = x[1] ^ y[1]
        if x[0] == "inf" or y[0] == "inf":
            other = y if x[0] == "inf" else x
            if other[0] == 0:
                return ("nan",)
            prods.append(("inf", s))
        else:
            prods.append((x[0] * y[0], s))
    infs = {s for v, s in prods if v == "inf"}
    if len(infs) == 2:
        return ("nan",)
    if infs:
        return ("nan",) if scl == 0 else ("inf", infs.pop() ^ xs)
    total = sum(v for v, _ in prods)
    zero_sign = int(all(v == 0 and s == 1 for v, s in prods))
    return (total * scl, ((zero_sign if total == 0 else int(total < 0)) ^ xs))


def ref_mx_dot(a, b, sa, sb, fa, fb, scale="e8m0") -> int:
    """The MX Dot of one block pair, rounded once to binary32."""
    v = ref_block(a, b, sa, sb, fa, fb, scale)
    if v[0] == "nan":
        return 0x7FC00000
    if v[0] == "inf":
        return 0x7F800000 | (v[1] << 31)
    return ref_round(v[0], v[1], FP32)


def _float_oracle(a, b, sa, sb, fa, fb):
    """Where float64 holds every product and the sum exactly (accumulator <= 53 bits): the
    float64 sum of ml_dtypes (or int8 / 64) element values, scaled, cast once to float32."""
    def val(c, f):
        c = np.asarray(c, np.uint8)
        return c.view(np.int8) / 64.0 if f.name == "mxint8" else c.view(ML[f.name]).astype(np.float64)
    prods = val(a, fa) * val(b, fb)
    s = prods.sum(axis=1)
    # NumPy's sum starts from +0, so a block of -0 products sums to +0; IEEE 754 gives -0
    s = np.where(np.all((prods == 0) & np.signbit(prods), axis=1), -0.0, s)
    return np.ldexp(s, (sa + sb - 254).astype(np.int32)).astype(np.float32)


def test_acc_width_is_tight():
    """W - 1 bits hold exactly the largest sum (k max-magnitude products): one bit less
    would not, and W never exceeds wA + wB + log2 k + 1."""
    for fa in MX_ELEMENTS:
        for fb in MX_ELEMENTS:
            for k in (1, 2, 16, 32, 64):
                w = acc_width(fa, fb, k)
                top = k * element_max_quanta(fa) * element_max_quanta(fb)
                assert top < 2 ** (w - 1) and top >= 2 ** (w - 2)
                wa, wb = (element_max_quanta(f).bit_length() for f in (fa, fb))
                assert w <= wa + wb + k.bit_length()
    assert {f: acc_width(f, f, 32) for f in MX_ELEMENTS} == {
        "e2m1": 14, "e2m3": 18, "e3m2": 24, "e4m3": 42, "e5m2": 70, "mxint8": 21}
    assert [element_lsb(f) for f in MX_ELEMENTS] == [-1, -3, -4, -9, -16, -6]


def _dot_vectors(fa, fb, k, n, seed, scale="e8m0"):
    """Stimulus and corners of the registered unit, as (n, k) code matrices and scales."""
    inst = configure("mx_dot", {"fmt_a": fa, "fmt_b": fb, "k": k, "scale": scale})
    fa_, fb_ = mx_formats(inst.params)
    x = inst.stimulus(n, seed)
    c = inst.corners()
    a = np.concatenate([split_lanes(c["a"], fa_.width, k), split_lanes(x["a"], fa_.width, k)])
    b = np.concatenate([split_lanes(c["b"], fb_.width, k), split_lanes(x["b"], fb_.width, k)])
    sa = np.concatenate([c["sa"], x["sa"]]).astype(np.int64)
    sb = np.concatenate([c["sb"], x["sb"]]).astype(np.int64)
    return fa_, fb_, a, b, sa, sb


@pytest.mark.parametrize("fa, fb, k, scale", [p + (32, "e8m0") for p in DOT_PAIRS] + [
    ("e2m1", "e2m1", 16, "e4m3"), ("e5m2", "e4m3", 64, "e4m3")])
def test_mx_dot_golden_matches_fractions(fa, fb, k, scale):
    """Corners (every corner block under every pair of extreme scales) and random blocks:
    the golden model against exact rationals, on a sample of each (NVFP4 included)."""
    fa_, fb_, a, b, sa, sb = _dot_vectors(fa, fb, k, 4000, 1, scale)
    got = mx_dot(a, b, sa, sb, fmt_a=fa, fmt_b=fb, scale=scale)
    rng = np.random.default_rng(2)
    pick = rng.choice(len(a), 1500, replace=False)
    for i in pick:
        ref = ref_mx_dot(a[i], b[i], sa[i], sb[i], fa_, fb_, scale)
        assert int(got[i]) == ref, (i, a[i], b[i], sa[i], sb[i])


@pytest.mark.parametrize("fa, fb", [p for p in DOT_PAIRS if acc_width(*p, 64) <= 53])
def test_mx_dot_golden_matches_ml_dtypes(fa, fb):
    """Every vector whose sum float64 holds exactly (all but E5M2 blocks): the float64 sum
    of ml_dtypes values, scaled, cast to float32 once: the same bits (NaN aside)."""
    fa_, fb_, a, b, sa, sb = _dot_vectors(fa, fb, 64, 30_000, 3)
    got = mx_dot(a, b, sa, sb, fmt_a=fa, fmt_b=fb)
    ref = _float_oracle(a, b, sa, sb, fa_, fb_)
    nan = np.isnan(ref) | (sa == 0xFF) | (sb == 0xFF)
    assert np.array_equal(got[~nan], ref[~nan].view(np.uint32).astype(np.uint64))
    assert np.all(got[nan] == 0x7FC00000)
    v = ref[~nan]
    # the stimulus reaches every class of result
    assert (v == 0).sum() > 50 and np.isinf(v).sum() > 20 and (np.abs(v) < 2.0 ** -126).sum() > 20


def test_mx_dot_special_cases():
    e4, e5 = get_format("e4m3"), get_format("e5m2")
    k = 32
    one4, one5 = 0x38, 0x3C
    z = np.zeros(k, np.int64)

    def dot(a, b, sa=127, sb=127, f="e4m3"):
        return int(mx_dot(np.array([a]), np.array([b]), np.array([sa]), np.array([sb]), fmt_a=f, fmt_b=f)[0])

    assert dot(z, z, 0xFF, 127) == 0x7FC00000                   # NaN scale, zero block
    assert dot(z, z) == 0 and dot(z | 0x80, z) == 0x80000000     # +0; all products -0
    a = np.full(k, one4)
    assert dot(a, a) == 0x42000000                              # 32 * 1 * 1 = 32
    nan_a = a.copy(); nan_a[5] = e4.nan_code
    assert dot(nan_a, a) == 0x7FC00000                          # E4M3 NaN element
    big = np.full(k, e4.max_code)
    assert dot(big, big, 254, 254) == 0x7F800000                # overflow -> +Inf
    assert dot(big, big, 0, 0) == 0                             # 32*448^2*2^-254: underflow
    half = np.where(np.arange(k) < 16, big, big | 0x80)
    assert dot(half, big) == 0                                  # exact cancellation -> +0
    inf5 = np.full(k, one5); inf5[0] = e5.inf_code
    b5 = np.full(k, one5)
    assert dot(inf5, b5, f="e5m2") == 0x7F800000                # +Inf
    b5[0] = 0
    assert dot(inf5, b5, f="e5m2") == 0x7FC00000                # Inf * 0
    b5[0] = one5; inf5[1] = e5.inf_code | 0x80
    assert dot(inf5, b5, f="e5m2") == 0x7FC00000                # +Inf + -Inf


def test_mx_dot_validates(cli):
    with pytest.raises(QrtlError, match="k=48"):
        mx_dot(np.zeros((1, 48)), np.zeros((1, 48)), 127, 127)
    with pytest.raises(QrtlError, match="fmt_a='fp16'"):
        mx_dot(np.zeros((1, 32)), np.zeros((1, 32)), 127, 127, fmt_a="fp16")
    from qrtl.hw.mx import MxDot
    with pytest.raises(ValueError, match="k=12"):
        MxDot(k=12)
    code, out, err = cli("describe", "mx_dot", "-p", "k=24")
    assert code == 2 and "k=24" in err and err.count("\n") == 1
    code, out, err = cli("describe", "mx_dot", "-p", "fmt_a=e2m1", "-p", "fmt_b=mxint8", "-p", "k=16", "--json")
    assert code == 0
    import json
    d = json.loads(out)
    assert {p["name"]: p["width"] for p in d["ports"]} == {"a": 64, "b": 128, "sa": 8, "sb": 8, "result": 32}
    assert d["latency"] == 0
    code, out, err = cli("describe", "mx_dot", "-p", "scale=e5m2")
    assert code == 2 and "scale='e5m2'" in err and err.count("\n") == 1


# --- mx_dot: RTL on Verilator ----------------------------------------------------------------------

MX_RTL = [dict(), dict(fmt_a="e5m2"), dict(fmt_a="mxint8"), dict(fmt_a="e2m1", k=64),
          dict(fmt_a="e3m2", fmt_b="e2m3", k=16), dict(fmt_a="e4m3", fmt_b="e5m2", k=8),
          dict(fmt_a="mxint8", fmt_b="e2m1", k=1), dict(fmt_a="e2m1", k=16, scale="e4m3")]


@pytest.mark.parametrize("params", MX_RTL, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_rtl_mx_dot(params):
    """Corners (zero, max-magnitude, smallest, cancelling and special-code blocks under
    every pair of extreme scales) plus 30,000 random block pairs, bit-exact."""
    res = verify(configure("mx_dot", params), vectors=30_000)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 30_000


# --- mx_dot_general ------------------------------------------------------------------------------

from qrtl.golden.mx import mx_dot_general_stream  # noqa: E402

from .test_fp8 import ref_add  # noqa: E402


@pytest.mark.parametrize("params", [dict(), dict(fmt_a="e5m2", k=8), dict(fmt_a="mxint8", fmt_b="e2m3", k=16),
                                    dict(fmt_a="e2m1", k=16, scale="e4m3")],
                         ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_mx_dot_general_golden_matches_fractions(params):
    """Every result of a stream (corners, then random dot products of 1..64 blocks with
    idle junk cycles): ``acc = round(acc + exact block)`` replayed with Fractions."""
    inst = configure("mx_dot_general", params)
    fa, fb = mx_formats(inst.params)
    k = inst.params["k"]
    c, x = inst.corners(), inst.stimulus(1500, 4)
    pick = np.random.default_rng(5).choice(len(c["sa"]) // 7, 60, replace=False)
    c = {n: np.asarray(v).reshape(-1, 7, *np.asarray(v).shape[1:])[pick].reshape(-1, *np.asarray(v).shape[1:])
         for n, v in c.items()}
    x = {n: np.concatenate([np.asarray(c[n]), np.asarray(x[n])]) for n in x}
    out = mx_dot_general_stream(x, fmt_a=fa, fmt_b=fb, k=k, scale=inst.params["scale"])
    a = split_lanes(x["a"], fa.width, k)
    b = split_lanes(x["b"], fb.width, k)
    acc, checked = 0, 0
    for t in range(len(x["sa"])):
        if x["valid"][t]:
            v = ref_block(a[t], b[t], x["sa"][t], x["sb"][t], fa, fb, inst.params["scale"])
            acc = ref_add(v, ref_decode(acc, FP32), FP32)
            if x["last"][t]:
                assert out["result_valid"][t] == 1 and int(out["result"][t]) == acc, t
                acc, checked = 0, checked + 1
    assert checked > 150


MX_GENERAL_RTL = [dict(), dict(fmt_a="e5m2", fmt_b="e4m3", k=16), dict(fmt_a="e2m1", k=16, scale="e4m3")]


@pytest.mark.parametrize("params", MX_GENERAL_RTL, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "default")
def test_rtl_mx_dot_general(params):
    """Corner streams (every corner block pair alone, then cancelling against its negation,
    then four in a row) plus 20,000 random cycles, every output cycle bit-exact."""
    inst = configure("mx_dot_general", params)
    assert inst.latency == 1 and inst.clocked
    res = verify(inst, vectors=20_000)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 20_000


@pytest.mark.parametrize("params", [dict(lanes=8), dict(fmt_a="e5m2", fmt_b="mxint8", k=16, lanes=1),
                                    dict(fmt_a="e2m1", k=16, scale="e4m3", lanes=4)])
def test_general_lanes_golden_is_the_block_stream(params):
    """A block fed in k/lanes chunks (junk scales and last on the other chunks) gives, on
    its final chunk, exactly what the whole block fed in one cycle gives."""
    from qrtl.hw.reg_mx import _chunked
    whole = configure("mx_dot_general", {**params, "lanes": 0})
    part = configure("mx_dot_general", params)
    x = whole.stimulus(3000, np.random.default_rng(5))
    y = _chunked(part.params, x, np.random.default_rng(6))
    c = whole.params["k"] // part.params["lanes"]
    assert len(y["sa"]) == c * len(x["sa"])
    ref, got = whole.golden(x), part.golden(y)
    for port in ("result", "result_valid"):
        np.testing.assert_array_equal(np.asarray(got[port])[c - 1::c], ref[port])
    assert np.asarray(got["result_valid"]).sum() > 50
    # the other chunks hold the result and never signal one
    assert not np.asarray(got["result_valid"]).reshape(-1, c)[:, :-1].any()


@pytest.mark.parametrize("params", [dict(lanes=8), dict(fmt_a="e2m1", k=16, scale="e4m3", lanes=4)],
                         ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_rtl_mx_dot_general_lanes(params):
    """``lanes`` element pairs per cycle on the RTL: the corner streams chunked, plus random
    cycles, every output cycle bit-exact."""
    inst = configure("mx_dot_general", params)
    assert inst.port("a").width == params["lanes"] * get_format(inst.params["fmt_a"]).width
    res = verify(inst, vectors=20_000)
    assert res.mismatches == 0, res.first_mismatch


def test_general_lanes_must_divide_k():
    with pytest.raises(QrtlError, match="lanes=3 is not valid"):
        configure("mx_dot_general", {"lanes": 3})
    with pytest.raises(ValueError, match="lanes=64 is not valid"):
        from qrtl.hw.mx import MxDotGeneral
        MxDotGeneral("e4m3", None, 32, "e8m0", 64)
