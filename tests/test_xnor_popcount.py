"""xnor_popcount: golden model against the {-1,+1} dot product, RTL against golden."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden.bits import from_bytes, to_bytes
from qrtl.golden.xnor import xnor_popcount
from qrtl.hw.units import configure
from qrtl.hw.xnor_popcount import XnorPopcount, _levels
from qrtl.sim.runner import simulate, verify


def pm1(bits_bytes, n):
    """{-1,+1} float vectors from a packed byte matrix."""
    bits = np.unpackbits(bits_bytes, axis=1, bitorder="little")[:, :n]
    return bits.astype(np.float64) * 2 - 1


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 100, 256, 1024, 4096])
def test_golden_matches_float_dot_product(n):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 256, (500, (n + 7) // 8), dtype=np.uint8)
    w = rng.integers(0, 256, (500, (n + 7) // 8), dtype=np.uint8)
    a, w = to_bytes(a, n), to_bytes(w, n)
    ref = (pm1(a, n) * pm1(w, n)).sum(axis=1)
    if n <= 64:  # the int representation must give the same answer
        a_i, w_i = from_bytes(a, n, False), from_bytes(w, n, False)
        assert np.array_equal(xnor_popcount(a_i, w_i, n), ref)
    assert np.array_equal(xnor_popcount(a, w, n), ref)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n), st.integers(-n - 2, n + 2))))
def test_golden_threshold_property(case):
    n, a, w, thr = case
    ab = np.packbits(np.array(a, np.uint8), bitorder="little")[None, :]
    wb = np.packbits(np.array(w, np.uint8), bitorder="little")[None, :]
    dot, y = xnor_popcount(ab, wb, n, np.array([thr]))
    ref = sum((1 if x else -1) * (1 if v else -1) for x, v in zip(a, w))
    assert dot[0] == ref and y[0] == (ref >= thr)


def test_tree_is_logarithmic():
    """The Wallace tree needs O(log n) levels, far fewer than the n-1 of a chain."""
    # Wallace reduction: rows shrink by ~3/2 per level, so levels ~ log_1.5(n / 2).
    assert [_levels(n) for n in (1, 2, 3, 7, 64, 1024, 4096)] == [0, 0, 1, 3, 7, 14, 17]


def test_constructor_validates():
    with pytest.raises(ValueError, match="n=0"):
        XnorPopcount(0)
    with pytest.raises(ValueError, match="popcount"):
        XnorPopcount(8, popcount="magic")


# RTL on Verilator. Every n of the issue, both output sets; every pipeline depth on n=64
# with the threshold path; the naive chain too (it is the area/depth baseline).
RTL_CASES = (
    [dict(n=n, threshold=t) for n in (1, 7, 64, 256, 1024) for t in (0, 1)]
    + [dict(n=64, pipeline=p, threshold=1) for p in range(1, 9)]
    + [dict(n=7, pipeline=2, threshold=1), dict(n=1024, pipeline=3), dict(n=63, threshold=1)]
    + [dict(n=7, popcount="naive", threshold=1), dict(n=64, popcount="naive")]
)


@pytest.mark.parametrize("params", RTL_CASES, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_rtl_matches_golden(params):
    inst = configure("xnor_popcount", params)
    vectors = 200_000 if inst.params["n"] <= 64 else 20_000
    res = verify(inst, vectors=vectors, seed=1)
    assert res.mismatches == 0, res.first_mismatch
    exhaustive = inst.exhaustive()
    if exhaustive is not None:  # n <= 8: every (a, w) pair (and threshold) was checked
        assert res.vectors >= len(exhaustive["a"])
    else:
        assert res.vectors >= vectors


def test_rtl_mismatch_is_reported():
    """A wrong reference must be caught, at the right vector, with its values."""
    inst = configure("xnor_popcount", {"n": 16})
    x = inst.stimulus(5000, np.random.default_rng(3))
    expected = inst.golden(x)
    expected["dot"] = expected["dot"].copy()
    expected["dot"][1234] += 2
    res = simulate(inst, x, expected=expected)
    assert res.mismatches == 1
    m = res.first_mismatch
    assert m["index"] == 1234
    assert m["expected"]["dot"] != m["actual"]["dot"]
    assert set(m["inputs"]) == {"a", "w"}


def test_outputs_are_returned_in_order():
    inst = configure("xnor_popcount", {"n": 33, "pipeline": 2})
    x = inst.stimulus(70_000, np.random.default_rng(4))  # more than one batch of words
    res = simulate(inst, x, keep_outputs=True)
    assert np.array_equal(res.outputs["dot"], xnor_popcount(x["a"], x["w"], 33))
