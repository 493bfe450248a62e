"""int_mac: golden model against Python integers, RTL against golden (exhaustive 4-bit)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qrtl.golden.intmac import int_mac, mac_chain
from qrtl.golden.errors import QrtlError
from qrtl.hw.intmac import IntMac
from qrtl.hw.reg_intmac import acc_set
from qrtl.hw.units import configure
from qrtl.sim.runner import simulate, verify


def ref(a, b, c, width, signed):
    """Python big-integer reference: the exact sum reduced modulo 2**width."""
    v = (c + a * b) % (1 << width)
    if signed and v >= 1 << (width - 1):
        v -= 1 << width
    return v


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_golden_matches_python_integers(data):
    aw, bw = data.draw(st.integers(2, 32)), data.draw(st.integers(2, 32))
    cw = data.draw(st.integers(2, 64))
    signed = data.draw(st.booleans())
    lo = (lambda w: -(1 << (w - 1))) if signed else (lambda w: 0)
    hi = (lambda w: (1 << (w - 1)) - 1) if signed else (lambda w: (1 << w) - 1)
    a = data.draw(st.integers(lo(aw), hi(aw)))
    b = data.draw(st.integers(lo(bw), hi(bw)))
    c = data.draw(st.integers(lo(cw), hi(cw)))
    dt = np.int64 if signed else np.uint64
    got = int_mac(np.array([a], dt), np.array([b], dt), np.array([c], dt), acc_width=cw,
                  signed=signed)
    assert int(got[0]) == ref(a, b, c, cw, signed)


def test_mac_chain_is_a_dot_product():
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (50, 64))
    b = rng.integers(-128, 128, (50, 64))
    acc0 = rng.integers(-1000, 1000, 50)
    chain = mac_chain(a, b, acc0)
    assert np.array_equal(chain[:, 0], acc0)
    assert np.array_equal(chain[:, -1], acc0 + (a * b).sum(axis=1))
    assert np.array_equal(chain[:, 1:], acc0[:, None] + np.cumsum(a * b, axis=1))


def test_wraps_at_acc_width():
    """The documented wrap-around: 127*127 + (2**15 - 1) in a 16-bit accumulator."""
    got = int_mac(np.array([127]), np.array([127]), np.array([32767]), acc_width=16)
    assert got[0] == 32767 + 127 * 127 - 65536


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(QrtlError, match="acc_width=65"):
        configure("int_mac", {"acc_width": 65})
    with pytest.raises(QrtlError, match="a_width=1 "):
        configure("int_mac", {"a_width": 1})
    with pytest.raises(ValueError, match="b_width=40"):
        IntMac(8, 40)


# RTL: exhaustive for 4-bit operands (every a,b pair times the accumulator set, both
# signednesses, a narrow accumulator so the wrap happens), seeded random for 8-bit.
@pytest.mark.parametrize("params", [
    dict(a_width=4, b_width=4, signed=1), dict(a_width=4, b_width=4, signed=0),
    dict(a_width=4, b_width=4, acc_width=8, signed=1)], ids=str)
def test_rtl_exhaustive_4bit(params):
    inst = configure("int_mac", params)
    res = verify(inst, seed=1)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 256 * len(acc_set(inst.params))


@pytest.mark.parametrize("params", [dict(), dict(signed=0), dict(acc_width=20)], ids=str)
def test_rtl_random_8bit(params):
    inst = configure("int_mac", params)
    res = verify(inst, vectors=300_000, seed=2)
    assert res.mismatches == 0, res.first_mismatch
    assert res.vectors >= 300_000


def test_rtl_mismatch_is_caught():
    inst = configure("int_mac")
    x = inst.stimulus(1000, np.random.default_rng(5))
    exp = inst.golden(x)
    exp["acc_out"] = exp["acc_out"].copy()
    exp["acc_out"][77] ^= 1 << 31
    res = simulate(inst, x, expected=exp)
    assert res.mismatches == 1 and res.first_mismatch["index"] == 77
