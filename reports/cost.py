"""Area, delay and energy per operation of registered units (``qrtl cost``, ``qrtl.cost``).

For one unit configuration (:func:`cost_unit`):

1. synthesise its Verilog with Yosys + ABC onto a Liberty library (:mod:`qrtl.reports.synth`;
   default: the SKY130 HD subset shipped in ``reports/data/qrtl_default.lib``);
2. read area (``stat -liberty``), cell counts, transistors (``stat -tech cmos`` on a
   generic NAND/NOR mapping), logic depth and critical-path delay (NLDM static timing);
3. simulate the gate-level netlist on a stimulus stream, with per-arc delays so that
   glitches are counted (:mod:`qrtl.reports.glitch`: ``energy_pj_per_op``) and zero-delay
   (:mod:`qrtl.reports.energy`: ``energy_zero_delay_pj_per_op``), and turn the transitions
   into energy per operation (loads include the library's wire-load model);
4. add the analytical Horowitz estimate (:mod:`qrtl.reports.horowitz`) as a reference column.

Results are cached (``build/cache/cost/``, :class:`qrtl.golden.cache.Cache`), keyed on the
Verilog, the library's contents, the stimulus data, the clock, the code version of the flow
and the tool versions. :func:`cost_unit` returns a :class:`CostResult`.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass, fields, replace
from typing import Mapping, Optional

import numpy as np

from qrtl.golden.cache import Cache
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_float, check_int
from qrtl.golden.procs import pool_map
from qrtl.hw.registry import STREAMS, Unit
from qrtl.hw.units import all_units, configure

from .energy import energy_from_activity, simulate_activity
from .glitch import GLITCH_VERSION, glitch_energy, simulate_glitches
from .horowitz import horowitz
from .liberty import Library, load_library, sky130_path, with_wire_load
from .retime import (BUDGET_FACTORS, RETIME_VERSION, balance, check_outputs, netlist_area,
                     register_overhead_ns, write_verilog)
from .synth import (FLOW_VERSION, INPUT_SLEW_NS, TIMING_ABC_SCRIPT, logic_depth, static_timing,
                    synthesize)

__all__ = ["CostResult", "cost_unit", "cost_verilog", "cost_all", "compare_quant", "stimuli",
           "stages_for_clock", "fastest_clock_ns", "baseline_clock_ns", "DEFAULT_VECTORS",
           "DEFAULT_CLOCK_NS", "MAX_VECTORS", "MAX_CLOCK_NS", "JSON_KEYS"]

#: Vectors simulated per measurement (the first ``latency + 1`` warm the pipeline up).
DEFAULT_VECTORS = 4096
#: Clock period (ns) used for the leakage term: one operation per clock cycle.
DEFAULT_CLOCK_NS = 10.0
#: Bounds of a measurement: the gate-level simulation keeps every net's waveform in memory
#: (about 1 kB per vector for the largest units), and a clock beyond a millisecond makes the
#: leakage term meaningless.
MAX_VECTORS = 1_000_000
MAX_CLOCK_NS = 1e6
COST_VERSION = "qrtl-cost-7"
COST_CACHE = Cache("cost", COST_VERSION)
#: Retimed netlists (Verilog for the user and for other tools), per synthesis x stages.
RETIME_CACHE = Cache("retime", COST_VERSION)


class NetlistMismatch(QrtlError):
    """A gate-level netlist's outputs differ from the golden model (never skipped)."""

#: Keys every result has (the public JSON contract of ``qrtl cost --json``).
JSON_KEYS = ("unit", "params", "library", "area_um2", "cells", "transistors", "depth",
             "delay_ps", "energy_pj_per_op", "energy_breakdown_pj", "energy_zero_delay_pj_per_op",
             "glitch_fraction", "clock_ns", "stimulus")

#: Fields of a measurement (:func:`cost_verilog`); a cached entry without them is rebuilt.
MEASURED = ("module", "library", "area_um2", "cells", "cell_count", "transistors", "depth",
            "delay_ps", "critical_endpoint", "paths_ps", "energy_pj_per_op", "energy_breakdown_pj",
            "energy_zero_delay_pj_per_op", "energy_zero_delay_breakdown_pj", "glitch_fraction",
            "glitch_sim", "clock_ns", "stimulus", "vectors", "ops", "toggles_per_op", "input_slew_ns",
            "netlist", "synthesis", "retimed", "gate_check", "seconds")


