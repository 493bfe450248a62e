"""Glitch-aware energy: delay-annotated, event-driven simulation of the mapped netlist.

The zero-delay simulation (:mod:`qrtl.reports.energy`) sees at most one transition per
net per cycle. Here every cell arc delays its output by the library's NLDM delay, and a
cell whose inputs arrive at different times may switch several times in a cycle
(glitches); every transition is charged.

Delays
------
For each combinational cell output, each input pin ``p``, each transition ``u`` of that
input and each output value ``v`` (rise to 1, fall to 0), the delay ``D[p][u][v]`` is the
Liberty ``cell_rise``/``cell_fall`` table of the arcs ``p -> output`` whose
``timing_sense`` pairs ``u`` with ``v`` (state-dependent arcs, e.g. a full adder's SUM
from A, positive or negative unate by the other inputs: the slowest), at the output net's
load (pin capacitances, output load and wire load, :meth:`Netlist.loads`) and at the slew
of ``p``'s ``u`` transition; a pair no arc propagates (the output moves because of another
input) gets the cell's slowest arc. Net slews are those our static timing propagates
(worst slew of each transition, :func:`qrtl.reports.synth.static_timing`); primary inputs
and the clock have :data:`INPUT_SLEW_NS`. Flip-flop outputs change ``clock-to-Q`` (its arc
at the output's load) after the clock edge. These are the numbers an SDF file written
from our timing would hold (per instance, per conditional IOPATH, rise and fall).

Simulation (``data/glitchsim.c``, compiled once per machine with the C compiler
Verilator uses and loaded with :mod:`ctypes`; the model is in the C file's header)
---------------------------------------------------------------------------------
Inertial delay, as Verilog gate primitives: when a cell's inputs change, its output is
re-evaluated; a pending output change that the new evaluation contradicts is cancelled
(a pulse shorter than the arc's delay is swallowed); otherwise a new value is scheduled
after the delay of the changed input's arc (the fastest, if several changed at once), and
that input is recorded as the transition's cause. Primary inputs change at the start of
the cycle, flip-flops at clock-to-Q after the edge, and every cycle runs until the netlist
settles (our costed configurations meet their clock; a combinational unit's inputs are
held for one cycle). The zero-delay mode (``zero_delay=True``) gives every arc the
difference of logic levels, so every output changes once, at its level: it reproduces the
zero-delay toggle counts exactly (a test checks it net by net).

Energy (:func:`glitch_energy`)
------------------------------
As :func:`qrtl.reports.energy.energy_from_activity`, on every transition the simulation
counts, with what it now knows: an output transition is charged the ``internal_power``
arc of the input that caused it (mean over its ``when`` states) at that input's slew and
the output's load; input pins their own tables at the net's slew; switching
``1/2 C V^2`` with ``C`` the net's load. ``glitch_fraction``: the share of the dynamic
energy (clock included) spent on transitions beyond the zero-delay ones (per net, its
extra transitions at the net's mean energy per transition).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Optional

import numpy as np

from qrtl.golden import procs
from qrtl.golden.cache import Cache
from qrtl.golden.errors import QrtlError

from .energy import Activity, pin_energies, port_waveforms, stimulus_memory
from .liberty import function_to_python
from .synth import (CLOCK_PORT, INPUT_SLEW_NS, TRANSITIONS, Netlist, _delay, _propagate, _sense_pairs,
                    clock_to_q, logic_levels, structural_verilog, verilog_net)

__all__ = ["simulate_glitches", "glitch_energy", "GlitchActivity", "arc_delays", "engine_path",
           "GLITCH_VERSION", "FS_PER_NS", "build_model", "icarus_toggles", "max_settle_bound"]

#: Version of the simulation model (cache keys of figures computed with it).
GLITCH_VERSION = "qrtl-glitch-2"
FS_PER_NS = 1_000_000
MAX_INPUTS = 6

_SOURCE = "glitchsim.c"
ENGINE_CACHE = Cache("glitchsim", GLITCH_VERSION)
_LIB = None


def _compiler() -> str:
    for c in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if c and shutil.which(c):
            return c
    raise QrtlError("glitch-aware energy needs a C compiler on PATH (cc, gcc or clang; "
                    "Verilator needs one too)")


def engine_path() -> Path:
    """The compiled simulator (a shared library), built once per source and compiler."""
    src = Path(str(files("qrtl.reports") / "data" / _SOURCE))
    text = src.read_bytes()
    cc = _compiler()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]

    def build(tmp: Path) -> list:
        (tmp / _SOURCE).write_bytes(text)
        r = procs.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp / "glitchsim.so"), str(tmp / _SOURCE)],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise QrtlError(f"compiling the glitch simulator with {cc} failed: {r.stdout[-400:]}")
        return ["glitchsim.so"]

    key = ENGINE_CACHE.key(hashlib.sha256(text).hexdigest(), cc, version)
    return ENGINE_CACHE.folder(key, build) / "glitchsim.so"


def _engine():
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(str(engine_path()))
        lib.glitch_sim.restype = ctypes.c_int
        _LIB = lib
    return _LIB


def _truth_table(expr: str, names: list, extra: Optional[dict] = None) -> int:
    """Truth table of a Liberty function over ``names`` (bit i: output for input
    combination ``i = sum_j x_j << j``)."""
    n = len(names)
    rows = 1 << n
    M = (1 << rows) - 1
    env = {}
    for j, nm in enumerate(names):
        env[nm] = sum(1 << i for i in range(rows) if (i >> j) & 1)
    code = function_to_python(expr, {nm: f"_v[{nm!r}]" for nm in names} | (extra or {}))
    return eval(code, {"_v": env, "M": M})


def net_slews(nl: Netlist, loads: dict) -> dict:
    """net -> {transition: slew (ns)}: the worst slew our static timing propagates from
    every start point (primary inputs at :data:`INPUT_SLEW_NS`, flip-flop outputs)."""
    sources = {n: {t: (0.0, INPUT_SLEW_NS) for t in TRANSITIONS}
               for nets in nl.inputs.values() for n in nets if not isinstance(n, str)}
    sources.update(clock_to_q(nl, loads))
    _, slew = _propagate(nl, loads, sources)
    return slew


def arc_delays(nl: Netlist, inst, pin, loads: dict, slews: dict) -> dict:
    """``{(input pin, input transition, output transition): (delay ns, input slew ns)}``
    for output ``pin`` of combinational ``inst``: the largest over the pin's arcs whose
    ``timing_sense`` pairs the two transitions (state-dependent arcs, e.g. a full adder's
    SUM from A, positive or negative unate by the other inputs: the slower of those)."""
    out = {}
    load = loads[inst.conns[pin.name]]
    for arc in pin.timing:
        if arc.timing_type not in ("combinational", "combinational_rise", "combinational_fall"):
            continue
        for rp in arc.related_pin.split():
            src = inst.conns.get(rp)
            for in_tr, out_tr in _sense_pairs(arc):
                s = slews.get(src, {}).get(in_tr, INPUT_SLEW_NS)
                d = _delay(arc, out_tr, s, load)
                if d is None:
                    continue
                if d[0] > out.get((rp, in_tr, out_tr), (-1.0,))[0]:
                    out[(rp, in_tr, out_tr)] = (d[0], s)
    return out


@dataclass
class GlitchActivity(Activity):
    """Toggle counts of the delay-annotated simulation (:class:`Activity`), plus per
    combinational output transition its cause: ``cause[(inst name, output pin, input pin,
    input transition, output transition)]`` = count; ``cause_slew`` the input slew of that arc; the simulator's
    counts (``events``, ``evaluations``, ``swallowed`` pulses), ``settle_ns`` (latest
    event in a cycle) and ``seconds``."""

    cause: dict = field(default_factory=dict)
    cause_slew: dict = field(default_factory=dict)
    events: int = 0
    evaluations: int = 0
    swallowed: int = 0
    settle_ns: float = 0.0
    seconds: float = 0.0
    zero_delay: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


_TABLES: dict = {}


def _cell_table(cell, pin, names) -> int:
    key = (cell.name, pin.name, cell.area, tuple(names))
    if key not in _TABLES:
        _TABLES[key] = _truth_table(pin.function, names)
    return _TABLES[key]


def build_model(nl: Netlist, zero_delay: bool = False) -> dict:
    """The arrays the simulator runs on (see ``data/glitchsim.c``): gates (one per
    combinational output pin, then one per flip-flop output pin) with their input nets,
    truth tables and per-arc delays (fs), flip-flops, the net index, and per gate its
    ``(instance, output pin)`` (``meta``) and per arc its input slew (``cause_slew``)."""
    loads = nl.loads()
    slews = {} if zero_delay else net_slews(nl, loads)
    levels = logic_levels(nl) if zero_delay else None
    index: dict = {"0": 0, "1": 1}

    def ix(net) -> int:
        if net not in index:
            index[net] = len(index)
        return index[net]

    clocks = nl.clock_nets()
    if len(clocks) > 1:
        raise QrtlError(f"{nl.module}: more than one clock net")
    comb = nl.comb_order()
    g_out, g_in_off, g_in_net, g_table, g_delay, g_meta = [], [0], [], [], [], []
    cause_slew = {}
    for inst in comb:
        ins = [p.name for p in inst.cell.inputs]
        if len(ins) > MAX_INPUTS:
            raise QrtlError(f"cell {inst.cell.name} has {len(ins)} inputs; the glitch simulator "
                            f"handles up to {MAX_INPUTS}")
        for pin in inst.cell.outputs:
            n = inst.conns.get(pin.name)
            if n is None or isinstance(n, str):
                continue
            arcs = {} if zero_delay else arc_delays(nl, inst, pin, loads, slews)
            worst = {tr: max((v[0] for (p, i, t), v in arcs.items() if t == tr), default=0.0)
                     for tr in TRANSITIONS}
            g_out.append(ix(n))
            g_table.append(_cell_table(inst.cell, pin, ins))
            for p in ins:
                src = inst.conns.get(p, "0")
                g_in_net.append(ix(src))
                for in_tr in ("fall", "rise"):          # the input's new value 0, 1
                    for v, tr in ((0, "fall"), (1, "rise")):
                        if zero_delay:
                            d = (levels[n] - (0 if isinstance(src, str) else levels[src])) * 1000
                        else:
                            # a transition pair no arc of this pin propagates (e.g. a rising
                            # input of a positive-unate arc and a falling output: another
                            # input's doing) or a pin without arcs: the cell's slowest arc
                            a = arcs.get((p, in_tr, tr))
                            d = a[0] if a else worst[tr]
                            cause_slew[(inst.name, pin.name, p, in_tr, tr)] = (
                                a[1] if a else slews.get(src, {}).get(in_tr, INPUT_SLEW_NS))
                            d = round(d * FS_PER_NS)
                        g_delay.append(max(1, int(d)))
            g_in_off.append(len(g_in_net))
            g_meta.append((inst, pin))
    n_comb = len(g_out)
    f_in_off, f_in_net, f_table, q_flop, q_inv, q_delay = [0], [], [], [], [], []
    for k, inst in enumerate(nl.flops):
        ff = inst.cell.ff
        data = [p.name for p in inst.cell.inputs if not p.clock]
        names = data + [ff.iq]
        extra = {ff.iqn: f"(M ^ _v[{ff.iq!r}])"} if ff.iqn else {}
        expr = ff.next_state
        table = _truth_table(expr, names, extra)
        rows = (1 << (1 << len(names))) - 1
        if ff.clear:
            table &= rows ^ _truth_table(ff.clear, names, extra)
        if ff.preset:
            table |= _truth_table(ff.preset, names, extra)
        f_table.append(table)
        for p in data:
            f_in_net.append(ix(inst.conns.get(p, "0")))
        f_in_off.append(len(f_in_net))
        for pin in inst.cell.outputs:
            n = inst.conns.get(pin.name)
            if n is None or isinstance(n, str):
                continue
            fq = _truth_table(pin.function, [ff.iq], extra)  # over the state: 0b10 = Q, 0b01 = !Q
            g_out.append(ix(n))
            g_meta.append((inst, pin))
            q_flop.append(k)
            q_inv.append(1 if fq == 0b01 else 0)
            for tr in ("fall", "rise"):
                d = 0.0
                if not zero_delay:
                    for arc in pin.timing:
                        if arc.timing_type in ("rising_edge", "falling_edge"):
                            r = _delay(arc, tr, INPUT_SLEW_NS, loads[n])
                            if r is not None:
                                d = max(d, r[0])
                q_delay.append(max(1, round(d * FS_PER_NS)) if not zero_delay else 0)
    # fanout (CSR), combinational gates only
    n_nets = len(index)
    fo = [[] for _ in range(n_nets)]
    for g in range(n_comb):
        for j in range(g_in_off[g], g_in_off[g + 1]):
            fo[g_in_net[j]].append((g, j - g_in_off[g]))
    fo_off = np.zeros(n_nets + 1, np.int32)
    fo_off[1:] = np.cumsum([len(x) for x in fo])

    def arr(x, dt):
        return np.ascontiguousarray(np.array(x, dtype=dt) if len(x) else np.zeros(1, dt))

    return dict(
        g_out=arr(g_out, np.int32), g_in_off=arr(g_in_off, np.int32), g_in_net=arr(g_in_net, np.int32),
        g_table=arr(g_table, np.uint64), g_delay=arr(g_delay, np.int64), fo_off=fo_off,
        fo_gate=arr([g for x in fo for g, _ in x], np.int32), fo_pin=arr([q for x in fo for _, q in x], np.int32),
        f_in_off=arr(f_in_off, np.int32), f_in_net=arr(f_in_net, np.int32), f_table=arr(f_table, np.uint64),
        q_flop=arr(q_flop, np.int32), q_inv=arr(q_inv, np.uint8), q_delay=arr(q_delay, np.int64),
        n_comb=n_comb, n_gates=len(g_out), n_flops=len(nl.flops), index=index, meta=g_meta,
        cause_slew=cause_slew, clocks=clocks, zero_delay=zero_delay)


def simulate_glitches(nl: Netlist, inputs: dict, warmup: int = 0, *, zero_delay: bool = False,
                      expected_waves: Optional[dict] = None) -> GlitchActivity:
    """Transitions of every net, glitches included, for the stimulus ``inputs`` (same
    cycles and window as :func:`qrtl.reports.energy.simulate_activity`). ``expected_waves``
    (net -> zero-delay waveform, :class:`Activity` ``waves``): the settled value of every
    primary output in every cycle must equal it, else :class:`QrtlError`."""
    m = build_model(nl, zero_delay)
    index, clocks, n_comb = m["index"], m["clocks"], m["n_comb"]
    g_in_off, g_meta, cause_slew = m["g_in_off"], m["meta"], m["cause_slew"]

    def ix(net) -> int:
        if net not in index:
            index[net] = len(index)
        return index[net]

    waves, T = port_waveforms(nl, inputs)
    pi = [n for n in waves if n not in clocks]
    pi_net = [ix(n) for n in pi]
    pi_vals = np.zeros((T, max(len(pi), 1)), np.uint8)
    for j, n in enumerate(pi):
        w = waves[n]
        b = np.frombuffer(w.to_bytes((T + 7) // 8, "little"), np.uint8)
        pi_vals[:, j] = np.unpackbits(b, bitorder="little")[:T]
    obs = [n for nets in nl.outputs.values() for n in nets if not isinstance(n, str) and n in index]
    start = 2 + warmup
    if T - start < 1:
        raise QrtlError(f"need at least {warmup + 2} vectors to measure activity (got {T - 1})")
    n_nets = len(index)
    if n_nets + 1 != len(m["fo_off"]):  # nets only the ports use: no fanout
        m["fo_off"] = np.concatenate([m["fo_off"], np.full(n_nets + 1 - len(m["fo_off"]), m["fo_off"][-1], np.int32)])
    A = {k: m[k] for k in ("g_out", "g_in_off", "g_in_net", "g_table", "g_delay", "fo_off", "fo_gate",
                           "fo_pin", "f_in_off", "f_in_net", "f_table", "q_flop", "q_inv", "q_delay")}
    A["pi_net"] = np.array(pi_net if pi_net else [0], np.int32)
    A["pi_vals"] = pi_vals
    A["obs_net"] = np.array([index[n] for n in obs] or [0], np.int32)
    obs_vals = np.zeros((T, max(len(obs), 1)), np.uint8)
    rises = np.zeros(n_nets, np.int64)
    falls = np.zeros(n_nets, np.int64)
    cause = np.zeros(max(4 * len(m["g_in_net"]), 1), np.int64)
    stats = np.zeros(4, np.int64)

    def p(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    i32 = ctypes.c_int32
    t1 = time.perf_counter()
    rc = _engine().glitch_sim(
        i32(n_nets), i32(n_comb), i32(m["n_gates"]),
        p(A["g_out"]), p(A["g_in_off"]), p(A["g_in_net"]), p(A["g_table"]), p(A["g_delay"]),
        p(A["fo_off"]), p(A["fo_gate"]), p(A["fo_pin"]),
        i32(len(nl.flops)), p(A["f_in_off"]), p(A["f_in_net"]), p(A["f_table"]),
        p(A["q_flop"]), p(A["q_inv"]), p(A["q_delay"]),
        i32(len(pi)), p(A["pi_net"]), p(A["pi_vals"]), i32(T), i32(start),
        i32(len(obs)), p(A["obs_net"]), p(obs_vals),
        p(rises), p(falls), p(cause), p(stats))
    sim_s = time.perf_counter() - t1
    if rc != 0:
        raise QrtlError("glitch simulator ran out of memory")
    if expected_waves is not None:
        for j, n in enumerate(obs):
            w = expected_waves.get(n)
            if w is None:
                continue
            want = np.unpackbits(np.frombuffer(w.to_bytes((T + 7) // 8, "little"), np.uint8),
                                 bitorder="little")[:T]
            bad = np.nonzero(want[1:] != obs_vals[1:, j])[0]
            if len(bad):
                raise QrtlError(f"{nl.module}: the delay-annotated simulation settles to a different "
                                f"value than the zero-delay one on {nl.names.get(n, n)} in cycle {bad[0] + 1}")
    nets = {k: v for k, v in index.items() if not isinstance(k, str)}
    causes = {}
    for g, (inst, pin) in enumerate(g_meta[:n_comb]):
        names = [pp.name for pp in inst.cell.inputs]
        for j, pname in enumerate(names):
            for u, in_tr in ((0, "fall"), (1, "rise")):
                for v, tr in ((0, "fall"), (1, "rise")):
                    c = int(cause[4 * (g_in_off[g] + j) + 2 * u + v])
                    if c:
                        causes[(inst.name, pin.name, pname, in_tr, tr)] = c
    clock = next(iter(clocks)) if clocks else None
    return GlitchActivity(
        rises={n: int(rises[k]) for n, k in nets.items()},
        falls={n: int(falls[k]) for n, k in nets.items()},
        ops=T - start, clock=clock, cause=causes, cause_slew=cause_slew,
        events=int(stats[0]), evaluations=int(stats[1]), swallowed=int(stats[2]),
        settle_ns=float(stats[3]) / FS_PER_NS if not zero_delay else float(stats[3]) / 1000,
        seconds=sim_s, zero_delay=zero_delay)


def _arc_energy(pin, related: str, tr: str, slew: float, load: float) -> float:
    """Internal energy (pJ) of output ``pin`` switching ``tr`` because of input ``related``:
    the mean over that arc's ``when`` states (all arcs if none names it)."""
    arcs = [a for a in pin.power if a.related_pin and related in a.related_pin.split()]
    if not arcs:
        r, f = pin_energies(pin, load, slew)
        return r if tr == "rise" else f
    tabs = [a.rise if tr == "rise" else a.fall for a in arcs]
    vals = [t.at(slew, load) for t in tabs if t is not None]
    return sum(vals) / len(vals) if vals else 0.0


