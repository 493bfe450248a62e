"""The cost model: Liberty reading, synthesis, activity (cross-checked on Verilator),
energy (hand-computed on a tiny library), the default library against SkyWater 130, CLI."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from qrtl.hw.units import all_units, configure
from qrtl.reports.cost import JSON_KEYS, cost_unit
from qrtl.reports.energy import (energy_from_activity, pin_energies, simulate_activity,
                            verilator_toggles)
from qrtl.reports.horowitz import ANCHORS, horowitz
from qrtl.reports.liberty import (default_library_path, function_to_python, load_library,
                             sky130_path)
from qrtl.reports.synth import logic_depth, static_timing, synthesize
from qrtl.golden.cache import build_root
from qrtl.golden.errors import QrtlError
from qrtl.sim.toolchain import setup_verilator

SKY130 = sky130_path()
needs_sky130 = pytest.mark.skipif(SKY130 is None, reason="SkyWater 130 Liberty file not present "
                                  "(../shared/liberty/sky130hd_tt.lib.gz or $QRTL_SKY130)")

# --- a tiny library whose numbers make the hand calculation exact ---------------------
# Tables are 2x2 and linear in the load (and constant in slew), so bilinear interpolation
# at any load gives exactly  a + b * load.
V = 1.2
CAP = {"A": 0.002, "B": 0.003}              # XOR2 input pin capacitances (pF)
INV_CAP = 0.0015                             # INV input (the reference inverter)
XOR_RISE = {"A": (0.010, 0.5), "B": (0.014, 0.25)}   # E = a + b * load (pJ), per related pin
XOR_FALL = {"A": (0.004, 0.1), "B": (0.002, 0.3)}
XOR_IN = {"A": (0.0011, 0.0003), "B": (0.0007, 0.0005)}  # input pin (rise, fall) pJ
XOR_LEAK = 2.5                               # nW


def _tab(kind, name, a, b):
    # values[i][j] at slew index i, load index j: a + b * load
    loads = (0.0, 0.1)
    row = ", ".join(f"{a + b * ld:.10g}" for ld in loads)
    return f"""{kind} ("{name}") {{ index_1("0.01, 1.0"); index_2("0.0, 0.1"); values("{row}", "{row}"); }}"""


def _in_power(rise, fall):
    return f"""internal_power () {{ rise_power ("in1") {{ index_1("0.01, 1.0"); values("{rise}, {rise}"); }}
                 fall_power ("in1") {{ index_1("0.01, 1.0"); values("{fall}, {fall}"); }} }}"""


def _timing(rel):
    return f"""timing () {{ related_pin : "{rel}"; timing_sense : non_unate;
      {_tab("cell_rise", "del", 0.05, 1.0)} {_tab("cell_fall", "del", 0.04, 1.0)}
      {_tab("rise_transition", "del", 0.03, 2.0)} {_tab("fall_transition", "del", 0.03, 2.0)} }}"""


def tiny_liberty() -> str:
    """A four-cell library (INV, BUF, NAND2, XOR2) in pJ/pF/ns/nW units at 1.2 V."""
    xor_power = "\n".join(
        f"""internal_power () {{ related_pin : "{p}";
              {_tab("rise_power", "pw", *XOR_RISE[p])} {_tab("fall_power", "pw", *XOR_FALL[p])} }}"""
        for p in ("A", "B"))
    simple = ""
    for name, fn, area in (("INV", "!A", 1.0), ("BUF", "A", 2.0)):
        simple += f"""cell ("{name}") {{ area : {area}; cell_leakage_power : 1.0;
      pin ("A") {{ direction : input; capacitance : {INV_CAP}; }}
      pin ("Y") {{ direction : output; function : "{fn}"; {_timing("A")} }} }}