@dataclass
class CostResult:
    """Area, delay and energy per operation of one unit configuration.

    Attributes
    ----------
    unit, params, latency, module
        The configuration and its Verilog module.
    library : dict
        The Liberty library: ``name``, ``corner``, ``voltage``, ``path``, ``sha256``.
    area_um2 : float
        Cell area after synthesis (Yosys ``stat -liberty``), um^2.
    cells : dict
        Cell count per cell type; ``cell_count`` is their sum.
    transistors : int or None
        Yosys ``stat -tech cmos`` on a generic gate mapping.
    depth : int
        Logic levels on the longest path.
    delay_ps : float
        Critical-path delay (static timing on the library's NLDM tables, rise and fall
        through each arc by its timing sense), ps; ``critical_endpoint`` names where it ends.
    paths_ps : dict
        The worst path of each class, ps (None: no such path): ``in2out``, ``in2reg``,
        ``reg2reg``, ``reg2out``.
    energy_pj_per_op : float
        Energy per operation, pJ: internal + switching + leakage (``energy_breakdown_pj``),
        from the switching activity measured on ``stimulus``.
    clock_ns : float
        Clock period (one operation per cycle): the leakage term, throughput and power.
    slack_ps : float
        ``clock_ns`` minus the critical-path delay (negative: the unit cannot run at it).
    ops_per_s : float
        Operations per second at ``clock_ns`` (one per cycle).
    power_mw : float
        Average power at ``clock_ns``: ``energy_pj_per_op / clock_ns``.
    stimulus, vectors, ops, seed
        The stimulus, the vectors simulated, the operations measured, the seed.
    toggles_per_op, input_slew_ns, netlist
        Activity, the input slew assumed, the gate netlist.
    synthesis : dict
        The liberty mapping kept (``flow``: ``standard`` or ``fast``, its ``script``) and
        both flows' ``area_um2_*`` and ``seconds_*``.
    retimed : bool
        True when the ``pipeline`` register ranks were moved into the logic by
        :mod:`qrtl.reports.retime` (generic ``pipeline`` > 0 on a combinational unit); the
        area, cells, delay and energy are then those of the retimed netlist (registers
        and their clock pins included), and ``transistors`` is None (it is also None
        when a clock target kept the buffered netlist, which has no generic-gate count).
    gate_check : dict or None
        The gate-level netlist's outputs against the golden model on the costed stimulus
        (``vectors``, ``mismatches``; always 0, or the measurement fails); None for
        stateful stream units.
    clock_target : bool
        True when ``pipeline`` was chosen as the fewest stages (at least the configured
        ones) whose clock period meets ``clock_ns`` on our static timing.
    seconds, cached
        The measurement's run time, and whether the figures came from the cache.
    horowitz : dict or None
        The analytical 45 nm estimate (Horowitz, ISSCC 2014), for reference only.
    """

    unit: str
    params: dict
    latency: int
    module: str
    library: dict
    area_um2: float
    cells: dict
    cell_count: int
    transistors: Optional[int]
    depth: int
    delay_ps: float
    critical_endpoint: str
    paths_ps: dict
    energy_pj_per_op: float
    energy_breakdown_pj: dict
    energy_zero_delay_pj_per_op: float
    energy_zero_delay_breakdown_pj: dict
    glitch_fraction: float
    glitch_sim: dict
    clock_ns: float
    slack_ps: float
    ops_per_s: float
    power_mw: float
    stimulus: str
    vectors: int
    ops: int
    toggles_per_op: float
    input_slew_ns: float
    netlist: str
    synthesis: dict
    retimed: bool
    gate_check: Optional[dict]
    clock_target: bool
    seconds: float
    cached: bool
    seed: int
    horowitz: Optional[dict]

    def as_dict(self) -> dict:
        """Every field, in order (what ``qrtl cost --json`` prints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def stimuli(unit: str) -> list[str]:
    """Names of the stimuli unit ``unit`` accepts: ``random`` plus its registered streams."""
    all_units()  # fills the registry (units and their streams)
    return ["random"] + sorted(STREAMS.get(unit, {}))


def _given(inst: Unit, arrays: Mapping, vectors: int) -> dict:
    """A stimulus given as arrays (one per input port, one entry per operation), in order;
    repeated from the start when shorter than ``vectors`` (as the network streams wrap
    around), cut to ``vectors`` when longer."""
    want = [p.name for p in inst.inputs]
    missing = [n for n in want if n not in arrays]
    extra = [n for n in arrays if n not in want]
    if missing or extra:
        raise QrtlError(f"stimulus arrays for {inst.name} have ports "
                        f"{', '.join(sorted(arrays)) or 'none'} (the unit's inputs: "
                        f"{', '.join(want)})")
    x = {n: np.asarray(arrays[n]) for n in want}
    lengths = {len(v) for v in x.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise QrtlError(f"stimulus arrays for {inst.name} have lengths {sorted(lengths)} "
                        f"(one nonzero length for every port)")
    n = lengths.pop()
    reps = -(-vectors // n)
    return {k: (np.tile(v, (reps,) + (1,) * (v.ndim - 1)) if reps > 1 else v)[:vectors]
            for k, v in x.items()}


def _stimulus(inst: Unit, name, vectors: int, seed: int) -> dict:
    if isinstance(name, Mapping):
        return _given(inst, name, vectors)
    if name == "random":
        return inst.stimulus(vectors, np.random.default_rng(seed))
    streams = STREAMS.get(inst.name, {})
    if name not in streams:
        raise QrtlError(f"unknown stimulus {name!r} for unit {inst.name} "
                        f"(stimuli: {', '.join(stimuli(inst.name))})")
    x = streams[name][0](inst.params, vectors)
    return {k: np.asarray(v)[:vectors] for k, v in x.items()}


def _hash_arrays(x: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(x):
        a = np.ascontiguousarray(np.asarray(x[k]))
        h.update(f"{k}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _complete(d) -> bool:
    """A cached measurement is trusted only with every field, of the right kinds."""
    return (isinstance(d, dict) and all(k in d for k in MEASURED)
            and all(isinstance(d[k], dict) for k in ("library", "cells", "energy_breakdown_pj",
                                                     "energy_zero_delay_breakdown_pj", "glitch_sim",
                                                     "synthesis"))
            and all(isinstance(d[k], (int, float)) for k in ("area_um2", "energy_pj_per_op",
                                                             "delay_ps")))


def _netlist(verilog: str, module: str, lib: Library, retime: int, out_module: str, timing: bool):
    """(synthesis, netlist, retimed Verilog path or None): ``module`` synthesised (with
    ``timing`` or ``retime``: the faster of the area and the buffered netlist,
    :func:`_faster`), its netlist cut into ``retime`` register stages (named
    ``out_module``) when ``retime > 0``."""
    if not retime and not timing:
        syn = synthesize(verilog, module, lib)
        return syn, syn.netlist(), None
    syn, nl, _ = _balanced(verilog, module, lib, retime, out_module)
    if not retime:
        return syn, nl, None

    def write(tmp):
        write_verilog(nl, tmp / "netlist.v")
        return ["netlist.v"]
    key = RETIME_CACHE.key(verilog, module, lib.key, retime, out_module, FLOW_VERSION,
                           RETIME_VERSION, TIMING_ABC_SCRIPT, BUDGET_FACTORS)
    return syn, nl, RETIME_CACHE.folder(key, write) / "netlist.v"


#: Retimed netlists and periods already found in this process (the stage search and the
#: measurement that follows it ask for the same ones).
_BALANCED: dict = {}


def _faster(verilog: str, module: str, lib: Library):
    """The synthesis with the shorter critical path (any path class) on our static timing:
    the area-oriented one or the timing flow's (fanout-buffered); ``synthesis["timing_choice"]``
    says which, with both delays."""
    runs = {name: synthesize(verilog, module, lib, timing=name == "buffered")
            for name in ("area", "buffered")}
    delays = {name: static_timing(s.netlist())["delay_ns"] for name, s in runs.items()}
    best = min(delays, key=lambda n: (delays[n], n != "area"))
    syn = runs[best]
    syn.synthesis = {**syn.synthesis, "timing_choice": best,
                     **{f"delay_ps_{n}": round(1000.0 * d, 2) for n, d in delays.items()}}
    return syn


def _balanced(verilog: str, module: str, lib: Library, retime: int, out_module: Optional[str]):
    """(synthesis, its netlist cut into ``retime`` stages and named ``out_module``, the
    period in ns), from the faster netlist of :func:`_faster`."""
    key = (hashlib.sha256(verilog.encode()).hexdigest(), module, lib.key, retime)
    if key not in _BALANCED:
        if len(_BALANCED) > 32:
            _BALANCED.clear()
        syn = _faster(verilog, module, lib)
        _BALANCED[key] = (syn, *balance(syn.netlist(), retime))
    syn, nl, period = _BALANCED[key]
    return syn, (replace(nl, module=out_module) if out_module else nl), period


def _period(verilog: str, module: str, lib: Library, retime: int) -> float:
    """Shortest clock period (ns) of ``module`` cut into ``retime`` stages (0: as is)."""
    return _balanced(verilog, module, lib, retime, None)[2]


def cost_verilog(verilog: str, module: str, inputs: dict, *, latency: int = 0,
                 stream: bool = False, liberty=None, clock_ns: float = DEFAULT_CLOCK_NS,
                 stimulus: str = "random", use_cache: bool = True, retime: int = 0,
                 out_module: Optional[str] = None, expected: Optional[dict] = None,
                 timing: bool = False) -> dict:
    """Cost of any Verilog module (ports as the registry defines them) on a stimulus.

    Returns the measured figures (:data:`MEASURED`, plus ``cached``) as a dict.
    ``inputs``: port name -> array of vectors; ``latency``: pipeline warm-up vectors
    (ignored for ``stream`` units, whose state is part of the measurement); ``retime``:
    cut the (combinational) netlist into that many register stages, named ``out_module``
    (:mod:`qrtl.reports.retime`); ``expected``: golden outputs the gate-level outputs must
    match (vector ``i`` read ``latency`` cycles later), else :class:`NetlistMismatch`;
    ``timing``: the faster of the area and the buffered netlist (always so when retimed).
    """
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    out_module = out_module or module
    key = COST_CACHE.key(verilog, module, lib.key, _hash_arrays(inputs), latency, stream,
                         clock_ns, stimulus, FLOW_VERSION, INPUT_SLEW_NS, retime, out_module,
                         None if expected is None else _hash_arrays(expected),
                         timing or bool(retime), RETIME_VERSION, TIMING_ABC_SCRIPT, BUDGET_FACTORS,
                         GLITCH_VERSION)
    computed = []

    def measure() -> dict:
        computed.append(True)
        t0 = time.perf_counter()
        syn, nl, retimed_v = _netlist(verilog, module, lib, retime, out_module, timing)
        sta = static_timing(nl)
        warmup = 0 if stream else latency
        act = simulate_activity(nl, inputs, warmup=warmup, keep_waves=True)
        gate = None
        if expected is not None:
            bad, n = check_outputs(nl, act, expected, latency)
            if bad:
                raise NetlistMismatch(f"gate-level netlist of {out_module} differs from the "
                                      f"golden model on {bad} of {n} vectors")
            gate = {"vectors": n, "mismatches": bad}
        e0 = energy_from_activity(nl, act, clock_ns)
        gact = simulate_glitches(nl, inputs, warmup=warmup, expected_waves=act.waves)
        act.waves = None
        e = glitch_energy(nl, gact, act, clock_ns)
        toggles = sum(gact.rises.values()) + sum(gact.falls.values())
        cells: dict = {}
        for inst in nl.insts:
            cells[inst.cell.name] = cells.get(inst.cell.name, 0) + 1
        return {
            "module": out_module,
            "library": lib.label,
            "area_um2": round(netlist_area(nl) if retime else syn.area_um2, 4),
            "cells": dict(sorted(cells.items())) if retime else syn.cells,
            "cell_count": sum(cells.values()),
            "transistors": None if retime else syn.transistors,
            "depth": logic_depth(nl),
            "delay_ps": round(1000.0 * sta["delay_ns"], 2),
            "critical_endpoint": sta["endpoint"],
            "paths_ps": {k[:-3]: None if sta[k] is None else round(1000.0 * sta[k], 2)
                         for k in ("in2out_ns", "in2reg_ns", "reg2reg_ns", "reg2out_ns")},
            "energy_pj_per_op": round(e["total"], 6),
            "energy_breakdown_pj": {k: round(e[k], 6) for k in ("internal", "switching", "leakage")},
            "energy_zero_delay_pj_per_op": round(e0["total"], 6),
            "energy_zero_delay_breakdown_pj": {k: round(e0[k], 6) for k in ("internal", "switching", "leakage")},
            "glitch_fraction": round(e["glitch_fraction"], 6),
            "glitch_sim": {"events": gact.events, "evaluations": gact.evaluations,
                           "swallowed_pulses": gact.swallowed, "settle_ns": round(gact.settle_ns, 4),
                           "seconds": round(gact.seconds, 3),
                           "events_per_s": round(gact.events_per_s),
                           "toggles_zero_delay_per_op": round((sum(act.rises.values()) + sum(act.falls.values()))
                                                              / max(act.ops, 1), 3),
                           "model": GLITCH_VERSION},
            "clock_ns": clock_ns,
            "stimulus": stimulus,
            "vectors": int(len(next(iter(inputs.values())))),
            "ops": act.ops,
            "toggles_per_op": round(toggles / max(act.ops, 1), 3),
            "input_slew_ns": INPUT_SLEW_NS,
            "netlist": str(retimed_v or syn.netlist_v),
            "synthesis": syn.synthesis,
            "retimed": bool(retime),
            "gate_check": gate,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    out = COST_CACHE.value(key, measure, fmt="json", check=_complete) if use_cache else measure()
    return {**out, "cached": not computed}


def _retimed(inst: Unit) -> Optional[Unit]:
    """The combinational configuration whose netlist is retimed into ``inst``'s generic
    ``pipeline`` stages, or None when ``inst`` is synthesised as written."""
    if not inst.spec.retime or not inst.params["pipeline"]:
        return None
    base = configure(inst.spec, {**inst.params, "pipeline": 0})
    return None if base.clocked else base


def _period_of(inst: Unit, lib: Library) -> float:
    """Shortest clock period (ns) of ``inst`` on our static timing (retimed if generic). A
    combinational configuration sits between its neighbours' registers: its input-to-
    output delay plus a flip-flop's clock-to-Q and setup (:func:`register_overhead_ns`)."""
    base = _retimed(inst)
    if base is not None:
        return _period(base.verilog(), base.module, lib, inst.params["pipeline"])
    p = _period(inst.verilog(), inst.module, lib, 0)
    return p if inst.clocked else p + register_overhead_ns(lib)