def glitch_energy(nl: Netlist, act: GlitchActivity, zero: Activity, clock_ns: float) -> dict:
    """Energy per operation (pJ) of the transitions ``act`` counted: ``{"total",
    "internal", "switching", "leakage", "glitch_fraction"}`` (see the module doc;
    ``zero``: the zero-delay activity of the same stimulus)."""
    lib = nl.lib
    V = lib.voltage
    loads = nl.loads()
    slews = net_slews(nl, loads)
    per_net: dict = defaultdict(float)   # dynamic energy attributed to each net's transitions
    for n in set(act.rises) | set(act.falls):
        if n == act.clock:
            continue
        per_net[n] += (act.rises.get(n, 0) + act.falls.get(n, 0)) * 0.5 * loads.get(n, 0.0) * V * V
    switching = sum(per_net.values())
    internal = 0.0
    clock_internal = 0.0
    for inst in nl.insts:
        for pin in inst.cell.pins.values():
            n = inst.conns.get(pin.name)
            if n is None or isinstance(n, str) or not pin.power:
                continue
            if n == act.clock:
                er, ef = pin_energies(pin, 0.0, INPUT_SLEW_NS)
                clock_internal += act.ops * (er + ef)
                continue
            if pin.direction == "input":
                s = slews.get(n, {})
                er = pin_energies(pin, 0.0, s.get("rise", INPUT_SLEW_NS))[0]
                ef = pin_energies(pin, 0.0, s.get("fall", INPUT_SLEW_NS))[1]
                e = act.rises.get(n, 0) * er + act.falls.get(n, 0) * ef
            elif inst.cell.sequential:
                s = slews.get(n, {})
                er = pin_energies(pin, loads.get(n, 0.0), INPUT_SLEW_NS)[0]
                ef = pin_energies(pin, loads.get(n, 0.0), INPUT_SLEW_NS)[1]
                e = act.rises.get(n, 0) * er + act.falls.get(n, 0) * ef
            else:
                e = 0.0
                for rel in inst.cell.inputs:
                    for in_tr in TRANSITIONS:
                        for tr in TRANSITIONS:
                            key = (inst.name, pin.name, rel.name, in_tr, tr)
                            c = act.cause.get(key, 0)
                            if c:
                                slew = act.cause_slew.get(key, INPUT_SLEW_NS)
                                e += c * _arc_energy(pin, rel.name, tr, slew, loads.get(n, 0.0))
            internal += e
            per_net[n] += e
    extra = 0.0
    for n, e in per_net.items():
        tog = act.rises.get(n, 0) + act.falls.get(n, 0)
        if tog:
            extra += e * max(0, tog - zero.toggles(n)) / tog
    ops = max(act.ops, 1)
    dynamic = switching + internal + clock_internal
    out = {"internal": (internal + clock_internal) / ops, "switching": switching / ops,
           "leakage": sum(i.cell.leakage_nw for i in nl.insts) * clock_ns * 1e-6,
           "glitch_fraction": extra / dynamic if dynamic > 0 else 0.0,
           "glitch_pj": extra / ops}
    out["total"] = out["internal"] + out["switching"] + out["leakage"]
    return out


