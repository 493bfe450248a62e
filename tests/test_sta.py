"""Static timing: hand-computed paths through the Liberty tables, and OpenSTA on every
default combinational unit."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from qrtl.golden.cache import build_root
from qrtl.hw.units import all_units, configure
from qrtl.reports.liberty import load_library, sky130_path
from qrtl.reports.synth import INPUT_SLEW_NS, Inst, Netlist, _filtered_lib, static_timing, synthesize

LIB = load_library(wire_load="none")   # hand computations: pin capacitances only
S = INPUT_SLEW_NS


def cell(name):
    return LIB.cells[f"sky130_fd_sc_hd__{name}"]


def arc(cell_name, pin, related, sense=None):
    """The timing arc of ``cell.pin`` from ``related`` (with that timing sense)."""
    arcs = [a for a in cell(cell_name).pins[pin].timing if a.related_pin == related
            and (sense is None or a.timing_sense == sense)]
    assert len(arcs) == 1, (cell_name, pin, related, sense, len(arcs))
    return arcs[0]


def cap(cell_name, pin):
    return cell(cell_name).pins[pin].capacitance


def test_inverter_into_nand_by_hand():
    """a -> inv -> n1 -> nand2.A, b -> nand2.B, nand2.Y -> output y."""
    nl = Netlist("t", {"a": [1], "b": [2]}, {"y": [4]},
                 [Inst("u1", cell("inv_1"), {"A": 1, "Y": 3}),
                  Inst("u2", cell("nand2_1"), {"A": 3, "B": 2, "Y": 4})], {}, LIB)
    c_n1, c_y = cap("nand2_1", "A"), nl.output_load()
    inv = arc("inv_1", "Y", "A")
    assert inv.timing_sense == "negative_unate"
    # n1 rises when a falls, falls when a rises (both inputs switch at 0 with slew S)
    n1_rise, n1_rise_slew = inv.cell_rise.at(S, c_n1), inv.rise_transition.at(S, c_n1)
    n1_fall, n1_fall_slew = inv.cell_fall.at(S, c_n1), inv.fall_transition.at(S, c_n1)
    na, nb = arc("nand2_1", "Y", "A"), arc("nand2_1", "Y", "B")
    assert na.timing_sense == nb.timing_sense == "negative_unate"
    y_rise = max(n1_fall + na.cell_rise.at(n1_fall_slew, c_y), nb.cell_rise.at(S, c_y))
    y_fall = max(n1_rise + na.cell_fall.at(n1_rise_slew, c_y), nb.cell_fall.at(S, c_y))
    sta = static_timing(nl)
    assert sta["delay_ns"] == pytest.approx(max(y_rise, y_fall), abs=1e-12)
    assert sta["transition"] == ("rise" if y_rise > y_fall else "fall")
    assert sta["endpoint"] == "output y[0]" and sta["in2out_ns"] == sta["delay_ns"]
    assert sta["reg2reg_ns"] is None and sta["in2reg_ns"] is None
    # the old rule (the worst of rise and fall at every node) is more pessimistic here
    worst = max(inv.cell_rise.at(S, c_n1), inv.cell_fall.at(S, c_n1))
    slew = max(n1_rise_slew, n1_fall_slew)
    old = worst + max(na.cell_rise.at(slew, c_y), na.cell_fall.at(slew, c_y))
    assert old > sta["delay_ns"]


def test_xor_unate_arcs_by_hand():
    """xor2: per input one positive-unate and one negative-unate arc (by the other input's
    state); a rising output can come from either transition of either input."""
    nl = Netlist("t", {"a": [1], "b": [2]}, {"y": [3]},
                 [Inst("u1", cell("xor2_1"), {"A": 1, "B": 2, "X": 3})], {}, LIB)
    c_y = nl.output_load()
    out = {"rise": 0.0, "fall": 0.0}
    for related in ("A", "B"):
        for sense in ("positive_unate", "negative_unate"):
            a = arc("xor2_1", "X", related, sense)
            out["rise"] = max(out["rise"], a.cell_rise.at(S, c_y))
            out["fall"] = max(out["fall"], a.cell_fall.at(S, c_y))
    assert static_timing(nl)["delay_ns"] == pytest.approx(max(out.values()), abs=1e-12)


def test_register_paths_by_hand():
    """clk -> ff1.Q -> inv -> ff2.D: register to register is clock-to-Q, the inverter and
    ff2's setup for the matching data transition; input d -> ff1.D and ff2.Q -> q too."""
    ff = "dfxtp_1"
    nl = Netlist("t", {"clk": [1], "d": [2]}, {"q": [5]},
                 [Inst("f1", cell(ff), {"CLK": 1, "D": 2, "Q": 3}),
                  Inst("u1", cell("inv_1"), {"A": 3, "Y": 4}),
                  Inst("f2", cell(ff), {"CLK": 1, "D": 4, "Q": 5})], {}, LIB)
    c_q1, c_d2, c_out = cap("inv_1", "A"), cap(ff, "D"), nl.output_load()
    ck = [a for a in cell(ff).pins["Q"].timing if a.timing_type == "rising_edge"][0]
    setup = [a for a in cell(ff).pins["D"].timing if a.timing_type.startswith("setup")][0]
    inv = arc("inv_1", "Y", "A")
    q_rise, q_rise_s = ck.cell_rise.at(S, c_q1), ck.rise_transition.at(S, c_q1)
    q_fall, q_fall_s = ck.cell_fall.at(S, c_q1), ck.fall_transition.at(S, c_q1)
    d_fall = q_rise + inv.cell_fall.at(q_rise_s, c_d2)     # Q rises -> D2 falls
    d_fall_s = inv.fall_transition.at(q_rise_s, c_d2)
    d_rise = q_fall + inv.cell_rise.at(q_fall_s, c_d2)
    d_rise_s = inv.rise_transition.at(q_fall_s, c_d2)
    reg2reg = max(d_fall + setup.fall_constraint.at(d_fall_s, 0.0, S),
                  d_rise + setup.rise_constraint.at(d_rise_s, 0.0, S))
    in2reg = max(setup.fall_constraint.at(S, 0.0, S), setup.rise_constraint.at(S, 0.0, S))
    reg2out = max(ck.cell_rise.at(S, c_out), ck.cell_fall.at(S, c_out))
    sta = static_timing(nl)
    assert sta["reg2reg_ns"] == pytest.approx(reg2reg, abs=1e-12)
    assert sta["in2reg_ns"] == pytest.approx(in2reg, abs=1e-12)
    assert sta["reg2out_ns"] == pytest.approx(reg2out, abs=1e-12)
    assert sta["in2out_ns"] is None
    assert sta["delay_ns"] == pytest.approx(max(reg2reg, in2reg, reg2out), abs=1e-12)
    assert sta["endpoint"] == "f2.D"