def _stage_range(inst: Unit) -> range:
    """The ``pipeline`` values worth trying from ``inst``'s own: all up to the maximum;
    for a clocked unit with the generic parameter (output ranks that are not retimed),
    only one more rank can shorten a path."""
    lo, top = inst.params["pipeline"], _max_pipeline(inst)
    if inst.spec.retime and configure(inst.spec, {**inst.params, "pipeline": 0}).clocked:
        top = max(lo, 1)
    return range(lo, top + 1)


def _max_pipeline(inst: Unit) -> int:
    p = next(p for p in inst.spec.params if p.name == "pipeline")
    return p.hi(inst.params) if callable(p.hi) else p.hi


def fastest_clock_ns(configs, liberty=None) -> float:
    """The fastest clock (ns, rounded up to 10 ps) that every ``(unit, params)`` in
    ``configs`` meets with some ``pipeline`` value in its range (at least its own): the
    largest, over the configurations, of the shortest period any of their stage counts
    reaches on our static timing (for a generic, retimed ``pipeline``: the largest count)."""
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    worst = 0.0
    for unit, params in configs:
        inst = configure(unit, params)
        ks = _stage_range(inst)
        if _retimed(configure(inst.spec, {**inst.params, "pipeline": ks[-1]})) is not None:
            ks = [ks[-1]]
        best = min(_period_of(configure(inst.spec, {**inst.params, "pipeline": k}), lib) for k in ks)
        worst = max(worst, best)
    return math.ceil(round(worst * 100.0, 6)) / 100.0