# --- Icarus Verilog reference (cross-check of the transition counts) ---------------------

def _gate_module(cell, pin, mod: str) -> str:
    """Behavioural Verilog of one output of ``cell`` with the simulator's semantics: the
    inputs changed at one time are applied, then the output is evaluated once (one
    non-blocking round later), a contradicted pending change is cancelled, a new one is
    scheduled after the fastest changed input's delay (parameters ``<input><output><j>``,
    R rise / F fall, fs)."""
    from .liberty import function_to_verilog
    ins = [p.name for p in cell.inputs]
    k = len(ins)
    params = ", ".join(f"RR{j} = 1, RF{j} = 1, FR{j} = 1, FF{j} = 1" for j in range(k))
    cur = "{" + ", ".join(reversed(ins)) + "}"
    chg = "\n".join(f"    m[{j}] = first | (cur[{j}] !== snap[{j}]);" for j in range(k))
    pick = "\n".join(f"      if (m[{j}]) begin d = cur[{j}] ? (v ? RR{j} : RF{j}) : (v ? FR{j} : FF{j}); "
                     f"if (best < 0 || d < best) best = d; end" for j in range(k))
    return f"""module {mod} ({', '.join(ins)}, {pin.name});
  input {', '.join(ins)};
  output reg {pin.name};
  parameter integer {params};
  reg [{k - 1}:0] snap, cur, m;
  reg first, req, go, v, pv;
  reg [63:0] tok, pseq, fire;
  integer d, best;
  initial begin {pin.name} = 1'b0; first = 1; req = 1; tok = 0; pseq = 0; fire = 0; go <= 1'b0; end
  always @({' or '.join(ins)}) if (req !== 1'b1) begin req = 1; go <= ~go; end
  always @(go) begin
    req = 0;
    cur = {cur};
{chg}
    first = 0;
    snap = cur;
    v = {function_to_verilog(pin.function)};
    if (pseq != 0) begin
      if (v != pv) pseq = 0;
    end else if (v != {pin.name}) begin
      best = -1;
{pick}
      if (best >= 0) begin
        tok = tok + 1; pseq = tok; pv = v;
        fire <= #(best) tok;
      end
    end
  end
  always @(fire) if (pseq != 0 && fire == pseq) begin {pin.name} = pv; pseq = 0; end
endmodule
"""


