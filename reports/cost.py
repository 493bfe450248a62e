"""``qrtl cost``: area, delay and energy per operation of registered units.

For one unit configuration (:func:`cost_unit`):

1. synthesise its Verilog with Yosys + ABC onto a Liberty library (:mod:`reports.synth`;
   default: the SKY130 HD subset shipped in ``reports/data/qrtl_default.lib``);
2. read area (``stat -liberty``), cell counts, transistors (``stat -tech cmos`` on a
   generic NAND/NOR mapping), logic depth and critical-path delay (NLDM static timing);
3. simulate the gate-level netlist zero-delay on a stimulus stream and turn the toggle
   counts into energy per operation (:mod:`reports.energy`; glitches are not counted,
   which underestimates the dynamic energy of deep arithmetic);
4. add the analytical Horowitz estimate (:mod:`reports.horowitz`) as a reference column.

Results are cached as JSON under ``build/cost/cache/``, keyed on the Verilog, the library
file's hash, the stimulus data, the clock and the code version of the flow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from hw.errors import QrtlError
from hw.registry import STREAMS, Instance, all_units, instance

from .energy import energy_from_activity, simulate_activity
from .horowitz import horowitz
from .liberty import Library, load_library, sky130_path
from .synth import FLOW_VERSION, INPUT_SLEW_NS, logic_depth, static_timing, synthesize

__all__ = ["cost_unit", "cost_all", "compare_quant", "register_cli", "stimuli",
           "DEFAULT_VECTORS", "DEFAULT_CLOCK_NS", "JSON_KEYS"]

#: Vectors simulated per measurement (the first ``latency + 1`` warm the pipeline up).
DEFAULT_VECTORS = 4096
#: Clock period (ns) used for the leakage term: one operation per clock cycle.
DEFAULT_CLOCK_NS = 10.0
COST_VERSION = "qrtl-cost-2"

#: Keys every result has (the public JSON contract of ``qrtl cost --json``).
JSON_KEYS = ("unit", "params", "library", "area_um2", "cells", "transistors", "depth",
             "delay_ps", "energy_pj_per_op", "energy_breakdown_pj", "clock_ns", "stimulus")


def _load_streams() -> None:
    """Import the modules that register named stimulus streams (if present)."""
    all_units()
    with contextlib.suppress(ImportError):
        import golden.nets  # noqa: F401  (networks register their operand streams)
    for name in ("golden.nets.streams", "golden.streams"):
        with contextlib.suppress(ImportError):
            __import__(name)


def stimuli(unit: str) -> list[str]:
    """Names of the stimuli unit ``unit`` accepts: ``random`` plus its registered streams."""
    _load_streams()
    return ["random"] + sorted(STREAMS.get(unit, {}))


def _stimulus(inst: Instance, name: str, vectors: int, seed: int) -> dict:
    if name == "random":
        return inst.stimulus(vectors, np.random.default_rng(seed))
    _load_streams()
    streams = STREAMS.get(inst.spec.name, {})
    if name not in streams:
        raise QrtlError(f"unknown stimulus {name!r} for unit {inst.spec.name} "
                        f"(stimuli: {', '.join(stimuli(inst.spec.name))})")
    x = streams[name][0](inst.params, vectors)
    return {k: np.asarray(v)[:vectors] for k, v in x.items()}


def _hash_arrays(x: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(x):
        a = np.ascontiguousarray(np.asarray(x[k]))
        h.update(f"{k}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()



def cost_verilog(verilog: str, module: str, inputs: dict, *, latency: int = 0,
                 stream: bool = False, liberty=None, clock_ns: float = DEFAULT_CLOCK_NS,
                 stimulus: str = "random", use_cache: bool = True) -> dict:
    """Cost of any Verilog module (ports as the registry defines them) on a stimulus.

    Returns the synthesis and energy figures (no unit/params/Horowitz fields).
    ``inputs``: port name -> array of vectors; ``latency``: pipeline warm-up vectors
    (ignored for ``stream`` units, whose state is part of the measurement).
    """
    from sim.toolchain import build_root, file_lock, tool_versions
    lib = liberty if isinstance(liberty, Library) else load_library(liberty)
    key = hashlib.sha256(json.dumps([verilog, module, lib.sha256, _hash_arrays(inputs), latency,
                                     stream, clock_ns, stimulus, COST_VERSION, FLOW_VERSION,
                                     INPUT_SLEW_NS, tool_versions()]).encode()).hexdigest()[:32]
    cache = build_root() / "cost" / "cache" / f"{key}.json"
    if use_cache and cache.exists():
        out = json.loads(cache.read_text())
        out["cached"] = True
        return out
    with file_lock(build_root() / "cost" / "locks" / f"{key}.lock"):
        if use_cache and cache.exists():
            out = json.loads(cache.read_text())
            out["cached"] = True
            return out
        t0 = time.perf_counter()
        syn = synthesize(verilog, module, lib)
        nl = syn.netlist()
        sta = static_timing(nl)
        warm = 0 if stream else latency
        act = simulate_activity(nl, inputs, warmup=warm)
        e = energy_from_activity(nl, act, clock_ns)
        toggles = sum(act.rises.values()) + sum(act.falls.values())
        out = {
            "module": module,
            "library": lib.label,
            "area_um2": round(syn.area_um2, 4),
            "cells": syn.cells,
            "cell_count": sum(syn.cells.values()),
            "transistors": syn.transistors,
            "depth": logic_depth(nl),
            "delay_ps": round(1000.0 * sta["delay_ns"], 2),
            "critical_endpoint": sta["endpoint"],
            "energy_pj_per_op": round(e["total"], 6),
            "energy_breakdown_pj": {k: round(e[k], 6) for k in ("internal", "switching", "leakage")},
            "clock_ns": clock_ns,
            "stimulus": stimulus,
            "vectors": int(len(next(iter(inputs.values())))),
            "ops": act.ops,
            "toggles_per_op": round(toggles / max(act.ops, 1), 3),
            "input_slew_ns": INPUT_SLEW_NS,
            "netlist": str(syn.netlist_v),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if use_cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(out))
            tmp.replace(cache)
        out["cached"] = False
        return out


def cost_unit(unit, params: Optional[dict] = None, *, liberty=None, stimulus: str = "random",
              vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS, seed: int = 0,
              use_cache: bool = True) -> dict:
    """Area, delay and energy per operation of one unit configuration.

    ``unit``: name, :class:`UnitSpec` or :class:`Instance`; ``params``: overrides of the
    defaults; ``liberty``: Liberty path (plain or gzip) or :class:`Library` (default: the
    shipped library); ``stimulus``: ``random`` (the unit's uniform stimulus, seeded by
    ``seed``) or a stream registered with :func:`hw.registry.register_stream`.

    Returns a dict with (at least) :data:`JSON_KEYS`: ``area_um2`` (um^2), ``cells``
    (count per cell type), ``transistors`` (generic CMOS mapping), ``depth`` (logic
    levels), ``delay_ps`` (critical path), ``energy_pj_per_op`` (= internal + switching +
    leakage, pJ per vector), ``energy_breakdown_pj``, ``clock_ns``, ``stimulus``; plus
    ``horowitz`` (analytical reference column, or None).
    """
    if vectors < 2:
        raise QrtlError(f"--vectors={vectors} must be at least 2")
    if not clock_ns > 0:
        raise QrtlError(f"--clock-ns={clock_ns} must be positive")
    clock_ns = float(clock_ns)
    inst = unit if isinstance(unit, Instance) else instance(unit, params or {})
    warm = 0 if inst.spec.stream else inst.latency
    if vectors < warm + 2:
        raise QrtlError(f"--vectors={vectors} too few for latency {inst.latency} (need {warm + 2})")
    x = _stimulus(inst, stimulus, vectors, seed)
    out = cost_verilog(inst.verilog(), inst.module, x, latency=inst.latency,
                       stream=inst.spec.stream, liberty=liberty, clock_ns=clock_ns,
                       stimulus=stimulus, use_cache=use_cache)
    res = {"unit": inst.spec.name, "params": dict(inst.params), "latency": inst.latency}
    res.update(out)
    res["seed"] = seed
    res["horowitz"] = horowitz(inst.spec.name, inst.params)
    return {k: res[k] for k in ("unit", "params") + tuple(k for k in res if k not in ("unit", "params"))}


def _cost_job(args):
    name, params, liberty, stimulus, vectors, clock_ns = args[:6]
    try:
        return cost_unit(name, params, liberty=liberty, stimulus=stimulus, vectors=vectors,
                         clock_ns=clock_ns)
    except QrtlError as exc:
        if len(args) > 6 and args[6]:  # optional job: a stream that does not fit this config
            return {"error": str(exc)}
        raise


def _run_jobs(jobs_list: list, jobs: int, desc: str, progress: bool = True) -> list:
    from tqdm import tqdm
    jobs = max(1, int(jobs))
    bar = dict(total=len(jobs_list), desc=desc, unit="cfg", disable=not progress or len(jobs_list) < 2,
               file=sys.stderr)
    if jobs == 1 or len(jobs_list) == 1:
        return [_cost_job(j) for j in tqdm(jobs_list, **bar)]
    with ProcessPoolExecutor(min(jobs, len(jobs_list))) as pool:
        return list(tqdm(pool.map(_cost_job, jobs_list), **bar))


def cost_all(jobs: int = 2, liberty=None, *, stimulus: str = "random",
             vectors: int = DEFAULT_VECTORS, clock_ns: float = DEFAULT_CLOCK_NS,
             progress: bool = True) -> list[dict]:
    """:func:`cost_unit` of the default configuration of every registered unit."""
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
        p = instance("quant_shift", {"bias": 1, "in_width": 32}).params
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
    _load_streams()
    missing = [u for u in QUANT_UNITS if u not in {s.name for s in all_units()}]
    if missing:
        raise QrtlError(f"--compare quant needs units {', '.join(missing)} (not registered)")
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
               "energy_pj_per_op": round(energy, 6), "bias_adder": adder, "horowitz_pj": hz}
        rows.append(row)
        by[(lib, stim, ow, bias, label)] = row
    for (lib, stim, ow, bias, label), row in by.items():
        for base in ("quant_fixedpoint", "quant_float"):
            b = by[(lib, stim, ow, bias, base)]
            row[f"area_ratio_vs_{base}"] = round(b["area_um2"] / row["area_um2"], 3)
            row[f"energy_ratio_vs_{base}"] = round(b["energy_pj_per_op"] / row["energy_pj_per_op"], 3) \
                if row["energy_pj_per_op"] > 0 else None
    return rows


# --- CLI -----------------------------------------------------------------------------

def _fmt_row(r: dict) -> str:
    b = r["energy_breakdown_pj"]
    hz = r.get("horowitz") or {}
    params = ",".join(f"{k}={v}" for k, v in r["params"].items())
    return (f"{r['unit']:<17} {r['area_um2']:>10.1f} {r.get('cell_count', 0):>6} "
            f"{r['transistors'] if r['transistors'] is not None else '-':>7} {r['depth']:>5} "
            f"{r['delay_ps']:>8.0f} {r['energy_pj_per_op']:>9.4f} {b['internal']:>9.4f} "
            f"{b['switching']:>9.4f} {b['leakage']:>9.2e} "
            f"{hz.get('pj', float('nan')) if hz else float('nan'):>8.3f}  {params}")


_HEADER = (f"{'unit':<17} {'area um2':>10} {'cells':>6} {'transis':>7} {'depth':>5} {'delay ps':>8} "
           f"{'E pJ/op':>9} {'internal':>9} {'switch':>9} {'leakage':>9} {'Horowitz':>8}  params")


def _print_table(rows: list, out=sys.stdout) -> None:
    r0 = rows[0]
    lib = r0["library"]
    print(f"library {lib['name']} ({lib['corner']}, {lib['voltage']} V); stimulus {r0['stimulus']}, "
          f"{r0['vectors']} vectors; clock {r0['clock_ns']} ns; input slew {r0['input_slew_ns']} ns; "
          f"zero-delay toggles (glitches not counted); Horowitz = 45 nm analytical reference", file=out)
    print(_HEADER, file=out)
    for r in rows:
        print(_fmt_row(r), file=out)


def _print_compare(rows: list, out=sys.stdout) -> None:
    key = None
    for r in rows:
        k = (r["library"], r["stimulus"])
        if k != key:
            key = k
            print(f"\n{r['library']} ({r['corner']}), stimulus {r['stimulus']}: 32-bit accumulator -> "
                  f"out_width bits; ratios = baseline / unit", file=out)
            print(f"{'out':>3} {'bias':>4} {'config':<24} {'area um2':>9} {'delay ps':>8} {'E pJ/op':>9} "
                  f"{'A/fixedp':>8} {'E/fixedp':>8} {'A/float':>8} {'E/float':>8} {'Horowitz':>8}", file=out)
        print(f"{r['out_width']:>3} {r['bias']:>4} {r['config'] + (' +adder' if r['bias_adder'] else ''):<24} "
              f"{r['area_um2']:>9.1f} {r['delay_ps']:>8.0f} {r['energy_pj_per_op']:>9.4f} "
              f"{r['area_ratio_vs_quant_fixedpoint']:>8.2f} {r['energy_ratio_vs_quant_fixedpoint'] or 0:>8.2f} "
              f"{r['area_ratio_vs_quant_float']:>8.2f} {r['energy_ratio_vs_quant_float'] or 0:>8.2f} "
              f"{r['horowitz_pj'] if r['horowitz_pj'] is not None else float('nan'):>8.3f}", file=out)


def cmd_cost(args) -> int:
    from sim.cli import unit_params
    if args.jobs < 1:
        raise QrtlError(f"-j/--jobs={args.jobs} must be at least 1")
    if args.liberty is not None and not Path(args.liberty).is_file():
        raise QrtlError(f"--liberty {args.liberty!r}: no such file")
    t0 = time.perf_counter()
    if args.compare is not None:
        if args.unit or args.all:
            raise QrtlError("--compare takes no UNIT and no --all")
        libs = [args.liberty] if args.liberty else None
        rows = compare_quant(libs, jobs=args.jobs, vectors=args.vectors, clock_ns=args.clock_ns)
        if args.json:
            for r in rows:
                print(json.dumps(r))
        else:
            _print_compare(rows)
    elif args.all:
        if args.unit or args.param:
            raise QrtlError("--all takes no UNIT and no -p (it costs every unit's defaults)")
        rows = cost_all(args.jobs, args.liberty, stimulus=args.stimulus, vectors=args.vectors,
                        clock_ns=args.clock_ns)
        if args.json:
            for r in rows:
                print(json.dumps(r))
        else:
            _print_table(rows)
    else:
        if not args.unit:
            raise QrtlError("give a UNIT, --all or --compare quant")
        r = cost_unit(args.unit, unit_params(args), liberty=args.liberty, stimulus=args.stimulus,
                      vectors=args.vectors, clock_ns=args.clock_ns, seed=args.seed)
        if args.json:
            print(json.dumps(r))
        else:
            _print_table([r])
            print("cells: " + ", ".join(f"{k}={v}" for k, v in r["cells"].items()))
            if r.get("horowitz"):
                print("Horowitz composition: " + "; ".join(f"{c:g} x {op} ({e} pJ)" for op, c, e in
                                                          r["horowitz"]["composition"]))
            print(f"netlist: {r['netlist']}")
    print(f"qrtl cost: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def register_cli(sub) -> None:
    """Add ``qrtl cost`` to the CLI (see :data:`sim.cli.EXTENSIONS`)."""
    p = sub.add_parser("cost", help="area, delay and energy per operation (Yosys + ABC + activity)")
    p.add_argument("unit", nargs="?", help="unit name (see qrtl list)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="set a unit parameter (repeatable)")
    p.add_argument("--liberty", metavar="FILE",
                   help="Liberty library, plain or .gz (default: the shipped SKY130 HD subset)")
    p.add_argument("--stimulus", default="random",
                   help="random (uniform codes) or a named stream registered for the unit")
    p.add_argument("--vectors", type=int, default=DEFAULT_VECTORS, help="vectors simulated")
    p.add_argument("--seed", type=int, default=0, help="seed of the random stimulus")
    p.add_argument("--clock-ns", type=float, default=DEFAULT_CLOCK_NS,
                   help="clock period for the leakage term (one op per cycle)")
    p.add_argument("--json", action="store_true", help="one JSON object per unit (per line)")
    p.add_argument("--all", action="store_true", help="every registered unit, default parameters")
    p.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel jobs for --all / --compare")
    p.add_argument("--compare", choices=["quant"],
                   help="the headline comparison of the quantization operations")
    p.set_defaults(func=cmd_cost)