def stages_for_clock(inst: Unit, clock_ns: float, liberty=None) -> Unit:
    """The configuration of ``inst`` with the fewest ``pipeline`` stages (at least its own)
    whose clock period on our static timing (:func:`_period_of`) is at most ``clock_ns``;
    a one-line :class:`QrtlError` says why when none is.

    For a combinational unit with the generic parameter, the search starts one below
    ``ceil(D / clock_ns)`` stages (``D``: its delay), since every stage holds at most a
    clock period of logic (retiming changes loads, hence the margin of one)."""
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    overhead = register_overhead_ns(lib)
    if clock_ns < overhead:
        raise QrtlError(f"clock {clock_ns} ns is below a flip-flop's clock-to-Q plus setup "
                        f"({overhead:.3f} ns on {lib.name}): no pipeline can meet it")
    ks = _stage_range(inst)
    if ks[0] == 0 and not inst.clocked:
        p = _period_of(inst, lib)
        if p <= clock_ns:
            return inst
        if inst.spec.retime:
            d = p - overhead
            ks = range(max(1, min(ks[-1], math.ceil(d / clock_ns) - 1)), ks[-1] + 1)
    best = None
    for k in ks:
        cand = configure(inst.spec, {**inst.params, "pipeline": k})
        p = _period_of(cand, lib)
        if p <= clock_ns:
            return cand
        best = (k, p)
    raise QrtlError(f"{inst.name} cannot meet a {clock_ns} ns clock with at most {ks[-1]} stages "
                    f"(pipeline={best[0]}: {best[1]:.3f} ns on {lib.name})")