def _flop_module(cell, mod: str) -> str:
    """A flip-flop: next state at the rising clock (clear/preset applied then, as the
    simulator does), outputs after clock-to-Q (parameters ``R_<pin>``/``F_<pin>``, fs)."""
    from .liberty import function_to_verilog
    ff = cell.ff
    ins = [p.name for p in cell.inputs]
    clk = next(p.name for p in cell.inputs if p.clock)
    outs = [p for p in cell.outputs]
    ns = function_to_verilog(ff.next_state)
    if ff.clear:
        ns = f"(({ns}) & ~({function_to_verilog(ff.clear)}))"
    if ff.preset:
        ns = f"(({ns}) | ({function_to_verilog(ff.preset)}))"
    params = ", ".join(f"R_{p.name} = 1, F_{p.name} = 1" for p in outs)
    lines = [f"module {mod} ({', '.join(ins + [p.name for p in outs])});",
             f"  input {', '.join(ins)};", f"  output reg {', '.join(p.name for p in outs)};",
             f"  parameter integer {params};", f"  reg {ff.iq};"]
    if ff.iqn:
        lines.append(f"  wire {ff.iqn} = ~{ff.iq};")
    init = [f"{ff.iq} = 1'b0;"] + [f"{p.name} = 1'b0;" for p in outs]
    lines.append(f"  initial begin {' '.join(init)} end")
    for p in outs:
        f = function_to_verilog(p.function)
        lines.append(f"  initial #1 if (({f}) == 1'b1) {p.name} <= #(R_{p.name} - 1) 1'b1;")
    body = [f"    {ff.iq} = {ns};"]
    for p in outs:
        f = function_to_verilog(p.function)
        body.append(f"    if (({f}) != {p.name}) {p.name} <= #(({f}) ? R_{p.name} : F_{p.name}) {f};")
    lines.append(f"  always @(posedge {clk}) begin\n" + "\n".join(body) + "\n  end")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def icarus_toggles(nl: Netlist, inputs: dict, workdir: Path, warmup: int = 0) -> dict:
    """Transitions per net (same cycles and window as :func:`simulate_glitches`) by Icarus
    Verilog's event-driven simulator (``iverilog``, not pip-installable: for tests) on the
    same netlist, each cell instance a behavioural model of the same delay semantics with
    the same per-arc delays (femtoseconds). Slow; a reference, not the product path."""
    import re
    m = build_model(nl)
    workdir.mkdir(parents=True, exist_ok=True)
    delays = m["g_delay"]
    mods, inst_lines = {}, []

    for g, (inst, pin) in enumerate(m["meta"]):
        cell = inst.cell
        if g < m["n_comb"]:
            mod = f"qg_{cell.name}_{pin.name}"
            if mod not in mods:
                mods[mod] = _gate_module(cell, pin, mod)
            off = int(m["g_in_off"][g])
            ps = ", ".join(f".FF{j}({int(delays[4 * (off + j)])}), .FR{j}({int(delays[4 * (off + j) + 1])}), "
                           f".RF{j}({int(delays[4 * (off + j) + 2])}), .RR{j}({int(delays[4 * (off + j) + 3])})"
                           for j in range(len(cell.inputs)))
            conns = [f".{p.name}({verilog_net(inst.conns.get(p.name, '0'))})" for p in cell.inputs]
            conns.append(f".{pin.name}({verilog_net(inst.conns[pin.name])})")
            inst_lines.append(f"  {mod} #({ps}) g{g} ({', '.join(conns)});")
    flop_pins = defaultdict(dict)
    for g in range(m["n_comb"], m["n_gates"]):
        inst, pin = m["meta"][g]
        k = g - m["n_comb"]
        flop_pins[inst.name][pin.name] = (int(m["q_delay"][2 * k + 1]), int(m["q_delay"][2 * k]))
    for k, inst in enumerate(nl.flops):
        cell = inst.cell
        mod = f"qf_{cell.name}"
        if mod not in mods:
            mods[mod] = _flop_module(cell, mod)
        ps = ", ".join(f".R_{p}({r}), .F_{p}({f})" for p, (r, f) in flop_pins[inst.name].items())
        conns = [f".{p.name}({verilog_net(inst.conns.get(p.name, '0'))})" for p in cell.inputs]
        conns += [f".{p.name}({verilog_net(inst.conns[p.name])})" for p in cell.outputs if p.name in inst.conns]
        inst_lines.append(f"  {mod} {'#(' + ps + ') ' if ps else ''}f{k} ({', '.join(conns)});")

    T, width, conns = stimulus_memory(nl, inputs, workdir / "stim.hex")
    if CLOCK_PORT in nl.inputs:
        conns.append(f".{CLOCK_PORT}(clk)")
    conns += [f".{p}()" for p in nl.outputs]
    # a cycle longer than any settling time (the longest path of arc delays bounds it)
    period = int(2 * max_settle_bound(m) * FS_PER_NS) + FS_PER_NS
    half = period // 2
    tb = f"""`timescale 1fs/1fs
module qrtl_tb;
  reg [{width - 1}:0] mem [0:{T - 1}];
  reg [{width - 1}:0] word;
  reg clk;
  integer c;
  {nl.module} dut ({', '.join(conns)});
  initial begin
    clk = 0;
    $readmemh("stim.hex", mem);
    $dumpfile("glitch.vcd");
    $dumpvars(1, dut);
    word <= mem[0];
    for (c = 1; c < {T}; c = c + 1) begin
      #({half}) clk = 0;
      #({period - half}) clk = 1;
      word <= mem[c];
    end
    #({period}) $finish;
  end
endmodule
"""
    (workdir / "netlist.v").write_text(structural_verilog(nl, inst_lines))
    (workdir / "cells.v").write_text("\n".join(mods.values()))
    (workdir / "tb.v").write_text(tb)
    r = subprocess.run(["iverilog", "-o", "sim.vvp", "-s", "qrtl_tb", "tb.v", "netlist.v", "cells.v"],
                       cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        raise QrtlError(f"iverilog failed: {(r.stdout + r.stderr)[-800:]}")
    r = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        raise QrtlError(f"vvp failed: {(r.stdout + r.stderr)[-800:]}")
    start = 2 + warmup
    t_start = start * period      # cycle c starts (clock edge, inputs) at c * period
    codes = {}
    text = (workdir / "glitch.vcd").read_text()
    header, _, body = text.partition("$enddefinitions")
    for mm in re.finditer(r"\$var \w+ 1 (\S+) n(\d+) \$end", header):
        codes.setdefault(mm.group(1), []).append(int(mm.group(2)))
    counts = defaultdict(int)
    last = {}
    now = 0
    for line in body.splitlines():
        if not line:
            continue
        ch = line[0]
        if ch == "#":
            now = int(line[1:])
        elif ch in "01xz":
            code = line[1:]
            if code in codes:
                if now >= t_start and last.get(code) is not None and last[code] != ch:
                    for n in codes[code]:
                        counts[n] += 1
                last[code] = ch
    for n in nl.clock_nets():   # the clock is charged apart (two toggles per cycle)
        counts.pop(n, None)
    return dict(counts)


def max_settle_bound(m: dict) -> float:
    """An upper bound (ns) of any net's settling time in a cycle: the longest path of
    per-arc delays (and clock-to-Q) through the gates, in topological order."""
    t = defaultdict(float)
    for g in range(m["n_comb"], m["n_gates"]):
        k = g - m["n_comb"]
        t[int(m["g_out"][g])] = max(m["q_delay"][2 * k], m["q_delay"][2 * k + 1]) / FS_PER_NS
    for g in range(m["n_comb"]):
        off, end = int(m["g_in_off"][g]), int(m["g_in_off"][g + 1])
        best = 0.0
        for j in range(off, end):
            best = max(best, t[int(m["g_in_net"][j])] + max(m["g_delay"][4 * j:4 * j + 4]) / FS_PER_NS)
        t[int(m["g_out"][g])] = best
    return max(t.values(), default=0.0)