"""
    return f"""library ("tiny") {{
  time_unit : "1ns"; voltage_unit : "1V"; leakage_power_unit : "1nW";
  capacitive_load_unit (1, pf); current_unit : "1mA"; pulling_resistance_unit : "1kohm";
  nom_voltage : {V}; nom_process : 1; nom_temperature : 25;
  operating_conditions ("typ") {{ voltage : {V}; process : 1; temperature : 25; }}
  default_operating_conditions : "typ";
  lu_table_template ("del") {{ variable_1 : input_net_transition; variable_2 : total_output_net_capacitance;
      index_1("0.01, 1.0"); index_2("0.0, 0.1"); }}
  power_lut_template ("pw") {{ variable_1 : input_transition_time; variable_2 : total_output_net_capacitance;
      index_1("0.01, 1.0"); index_2("0.0, 0.1"); }}
  power_lut_template ("in1") {{ variable_1 : input_transition_time; index_1("0.01, 1.0"); }}
  {simple}
  cell ("NAND2") {{ area : 3.0; cell_leakage_power : 1.5;
      pin ("A") {{ direction : input; capacitance : 0.002; }}
      pin ("B") {{ direction : input; capacitance : 0.002; }}
      pin ("Y") {{ direction : output; function : "!(A&B)"; {_timing("A")} {_timing("B")} }} }}
  cell ("XOR2") {{ area : 4.0; cell_leakage_power : {XOR_LEAK};
      pin ("A") {{ direction : input; capacitance : {CAP["A"]}; {_in_power(*XOR_IN["A"])} }}
      pin ("B") {{ direction : input; capacitance : {CAP["B"]}; {_in_power(*XOR_IN["B"])} }}
      pin ("Y") {{ direction : output; function : "(A&!B) | (!A&B)"; {xor_power}
                  {_timing("A")} {_timing("B")} }} }}
  cell ("tapcell_x") {{ area : 1.0; }}
}}
"""


XOR_V = """module xor1 (input wire a, input wire b, output wire y);
  assign y = a ^ b;
endmodule
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("lib") / "tiny.lib"
    path.write_text(tiny_liberty())
    return load_library(path)


# --- Liberty -------------------------------------------------------------------------

def test_liberty_units_cells_and_exclusions(tiny):
    assert tiny.voltage == V and tiny.corner == "typ"
    x = tiny.cells["XOR2"]
    assert x.area == 4.0 and x.leakage_nw == XOR_LEAK
    assert x.pins["A"].capacitance == CAP["A"] and x.pins["Y"].function == "(A&!B) | (!A&B)"
    assert tiny.cells["tapcell_x"].dont_use and not x.dont_use
    assert tiny.reference_inverter().name == "INV"
    a, b = XOR_RISE["A"]
    assert x.pins["Y"].power[0].rise.at(0.3, 0.037) == pytest.approx(a + b * 0.037, abs=1e-15)


def test_liberty_gzip_equals_plain(tmp_path):
    src = default_library_path()
    gz = tmp_path / "d.lib.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(src.read_bytes())
    plain, zipped = load_library(src), load_library(gz)
    assert plain.name == zipped.name and set(plain.cells) == set(zipped.cells)
    for name, c in plain.cells.items():
        z = zipped.cells[name]
        assert (c.area, c.leakage_nw) == (z.area, z.leakage_nw)
        assert {p.name: p.capacitance for p in c.pins.values()} == \
            {p.name: p.capacitance for p in z.pins.values()}


def test_default_library_has_the_issue_cell_set():
    lib = load_library()
    funcs = {c.name.split("__")[-1].rsplit("_", 1)[0] for c in lib.usable().values()}
    for needed in ("inv", "buf", "nand2", "nand3", "nor2", "nor3", "and2", "and3", "or2", "or3",
                   "xor2", "xnor2", "a21oi", "o21ai", "mux2", "maj3", "fa", "ha", "dfxtp"):
        assert needed in funcs
    assert "sky130_fd_sc_hd" in default_library_path().read_text()[:2000]
    assert lib.corner == "tt_025C_1v80" and lib.voltage == 1.8


@needs_sky130
def test_sky130_exclusions():
    lib = load_library(SKY130)
    bad = [n for n, c in lib.usable().items()
           if any(s in n for s in ("lpflow", "probe", "tap", "fill", "decap", "diode", "clkbuf", "dlx"))]
    assert not bad
    assert lib.cells["sky130_fd_sc_hd__dlxtp_1"].dont_use      # a latch
    assert lib.cells["sky130_fd_sc_hd__lpflow_inputiso1p_1"].dont_use
    assert not lib.cells["sky130_fd_sc_hd__nand2_1"].dont_use


@pytest.mark.parametrize("expr,truth", [
    ("!A", lambda a, b, c: 1 - a),
    ("A B + C", lambda a, b, c: (a & b) | c),
    ("A' ^ B", lambda a, b, c: (1 - a) ^ b),
    ("!((A1&A2) | B1)".replace("A1", "A").replace("A2", "B").replace("B1", "C"),
     lambda a, b, c: 1 - ((a & b) | c)),
    ("A*B|!C", lambda a, b, c: (a & b) | (1 - c)),
])
def test_function_parser(expr, truth):
    fn = eval(f"lambda A, B, C, M: {function_to_python(expr, {'A': 'A', 'B': 'B', 'C': 'C'})}")
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                assert fn(a, b, c, 1) == truth(a, b, c)


