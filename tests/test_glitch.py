"""Glitch-aware energy: hand-checkable circuits, the zero-delay mode against the zero-delay
simulation, Icarus Verilog net by net, wire load, and what the cost reports."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from qrtl.golden.cache import build_root
from qrtl.golden.errors import QrtlError
from qrtl.hw.units import all_units, configure
from qrtl.reports.energy import energy_from_activity, simulate_activity
from qrtl.reports.glitch import (FS_PER_NS, glitch_energy, icarus_toggles, simulate_glitches)
from qrtl.reports.liberty import load_library
from qrtl.reports.synth import INPUT_SLEW_NS, Inst, Netlist, static_timing, synthesize

LIB = load_library(wire_load="none")   # hand computations: pin capacitances only
S = INPUT_SLEW_NS


def cell(name):
    return LIB.cells[f"sky130_fd_sc_hd__{name}"]


def arc(cell_name, pin, related):
    arcs = [a for a in cell(cell_name).pins[pin].timing if a.related_pin == related]
    assert len(arcs) == 1
    return arcs[0]


def fs(ns):
    return max(1, round(ns * FS_PER_NS))


def and_not_chain(k: int) -> Netlist:
    """``y = AND(x, NOT^k(x))``, k odd: functionally 0, but a rising ``x`` reaches the AND's
    A input at once and its inverted copy k inverter delays later."""
    insts, prev = [], 1
    for i in range(k):
        insts.append(Inst(f"i{i}", cell("inv_1"), {"A": prev, "Y": 10 + i}))
        prev = 10 + i
    insts.append(Inst("g", cell("and2_1"), {"A": 1, "B": prev, "X": 2}))
    return Netlist(f"chain{k}", {"x": [1]}, {"y": [2]}, insts, {}, LIB)


def chain_by_hand(k: int) -> tuple[float, float]:
    """(time the inverted copy falls at the AND's B input after x rises, the AND's rise
    delay from A), in ns, from the Liberty tables: each inverter drives the next one's A
    (the last one the AND's B), at the slew the previous stage produces (the worst one,
    as our timing propagates: an inverter is negative unate, so x's rise reaches the
    chain's end as a fall for odd k)."""
    inv = arc("inv_1", "Y", "A")
    c_inv, c_b = cell("inv_1").pins["A"].capacitance, cell("and2_1").pins["B"].capacitance
    t, slew = 0.0, {"rise": S, "fall": S}
    for i in range(k):
        load = c_b if i == k - 1 else c_inv
        # this stage's output falls on the input's rise and rises on its fall
        fall_d = inv.cell_fall.at(slew["rise"], load)
        new = {"fall": inv.fall_transition.at(slew["rise"], load),
               "rise": inv.rise_transition.at(slew["fall"], load)}
        rise_d = inv.cell_rise.at(slew["fall"], load)
        t += fall_d if i % 2 == 0 else rise_d
        slew = new
    a = arc("and2_1", "X", "A")
    return t, a.cell_rise.at(S, LIB.reference_inverter().inputs[0].capacitance)


def toggling(vectors: int) -> dict:
    return {"x": np.arange(vectors, dtype=np.int64) % 2}


@pytest.mark.parametrize("k", [1, 3, 5, 7, 9])
def test_and_of_x_and_its_inverted_copy_by_hand(k):
    """One pulse on y per rising x exactly when the inverter chain is at least as slow as
    the AND's rise (the pending rise matures before the B input falls); otherwise the
    pulse is shorter than the AND's delay and is swallowed. Zero-delay: no transition."""
    nl = and_not_chain(k)
    t_chain, d_and = chain_by_hand(k)
    x = toggling(201)
    g = simulate_glitches(nl, x)
    rises_x = g.rises[1]
    assert rises_x == g.falls[1] == 100    # x: 0,1,0,1,... one step per counted cycle 2..201
    pulse = fs(t_chain) >= fs(d_and)
    assert g.rises[2] == g.falls[2] == (rises_x if pulse else 0), (k, t_chain, d_and)
    assert g.swallowed == (0 if pulse else rises_x)
    z = simulate_activity(nl, x)
    assert z.toggles(2) == 0
    e = glitch_energy(nl, g, z, 10.0)
    if pulse:
        # every transition of y is a glitch: its share is y's energy over the total dynamic
        assert 0 < e["glitch_fraction"] < 1 and e["glitch_pj"] > 0
    else:
        assert e["glitch_fraction"] == 0.0


def test_both_sides_of_the_inertial_window_occur():
    """The chain lengths above cover a swallowed and a propagated pulse on this library."""
    outcomes = {k: chain_by_hand(k)[0] >= chain_by_hand(k)[1] for k in (1, 3, 5, 7, 9)}
    assert not outcomes[1] and outcomes[9], outcomes


def test_pulse_energy_by_hand():
    """The glitch on y of a propagating chain costs, per pulse, two transitions of y's
    load (1/2 C V^2 each) plus the AND's internal energy of its A-caused rise and its
    B-caused fall, and the output inverter-load's input pin energy."""
    k = 9
    nl = and_not_chain(k)
    x = toggling(201)
    g = simulate_glitches(nl, x)
    z = simulate_activity(nl, x)
    e = glitch_energy(nl, g, z, 10.0)
    pulses = g.rises[2]
    assert pulses == 100
    c_y = nl.output_load()
    V = LIB.voltage
    sw = pulses * 2 * 0.5 * c_y * V * V
    pin = cell("and2_1").pins["X"]
    from qrtl.reports.glitch import _arc_energy
    assert g.cause[("g", "X", "A", "rise", "rise")] == pulses
    assert g.cause[("g", "X", "B", "fall", "fall")] == pulses
    # the net y: its switching and the AND's output internal energy, per cause
    y_rise = _arc_energy(pin, "A", "rise", g.cause_slew[("g", "X", "A", "rise", "rise")], c_y)
    y_fall = _arc_energy(pin, "B", "fall", g.cause_slew[("g", "X", "B", "fall", "fall")], c_y)
    glitch = sw + pulses * (y_rise + y_fall)
    assert e["glitch_pj"] * g.ops == pytest.approx(glitch, rel=1e-9)


def test_ripple_carry_adder_carries_glitch_the_sums():
    """4-bit ripple-carry adder of full-adder cells, b = 0001, a toggling 0000 <-> 1111: the
    sums s1..s3 are 0 before and after every step (0001 and 1 0000), but on a rising step
    s_i first rises on its own A input and falls only when the carry arrives through i
    COUT arcs. By hand from the tables: where the carry arrives well after the sum's rise
    (margin 1.5x, so that slews cannot change the outcome) every rising step leaves one
    pulse; a step can leave at most one (A and the carry each switch once)."""
    fa = cell("fa_1")
    insts, carry = [], "0"
    a_nets, b_nets = [1, 2, 3, 4], [5, 6, 7, 8]
    for i in range(4):
        insts.append(Inst(f"fa{i}", fa, {"A": a_nets[i], "B": b_nets[i], "CIN": carry,
                                         "SUM": 40 + i, "COUT": 30 + i}))
        carry = 30 + i
    nl = Netlist("rca4", {"a": a_nets, "b": b_nets}, {"s": [40, 41, 42, 43], "c": [33]}, insts, {}, LIB)
    a = np.array([0, 15] * 50 + [0], dtype=np.int64)
    x = {"a": a, "b": np.full_like(a, 1)}
    z = simulate_activity(nl, x, keep_waves=True)
    g = simulate_glitches(nl, x, expected_waves=z.waves)
    steps = len(a) - 1                     # vector j-1 -> j in cycle j+1 >= 2: every step counted
    rising = int(np.sum((a[1:] == 15) & (a[:-1] == 0)))
    c_out, c_cin = nl.output_load(), fa.pins["CIN"].capacitance

    def fa_arc(pin, rel, sense="positive_unate"):
        return [t for t in fa.pins[pin].timing if t.related_pin == rel and t.timing_sense == sense][0]
    # A rising with B == CIN: SUM's positive-unate arc from A
    d_sum = fa_arc("SUM", "A").cell_rise.at(S, c_out)
    t_carry = [fa_arc("COUT", "A").cell_rise.at(S, c_cin)]
    for i in range(1, 3):
        t_carry.append(t_carry[-1] + fa_arc("COUT", "CIN").cell_rise.at(S, c_cin))
    checked = 0
    for i in (1, 2, 3):
        s_i = 40 + i
        assert z.toggles(s_i) == 0
        assert g.rises[s_i] == g.falls[s_i] <= steps
        if t_carry[i - 1] >= 1.5 * d_sum:
            assert g.rises[s_i] >= rising, (i, t_carry, d_sum)
            checked += 1
    assert checked >= 2, (t_carry, d_sum)
    assert g.toggles(33) == z.toggles(33)   # the carry-out settles monotonically


def test_zero_delay_mode_reproduces_the_zero_delay_counts():
    """With every arc given its difference of logic levels, each net changes once, at its
    level: per-net counts equal the zero-delay simulation's, on units with flip-flops,
    state (an accumulator) and a retimed pipeline too."""
    lib = load_library()
    for name, params in (("quant_shift", {}), ("int_mac", {}), ("fp8_mac", {}),
                         ("xnor_popcount", {"n": 16, "pipeline": 2})):
        u = configure(name, params)
        nl = synthesize(u.verilog(), u.module, lib).netlist()
        x = u.stimulus(300, np.random.default_rng(7))
        warm = 0 if u.spec.stream else u.latency
        z = simulate_activity(nl, x, warmup=warm)
        g = simulate_glitches(nl, x, warmup=warm, zero_delay=True)
        assert g.ops == z.ops
        for n in z.rises:
            assert (g.rises.get(n, 0), g.falls.get(n, 0)) == (z.rises[n], z.falls[n]), (name, n)


def test_settles_to_the_zero_delay_values_and_is_checked():
    """The delay-annotated simulation must settle to the functional values each cycle; a
    corrupted expectation is reported."""
    u = configure("quant_shift", {})
    nl = synthesize(u.verilog(), u.module).netlist()
    x = u.stimulus(100, np.random.default_rng(8))
    z = simulate_activity(nl, x, keep_waves=True)
    simulate_glitches(nl, x, expected_waves=z.waves)
    bad = dict(z.waves)
    n = nl.outputs["q"][0]
    bad[n] ^= 1 << 50
    with pytest.raises(QrtlError, match="settles to a different value"):
        simulate_glitches(nl, x, expected_waves=bad)


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog is not installed (apt-get install iverilog)")
@pytest.mark.parametrize("name", [u.name for u in all_units()])
def test_against_icarus(name):
    """Every default unit: Icarus Verilog simulating the same netlist with the same
    per-arc delays (behavioural cell models of the same inertial semantics) counts the
    same transitions on every net. 256 vectors; 32 on the two netlists of thousands of
    cells (the behavioural models make Icarus take tens of minutes for 256 there)."""
    u = configure(name, {})
    nl = synthesize(u.verilog(), u.module).netlist()
    x = u.stimulus(256 if len(nl.insts) < 2000 else 32, np.random.default_rng(1))
    warm = 0 if u.spec.stream else u.latency
    g = simulate_glitches(nl, x, warmup=warm)
    ic = icarus_toggles(nl, x, build_root() / "test-icarus" / u.module, warmup=warm)
    ours = {n: g.rises[n] + g.falls[n] for n in g.rises}
    diff = {n: (ours.get(n, 0), ic.get(n, 0)) for n in set(ours) | set(ic) if ours.get(n, 0) != ic.get(n, 0)}
    assert not diff, list(diff.items())[:5]
    assert sum(ours.values()) > 0


def test_wire_load_from_the_library():
    """SKY130's default wire-load model (Small): length by fanout from the table, beyond
    it the slope; capacitance per length from the file."""
    lib = load_library()
    assert lib.wire_load == "Small" and set(lib.wire_loads) == {"Small", "Medium", "Large", "Huge"}
    assert lib.wire_cap(1) == pytest.approx(23.2746 * 1.42e-05)
    assert lib.wire_cap(8) == pytest.approx((84.2649 + 2 * 8.3631) * 1.42e-05)
    assert load_library(wire_load="none").wire_cap(3) == 0.0
    with pytest.raises(QrtlError, match="not in library"):
        load_library(wire_load="Tiny")
    u = configure("quant_shift", {})
    nl0 = synthesize(u.verilog(), u.module, load_library(wire_load="none")).netlist()
    nl1 = synthesize(u.verilog(), u.module, lib).netlist()
    assert static_timing(nl1)["delay_ns"] > static_timing(nl0)["delay_ns"]
    l0, l1 = nl0.loads(), nl1.loads()
    fanout = {}
    for inst in nl1.insts:
        for p in inst.cell.inputs:
            if p.name in inst.conns:
                fanout[inst.conns[p.name]] = fanout.get(inst.conns[p.name], 0) + 1
    for n, k in fanout.items():
        if isinstance(n, int) and n not in {b for bits in nl1.outputs.values() for b in bits}:
            assert l1[n] - l0[n] == pytest.approx(lib.wire_cap(k), rel=1e-12)


def test_cost_reports_glitches_beside_zero_delay():
    """``qrtl.cost``: the glitch-aware energy, the zero-delay one (with ``wire_load='none'``
    exactly today's computation) and the glitch fraction; the 32-bit multiplier of the
    fixed-point requantizer glitches far more than the shift-and-round unit."""
    from qrtl.reports.cost import cost_unit
    r = cost_unit("quant_shift", vectors=512, wire_load="none")
    u = configure("quant_shift", {})
    nl = synthesize(u.verilog(), u.module, load_library(wire_load="none")).netlist()
    x = u.stimulus(512, np.random.default_rng(0))
    e0 = energy_from_activity(nl, simulate_activity(nl, x), 10.0)
    assert r.energy_zero_delay_pj_per_op == pytest.approx(round(e0["total"], 6), abs=1e-6)
    assert r.library["wire_load"] == "none"
    assert r.glitch_sim["events"] > 0 and r.glitch_sim["events_per_s"] > 0
    fx = cost_unit("quant_fixedpoint", vectors=256)
    assert fx.library["wire_load"] == "Small"
    assert fx.glitch_fraction > 0.3 > r.glitch_fraction
    assert fx.energy_pj_per_op > fx.energy_zero_delay_pj_per_op
