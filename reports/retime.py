"""Pipelining for a clock target: register ranks placed where they balance stage delays.

A unit with the generic ``pipeline = K`` parameter (:mod:`qrtl.hw.pipeline`) is, in its
RTL, the combinational unit followed by ``K`` register ranks on its outputs. For costing,
the combinational unit is synthesised once (:func:`qrtl.reports.synth.synthesize`) and its
mapped netlist is cut into ``K`` stages here (:func:`balance`):

1. every net gets its arrival time from the inputs by static timing (the later of rise
   and fall, :func:`qrtl.reports.synth.static_timing`'s propagation);
2. with a stage budget ``B``, a cell whose output arrives at ``t`` goes to stage
   ``min(K - 1, floor(t / B))``; primary inputs are in stage 0, primary outputs in stage
   ``K`` (the last rank stays on the outputs, so the unit's outputs are registered);
3. a net used ``j`` stages after the one that drives it passes through ``j`` flip-flops
   (one chain per net, shared by all its users), the library's smallest plain D
   flip-flop (:func:`flip_flop_cell`), clocked by a new ``clk`` port (a ``rst`` port is
   added, unused, as in the RTL);
4. a few budgets around ``D / K`` (``D``: the combinational critical path) are tried and
   the netlist with the smallest clock period on our static timing is kept.

Every stage of the kept netlist is a register-to-register (or input-to-register) path
whose delay includes clock-to-Q and setup. Retiming moves registers only across
combinational cells of a feed-forward netlist, so the outputs are the same function of
the inputs ``K`` cycles earlier; :func:`check_outputs` confirms it by gate-level
simulation against the golden model on every costed stimulus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qrtl.golden.errors import QrtlError

from .liberty import Cell, Library
from .synth import (CLOCK_PORT, INPUT_SLEW_NS, RESET_PORT, Inst, Netlist, _propagate,
                    static_timing, structural_verilog, verilog_net)

__all__ = ["flip_flop_cell", "retime", "balance", "period_ns", "register_overhead_ns",
           "write_verilog", "netlist_area", "check_outputs", "BUDGET_FACTORS", "RETIME_VERSION"]

#: Stage budgets tried, as fractions of the balanced budget ``D / K``.
BUDGET_FACTORS = (1.0, 0.95, 0.9)
#: Version of the retiming (cache keys of what is computed from it).
RETIME_VERSION = "qrtl-retime-2"


def flip_flop_cell(lib: Library) -> Cell:
    """The smallest-area usable D flip-flop without set, reset or enable (``next_state``
    one data pin, non-inverted ``Q``)."""
    best = None
    for c in lib.usable().values():
        ff = c.ff
        if ff is None or ff.clear or ff.preset:
            continue
        data = [p for p in c.inputs if not p.clock]
        clocks = [p for p in c.inputs if p.clock]
        outs = [p for p in c.outputs if (p.function or "").strip() == ff.iq]
        if len(data) != 1 or len(clocks) != 1 or not outs or ff.next_state.strip() != data[0].name \
                or ff.clocked_on.strip() != clocks[0].name:
            continue
        if best is None or c.area < best.area:
            best = c
    if best is None:
        raise QrtlError(f"library {lib.name} has no plain D flip-flop to pipeline with")
    return best


def _pins(cell: Cell) -> tuple[str, str, str]:
    """(clock, data, Q) pin names of a plain flip-flop cell."""
    clock = next(p.name for p in cell.inputs if p.clock)
    data = next(p.name for p in cell.inputs if not p.clock)
    q = next(p.name for p in cell.outputs if (p.function or "").strip() == cell.ff.iq)
    return clock, data, q


def register_overhead_ns(lib: Library) -> float:
    """Clock-to-Q plus setup of :func:`flip_flop_cell` driving one of its own data pins:
    the shortest clock period any pipeline can have on this library."""
    ff = flip_flop_cell(lib)
    clock, data, q = _pins(ff)
    nl = Netlist("ff2ff", {CLOCK_PORT: [2]}, {}, [
        Inst("a", ff, {clock: 2, data: 4, q: 3}), Inst("b", ff, {clock: 2, data: 3, q: 4})],
        {}, lib)
    return static_timing(nl)["reg2reg_ns"]


def _arrivals(nl: Netlist) -> dict:
    """net -> latest arrival (ns, rise or fall) from the primary inputs."""
    loads = nl.loads()
    src = {n: {t: (0.0, INPUT_SLEW_NS) for t in ("rise", "fall")}
           for nets in nl.inputs.values() for n in nets if not isinstance(n, str)}
    arr, _ = _propagate(nl, loads, src)
    return {n: max(tr.values()) for n, tr in arr.items()}


def retime(nl: Netlist, stages: int, budget_ns: float, module: str | None = None,
           arrivals: dict | None = None) -> Netlist:
    """``nl`` (combinational) cut into ``stages`` register stages at multiples of
    ``budget_ns`` (see the module docstring); ``stages = 0`` returns ``nl``.
    ``arrivals``: :func:`arrivals` of ``nl``, if already known."""
    if stages == 0:
        return nl
    if nl.flops:
        raise QrtlError(f"{nl.module}: only combinational netlists are retimed here")
    lib = nl.lib
    ff = flip_flop_cell(lib)
    ck, d, q = _pins(ff)
    arr = arrivals if arrivals is not None else _arrivals(nl)
    drivers = nl.drivers()
    nets = {n for nets in nl.inputs.values() for n in nets} | \
        {n for nets in nl.outputs.values() for n in nets} | \
        {n for i in nl.insts for n in i.conns.values()}
    next_id = max([n for n in nets if isinstance(n, int)], default=1) + 1
    clk, rst = next_id, next_id + 1
    next_id += 2

    def cell_stage(inst) -> int:
        t = max((arr.get(inst.conns.get(p.name), 0.0) for p in inst.cell.outputs), default=0.0)
        return min(stages - 1, int(t / budget_ns)) if budget_ns > 0 else stages - 1

    # by arrival time, and never before a cell that drives it (topological order)
    stage_of: dict = {}
    for inst in nl.comb_order():
        s = cell_stage(inst)
        for p in inst.cell.inputs:
            drv = drivers.get(inst.conns.get(p.name))
            if drv is not None:
                s = max(s, stage_of[id(drv[0])])
        stage_of[id(inst)] = s

    def net_stage(n) -> int:
        if isinstance(n, str):
            return -1  # constants are available in every stage
        drv = drivers.get(n)
        return stage_of[id(drv[0])] if drv else 0

    copies: dict = {}   # (net, stage) -> net carrying it in that stage
    flops: list = []

    def at(n, s: int):
        """Net ``n`` as seen in stage ``s`` (through flip-flops from its own stage)."""
        nonlocal next_id
        s0 = net_stage(n)
        if s0 < 0 or s == s0:
            return n
        if s < s0:
            raise QrtlError(f"{nl.module}: retiming placed a cell before its driver")
        key = (n, s)
        if key not in copies:
            prev = at(n, s - 1)
            copies[key] = next_id
            flops.append(Inst(f"pipe_s{s}_{len(flops)}", ff, {ck: clk, d: prev, q: next_id}))
            next_id += 1
        return copies[key]

    insts = []
    for inst in nl.insts:
        s = stage_of[id(inst)]
        conns = dict(inst.conns)
        for p in inst.cell.inputs:
            if p.name in conns:
                conns[p.name] = at(conns[p.name], s)
        insts.append(Inst(inst.name, inst.cell, conns))
    outputs = {k: [at(n, stages) for n in v] for k, v in nl.outputs.items()}
    inputs = {CLOCK_PORT: [clk], RESET_PORT: [rst], **nl.inputs}
    names = dict(nl.names)
    names.update({v: f"{nl.names.get(n, f'n{n}')}_s{s}" for (n, s), v in copies.items()})
    return Netlist(module or nl.module, inputs, outputs, insts + flops, names, lib)


def period_ns(nl: Netlist) -> float:
    """The shortest clock period (ns) of a netlist: its worst path of any class."""
    return static_timing(nl)["delay_ns"]


def balance(nl: Netlist, stages: int, module: str | None = None) -> tuple[Netlist, float]:
    """The retiming of ``nl`` into ``stages`` stages with the shortest period on our static
    timing, over the budgets :data:`BUDGET_FACTORS` x ``D / stages``; (netlist, period ns)."""
    if stages == 0:
        return nl, period_ns(nl)
    arr = _arrivals(nl)
    D = max((arr.get(n, 0.0) for nets in nl.outputs.values() for n in nets), default=0.0)
    best = None
    for f in BUDGET_FACTORS:
        cand = retime(nl, stages, f * D / stages, module, arr)
        p = period_ns(cand)
        if best is None or p < best[1] - 1e-9:
            best = (cand, p)
    return best


def netlist_area(nl: Netlist) -> float:
    """Sum of the cell areas (um^2), as Yosys ``stat -liberty`` counts them."""
    return sum(i.cell.area for i in nl.insts)


def write_verilog(nl: Netlist, path: Path) -> Path:
    """A structural Verilog netlist of library cells (one wire per net)."""
    cells = [f"  {i.cell.name} {i.name.replace('$', '_').replace('.', '_')} "
             f"({', '.join(f'.{p}({verilog_net(n)})' for p, n in i.conns.items())});" for i in nl.insts]
    Path(path).write_text(structural_verilog(nl, cells, f"qrtl retimed netlist of {nl.module} "
                                                        "(generated; do not edit)"))
    return Path(path)


def _port_values(act, nets: list, first: int, n: int) -> list:
    """Unsigned values of a port over cycles ``first .. first + n - 1`` (bit t of a net's
    waveform: its value in cycle t), as Python ints."""
    T = act.waves["T"]
    vals = [0] * n
    for k, net in enumerate(nets):
        if isinstance(net, str):
            w = ((1 << T) - 1) if net == "1" else 0
        else:
            w = act.waves.get(net, 0)
        bits = np.unpackbits(np.frombuffer(w.to_bytes((T + 7) // 8, "little"), np.uint8),
                             bitorder="little")[first:first + n]
        for t in np.flatnonzero(bits):
            vals[t] |= 1 << k
    return vals


def check_outputs(nl: Netlist, act, expected: dict, latency: int) -> tuple[int, int]:
    """(mismatching vectors, vectors compared) of the gate-level outputs against
    ``expected`` (port -> golden values), vector ``i`` read in cycle ``i + 1 + latency``."""
    n = len(next(iter(expected.values())))
    m = n - latency
    if m <= 0:
        return 0, 0
    bad = np.zeros(m, bool)
    for pname, nets in nl.outputs.items():
        exp = np.asarray(expected[pname])
        got = _port_values(act, nets, 1 + latency, m)
        width = len(nets)
        if exp.ndim == 2:  # little-endian byte matrix (ports over 64 bits)
            want = [int.from_bytes(bytes(row), "little") for row in exp[:m]]
        else:
            want = [int(v) & ((1 << width) - 1) for v in exp[:m]]
        bad |= np.array([a != b for a, b in zip(got, want)])
    return int(bad.sum()), m