# --- OpenSTA ------------------------------------------------------------------------------

def _opensta_arrival(netlist_v, module, lib_path, load, tag: str) -> float:
    # one folder per (library, wire load, module): the parametrized runs go in parallel
    work = build_root() / "test-sta" / tag / module
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.tcl").write_text(
        f"read_liberty {lib_path}\nread_verilog {netlist_v}\nlink_design {module}\n"
        f"set_input_transition {INPUT_SLEW_NS} [all_inputs]\nset_load {load} [all_outputs]\n"
        "report_checks -unconstrained -path_delay max -digits 5\nexit\n")
    out = subprocess.run(["sta", "-no_splash", "-exit", str(work / "run.tcl")], capture_output=True,
                         text=True, timeout=600).stdout
    return float(re.search(r"^\s*([0-9.]+)\s+data arrival time", out, re.M).group(1))


LIBRARIES = [None] + ([str(sky130_path())] if sky130_path() else [])


@pytest.mark.skipif(shutil.which("sta") is None,
                    reason="OpenSTA is not installed (apt-get install opensta)")
@pytest.mark.parametrize("wire_load", ["none", "default"])
@pytest.mark.parametrize("liberty", LIBRARIES, ids=["built-in", "sky130hd"][:len(LIBRARIES)])
def test_against_opensta(liberty, wire_load):
    """Every default combinational unit and the configurations of the headline: our
    critical path within 3% of OpenSTA's on the same netlist, library, input slew and
    output load, without wire load on both sides; and within 5% with the library's
    default wire-load model on both (OpenSTA applies ``default_wire_load`` itself, and
    the wire resistance we leave out)."""
    lib = load_library(liberty, wire_load=wire_load)
    usable = _filtered_lib(lib)
    if wire_load == "none":
        sta_lib = build_root() / "test-sta" / f"{lib.sha256[:12]}-no-wire-load.lib"
        sta_lib.parent.mkdir(parents=True, exist_ok=True)
        sta_lib.write_text("\n".join(line for line in usable.read_text().splitlines()
                                     if "default_wire_load" not in line))
    else:
        assert lib.wire_load == "Small"
        sta_lib = usable
    configs = [(u.name, {}) for u in all_units()] + [
        ("xnor_popcount", {"n": 256}), ("quant_shift", {"bias": 1, "relu": 1}),
        ("quant_shift", {"runtime_shift": 1, "bias": 1}), ("fp8_mac", {"acc": "fp32"})]
    checked = []
    for name, params in configs:
        u = configure(name, params)
        if u.latency:
            continue
        syn = synthesize(u.verilog(), u.module, lib)
        nl = syn.netlist()
        ours = static_timing(nl)["delay_ns"]
        theirs = _opensta_arrival(syn.netlist_v, u.module, sta_lib, nl.output_load(),
                                  f"{lib.sha256[:12]}-{wire_load}")
        checked.append((u.module, ours, theirs))
        # with wire load, OpenSTA also charges the wire resistance (balanced tree) that we
        # leave out: a few ps per net, up to ~4% on the deepest paths
        assert ours == pytest.approx(theirs, rel=0.03 if wire_load == "none" else 0.05), \
            (u.module, ours, theirs)
    assert len(checked) >= 8
