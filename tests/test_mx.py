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
    assert [Fp8Mul(f).a.shape().width for f in ELEMENT_FORMATS] == [4, 6, 6, 8, 8]
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