def cost_unit(unit, params: Optional[dict] = None, *, liberty=None, stimulus="random",
              vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS, seed: int = 0,
              use_cache: bool = True, clock_target: bool = False,
              wire_load: str = "default", stimulus_label: Optional[str] = None) -> CostResult:
    """Area, delay and energy per operation of one unit configuration.

    ``unit``: name, :class:`UnitSpec` or :class:`Unit`; ``params``: overrides of the
    defaults; ``liberty``: Liberty path (plain or gzip) or :class:`Library` (default: the
    shipped library); ``stimulus``: ``random`` (the unit's uniform stimulus, seeded by
    ``seed``) or a stream registered with :func:`qrtl.hw.registry.register_stream`;
    ``vectors``: vectors simulated; or ``stimulus`` is a mapping of input port name ->
    array (one entry per operation, in the order the unit performs them, e.g. the recorded
    operations of a network: :meth:`qrtl.golden.nets.qonnx.QonnxNet.streams`), repeated or
    cut to ``vectors``, named ``stimulus_label`` in the result (default ``arrays``; the
    cache key holds the arrays themselves); ``clock_ns``: the clock period (leakage, throughput,
    power, slack). With ``clock_target``, the configuration is first given the fewest
    ``pipeline`` stages that meet ``clock_ns`` (:func:`stages_for_clock`); ``wire_load``:
    the library's wire-load model added to every net (``default``: the file's default,
    ``none``, or a model name; :func:`qrtl.reports.liberty.load_library`).

    Energy: ``energy_pj_per_op`` counts glitches (delay-annotated simulation,
    :mod:`qrtl.reports.glitch`); ``energy_zero_delay_pj_per_op`` is the zero-delay figure
    (:mod:`qrtl.reports.energy`), ``glitch_fraction`` the share of the dynamic energy
    spent on transitions beyond the zero-delay ones.

    A generic ``pipeline`` > 0 on a combinational unit is costed on the unit's netlist
    retimed into that many stages (:mod:`qrtl.reports.retime`); that netlist, and every
    netlist costed for a clock target, is the faster (critical path of any class, on our
    static timing) of the area-oriented synthesis and the timing flow's (fanout buffering,
    :data:`qrtl.reports.synth.TIMING_FLOW`). Every non-stream measurement checks the
    gate-level outputs against the golden model.
    """
    vectors = check_int("vectors", vectors, 2, MAX_VECTORS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    clock_ns = check_float("clock_ns", clock_ns, 0.0, MAX_CLOCK_NS)
    inst = unit if isinstance(unit, Unit) else configure(unit, params or {})
    lib = with_wire_load(liberty, wire_load) if isinstance(liberty, Library) else load_library(liberty, wire_load)
    if clock_target:
        inst = stages_for_clock(inst, clock_ns, lib)
    warm = 0 if inst.spec.stream else inst.latency
    if vectors < warm + 2:
        raise QrtlError(f"vectors={vectors} is too few for latency {inst.latency} (need {warm + 2})")
    x = _stimulus(inst, stimulus, vectors, seed)
    if isinstance(stimulus, Mapping):
        stimulus = stimulus_label or "arrays"
    elif stimulus_label is not None:
        raise QrtlError("stimulus_label names a stimulus given as arrays only")
    expected = None if inst.spec.stream else inst.golden(x)
    base = _retimed(inst)
    src = base or inst
    out = cost_verilog(src.verilog(), src.module, x, latency=inst.latency,
                       stream=inst.spec.stream, liberty=lib, clock_ns=clock_ns,
                       stimulus=stimulus, use_cache=use_cache,
                       retime=inst.params["pipeline"] if base else 0, out_module=inst.module,
                       expected=expected, timing=clock_target)
    return CostResult(unit=inst.name, params=dict(inst.params), latency=inst.latency,
                      **{k: out[k] for k in MEASURED}, cached=out["cached"], seed=seed,
                      slack_ps=round(1000.0 * clock_ns - out["delay_ps"], 2),
                      ops_per_s=1e9 / clock_ns, clock_target=bool(clock_target),
                      power_mw=round(out["energy_pj_per_op"] / clock_ns, 6),
                      horowitz=horowitz(inst.name, inst.params))


def _cost_job(args) -> dict:
    """One configuration of a batch, as a dict (``{"error": ...}`` for an optional job
    whose named stream does not fit the configuration)."""
    name, params, liberty, stimulus, vectors, clock_ns, optional, *rest = args
    try:
        return cost_unit(name, params, liberty=liberty, stimulus=stimulus, vectors=vectors,
                         clock_ns=DEFAULT_CLOCK_NS if clock_ns is None else clock_ns,
                         clock_target=clock_ns is not None,
                         wire_load=rest[0] if rest else "default").as_dict()
    except NetlistMismatch:
        raise
    except QrtlError as exc:  # a stream that does not fit, a clock that cannot be met
        if optional:
            return {"error": str(exc)}
        raise


def _run_jobs(jobs_list: list, jobs: int, desc: str, progress: bool = True) -> list:
    from tqdm import tqdm
    jobs = max(1, int(jobs))
    with tqdm(total=len(jobs_list), desc=desc, unit="cfg", file=sys.stderr,
              disable=not progress or len(jobs_list) < 2) as bar:
        return pool_map(_cost_job, jobs_list, jobs, bar.update)


def cost_all(jobs: int = 2, liberty=None, *, stimulus: str = "random",
             vectors: int = DEFAULT_VECTORS, clock_ns: Optional[float] = None,
             progress: bool = True, wire_load: str = "default") -> list[dict]:
    """:func:`cost_unit` of the default configuration of every registered unit, as dicts
    (units a named stimulus does not fit, or that cannot meet the clock target
    ``clock_ns``, are skipped, with a notice; None: no target, as configured)."""
    lib = str(liberty) if liberty is not None else None
    load_library(lib, wire_load)  # parse once (cached) and check the model before the workers start
    names = [u.name for u in all_units()]
    optional = stimulus != "random" or clock_ns is not None  # may not fit every unit
    rows = _run_jobs([(n, {}, lib, stimulus, vectors, clock_ns, optional, wire_load) for n in names], jobs,
                     "cost units", progress)
    skipped = [(n, r["error"]) for n, r in zip(names, rows) if "error" in r]
    if len(skipped) == len(names):
        raise QrtlError(f"no unit's default configuration can be costed so: {rows[0]['error']}")
    for n, err in skipped:
        print(f"qrtl: {n} skipped: {err}", file=sys.stderr)
    return [r for r in rows if "error" not in r]


# --- the headline comparison ---------------------------------------------------------

QUANT_UNITS = ("quant_shift", "quant_fixedpoint", "quant_float")


def _bias_adder_verilog(width: int) -> tuple[str, str]:
    """Verilog of a stand-alone ``width``-bit bias adder ``s = acc + bias`` (width+1 bits):
    what a baseline without the fused bias needs in front of its requantizer."""
    from amaranth import signed
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class BiasAdd(wiring.Component):
        def __init__(self):
            super().__init__({"acc": In(signed(width)), "bias": In(signed(width)),
                              "s": Out(signed(width + 1))})

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.s.eq(self.acc + self.bias)
            return m

    name = f"qrtl_bias_add{width}"
    return verilog.convert(BiasAdd(), name=name, emit_src=False), name


def _bias_cost(liberty, vectors, clock_ns, stimulus="random", seed=0, clock_target=False):
    """Cost of the stand-alone 32-bit bias adder on the accumulators and biases the
    requantizer sees: uniform random, or a stream's (``acc``, ``bias``) from the
    ``quant_shift`` stream of the same name (which carries the network's biases).

    With ``clock_target``, the adder is a pipeline of its own in front of the requantizer:
    the fewest stages (at least one, its output registered) that meet ``clock_ns``,
    retimed like a unit's generic stages; ``pipeline`` in the result says how many."""
    from qrtl.hw.pipeline import MAX_STAGES
    text, name = _bias_adder_verilog(32)
    if stimulus in ("random", "random_acc"):
        rng = np.random.default_rng(seed + 1)
        x = {"acc": rng.integers(-2**31, 2**31, vectors, dtype=np.int64),
             "bias": rng.integers(-2**31, 2**31, vectors, dtype=np.int64)}
    else:
        p = configure("quant_shift", {"bias": 1, "in_width": 32}).params
        s = STREAMS["quant_shift"][stimulus][0](p, vectors)
        x = {"acc": s["acc"], "bias": s["bias"]}
    if not clock_target:
        return {**cost_verilog(text, name, x, liberty=liberty, clock_ns=clock_ns,
                               stimulus=stimulus), "pipeline": 0}
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    k = next((k for k in range(1, MAX_STAGES + 1) if _period(text, name, lib, k) <= clock_ns), None)
    if k is None:
        raise QrtlError(f"the 32-bit bias adder cannot meet a {clock_ns} ns clock with at most "
                        f"{MAX_STAGES} stages")
    expected = {"s": np.asarray(x["acc"], np.int64) + np.asarray(x["bias"], np.int64)}
    out = cost_verilog(text, name, x, liberty=lib, clock_ns=clock_ns, stimulus=stimulus,
                       latency=k, retime=k, out_module=f"{name}_pipeline{k}", expected=expected)
    return {**out, "pipeline": k}


BASELINES = ("quant_fixedpoint", "quant_float")


#: The configurations compared: (label, unit, parameters). ``quant_shift`` twice: with the
#: shift fixed in the hardware (the proposed operation at its cheapest) and with the shift
#: as an input, like the baselines, whose scale (``m0``/``shift``, ``scale``) is an input.

def _quant_configs(out_width: int, bias: int) -> list[tuple[str, str, dict]]:
    return [("quant_shift", "quant_shift", {"in_width": 32, "out_width": out_width, "bias": bias}),
            ("quant_shift runtime", "quant_shift",
             {"in_width": 32, "out_width": out_width, "bias": bias, "runtime_shift": 1}),
            ("quant_fixedpoint", "quant_fixedpoint", {"out_width": out_width}),
            ("quant_float", "quant_float", {"out_width": out_width})]


def baseline_clock_ns(liberty=None) -> float:
    """The fastest clock the slowest requantization baseline (every configuration of
    :data:`BASELINES` the comparison uses) meets with at most its largest ``pipeline``."""
    configs = [(u, p) for ow in (8, 4) for _, u, p in _quant_configs(ow, 0) if u in BASELINES]
    return fastest_clock_ns(configs, liberty)


def compare_quant(liberties: Optional[list] = None, *, jobs: int = 2,
                  vectors: int = DEFAULT_VECTORS, clock_ns: Optional[float] = None,
                  stimuli: Optional[list] = None, progress: bool = True) -> list[dict]:
    """The headline comparison: ``quant_shift`` (static and runtime shift) vs
    ``quant_fixedpoint`` vs ``quant_float`` at matched widths (32-bit accumulator to 8 and
    4 bits, with and without the bias).

    With the bias, ``quant_shift`` fuses it (``bias=1``), while each baseline pays a
    separate 32-bit bias adder in front of it, measured on the same stimulus (area and
    energy add, delays add; its Horowitz add too). One row per (library, stimulus,
    out_width, bias, config), with ``area_ratio_vs_*`` and ``energy_ratio_vs_*`` =
    baseline / this row (> 1: this row is cheaper). Stimuli: ``random`` (every input
    uniform, configuration inputs included) plus every stream registered for all three
    units (``random_acc``: configuration held constant as in a layer; ``int8``: the
    network's accumulators).

    ``clock_ns``: a common clock every configuration must meet, each with its fewest
    ``pipeline`` stages (:func:`stages_for_clock`; rows say ``pipeline`` and ``latency``);
    the bias adder in front of a baseline is then a pipeline of its own (the fewest stages,
    at least one, that meet the clock; its stages add to the row's latency).
    None: unpipelined, leakage and power at :data:`DEFAULT_CLOCK_NS`. ``stimuli``: a
    subset of the stimuli (default: all).
    """
    from .horowitz import add as horowitz_add
    missing = [u for u in QUANT_UNITS if u not in {s.name for s in all_units()}]
    if missing:
        raise QrtlError(f"the requantizer comparison needs units {', '.join(missing)} (not registered)")
    if liberties is None:
        liberties = [None] + ([str(sky130_path())] if sky130_path() else [])
    streams = set.intersection(*(set(STREAMS.get(u, {})) for u in QUANT_UNITS))
    stims = ["random"] + sorted(streams)
    if stimuli is not None:
        unknown = sorted(set(stimuli) - set(stims))
        if unknown:
            raise QrtlError(f"unknown stimuli {', '.join(unknown)} (stimuli: {', '.join(stims)})")
        stims = [s for s in stims if s in stimuli]
    for lib in liberties:
        if lib is not None:
            load_library(lib)
    jobs_list, keys = [], []
    for lib in liberties:
        for stim in stims:
            for ow in (8, 4):
                for bias in (0, 1):
                    for label, unit, params in _quant_configs(ow, bias):
                        jobs_list.append((unit, params, lib, stim, vectors, clock_ns, stim != "random"))
                        keys.append((lib, stim, ow, bias, label))
    results = _run_jobs(jobs_list, jobs, "compare quant", progress)
    skip = {(lib, stim, ow, bias) for (lib, stim, ow, bias, _), r in zip(keys, results) if "error" in r}
    clock = DEFAULT_CLOCK_NS if clock_ns is None else clock_ns
    bias_cost = {(lib, stim): _bias_cost(lib, vectors, clock, stim, clock_target=clock_ns is not None)
                 for (lib, stim, ow, bias, _) in keys if bias and (lib, stim, ow, bias) not in skip}
    rows = []
    by = {}
    for (lib, stim, ow, bias, label), r in zip(keys, results):
        if (lib, stim, ow, bias) in skip:  # a real stream exists only for some widths
            continue
        unit = r["unit"]
        area, energy, delay = r["area_um2"], r["energy_pj_per_op"], r["delay_ps"]
        energy0, glitch_pj = r["energy_zero_delay_pj_per_op"], _glitch_pj(r)
        hz = (r["horowitz"] or {}).get("pj")
        adder = bool(bias and unit != "quant_shift")
        if adder:
            b = bias_cost[(lib, stim)]
            area, energy, delay = area + b["area_um2"], energy + b["energy_pj_per_op"], delay + b["delay_ps"]
            energy0, glitch_pj = energy0 + b["energy_zero_delay_pj_per_op"], glitch_pj + _glitch_pj(b)
            hz = hz + horowitz_add(32) if hz is not None else None
        latency = r["latency"]
        if adder and clock_ns is not None:  # the adder is a pipeline of its own in front
            delay, latency = max(r["delay_ps"], b["delay_ps"]), latency + b["pipeline"]
        row = {"library": r["library"]["name"], "corner": r["library"]["corner"], "stimulus": stim,
               "out_width": ow, "bias": bias, "config": label, "unit": unit, "params": r["params"],
               "pipeline": r["params"]["pipeline"], "latency": latency,
               "clock_ns": clock, "clock_target": clock_ns is not None,
               "area_um2": round(area, 3), "delay_ps": round(delay, 1),
               "energy_pj_per_op": round(energy, 6),
               "energy_zero_delay_pj_per_op": round(energy0, 6),
               "glitch_fraction": round(glitch_pj / max(energy - _leak(r) - (_leak(b) if adder else 0.0), 1e-12), 4),
               "ops_per_s": 1e9 / clock,
               "power_mw": round(energy / clock, 6), "bias_adder": adder, "horowitz_pj": hz}
        rows.append(row)
        by[(lib, stim, ow, bias, label)] = row
    for (lib, stim, ow, bias, label), row in by.items():
        for base in BASELINES:
            b = by[(lib, stim, ow, bias, base)]
            row[f"area_ratio_vs_{base}"] = round(b["area_um2"] / row["area_um2"], 3)
            row[f"energy_ratio_vs_{base}"] = round(b["energy_pj_per_op"] / row["energy_pj_per_op"], 3) \
                if row["energy_pj_per_op"] > 0 else None
            row[f"energy_zero_delay_ratio_vs_{base}"] = round(
                b["energy_zero_delay_pj_per_op"] / row["energy_zero_delay_pj_per_op"], 3) \
                if row["energy_zero_delay_pj_per_op"] > 0 else None
    return rows


def _leak(r: dict) -> float:
    return r["energy_breakdown_pj"]["leakage"]


def _glitch_pj(r: dict) -> float:
    """Energy per operation (pJ) of a result's transitions beyond the zero-delay ones."""
    e = r["energy_breakdown_pj"]
    return r["glitch_fraction"] * (e["internal"] + e["switching"])
