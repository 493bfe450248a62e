"""The generic ``pipeline`` parameter, retiming for a clock target, and the stage search:
RTL on Verilator, retimed netlists against the golden model (our gate-level simulation,
Icarus Verilog), their timing against OpenSTA and their area against Yosys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import qrtl
from qrtl.golden.cache import build_root
from qrtl.golden.errors import QrtlError
from qrtl.hw.units import all_units, configure
from qrtl.reports.cost import _balanced, cost_unit, stages_for_clock
from qrtl.reports.energy import cell_models_verilog, simulate_activity
from qrtl.reports.liberty import load_library
from qrtl.reports.retime import (check_outputs, flip_flop_cell, netlist_area,
                                 register_overhead_ns, write_verilog)
from qrtl.reports.synth import _filtered_lib, run_yosys, static_timing

LIB = load_library(None)


def _retimed(unit, params, stages):
    base = configure(unit, {**params, "pipeline": 0})
    inst = configure(unit, {**params, "pipeline": stages})
    syn, nl, period = _balanced(base.verilog(), base.module, LIB, stages, inst.module)
    return inst, syn.netlist(), nl, period


def test_every_unit_has_a_pipeline_parameter():
    for spec in all_units():
        assert any(p.name == "pipeline" for p in spec.params), spec.name
        inst = configure(spec.name, {"pipeline": 2})
        base = configure(spec.name, {"pipeline": 0})
        if spec.retime:  # generic: K output ranks on top of the unit's own latency
            assert inst.latency == base.latency + 2, spec.name
        assert inst.describe()["latency"] == inst.latency
        assert inst.describe()["clock"] == "clk"
    assert {s.name for s in all_units() if not s.retime} == {"xnor_popcount", "fp8_mac"}


@pytest.mark.parametrize("unit,params", [
    ("quant_shift", {"runtime_shift": 1, "bias": 1, "relu": 1, "pipeline": 3}),
    ("int_mac", {"pipeline": 2}),
    ("fp8_dot", {"pipeline": 1}),   # a stateful stream unit: its outputs one cycle later
])
def test_rtl_pipeline_verified_on_verilator(unit, params):
    res = qrtl.verify(qrtl.unit(unit, **params), vectors=3000, seed=5)
    assert res.mismatches == 0 and res.vectors >= 3000


@pytest.mark.parametrize("unit", ["quant_shift", "int_mac", "fp8_mul"])
def test_retimed_netlist_matches_golden_and_the_check_can_fail(unit):
    for k in (1, 3):
        inst, nl0, nl, period = _retimed(unit, {}, k)
        drivers = nl.drivers()   # every output bit that is not a constant is registered
        outs = [n for nets in nl.outputs.values() for n in nets if not isinstance(n, str)]
        assert outs and all(drivers[n][0].cell.sequential for n in outs)
        assert set(nl.inputs) >= {"clk", "rst"}
        x = inst.stimulus(600, 3)
        act = simulate_activity(nl, x, warmup=k, keep_waves=True)
        assert check_outputs(nl, act, inst.golden(x), k) == (0, 600 - k)
        bad, n = check_outputs(nl, act, inst.golden(x), k - 1)   # one cycle early: wrong
        assert bad > n // 10


def test_more_stages_shorten_the_period():
    _, nl0, _, p2 = _retimed("int_mac", {}, 2)
    _, _, _, p6 = _retimed("int_mac", {}, 6)
    d = static_timing(nl0)["delay_ns"]
    assert p6 < p2 < d
    assert p6 >= register_overhead_ns(LIB)


def test_stage_search_is_minimal_and_errors_are_one_line():
    inst = configure("int_mac", {})
    chosen = stages_for_clock(inst, 3.0)
    k = chosen.params["pipeline"]
    assert k >= 1
    assert _retimed("int_mac", {}, k)[3] <= 3.0
    assert _retimed("int_mac", {}, k - 1)[3] > 3.0 if k > 1 else \
        static_timing(_retimed("int_mac", {}, 1)[1])["delay_ns"] > 3.0
    with pytest.raises(QrtlError, match="below a flip-flop's clock-to-Q plus setup"):
        stages_for_clock(inst, 0.2)
    with pytest.raises(QrtlError, match="cannot meet a 0.5 ns clock with at most 8 stages"):
        stages_for_clock(inst, 0.5)
    # a unit already fast enough keeps its configuration
    assert stages_for_clock(configure("quant_shift", {}), 10.0).params["pipeline"] == 0


def test_cost_at_a_clock_target():
    r = cost_unit("int_mac", {}, clock_ns=3.0, clock_target=True, vectors=400)
    assert r.clock_target and r.retimed and r.params["pipeline"] >= 1
    assert r.latency == r.params["pipeline"] and r.slack_ps >= 0
    assert r.gate_check == {"vectors": 400 - r.latency, "mismatches": 0}
    assert r.cells.get(flip_flop_cell(LIB).name, 0) > 0
    assert r.area_um2 == pytest.approx(sum(LIB.cells[c].area * n for c, n in r.cells.items()), rel=1e-6)
    assert r.power_mw == pytest.approx(r.energy_pj_per_op / 3.0, rel=1e-3)
    flat = cost_unit("int_mac", {}, clock_ns=3.0, vectors=400)
    assert not flat.retimed and flat.slack_ps < 0   # the unpipelined unit misses 3 ns
    assert r.area_um2 > flat.area_um2


def test_retimed_netlist_area_agrees_with_yosys():
    """The written netlist, read back by Yosys with the library: same cells, same area."""
    inst, _, nl, _ = _retimed("quant_shift", {"bias": 1}, 3)
    work = build_root() / "test-retime" / inst.module
    work.mkdir(parents=True, exist_ok=True)
    write_verilog(nl, work / "retimed.v")
    lib = os.path.relpath(_filtered_lib(LIB), work)
    run_yosys(work, f"read_liberty -lib {lib}\nread_verilog retimed.v\nhierarchy -top {inst.module}\n"
                    f"tee -q -o stat.txt stat -liberty {lib}\n")
    area = float(re.search(r"Chip area for (?:top )?module '[^']*':\s*([0-9.]+)",
                           (work / "stat.txt").read_text()).group(1))
    assert area == pytest.approx(netlist_area(nl), rel=1e-6)


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog is not installed (apt-get install iverilog)")
def test_retimed_netlist_on_icarus():
    """Event-driven simulation of the written netlist (cell models from the Liberty
    functions) against the golden model, latency included."""
    k = 3
    inst, _, nl, _ = _retimed("quant_shift", {"runtime_shift": 1, "bias": 1}, k)
    work = build_root() / "test-retime-icarus" / inst.module
    work.mkdir(parents=True, exist_ok=True)
    write_verilog(nl, work / "netlist.v")
    (work / "cells.v").write_text(cell_models_verilog(nl))
    n = 500
    x = inst.stimulus(n, 11)
    ins = [p for p in inst.inputs]
    width = sum(p.width for p in ins)
    words = np.zeros(n, dtype=object)
    off = 0
    for p in ins:
        words += (np.asarray(x[p.name]).astype(np.int64) & ((1 << p.width) - 1)).astype(object) << off
        off += p.width
    (work / "in.hex").write_text("\n".join(f"{int(w):x}" for w in words) + "\n")
    out = inst.outputs[0]
    conns = []
    off = 0
    for p in ins:
        conns.append(f".{p.name}(vin[{off + p.width - 1}:{off}])")
        off += p.width
    (work / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0; reg [{width - 1}:0] mem [0:{n - 1}]; reg [{width - 1}:0] vin;
  wire [{out.width - 1}:0] y; integer i, fd;
  {inst.module} dut (.clk(clk), .rst(1'b0), {', '.join(conns)}, .{out.name}(y));
  initial begin
    $readmemh("in.hex", mem); fd = $fopen("out.txt", "w");
    for (i = 0; i < {n + k}; i = i + 1) begin
      vin = mem[i < {n} ? i : {n - 1}]; #4;
      if (i >= {k}) $fdisplay(fd, "%0d", y);
      #1 clk = 1; #5 clk = 0;
    end
    $fclose(fd); $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-o", "sim", "tb.v", "netlist.v", "cells.v"], cwd=work, check=True)
    subprocess.run(["vvp", "-n", "sim"], cwd=work, check=True, capture_output=True)
    got = [int(v) for v in (work / "out.txt").read_text().split()]
    exp = np.asarray(inst.golden(x)[out.name]).astype(np.int64) & ((1 << out.width) - 1)
    # output sampled before the edge of cycle i shows the vector of cycle i - k
    assert got == [int(v) for v in exp[:n]]


@pytest.mark.skipif(shutil.which("sta") is None,
                    reason="OpenSTA is not installed (apt-get install opensta)")
@pytest.mark.parametrize("unit,stages", [("int_mac", 4), ("quant_shift", 2)])
def test_retimed_period_against_opensta(unit, stages):
    """The clock period of a retimed netlist on our timing within 5% of OpenSTA's
    (register-to-register, input-to-register and register-to-output paths, ideal clock,
    the library's default wire-load model on both sides)."""
    inst, _, nl, period = _retimed(unit, {}, stages)
    work = build_root() / "test-retime-sta" / inst.module
    work.mkdir(parents=True, exist_ok=True)
    write_verilog(nl, work / "netlist.v")
    assert LIB.wire_load == "Small"   # OpenSTA applies the file's default_wire_load itself
    (work / "lib.lib").write_text(_filtered_lib(LIB).read_text())
    clock = 20.0
    (work / "run.tcl").write_text(
        f"read_liberty lib.lib\nread_verilog netlist.v\nlink_design {inst.module}\n"
        f"create_clock -period {clock} [get_ports clk]\n"
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]\n"
        "set_output_delay 0 -clock clk [all_outputs]\n"
        "set_input_transition 0.05 [all_inputs]\n"
        f"set_load {nl.output_load()} [all_outputs]\n"
        "report_checks -path_delay max -digits 5\nexit\n")
    out = subprocess.run(["sta", "-no_splash", "-exit", "run.tcl"], cwd=work, capture_output=True,
                         text=True, timeout=600).stdout
    slack = float(re.search(r"^\s*(-?[0-9.]+)\s+slack", out, re.M).group(1))
    assert period == pytest.approx(clock - slack, rel=0.05), out


def test_cli_clock_target(cli):
    code, out, err = cli("cost", "quant_shift", "--clock-ns", "0.9", "--vectors", "300")
    assert code == 0, err
    m = re.search(r"clock target 0.9 ns: pipeline=(\d+) \(latency (\d+), retimed\), slack (\d+) ps", out)
    assert m and int(m.group(1)) >= 1 and m.group(1) == m.group(2), out
    code, _, err = cli("cost", "quant_shift", "--clock-ns", "0.1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "clock-to-Q" in err


def test_a_gate_level_mismatch_is_never_skipped(monkeypatch):
    """Fault injection: batch jobs may skip a configuration a stream does not fit, never
    one whose netlist disagrees with the golden model."""
    from qrtl.reports import cost as cost_mod
    monkeypatch.setattr(cost_mod, "check_outputs", lambda nl, act, exp, lat: (3, 30))
    with pytest.raises(cost_mod.NetlistMismatch, match="differs from the golden model on 3 of 30"):
        cost_mod._cost_job(("quant_shift", {"out_width": 5}, None, "random", 37, None, True))
