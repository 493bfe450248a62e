"""Exhaustive verification (``qrtl sim --exhaustive``): the counter over the input space,
slices over processes, the record, a bug found with its inputs; and the fast golden paths
that make it affordable, against the integer models they replace."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import qrtl
from qrtl.golden import fp8
from qrtl.golden.errors import QrtlError
from qrtl.golden.formats import ELEMENT_FORMATS, get_format
from qrtl.hw.reg_fp8 import acc_values, all_pairs
from qrtl.hw.units import configure
from qrtl.sim.harness import counter_inputs
from qrtl.sim.runner import exhaustive, input_bits, simulate

# a hand-written 8-bit adder that is wrong for one input pair (a = 17, b = 201)
BUGGY_ADD8 = """module add8_bug (
  input  wire [7:0] a,
  input  wire [7:0] b,
  output wire [8:0] s
);
  assign s = a + b + ((a == 8'd17 && b == 8'd201) ? 9'd1 : 9'd0);
endmodule
"""


def add8(x):
    return {"s": np.asarray(x["a"]).astype(np.int64) + np.asarray(x["b"]).astype(np.int64)}


def test_counter_inputs_are_bit_fields_of_the_index():
    inst = configure("fp8_mac", {"fmt": "e5m2"})
    assert input_bits(inst) == 32
    idx = np.array([0, 1, 255, 256, 0x1234_5678, 2**32 - 1], np.uint64)
    x = counter_inputs(inst, 0, 1)
    assert set(x) == {"a", "b", "acc_in"}
    for i in idx:
        x = counter_inputs(inst, int(i), int(i) + 1)
        assert (int(x["a"][0]), int(x["b"][0]), int(x["acc_in"][0])) == \
            (int(i) & 0xFF, (int(i) >> 8) & 0xFF, int(i) >> 16)


@pytest.mark.parametrize("fmt", ["e4m3", "e2m1"])
def test_exhaustive_fp8_mul_over_two_processes(fmt):
    inst = configure("fp8_mul", {"fmt": fmt})
    seen = []
    res = qrtl.verify(inst, exhaustive=True, jobs=2, progress=lambda done, total: seen.append((done, total)))
    n = 1 << (2 * get_format(fmt).width)
    assert res.vectors == n and res.mismatches == 0 and res.first_mismatch is None
    assert seen and seen[-1] == (n, n)


def test_exhaustive_finds_an_injected_bug_with_its_inputs(tmp_path):
    (tmp_path / "add8_bug.v").write_text(BUGGY_ADD8)
    u = qrtl.unit_from_verilog(tmp_path / "add8_bug.v", "add8_bug", golden=add8)
    res = exhaustive(u, jobs=2)
    assert res.vectors == 65536 and res.mismatches == 1
    m = res.first_mismatch
    assert m["index"] == 17 + (201 << 8)  # in the second process's slice
    assert m["inputs"] == {"a": "17 (0x11)", "b": "201 (0xc9)"}
    assert m["expected"] == {"s": "218 (0x0da)"} and m["actual"] == {"s": "219 (0x0db)"}


def test_file_mode_slices_keep_order_and_the_mismatch_index():
    """Random vectors over two processes (several batches each): outputs in input order,
    the first mismatch counted from the start of the whole run."""
    inst = configure("xnor_popcount", {"n": 33, "pipeline": 2})
    x = inst.stimulus(700_000, np.random.default_rng(4))
    expected = inst.golden(x)
    expected["dot"] = expected["dot"].copy()
    expected["dot"][[500_001, 600_000]] += 2
    res = simulate(inst, x, expected=expected, keep_outputs=True, jobs=2)
    assert res.vectors == 700_000 and res.mismatches == 2
    assert res.first_mismatch["index"] == 500_001
    assert np.array_equal(res.outputs["dot"], inst.golden(x)["dot"])


def test_exhaustive_refuses_big_or_stateful_units():
    with pytest.raises(QrtlError, match=r"2\^48 = 281,474,976,710,656 vectors"):
        exhaustive(configure("fp8_mac", {"rounding": "stochastic"}))
    with pytest.raises(QrtlError, match="stateful"):
        exhaustive(configure("fp8_dot", {}))


def test_cli_exhaustive_records_the_run(cli, tmp_path):
    rec = tmp_path / "exhaustive.csv"
    code, out, _ = cli("sim", "fp8_mul", "-p", "fmt=e5m2", "--exhaustive", "-j", "2",
                       "--record", str(rec), "--no-progress")
    assert code == 0 and "65,536 vectors (every input)" in out and "0 mismatch(es)" in out
    with rec.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["unit"] == "fp8_mul" and rows[0]["vectors"] == "65536"
    assert rows[0]["params"] == "fmt=e5m2 pipeline=0" and rows[0]["mismatches"] == "0"
    assert rows[0]["date"] and rows[0]["commit"]
    code, out, err = cli("sim", "fp8_mac", "-p", "rounding=stochastic", "--exhaustive")
    assert code != 0 and "2^48" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("sim", "fp8_mul", "--record", str(rec))
    assert code != 0 and "--record goes with --exhaustive" in err
    code, out, _ = cli("sim", "fp8_mul", "--exhaustive", "--json")
    assert code == 0 and json.loads(out)["vectors"] == 65536


# --- the fast golden paths against the integer models ------------------------------------------

@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_mac_binary16_fast_path_equals_the_integer_model(fmt, saturate):
    """Every (a, b) pair against 64 chosen accumulators, and every accumulator code
    against 64 random pairs (8.4M vectors): the float64 path (used for acc=fp16, RNE) is
    bit-identical to the integer-significand model used for every other configuration."""
    f, fa = get_format(fmt), get_format("fp16")
    assert fp8._mac_float64_exact(f, fa)
    a, b = all_pairs()
    acc = acc_values("fp16", fmt, 64)
    rng = np.random.default_rng(0)
    pa, pb = rng.integers(0, 256, 64, dtype=np.uint64), rng.integers(0, 256, 64, dtype=np.uint64)
    x = {"a": np.concatenate([np.repeat(a, 64), np.repeat(pa, 65536)]),
         "b": np.concatenate([np.repeat(b, 64), np.repeat(pb, 65536)]),
         "c": np.concatenate([np.tile(acc, 65536), np.tile(np.arange(65536, dtype=np.uint64), 64)])}
    fast = fp8.fp8_mac(x["a"], x["b"], x["c"], fmt=fmt, acc="fp16", saturate=saturate)
    for lo in range(0, len(fast), 1 << 20):
        s = slice(lo, lo + (1 << 20))
        ref = fp8.fp_add(fp8.product(fp8.unpack(x["a"][s], f), fp8.unpack(x["b"][s], f)),
                         fp8.unpack(x["c"][s], fa), fa, "rne", None, 16, bool(saturate))
        assert np.array_equal(fast[s], ref), lo


def test_mac_fast_path_only_where_exact():
    fp16 = get_format("fp16")
    assert all(fp8._mac_float64_exact(get_format(f), fp16) for f in ELEMENT_FORMATS)
    for acc in ("bf16", "e6m9", "fp32"):  # not binary16: the integer model
        assert not fp8._mac_float64_exact(get_format("e4m3"), get_format(acc))


@pytest.mark.parametrize("fmt", ELEMENT_FORMATS)
def test_mul_table_equals_the_integer_model(fmt):
    w = get_format(fmt).width
    a, b = all_pairs(1 << w)
    assert np.array_equal(fp8.fp8_mul(a, b, fmt), fp8._fp8_mul_codes(a, b, fmt))
    # codes are taken modulo 2^width, as the integer model does
    assert np.array_equal(fp8.fp8_mul(a + (1 << w), b, fmt), fp8._fp8_mul_codes(a + (1 << w), b, fmt))
