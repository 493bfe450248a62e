"""Area, delay and energy per operation of registered units (``qrtl cost``, ``qrtl.cost``).

For one unit configuration (:func:`cost_unit`):

1. synthesise its Verilog with Yosys + ABC onto a Liberty library (:mod:`qrtl.reports.synth`;
   default: the SKY130 HD subset shipped in ``reports/data/qrtl_default.lib``);
2. read area (``stat -liberty``), cell counts, transistors (``stat -tech cmos`` on a
   generic NAND/NOR mapping), logic depth and critical-path delay (NLDM static timing);
3. simulate the gate-level netlist zero-delay on a stimulus stream and turn the toggle
   counts into energy per operation (:mod:`qrtl.reports.energy`; glitches are not counted,
   which underestimates the dynamic energy of deep arithmetic);
4. add the analytical Horowitz estimate (:mod:`qrtl.reports.horowitz`) as a reference column.

Results are cached (``build/cache/cost/``, :class:`qrtl.golden.cache.Cache`), keyed on the
Verilog, the library's contents, the stimulus data, the clock, the code version of the flow
and the tool versions. :func:`cost_unit` returns a :class:`CostResult`.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from qrtl.golden.cache import Cache
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_float, check_int
from qrtl.golden.procs import pool_map
from qrtl.hw.registry import STREAMS, Unit
from qrtl.hw.units import all_units, configure

from .energy import energy_from_activity, simulate_activity
from .horowitz import horowitz
from .liberty import Library, load_library, sky130_path
from .synth import FLOW_VERSION, INPUT_SLEW_NS, logic_depth, static_timing, synthesize

__all__ = ["CostResult", "cost_unit", "cost_verilog", "cost_all", "compare_quant", "stimuli",
           "DEFAULT_VECTORS", "DEFAULT_CLOCK_NS", "MAX_VECTORS", "MAX_CLOCK_NS", "JSON_KEYS"]

#: Vectors simulated per measurement (the first ``latency + 1`` warm the pipeline up).
DEFAULT_VECTORS = 4096
#: Clock period (ns) used for the leakage term: one operation per clock cycle.
DEFAULT_CLOCK_NS = 10.0
#: Bounds of a measurement: the gate-level simulation keeps every net's waveform in memory
#: (about 1 kB per vector for the largest units), and a clock beyond a millisecond makes the
#: leakage term meaningless.
MAX_VECTORS = 1_000_000
MAX_CLOCK_NS = 1e6
COST_VERSION = "qrtl-cost-5"
COST_CACHE = Cache("cost", COST_VERSION)

#: Keys every result has (the public JSON contract of ``qrtl cost --json``).
JSON_KEYS = ("unit", "params", "library", "area_um2", "cells", "transistors", "depth",
             "delay_ps", "energy_pj_per_op", "energy_breakdown_pj", "clock_ns", "stimulus")

#: Fields of a measurement (:func:`cost_verilog`); a cached entry without them is rebuilt.
MEASURED = ("module", "library", "area_um2", "cells", "cell_count", "transistors", "depth",
            "delay_ps", "critical_endpoint", "paths_ps", "energy_pj_per_op", "energy_breakdown_pj",
            "clock_ns", "stimulus", "vectors", "ops", "toggles_per_op", "input_slew_ns",
            "netlist", "synthesis", "seconds")


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


def _stimulus(inst: Unit, name: str, vectors: int, seed: int) -> dict:
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
                                                     "synthesis"))
            and all(isinstance(d[k], (int, float)) for k in ("area_um2", "energy_pj_per_op",
                                                             "delay_ps")))


def cost_verilog(verilog: str, module: str, inputs: dict, *, latency: int = 0,
                 stream: bool = False, liberty=None, clock_ns: float = DEFAULT_CLOCK_NS,
                 stimulus: str = "random", use_cache: bool = True) -> dict:
    """Cost of any Verilog module (ports as the registry defines them) on a stimulus.

    Returns the measured figures (:data:`MEASURED`, plus ``cached``) as a dict.
    ``inputs``: port name -> array of vectors; ``latency``: pipeline warm-up vectors
    (ignored for ``stream`` units, whose state is part of the measurement).
    """
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    key = COST_CACHE.key(verilog, module, lib.sha256, _hash_arrays(inputs), latency, stream,
                         clock_ns, stimulus, FLOW_VERSION, INPUT_SLEW_NS)
    computed = []

    def measure() -> dict:
        computed.append(True)
        t0 = time.perf_counter()
        syn = synthesize(verilog, module, lib)
        nl = syn.netlist()
        sta = static_timing(nl)
        act = simulate_activity(nl, inputs, warmup=0 if stream else latency)
        e = energy_from_activity(nl, act, clock_ns)
        toggles = sum(act.rises.values()) + sum(act.falls.values())
        return {
            "module": module,
            "library": lib.label,
            "area_um2": round(syn.area_um2, 4),
            "cells": syn.cells,
            "cell_count": sum(syn.cells.values()),
            "transistors": syn.transistors,
            "depth": logic_depth(nl),
            "delay_ps": round(1000.0 * sta["delay_ns"], 2),
            "critical_endpoint": sta["endpoint"],
            "paths_ps": {k[:-3]: None if sta[k] is None else round(1000.0 * sta[k], 2)
                         for k in ("in2out_ns", "in2reg_ns", "reg2reg_ns", "reg2out_ns")},
            "energy_pj_per_op": round(e["total"], 6),
            "energy_breakdown_pj": {k: round(e[k], 6) for k in ("internal", "switching", "leakage")},
            "clock_ns": clock_ns,
            "stimulus": stimulus,
            "vectors": int(len(next(iter(inputs.values())))),
            "ops": act.ops,
            "toggles_per_op": round(toggles / max(act.ops, 1), 3),
            "input_slew_ns": INPUT_SLEW_NS,
            "netlist": str(syn.netlist_v),
            "synthesis": syn.synthesis,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    out = COST_CACHE.value(key, measure, fmt="json", check=_complete) if use_cache else measure()
    return {**out, "cached": not computed}


def cost_unit(unit, params: Optional[dict] = None, *, liberty=None, stimulus: str = "random",
              vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS, seed: int = 0,
              use_cache: bool = True) -> CostResult:
    """Area, delay and energy per operation of one unit configuration.

    ``unit``: name, :class:`UnitSpec` or :class:`Unit`; ``params``: overrides of the
    defaults; ``liberty``: Liberty path (plain or gzip) or :class:`Library` (default: the
    shipped library); ``stimulus``: ``random`` (the unit's uniform stimulus, seeded by
    ``seed``) or a stream registered with :func:`qrtl.hw.registry.register_stream`;
    ``vectors``: vectors simulated; ``clock_ns``: the clock period of the leakage term.
    """
    vectors = check_int("vectors", vectors, 2, MAX_VECTORS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    clock_ns = check_float("clock_ns", clock_ns, 0.0, MAX_CLOCK_NS)
    inst = unit if isinstance(unit, Unit) else configure(unit, params or {})
    warm = 0 if inst.spec.stream else inst.latency
    if vectors < warm + 2:
        raise QrtlError(f"vectors={vectors} is too few for latency {inst.latency} (need {warm + 2})")
    x = _stimulus(inst, stimulus, vectors, seed)
    out = cost_verilog(inst.verilog(), inst.module, x, latency=inst.latency,
                       stream=inst.spec.stream, liberty=liberty, clock_ns=clock_ns,
                       stimulus=stimulus, use_cache=use_cache)
    return CostResult(unit=inst.name, params=dict(inst.params), latency=inst.latency,
                      **{k: out[k] for k in MEASURED}, cached=out["cached"], seed=seed,
                      slack_ps=round(1000.0 * clock_ns - out["delay_ps"], 2),
                      ops_per_s=1e9 / clock_ns,
                      power_mw=round(out["energy_pj_per_op"] / clock_ns, 6),
                      horowitz=horowitz(inst.name, inst.params))


def _cost_job(args) -> dict:
    """One configuration of a batch, as a dict (``{"error": ...}`` for an optional job
    whose named stream does not fit the configuration)."""
    name, params, liberty, stimulus, vectors, clock_ns = args[:6]
    try:
        return cost_unit(name, params, liberty=liberty, stimulus=stimulus, vectors=vectors,
                         clock_ns=clock_ns).as_dict()
    except QrtlError as exc:
        if len(args) > 6 and args[6]:
            return {"error": str(exc)}
        raise


def _run_jobs(jobs_list: list, jobs: int, desc: str, progress: bool = True) -> list:
    from tqdm import tqdm
    jobs = max(1, int(jobs))
    with tqdm(total=len(jobs_list), desc=desc, unit="cfg", file=sys.stderr,
              disable=not progress or len(jobs_list) < 2) as bar:
        return pool_map(_cost_job, jobs_list, jobs, bar.update)


def cost_all(jobs: int = 2, liberty=None, *, stimulus: str = "random",
             vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS,
             progress: bool = True) -> list[dict]:
    """:func:`cost_unit` of the default configuration of every registered unit, as dicts
    (units a named stimulus does not fit are skipped, with a notice)."""
    lib = str(liberty) if liberty is not None else None
    if lib is not None:
        load_library(lib)  # parse once (cached) before the workers start
    names = [u.name for u in all_units()]
    optional = stimulus != "random"  # a named stream exists only for some units
    rows = _run_jobs([(n, {}, lib, stimulus, vectors, clock_ns, optional) for n in names], jobs,
                     "cost units", progress)
    skipped = [n for n, r in zip(names, rows) if "error" in r]
    if len(skipped) == len(names):
        raise QrtlError(f"stimulus {stimulus!r} fits no unit's default configuration (e.g. {rows[0]['error']})")
    if skipped:
        print(f"qrtl: no stimulus {stimulus!r} for {', '.join(skipped)} (skipped)", file=sys.stderr)
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


def _bias_cost(liberty, vectors, clock_ns, stimulus="random", seed=0):
    """Cost of the stand-alone 32-bit bias adder on the accumulators and biases the
    requantizer sees: uniform random, or a stream's (``acc``, ``bias``) from the
    ``quant_shift`` stream of the same name (which carries the network's biases)."""
    text, name = _bias_adder_verilog(32)
    if stimulus in ("random", "random_acc"):
        rng = np.random.default_rng(seed + 1)
        x = {"acc": rng.integers(-2**31, 2**31, vectors, dtype=np.int64),
             "bias": rng.integers(-2**31, 2**31, vectors, dtype=np.int64)}
    else:
        p = configure("quant_shift", {"bias": 1, "in_width": 32}).params
        s = STREAMS["quant_shift"][stimulus][0](p, vectors)
        x = {"acc": s["acc"], "bias": s["bias"]}
    return cost_verilog(text, name, x, liberty=liberty, clock_ns=clock_ns, stimulus=stimulus)


#: The configurations compared: (label, unit, parameters). ``quant_shift`` twice: with the
#: shift fixed in the hardware (the proposed operation at its cheapest) and with the shift
#: as an input, like the baselines, whose scale (``m0``/``shift``, ``scale``) is an input.
def _quant_configs(out_width: int, bias: int) -> list[tuple[str, str, dict]]:
    return [("quant_shift", "quant_shift", {"in_width": 32, "out_width": out_width, "bias": bias}),
            ("quant_shift runtime", "quant_shift",
             {"in_width": 32, "out_width": out_width, "bias": bias, "runtime_shift": 1}),
            ("quant_fixedpoint", "quant_fixedpoint", {"out_width": out_width}),
            ("quant_float", "quant_float", {"out_width": out_width})]


def compare_quant(liberties: Optional[list] = None, *, jobs: int = 2,
                  vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS,
                  progress: bool = True) -> list[dict]:
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
    """
    from .horowitz import add as horowitz_add
    missing = [u for u in QUANT_UNITS if u not in {s.name for s in all_units()}]
    if missing:
        raise QrtlError(f"the requantizer comparison needs units {', '.join(missing)} (not registered)")
    if liberties is None:
        liberties = [None] + ([str(sky130_path())] if sky130_path() else [])
    streams = set.intersection(*(set(STREAMS.get(u, {})) for u in QUANT_UNITS))
    stims = ["random"] + sorted(streams)
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
    bias_cost = {(lib, stim): _bias_cost(lib, vectors, clock_ns, stim)
                 for (lib, stim, ow, bias, _) in keys if bias and (lib, stim, ow, bias) not in skip}
    rows = []
    by = {}
    for (lib, stim, ow, bias, label), r in zip(keys, results):
        if (lib, stim, ow, bias) in skip:  # a real stream exists only for some widths
            continue
        unit = r["unit"]
        area, energy, delay = r["area_um2"], r["energy_pj_per_op"], r["delay_ps"]
        hz = (r["horowitz"] or {}).get("pj")
        adder = bool(bias and unit != "quant_shift")
        if adder:
            b = bias_cost[(lib, stim)]
            area, energy, delay = area + b["area_um2"], energy + b["energy_pj_per_op"], delay + b["delay_ps"]
            hz = hz + horowitz_add(32) if hz is not None else None
        row = {"library": r["library"]["name"], "corner": r["library"]["corner"], "stimulus": stim,
               "out_width": ow, "bias": bias, "config": label, "unit": unit, "params": r["params"],
               "area_um2": round(area, 3), "delay_ps": round(delay, 1),
               "energy_pj_per_op": round(energy, 6), "ops_per_s": 1e9 / clock_ns,
               "power_mw": round(energy / clock_ns, 6), "bias_adder": adder, "horowitz_pj": hz}
        rows.append(row)
        by[(lib, stim, ow, bias, label)] = row
    for (lib, stim, ow, bias, label), row in by.items():
        for base in ("quant_fixedpoint", "quant_float"):
            b = by[(lib, stim, ow, bias, base)]
            row[f"area_ratio_vs_{base}"] = round(b["area_um2"] / row["area_um2"], 3)
            row[f"energy_ratio_vs_{base}"] = round(b["energy_pj_per_op"] / row["energy_pj_per_op"], 3) \
                if row["energy_pj_per_op"] > 0 else None
    return rows