# --- energy: hand calculation on one XOR ---------------------------------------------

def test_single_xor_energy_matches_hand_calculation(tiny):
    syn = synthesize(XOR_V, "xor1", tiny)
    nl = syn.netlist()
    assert syn.cells == {"XOR2": 1} and syn.area_um2 == 4.0
    n = 64
    a = np.arange(n) % 2                      # 0101...: toggles every vector
    b = (np.arange(n) // 2) % 2               # 0011...: toggles every second vector
    act = simulate_activity(nl, {"a": a.astype(np.uint64), "b": b.astype(np.uint64)})
    y = a ^ b
    ops = n - 1                               # transitions v0->v1 ... v62->v63
    assert act.ops == ops

    def rf(sig):
        d = np.diff(sig)
        return int((d == 1).sum()), int((d == -1).sum())
    ra, fa = rf(a)
    rb, fb = rf(b)
    ry, fy = rf(y)
    clock_ns = 5.0
    e = energy_from_activity(nl, act, clock_ns)
    c_y = INV_CAP                              # the primary output drives one reference inverter
    switching = 0.5 * V * V * ((ra + fa) * CAP["A"] + (rb + fb) * CAP["B"] + (ry + fy) * c_y)
    e_rise = (XOR_RISE["A"][0] + XOR_RISE["A"][1] * c_y + XOR_RISE["B"][0] + XOR_RISE["B"][1] * c_y) / 2
    e_fall = (XOR_FALL["A"][0] + XOR_FALL["A"][1] * c_y + XOR_FALL["B"][0] + XOR_FALL["B"][1] * c_y) / 2
    internal = (ry * e_rise + fy * e_fall + ra * XOR_IN["A"][0] + fa * XOR_IN["A"][1]
                + rb * XOR_IN["B"][0] + fb * XOR_IN["B"][1])
    assert e["switching"] == pytest.approx(switching / ops, rel=1e-12)
    assert e["internal"] == pytest.approx(internal / ops, rel=1e-12)
    assert e["leakage"] == pytest.approx(XOR_LEAK * clock_ns * 1e-6, rel=1e-12)
    assert e["total"] == pytest.approx(e["switching"] + e["internal"] + e["leakage"], rel=1e-12)
    # timing: one arc, load = c_y, input slew 0.05 (constant in slew): 0.05 + 1.0 * c_y
    assert static_timing(nl)["delay_ns"] == pytest.approx(0.05 + c_y, rel=1e-12)
    assert logic_depth(nl) == 1


# --- energy: constant stimulus, linearity --------------------------------------------

@pytest.fixture(scope="module")
def xnor8():
    inst = configure("xnor_popcount", {"n": 8})
    syn = synthesize(inst.verilog(), inst.module)
    return inst, syn.netlist()


def test_constant_stimulus_gives_zero_dynamic_energy(xnor8):
    inst, nl = xnor8
    x = {k: np.repeat(v[:1], 200, axis=0) for k, v in inst.stimulus(1, np.random.default_rng(3)).items()}
    act = simulate_activity(nl, x)
    e = energy_from_activity(nl, act, 10.0)
    assert e["internal"] == 0.0 and e["switching"] == 0.0 and e["leakage"] > 0


def test_constant_stimulus_pipelined_leaves_only_the_clock():
    inst = configure("xnor_popcount", {"n": 8, "pipeline": 1})
    nl = synthesize(inst.verilog(), inst.module).netlist()
    x = {k: np.repeat(v[:1], 100, axis=0) for k, v in inst.stimulus(1, np.random.default_rng(4)).items()}
    act = simulate_activity(nl, x, warmup=inst.latency)
    assert act.clock is not None
    assert all(act.toggles(n) == 0 for n in act.rises if n != act.clock)
    e = energy_from_activity(nl, act, 10.0)
    # the clock alone: its net (2 toggles per cycle) and the flip-flops' clock pins
    loads = nl.loads()
    clk_sw = 2 * 0.5 * loads[act.clock] * nl.lib.voltage ** 2
    clk_int = sum(sum(pin_energies(p, 0.0)) for f in nl.flops for p in f.cell.inputs if p.clock)
    assert e["switching"] == pytest.approx(clk_sw, rel=1e-12)
    assert e["internal"] == pytest.approx(clk_int, rel=1e-12)


def test_energy_is_linear_in_toggle_rate(xnor8):
    inst, nl = xnor8
    pair = inst.stimulus(2, np.random.default_rng(5))
    ops = 400
    energies = []
    for flips in (50, 100, 200):
        # vector index: 0 until the sequence has flipped `flips` times, alternating X0/X1 (an
        # even number of flips, so rises and falls balance), then held
        idx = np.zeros(ops + 1, dtype=int)
        idx[1:flips + 1] = np.arange(1, flips + 1) % 2
        x = {k: v[idx] for k, v in pair.items()}
        act = simulate_activity(nl, x)
        assert act.ops == ops
        e = energy_from_activity(nl, act, 10.0)
        energies.append(e["internal"] + e["switching"])
    assert energies[0] > 0
    assert energies[1] == pytest.approx(2 * energies[0], rel=1e-9)
    assert energies[2] == pytest.approx(4 * energies[0], rel=1e-9)


# --- activity cross-checked on Verilator (same netlist, same window) ------------------

ACC_V = """module acc8 (input wire clk, input wire rst, input wire en, input wire [3:0] a,
                    input wire [3:0] b, output reg [7:0] acc, output reg [3:0] d);
  always @(posedge clk) begin
    if (rst) begin acc <= 8'd0; d <= 4'd0; end
    else begin
      if (en) acc <= acc + a * b;   // state feedback through an enable
      d <= a ^ b;
    end
  end
endmodule
"""


def _crosscheck(nl, syn, x, warmup, name):
    act = simulate_activity(nl, x, warmup=warmup)
    ref = verilator_toggles(nl, syn.netlist_v, syn.netlist_json, x,
                            build_root() / "cost" / "test" / name, warmup=warmup,
                            verilator_root=setup_verilator())
    mine = {n: act.toggles(n) for n in act.rises if n != act.clock}
    ref = {n: c for n, c in ref.items() if n != act.clock}
    assert set(ref) <= set(mine)
    assert len(ref) >= 0.9 * len(mine)          # Verilator traced (nearly) every net
    assert {n: mine[n] for n in ref} == ref
    assert sum(ref.values()) > 0


def test_toggles_match_verilator_pipeline():
    inst = configure("xnor_popcount", {"n": 8, "pipeline": 1})
    syn = synthesize(inst.verilog(), inst.module)
    x = inst.stimulus(300, np.random.default_rng(6))
    _crosscheck(syn.netlist(), syn, x, inst.latency, "xnor8p1")


def test_toggles_match_verilator_state_feedback():
    syn = synthesize(ACC_V, "acc8")
    nl = syn.netlist()
    assert nl.flops
    rng = np.random.default_rng(7)
    n = 300
    x = {"en": rng.integers(0, 2, n).astype(np.uint64), "a": rng.integers(0, 16, n).astype(np.uint64),
         "b": rng.integers(0, 16, n).astype(np.uint64)}
    _crosscheck(nl, syn, x, 0, "acc8")


# --- default library vs SkyWater 130 -------------------------------------------------

@needs_sky130
@pytest.mark.parametrize("unit", [u.name for u in all_units()])
def test_default_library_area_within_15pct_of_sky130(unit):
    inst = configure(unit)
    a_def = synthesize(inst.verilog(), inst.module).area_um2
    a_sky = synthesize(inst.verilog(), inst.module, SKY130).area_um2
    assert abs(a_def / a_sky - 1) <= 0.15, (a_def, a_sky)


# --- cost_unit, CLI, Horowitz --------------------------------------------------------

def test_cost_unit_json_contract_and_cache(cli):
    code, out, err = cli("cost", "xnor_popcount", "-p", "n=8", "-p", "pipeline=1", "--vectors", "500",
                         "--json")
    assert code == 0, err
    r = json.loads(out)
    for k in JSON_KEYS:
        assert k in r
    assert r["params"]["n"] == 8 and r["clock_ns"] == 10 and r["stimulus"] == "random"
    assert not r["clock_target"] and r["gate_check"] == {"vectors": 499, "mismatches": 0}
    assert r["library"]["corner"] == "tt_025C_1v80"
    assert set(r["energy_breakdown_pj"]) == {"internal", "switching", "leakage"}
    assert r["energy_pj_per_op"] == pytest.approx(sum(r["energy_breakdown_pj"].values()), abs=1e-5)
    assert sum(r["cells"].values()) > 0 and r["transistors"] > 0 and r["depth"] > 0
    assert r["delay_ps"] > 0 and r["area_um2"] > 0
    again = cost_unit("xnor_popcount", {"n": 8, "pipeline": 1}, vectors=500)
    assert again.cached and again.energy_pj_per_op == r["energy_pj_per_op"]


def test_cost_errors_are_one_line(cli):
    code, _, err = cli("cost", "xnor_popcount", "--stimulus", "nosuch")
    assert code == 2 and "random" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("cost", "xnor_popcount", "--liberty", "/nonexistent.lib")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = cli("cost", "nosuchunit")
    assert code == 2
    code, _, err = cli("cost", "xnor_popcount", "--vectors", "1")
    assert code == 2


def test_horowitz_composition():
    assert horowitz("int_mac", {"a_width": 8, "b_width": 8, "acc_width": 32})["pj"] == \
        pytest.approx(ANCHORS["mul8"] + ANCHORS["add32"])
    h = horowitz("quant_fixedpoint", {"out_width": 8})
    assert h["pj"] > ANCHORS["mul32"] and any("mul32" in c[0] for c in h["composition"])
    assert horowitz("no_such_unit", {}) is None
    for spec in all_units():
        h = horowitz(spec.name, spec.defaults())
        if h is not None:
            assert h["pj"] == pytest.approx(sum(c * e for _, c, e in h["composition"]), rel=1e-4)


def test_area_never_worse_than_yosys_standard_flow(tmp_path):
    """The kept netlist is never larger than Yosys's standard flow, rerun here on its own
    (the script a reviewer would type) on the same library and Verilog."""
    import os
    import re

    from qrtl.reports.synth import _filtered_lib, run_yosys
    lib = load_library()
    for name, params in (("quant_shift", {}), ("xnor_popcount", {"n": 16})):
        inst = configure(name, params)
        syn = synthesize(inst.verilog(), inst.module, lib)
        work = build_root() / "test-qor" / inst.module
        work.mkdir(parents=True, exist_ok=True)
        (work / "unit.v").write_text(inst.verilog())
        rel = os.path.relpath(_filtered_lib(lib), work)
        run_yosys(work, f"read_verilog -sv unit.v\nread_liberty -lib {rel}\n"
                        f"synth -top {inst.module} -flatten\ndfflibmap -liberty {rel}\n"
                        f"abc -liberty {rel}\nopt_clean\ntee -q -o std.txt stat -liberty {rel}\n")
        std = float(re.search(r"Chip area for (?:top )?module '[^']*':\s*([0-9.]+)",
                              (work / "std.txt").read_text()).group(1))
        assert syn.synthesis["area_um2_standard"] == pytest.approx(std, abs=1e-3)
        assert syn.area_um2 <= std + 1e-6
        assert syn.area_um2 == min(syn.synthesis["area_um2_standard"], syn.synthesis["area_um2_fast"])


def test_standard_flow_skipped_above_limit(tmp_path, monkeypatch):
    """Above the size limit only the fast mapping runs, and the result says why (the flow
    itself, outside the cache, with the limit lowered below this unit's area)."""
    from qrtl.reports import synth as synth_mod
    lib = load_library()
    inst = configure("xnor_popcount", {"n": 16})
    monkeypatch.setattr(synth_mod, "STANDARD_FLOW_MAX_INVERTERS", 1)
    synth_mod._run_flow(tmp_path, inst.verilog(), inst.module, lib, synth_mod._filtered_lib(lib))
    d = json.loads((tmp_path / "done.json").read_text())
    syn = d["synthesis"]
    assert syn["flow"] == "fast" and syn["area_um2_standard"] is None
    assert d["area_um2"] == syn["area_um2_fast"] > lib.reference_inverter().area
    assert "> " in syn["standard_skipped"] and not (tmp_path / "stat-standard.txt").exists()


def test_standard_flow_stopped_after_its_time_budget(tmp_path, monkeypatch):
    """A standard flow over its time budget is stopped; the fast mapping is kept and the
    result says why (budget lowered below any real run here)."""
    from qrtl.reports import synth as synth_mod
    lib = load_library()
    inst = configure("xnor_popcount", {"n": 16})
    monkeypatch.setenv("QRTL_STANDARD_FLOW_SECONDS", "0.01")
    synth_mod._run_flow(tmp_path, inst.verilog(), inst.module, lib, synth_mod._filtered_lib(lib))
    syn = json.loads((tmp_path / "done.json").read_text())["synthesis"]
    assert syn["flow"] == "fast" and syn["area_um2_standard"] is None
    assert "did not finish within 0.01 s" in syn["standard_skipped"]
    monkeypatch.setenv("QRTL_STANDARD_FLOW_SECONDS", "soon")
    with pytest.raises(QrtlError, match="QRTL_STANDARD_FLOW_SECONDS='soon'"):
        synth_mod.standard_flow_seconds()
