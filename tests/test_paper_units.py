"""abc_dot (ABC-Net) and ternary_dot (BinaryDuo): golden models against plain-Python
references, their width and encoding contracts, and the RTL against the golden models on
Verilator (exhaustive where small, corners + random above)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden.abc import abc_dot, abc_dot_bound, abc_dot_width
from qrtl.golden.bits import to_bytes
from qrtl.golden.errors import QrtlError
from qrtl.golden.ternary import ternary_decode, ternary_dot, ternary_encode
from qrtl.golden.xnor import xnor_popcount
from qrtl.hw.abc_dot import AbcDot
from qrtl.hw.ternary_dot import TernaryDot
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify


# --- independent slow references: plain Python ints, one element at a time ------------

def bits_of(value: int, n: int) -> list[int]:
    return [(value >> i) & 1 for i in range(n)]


def as_int(port_value) -> int:
    """A port value (an int, or one row of a little-endian byte matrix) as a Python int."""
    if np.ndim(port_value) == 1:
        return int.from_bytes(bytes(np.asarray(port_value, np.uint8)), "little")
    return int(port_value)


def ref_abc(ws: list[int], as_: list[int], alphas: list[int], betas: list[int], n: int) -> int:
    total = 0
    for wm, am in zip(ws, alphas):
        for hk, bk in zip(as_, betas):
            d = sum((1 if x else -1) * (1 if y else -1)
                    for x, y in zip(bits_of(wm, n), bits_of(hk, n)))
            total += am * bk * d
    return total


def ternary_value(sign: int, nz: int) -> int:
    """The documented encoding: nz=0 is 0 whatever the sign; else +1 (sign 0) or -1."""
    return 0 if not nz else (-1 if sign else 1)


def ref_ternary(a_sign: int, a_nz: int, n: int, w=None, w_sign=None, w_nz=None) -> int:
    total = 0
    for i in range(n):
        a = ternary_value((a_sign >> i) & 1, (a_nz >> i) & 1)
        if w is not None:
            v = 1 if (w >> i) & 1 else -1
        else:
            v = ternary_value((w_sign >> i) & 1, (w_nz >> i) & 1)
        total += a * v
    return total


def row(x: dict, name: str, i: int) -> int:
    return as_int(x[name][i])


# --- abc_dot golden ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 8, 9, 64, 65, 200])
@pytest.mark.parametrize("M,N,s", [(1, 1, 2), (3, 3, 8), (5, 2, 16), (2, 5, 5)])
def test_abc_golden_matches_python_reference(n, M, N, s):
    inst = configure("abc_dot", {"n": n, "M": M, "N": N, "scale_width": s})
    x = inst.stimulus(60, seed=n * 100 + M * 10 + N)
    corners = inst.corners()
    x = {k: np.concatenate([corners[k], x[k]]) for k in x}
    got = inst.golden(x)["dot"]
    for i in range(len(got)):
        ref = ref_abc([row(x, f"w{m}", i) for m in range(M)], [row(x, f"a{k}", i) for k in range(N)],
                      [row(x, f"alpha{m}", i) for m in range(M)],
                      [row(x, f"beta{k}", i) for k in range(N)], n)
        assert got[i] == ref, (i, got[i], ref)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 130).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, 5), st.integers(1, 5), st.integers(2, 16), st.randoms())))
def test_abc_golden_property(case):
    """Ints (n <= 64) and byte matrices give the same answer as the reference."""
    n, M, N, s, rnd = case
    lo, hi = -(1 << (s - 1)), (1 << (s - 1)) - 1
    ws = [rnd.getrandbits(n) for _ in range(M)]
    hs = [rnd.getrandbits(n) for _ in range(N)]
    al = [rnd.choice([lo, hi, rnd.randint(lo, hi)]) for _ in range(M)]
    be = [rnd.choice([lo, hi, rnd.randint(lo, hi)]) for _ in range(N)]
    nb = (n + 7) // 8
    as_bytes = [np.frombuffer(v.to_bytes(nb, "little"), np.uint8)[None, :] for v in ws + hs]
    got = abc_dot(as_bytes[:M], as_bytes[M:], [np.array([v]) for v in al],
                  [np.array([v]) for v in be], n)
    ref = ref_abc(ws, hs, al, be, n)
    assert got[0] == ref
    if n <= 64:
        ints = [np.array([v], np.uint64) for v in ws + hs]
        assert abc_dot(ints[:M], ints[M:], [np.array([v]) for v in al],
                       [np.array([v]) for v in be], n)[0] == ref


@pytest.mark.parametrize("n,M,N,s", [(1, 1, 1, 2), (4, 1, 1, 4), (64, 3, 3, 8), (7, 5, 2, 3),
                                     (4096, 5, 5, 16)])
def test_abc_width_is_exact_and_reached(n, M, N, s):
    """Both ends +-K of the derived range are reached by the corners, and K needs every bit
    of the width (one bit fewer could not hold it)."""
    K = abc_dot_bound(n, M, N, s)
    w = abc_dot_width(n, M, N, s)
    assert K == M * N * n * 4 ** (s - 1)
    assert K <= (1 << (w - 1)) - 1 and K > (1 << (w - 2)) - 1
    inst = configure("abc_dot", {"n": n, "M": M, "N": N, "scale_width": s})
    assert inst.port("dot").width == w == inst.component.out_width and inst.port("dot").signed
    if n <= 256:
        dots = inst.golden(inst.corners())["dot"]
        assert dots.max() == K and dots.min() == -K


def test_abc_golden_reuses_the_xnor_dot():
    """M = N = 1 with unit scales is exactly xnor_popcount."""
    rng = np.random.default_rng(5)
    w = rng.integers(0, 256, (300, 13), dtype=np.uint8)
    a = rng.integers(0, 256, (300, 13), dtype=np.uint8)
    w, a = to_bytes(w, 100), to_bytes(a, 100)
    one = np.ones(300, np.int64)
    assert np.array_equal(abc_dot([w], [a], [one], [one], 100), xnor_popcount(a, w, 100))


def test_abc_exhaustive_covers_the_space():
    inst = configure("abc_dot", {"n": 4, "M": 1, "N": 1, "scale_width": 4})
    x = inst.exhaustive()
    keys = np.stack([np.asarray(x[p.name]).astype(np.int64) for p in inst.inputs], axis=1)
    assert len(keys) == 2 ** 16 == len(np.unique(keys, axis=0))
    assert x["alpha0"].min() == -8 and x["alpha0"].max() == 7
    assert configure("abc_dot", {"n": 2, "M": 2, "N": 2, "scale_width": 2}).exhaustive() is not None
    assert configure("abc_dot", {"n": 4, "M": 1, "N": 1, "scale_width": 7}).exhaustive() is None
    assert configure("abc_dot").exhaustive() is None


def test_abc_bad_parameters_are_one_line_errors(cli):
    for given, word in (({"M": 6}, "M=6"), ({"N": 0}, "N=0"), ({"scale_width": 1}, "scale_width=1"),
                        ({"n": 0}, "n=0"), ({"K": 2}, "'K'")):
        with pytest.raises(QrtlError, match=word):
            configure("abc_dot", given)
    with pytest.raises(ValueError, match="m_bases=6"):
        AbcDot(8, 6, 1, 8)
    with pytest.raises(ValueError, match="scale_width=17"):
        AbcDot(8, 1, 1, 17)
    code, _, err = cli("describe", "abc_dot", "-p", "M=9")
    assert code == 2 and "M=9" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="alphas"):
        abc_dot([np.zeros(1, np.uint64)], [np.zeros(1, np.uint64)], [], [np.ones(1)], 4)


# --- ternary_dot golden -----------------------------------------------------------------

def test_ternary_encoding_round_trip_and_unused_code():
    rng = np.random.default_rng(2)
    for n in (1, 5, 64, 65, 300):
        v = rng.integers(-1, 2, (50, n)).astype(np.int8)
        sign, nz = ternary_encode(v)
        assert np.array_equal(ternary_decode(sign, nz, n), v)
        assert not (to_bytes(sign, n) & ~to_bytes(nz, n)).any()  # the encoder never makes 1/0
    # the unused code sign=1, nz=0 decodes (and multiplies) as 0
    assert ternary_decode(np.array([0b1111], np.uint64), np.array([0b0101], np.uint64), 4).tolist() \
        == [[-1, 0, -1, 0]]
    assert ternary_dot(np.array([0b1111], np.uint64), np.array([0], np.uint64), 4,
                       w=np.array([0b1010], np.uint64)).tolist() == [0]
    with pytest.raises(ValueError, match="-1, 0 or"):
        ternary_encode(np.array([[2, 0]]))


@pytest.mark.parametrize("weights", ["binary", "ternary"])
@pytest.mark.parametrize("n", [1, 3, 8, 9, 64, 65, 200])
def test_ternary_golden_matches_python_reference(n, weights):
    inst = configure("ternary_dot", {"n": n, "weights": weights})
    x = inst.stimulus(200, seed=n)
    corners = inst.corners()
    x = {k: np.concatenate([corners[k], x[k]]) for k in x}
    got = inst.golden(x)["dot"]
    for i in range(len(got)):
        if weights == "binary":
            ref = ref_ternary(row(x, "a_sign", i), row(x, "a_nz", i), n, w=row(x, "w", i))
        else:
            ref = ref_ternary(row(x, "a_sign", i), row(x, "a_nz", i), n,
                              w_sign=row(x, "w_sign", i), w_nz=row(x, "w_nz", i))
        assert got[i] == ref, (i, got[i], ref)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 150).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.integers(-1, 1), min_size=n, max_size=n),
    st.lists(st.integers(-1, 1), min_size=n, max_size=n))))
def test_ternary_golden_property(case):
    """The dot product of the values, through the encoder, in both weight forms."""
    n, a, w = case
    sa, za = ternary_encode(np.array([a]))
    ws, wz = ternary_encode(np.array([w]))
    assert ternary_dot(sa, za, n, w_sign=ws, w_nz=wz)[0] == sum(x * y for x, y in zip(a, w))
    wb = [1 if y >= 0 else -1 for y in w]
    wbits = ternary_encode(np.array([[1 if y > 0 else 0 for y in wb]]))[1]
    assert ternary_dot(sa, za, n, w=wbits)[0] == sum(x * y for x, y in zip(a, wb))


def test_ternary_golden_arguments():
    z = np.zeros(1, np.uint64)
    for kwargs in ({}, {"w": z, "w_sign": z, "w_nz": z}, {"w_sign": z}, {"w": z, "w_nz": z}):
        with pytest.raises(ValueError, match="either w"):
            ternary_dot(z, z, 4, **kwargs)


def test_ternary_ports_exhaustive_and_errors():
    b = configure("ternary_dot", {"n": 6})
    t = configure("ternary_dot", {"n": 5, "weights": "ternary"})
    assert [p.name for p in b.inputs] == ["a_sign", "a_nz", "w"]
    assert [p.name for p in t.inputs] == ["a_sign", "a_nz", "w_sign", "w_nz"]
    assert b.port("dot").width == t.port("dot").width == 4 and b.port("dot").signed
    for inst, bits in ((b, 18), (t, 20)):
        x = inst.exhaustive()
        keys = np.stack([x[p.name].astype(np.int64) for p in inst.inputs], axis=1)
        assert len(np.unique(keys, axis=0)) == 2 ** bits
    assert configure("ternary_dot", {"n": 7}).exhaustive() is None
    assert configure("ternary_dot", {"n": 6, "weights": "ternary"}).exhaustive() is None
    with pytest.raises(QrtlError, match="weights='quaternary'"):
        configure("ternary_dot", {"weights": "quaternary"})
    with pytest.raises(ValueError, match="weights='x'"):
        TernaryDot(4, "x")
    with pytest.raises(ValueError, match="n=4097"):
        TernaryDot(4097)


# --- RTL on Verilator -------------------------------------------------------------------

ABC_RTL = [
    dict(n=4, M=1, N=1, scale_width=4),            # exhaustive, 2**16
    dict(n=2, M=2, N=2, scale_width=2),            # exhaustive, 2**16
    dict(n=1, M=5, N=5, scale_width=2),
    dict(),                                        # the default: n=64, M=N=2, s=8
    dict(n=64, M=3, N=3, scale_width=8),           # the paper's M = N = 3
    dict(n=7, M=2, N=3, scale_width=5),
    dict(n=65, M=1, N=5, scale_width=16),
    dict(n=256, M=2, N=1, scale_width=16),         # byte-matrix bases, widest scales and output
    # the most bases (M = N = 5, 25 products) at an odd n; with 16-bit scales this one unit
    # was 4.6 MB of Verilog and 400 s of Verilator build, so its scales are 6 bits here
    # (16-bit scales are checked above with N = 5 and with n = 256)
    dict(n=9, M=5, N=5, scale_width=6),
    dict(n=33, M=3, N=2, scale_width=6, pipeline=2),
]
TERNARY_RTL = (
    [dict(n=n, weights=w) for n in (1, 2, 5) for w in ("binary", "ternary")]   # exhaustive
    + [dict(n=6), dict(n=64), dict(n=64, weights="ternary"), dict(n=100, weights="ternary"),
       dict(n=1024), dict(n=17, weights="ternary", pipeline=3)]
)


def _ids(p):
    return ",".join(f"{k}={v}" for k, v in p.items()) or "default"


@pytest.mark.parametrize("unit,params", [("abc_dot", p) for p in ABC_RTL]
                         + [("ternary_dot", p) for p in TERNARY_RTL],
                         ids=lambda x: x if isinstance(x, str) else _ids(x))
def test_rtl_matches_golden(unit, params):
    inst = configure(unit, params)
    vectors = 50_000 if inst.params["n"] <= 64 else 10_000
    res = verify(inst, vectors=vectors, seed=11)
    assert res.mismatches == 0, res.first_mismatch
    exhaustive = inst.exhaustive()
    corners = len(next(iter(inst.corners().values())))
    if exhaustive is not None:  # every input was checked (and the corners)
        assert res.vectors == corners + len(next(iter(exhaustive.values())))
    else:
        assert res.vectors == corners + vectors
    assert inst.latency == inst.params["pipeline"]


def test_rtl_mismatch_is_reported():
    """A corrupted reference is caught at the right vector, with its inputs."""
    inst = configure("abc_dot", {"n": 2, "M": 2, "N": 2, "scale_width": 2})  # built above
    x = inst.stimulus(3000, seed=3)
    expected = inst.golden(x)
    expected["dot"] = expected["dot"].copy()
    expected["dot"][2024] += 1
    res = simulate(inst, x, expected=expected)
    assert res.mismatches == 1 and res.first_mismatch["index"] == 2024
    assert set(res.first_mismatch["inputs"]) == {p.name for p in inst.inputs}


def test_wrong_golden_models_are_caught_by_the_corners():
    """Plausible wrong models disagree with the RTL on the corner vectors alone: scales read
    as unsigned codes (abc_dot), the unused ternary code read as -1 (ternary_dot)."""
    inst = configure("abc_dot")  # n=64, M=N=2, 8-bit scales (its build is shared)
    x = inst.corners()
    unsigned = {k: (v.astype(np.int64) & 0xFF if k.startswith(("alpha", "beta")) else v)
                for k, v in x.items()}
    wrong = {"dot": abc_dot([unsigned["w0"], unsigned["w1"]], [unsigned["a0"], unsigned["a1"]],
                            [unsigned["alpha0"], unsigned["alpha1"]],
                            [unsigned["beta0"], unsigned["beta1"]], 64)}
    assert simulate(inst, x, expected=wrong).mismatches > 0
    assert simulate(inst, x).mismatches == 0

    inst = configure("ternary_dot", {"n": 8, "weights": "ternary"})
    x = inst.corners()
    # the wrong model: the sign alone decides -1 whatever nz says
    sign = np.unpackbits(to_bytes(x["a_sign"], 8), axis=1, bitorder="little")
    nz = np.unpackbits(to_bytes(x["a_nz"], 8), axis=1, bitorder="little")
    a = np.where(sign == 1, -1, nz)
    wv = ternary_decode(x["w_sign"], x["w_nz"], 8)
    wrong = {"dot": (a.astype(np.int64) * wv).sum(axis=1)}
    assert simulate(inst, x, expected=wrong).mismatches > 0
    assert simulate(inst, x).mismatches == 0


def test_outputs_in_order_and_from_bytes_ports():
    """n > 64: bases travel as byte matrices; outputs come back in order."""
    inst = configure("abc_dot", {"n": 80, "M": 2, "N": 1, "scale_width": 3, "pipeline": 1})
    x = inst.stimulus(2000, seed=9)
    assert x["w0"].dtype == np.uint8 and x["w0"].shape == (2000, 10)
    res = simulate(inst, x, keep_outputs=True)
    assert res.mismatches == 0
    assert np.array_equal(res.outputs["dot"], inst.golden(x)["dot"])


@pytest.mark.parametrize("shapes,width", [(((3, 4), (2, 3)), 8), (((4, 4),), 8), (((2, 5), (3, 2), (2, 2)), 7)])
def test_sum_of_products_exhaustive_in_amaranth_sim(shapes, width):
    """The Baugh-Wooley partial-product sum of ``abc_dot`` on its own, every operand value
    (Amaranth's simulator: a building block, below the unit verified on Verilator)."""
    from amaranth import Module, Signal, signed
    from amaranth.sim import Simulator

    from qrtl.hw.abc_dot import sum_of_products

    m = Module()
    ops = [(Signal(signed(a), name=f"x{i}"), Signal(signed(b), name=f"y{i}"))
           for i, (a, b) in enumerate(shapes)]
    out = sum_of_products(m, ops, width, "sop")
    sigs = [s for pair in ops for s in pair]
    widths = [w for pair in shapes for w in pair]
    points = np.array(list(np.ndindex(*[1 << w for w in widths])), dtype=np.int64)
    values = np.where(points >= (1 << (np.array(widths) - 1)), points - (1 << np.array(widths)), points)
    expect = sum(values[:, 2 * i] * values[:, 2 * i + 1] for i in range(len(shapes)))
    assert np.abs(expect).max() < 1 << (width - 1)
    got = []

    async def bench(ctx):
        for row in values:
            for s, v in zip(sigs, row):
                ctx.set(s, int(v))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert np.array_equal(np.array(got), expect)
    assert len(got) == 2 ** sum(widths)
