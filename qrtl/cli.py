"""The ``qrtl`` command line: the only module that knows argparse, flag names and exit codes.

Every subcommand is a thin front end of the public API (:mod:`qrtl.api`) or of the layer
beneath it; library code raises :class:`QrtlError` in the words of the domain, and this
module prints it as one line and exits with status 2. Exit status 1 means the command ran
and found a problem (an RTL mismatch); 130 an interrupt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from qrtl.golden.cache import atomic_output
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_float, parse_assignments

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2 (argparse's own convention)
        raise QrtlError(f"{self.prog}: {message}")


# --- shared argument handling ----------------------------------------------------------

def _params(args) -> dict:
    """The ``-p NAME=VALUE`` arguments as a dict (a name given twice is an error)."""
    return parse_assignments(args.param)


def _add_unit(p, optional: bool = False) -> None:
    p.add_argument("unit", nargs="?" if optional else None, help="unit name (see qrtl list)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="set a parameter (repeatable)")


def _add_verilog(p, what: str) -> None:
    """The flags that name a foreign Verilog module instead of a UNIT."""
    g = p.add_argument_group(f"foreign Verilog (instead of UNIT): {what}")
    g.add_argument("--verilog", nargs="+", metavar="FILE",
                   help="Verilog files holding --top and every module under it")
    g.add_argument("--top", metavar="MODULE", help="the module (ports read by Yosys)")
    g.add_argument("--golden", metavar="PACKAGE.MODULE:FUNCTION",
                   help="its NumPy model: dict of input port arrays in, dict of output port "
                        "arrays out (the current folder is searched too)")
    g.add_argument("--clock", metavar="NAME", help="clock input of a sequential module (rising edge)")
    g.add_argument("--reset", metavar="NAME", help="active-high reset input (with --clock)")
    g.add_argument("--latency", type=_int("--latency", 0, 64), default=None,
                   help="cycles from inputs to outputs (default: 1 with --clock, else 0)")


def _unit_of(args):
    """The unit a command works on: ``UNIT -p ...`` or ``--verilog FILE... --top MODULE``."""
    from qrtl.api import unit, unit_from_verilog
    if args.verilog is None:
        for flag in ("top", "golden", "clock", "reset", "latency"):
            if getattr(args, flag) is not None:
                raise QrtlError(f"--{flag} goes with --verilog")
        if not args.unit:
            raise QrtlError("give a UNIT (see qrtl list) or --verilog FILE... --top MODULE")
        return unit(args.unit, **_params(args))
    if args.unit or args.param:
        raise QrtlError("--verilog takes no UNIT and no -p")
    if not args.top:
        raise QrtlError("--verilog needs --top MODULE")
    return unit_from_verilog(args.verilog, args.top, golden=args.golden, clock=args.clock,
                             reset=args.reset, latency=args.latency)


def _npz_stimulus(text: str) -> bool:
    return text.lower().endswith(".npz")


def _int(flag: str, lo: int, hi: int):
    """argparse type: an integer in ``lo..hi`` (argparse says "invalid int value" for text
    that is not an integer; the range error names the flag and the bounds)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < lo:
            raise argparse.ArgumentTypeError(f"{flag}={value} must be at least {lo:,}")
        if value > hi:
            raise argparse.ArgumentTypeError(f"{flag}={value} must be at most {hi:,}")
        return value
    parse.__name__ = "int"
    return parse


def _float(flag: str, lo: float, hi: float):
    """argparse type: a finite number with ``lo < value <= hi``."""
    def parse(text: str) -> float:
        try:
            return check_float(flag, text, lo, hi)
        except QrtlError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = "float"
    return parse


def _output_file(path: str | None, make_parents: bool = False) -> Path | None:
    """Check that ``path`` can be written, before any work; None for stdout (``-``).
    ``make_parents``: missing folders are fine (created when the file is written)."""
    if path is None or path == "-":
        return None
    if not path:
        raise QrtlError("the output file name is empty")
    out = Path(path)
    if out.is_dir():
        raise QrtlError(f"output file {path!r} is a directory")
    parent = out.parent
    while make_parents and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise QrtlError(f"cannot write output file {path!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise QrtlError(f"cannot write output file {path!r}: permission denied")
    return out


def _output_folder(path: str) -> Path:
    """Create ``path`` if needed and check that files can be written in it, before any work."""
    if not path:
        raise QrtlError("the output folder name is empty")
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(folder / ".qrtl-write-test"):
            pass
        (folder / ".qrtl-write-test").unlink()
    except OSError as exc:
        raise QrtlError(f"cannot write to output folder {path!r}: {exc.strerror or exc}") from None
    return folder


def _write_text(out: Path, text: str) -> None:
    """Write ``text`` to ``out`` complete or not at all (an existing file is kept on error)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as fh:
            fh.write(text)
    except OSError as exc:
        raise QrtlError(f"cannot write output file {str(out)!r}: {exc.strerror or exc}") from None


def _json_safe(obj):
    """``obj`` with every non-finite float as None: the output stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _print_json(obj) -> None:
    print(json.dumps(_json_safe(obj), allow_nan=False))


def _liberty(path: str | None) -> str | None:
    if path is not None and not Path(path).is_file():
        raise QrtlError(f"--liberty {path!r}: no such file")
    return path


def _test_images(images):
    if images is None:
        return None
    from qrtl.golden.nets.data import load_split
    total = len(load_split().y_test)
    if not 1 <= images <= total:
        raise QrtlError(f"--images={images} is out of range (the test split has {total} images)")
    return images


# --- units -----------------------------------------------------------------------------

def cmd_list(args):
    from qrtl.hw.units import all_units
    for spec in all_units():
        print(f"{spec.name}: {spec.summary}" + ("" if spec.source == "qrtl" else f" [from {spec.source}]"))
        for p in spec.params:
            print(f"    {p.name:<14} default {str(p.default):<10} {p.describe_range():<24} {p.doc}")


def cmd_describe(args):
    d = _unit_of(args).describe()
    if args.json:
        _print_json(d)
        return
    print(f"unit     {d['unit']}")
    print(f"source   {d['source']}" + (f" ({', '.join(d['files'])})" if "files" in d else ""))
    print(f"module   {d['module']}")
    if "golden" in d:
        print(f"golden   {d['golden']}")
    print("params   " + (", ".join(f"{k}={v}" for k, v in d["params"].items()) or "(none)"))
    print(f"latency  {d['latency']} cycle(s)" + (" (combinational)" if d["latency"] == 0 else ""))
    print(f"clock    {d['clock']}\nreset    {d['reset']}")
    print("ports")
    for p in d["ports"]:
        print(f"    {p['direction']:<4} {p['name']:<10} {p['width']:>5} bits  "
              f"{'signed' if p['signed'] else 'unsigned'}")


def cmd_verilog(args):
    from qrtl.api import unit
    u = unit(args.unit, **_params(args))
    out = _output_file(args.output)
    text = u.verilog()
    if out is None:
        sys.stdout.write(text)
    else:
        _write_text(out, text)
        print(f"wrote {args.output} (module {u.module})", file=sys.stderr)


class _VectorBar:
    """A progress bar over vectors with an estimated time to go, made at the first report
    (so that bad input is refused before any output); ``bar(done, total)`` moves it."""

    def __init__(self, desc: str, disable: bool):
        self.desc, self.disable, self.bar = desc, disable, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit="vec", unit_scale=True,
                            disable=self.disable, file=sys.stderr)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_sim(args):
    from qrtl.api import verify
    from qrtl.hw.foreign import load_stimulus
    u = _unit_of(args)
    if args.stimulus is not None and not _npz_stimulus(args.stimulus):
        raise QrtlError(f"--stimulus {args.stimulus!r}: expected a .npz file (one array per input port)")
    if args.record is not None and not args.exhaustive:
        raise QrtlError("--record goes with --exhaustive")
    if args.exhaustive and args.stimulus is not None:
        raise QrtlError("give either --stimulus or --exhaustive, not both")
    record = _output_file(args.record) if args.record is not None else None
    if record is not None:
        from qrtl.reports.exhaustive import record as record_run, source_commit
        commit = source_commit()  # the code that runs, not what the checkout holds at the end
    bar = _VectorBar(u.name, args.no_progress or args.json)
    try:
        res = verify(u, vectors=args.vectors, seed=args.seed, exhaustive=args.exhaustive,
                     jobs=args.jobs, progress=bar,
                     stimulus=load_stimulus(args.stimulus, u) if args.stimulus else None)
    finally:
        bar.close()
    if record is not None:
        record_run(record, res, args.jobs, commit)
    if args.json:
        _print_json(res.as_dict())
        return 1 if res.mismatches else 0
    every = " (every input)" if args.exhaustive else ""
    print(f"{u.name} ({u.module}): {res.vectors:,} vectors{every} checked on Verilator "
          f"against the golden model, {res.mismatches} mismatch(es), "
          f"{res.vectors_per_s:,.0f} vectors/s with {args.jobs} process(es) "
          f"({res.seconds:.2f} s in the testbench, {res.wall_seconds:.2f} s wall)")
    if record is not None:
        print(f"recorded in {args.record}")
    if res.mismatches:
        m = res.first_mismatch
        print(f"first mismatch at vector {m['index']}:")
        for kind in ("inputs", "expected", "actual"):
            print(f"  {kind:<8} " + ", ".join(f"{k}={v}" for k, v in m[kind].items()))
        return 1
    return 0


def cmd_bench(args):
    from qrtl.api import unit
    from qrtl.sim.bench import bench
    if args.sweep:
        return cmd_bench_sweep(args)
    if not args.unit:
        raise QrtlError("give a UNIT (or --sweep)")
    u = unit(args.unit, **_params(args))
    rows = bench(u, vectors=args.vectors, jobs=args.jobs, seed=args.seed)
    print(f"bench {u.name} ({u.module}), same stimulus for every path but (f), load average "
          f"{os.getloadavg()[0]:.2f} at the end:")
    for r in rows:
        print(f"  {r['path']:<54} {r['vectors']:>11,} vectors {r['seconds']:8.3f} s "
              f"{r['vectors_per_s']:>14,.0f} vectors/s {100 * r['share']:6.1f}% of (f) x procs  "
              f"mismatches {'n/a' if r['mismatches'] is None else r['mismatches']}")
    new, old = rows[0]["vectors_per_s"], next(r for r in rows if r["path"].startswith("(b)"))["vectors_per_s"]
    ceiling = rows[-1]["vectors_per_s"]
    print(f"  (a) -j {rows[0]['processes']} / (b) = {new / old:.1f}x; (a) -j {rows[0]['processes']} is "
          f"{100 * new / (ceiling * rows[0]['processes']):.0f}% of {rows[0]['processes']} core(s) "
          f"of the C++ ceiling")
    return 1 if any(r["mismatches"] for r in rows) else 0


# --- cost ------------------------------------------------------------------------------

def _fmt_row(r: dict) -> str:
    b = r["energy_breakdown_pj"]
    hz = r.get("horowitz") or {}
    params = ",".join(f"{k}={v}" for k, v in r["params"].items())
    return (f"{r['unit']:<17} {r['area_um2']:>10.1f} {r.get('cell_count', 0):>6} "
            f"{r['transistors'] if r['transistors'] is not None else '-':>7} {r['depth']:>5} "
            f"{r['delay_ps']:>8.0f} {r['energy_pj_per_op']:>9.4f} {r['energy_zero_delay_pj_per_op']:>9.4f} "
            f"{100 * r['glitch_fraction']:>6.1f} {b['internal']:>9.4f} "
            f"{b['switching']:>9.4f} {b['leakage']:>9.2e} {r['power_mw']:>8.4f} "
            f"{hz.get('pj', float('nan')) if hz else float('nan'):>8.3f}  {params}")


_COST_HEADER = (f"{'unit':<17} {'area um2':>10} {'cells':>6} {'transis':>7} {'depth':>5} "
                f"{'delay ps':>8} {'E pJ/op':>9} {'E0 pJ/op':>9} {'glit%':>6} {'internal':>9} {'switch':>9} {'leakage':>9} "
                f"{'P mW':>8} {'Horowitz':>8}  params")


def _print_cost_table(rows: list) -> None:
    r0 = rows[0]
    lib = r0["library"]
    print(f"library {lib['name']} ({lib['corner']}, {lib['voltage']} V); stimulus {r0['stimulus']}, "
          f"{r0['vectors']} vectors; clock {r0['clock_ns']} ns ({r0['ops_per_s']:.3g} ops/s; P = power "
          f"at that clock); input slew {r0['input_slew_ns']} ns; wire load {lib.get('wire_load', 'none')}; "
          f"E counts glitches (delay-annotated simulation), E0 = zero-delay, glit% = share of the "
          f"dynamic energy in glitches; Horowitz = 45 nm analytical reference")
    print(_COST_HEADER)
    for r in rows:
        print(_fmt_row(r))


def _print_compare(rows: list) -> None:
    key = None
    for r in rows:
        k = (r["library"], r["stimulus"])
        if k != key:
            key = k
            clock = (f"clock target {r['clock_ns']} ns (K: pipeline stages, L: latency)"
                     if r["clock_target"] else f"unpipelined, leakage at {r['clock_ns']} ns")
            print(f"\n{r['library']} ({r['corner']}), stimulus {r['stimulus']}: 32-bit accumulator -> "
                  f"out_width bits; {clock}; ratios = baseline / unit")
            print(f"{'out':>3} {'bias':>4} {'config':<24} {'K':>2} {'L':>2} {'area um2':>9} {'delay ps':>8} {'E pJ/op':>9} "
                  f"{'glit%':>5} {'A/fixedp':>8} {'E/fixedp':>8} {'E0/fixp':>8} {'A/float':>8} {'E/float':>8} "
                  f"{'E0/float':>8} {'Horowitz':>8}")
        print(f"{r['out_width']:>3} {r['bias']:>4} {r['config'] + (' +adder' if r['bias_adder'] else ''):<24} "
              f"{r['pipeline']:>2} {r['latency']:>2} {r['area_um2']:>9.1f} {r['delay_ps']:>8.0f} {r['energy_pj_per_op']:>9.4f} "
              f"{100 * r['glitch_fraction']:>5.1f} "
              f"{r['area_ratio_vs_quant_fixedpoint']:>8.2f} {r['energy_ratio_vs_quant_fixedpoint'] or 0:>8.2f} "
              f"{r['energy_zero_delay_ratio_vs_quant_fixedpoint'] or 0:>8.2f} "
              f"{r['area_ratio_vs_quant_float']:>8.2f} {r['energy_ratio_vs_quant_float'] or 0:>8.2f} "
              f"{r['energy_zero_delay_ratio_vs_quant_float'] or 0:>8.2f} "
              f"{r['horowitz_pj'] if r['horowitz_pj'] is not None else float('nan'):>8.3f}")


def _print_lean(rows: list) -> None:
    from qrtl.reports.lean import leanest_lossless
    r0 = rows[0]
    print(f"{r0['library']} ({r0['corner']}), stimulus {r0['stimulus']} (the int8 network's real "
          f"accumulators); 32-bit accumulator -> 8 bits; baselines include their 32-bit bias adder; "
          f"x shift = this / quant_shift runtime (fused bias)")
    print(f"{'config':<30} {'mismatch %':>10} {'acc %':>6} {'exact %':>7} {'area um2':>9} "
          f"{'E pJ/op':>8} {'A x shift':>9} {'E x shift':>9}")
    for r in rows:
        dash = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{r['config']:<30} {dash(r['mismatch_pct'], '>10.4f'):>10} "
              f"{dash(r['accuracy_pct'], '>6.2f'):>6} {dash(r['exact_accuracy_pct'], '>7.2f'):>7} "
              f"{r['area_um2']:>9.0f} {r['energy_pj_per_op']:>8.3f} {r['area_x_shift']:>9.2f} "
              f"{r['energy_x_shift']:>9.2f}")
    best = leanest_lossless(rows)
    print("leanest baseline without accuracy loss: " +
          (f"{best['config']} ({best['area_um2']:.0f} um2, {best['energy_pj_per_op']:.3f} pJ/op)"
           if best else "none"))


def cmd_cost(args) -> int:
    from qrtl.reports.cost import compare_quant, cost_all
    liberty = _liberty(args.liberty)
    t0 = time.perf_counter()
    if args.configs is not None and args.compare != "lean":
        raise QrtlError("--configs goes with --compare lean")
    if args.compare is not None and args.wire_load != "default":
        raise QrtlError("--compare uses each library's default wire-load model (no --wire-load)")
    if args.compare == "lean":
        from qrtl.reports.lean import compare_lean
        if args.unit or args.all or args.verilog is not None:
            raise QrtlError("--compare takes no UNIT and no --all")
        if args.clock_ns is not None:
            raise QrtlError("--compare lean costs the baselines unpipelined (no --clock-ns)")
        rows = compare_lean(liberty, jobs=args.jobs, vectors=args.vectors, configs=args.configs)
        for r in rows if args.json else ():
            _print_json(r)
        if not args.json:
            _print_lean(rows)
    elif args.compare is not None:
        if args.unit or args.all or args.verilog is not None:
            raise QrtlError("--compare takes no UNIT and no --all")
        rows = compare_quant([liberty] if liberty else None, jobs=args.jobs, vectors=args.vectors,
                             clock_ns=args.clock_ns)
        for r in rows if args.json else ():
            _print_json(r)
        if not args.json:
            _print_compare(rows)
    elif args.all:
        if args.unit or args.param or args.verilog is not None:
            raise QrtlError("--all takes no UNIT and no -p (it costs every unit's defaults)")
        rows = cost_all(args.jobs, liberty, stimulus=args.stimulus, vectors=args.vectors,
                        clock_ns=args.clock_ns, wire_load=args.wire_load)
        for r in rows if args.json else ():
            _print_json(r)
        if not args.json:
            _print_cost_table(rows)
    else:
        from qrtl.api import VerilogUnit, cost
        from qrtl.hw.foreign import load_stimulus
        if not args.unit and args.verilog is None:
            raise QrtlError("give a UNIT, --verilog FILE... --top MODULE, --all or --compare quant")
        u = _unit_of(args)
        stimulus, label = args.stimulus, None
        if _npz_stimulus(stimulus):
            stimulus, label = load_stimulus(stimulus, u), Path(stimulus).name
        r = cost(u, liberty=liberty, stimulus=stimulus, vectors=args.vectors,
                 clock_ns=args.clock_ns, seed=args.seed, wire_load=args.wire_load,
                 stimulus_label=label).as_dict()
        if args.clock_ns is not None and not args.json and not isinstance(u, VerilogUnit):
            print(f"clock target {args.clock_ns} ns: pipeline={r['params']['pipeline']} "
                  f"(latency {r['latency']}{', retimed' if r['retimed'] else ''}), "
                  f"slack {r['slack_ps']:.0f} ps")
        if args.json:
            _print_json(r)
        else:
            _print_cost_table([r])
            print("cells: " + ", ".join(f"{k}={v}" for k, v in r["cells"].items()))
            if r.get("horowitz"):
                print("Horowitz composition: " + "; ".join(f"{c:g} x {op} ({e} pJ)" for op, c, e in
                                                          r["horowitz"]["composition"]))
            print(f"netlist: {r['netlist']}")
    print(f"qrtl cost: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


# --- sweeps ---------------------------------------------------------------------------

def _sweep_params(items) -> dict:
    """``-p NAME=VALUES`` (lists and ranges, :func:`qrtl.golden.params.parse_values`)."""
    return parse_assignments(items)


def cmd_sweep(args) -> int:
    from qrtl.api import sweep
    from qrtl.reports.sweep import exponents
    from qrtl.reports.tables import fmt
    liberty = _liberty(args.liberty)
    if not args.param:
        raise QrtlError("give the swept parameters: -p NAME=V1,V2,... or -p NAME=A..B")
    params = _sweep_params(args.param)
    out = _output_folder(args.output or str(Path("build") / "sweeps" / args.unit))
    df = sweep(args.unit, params, zip=args.zip, liberty=liberty, clock_ns=args.clock_ns,
               stimulus=args.stimulus, verify=args.verify, vectors=args.vectors, seed=args.seed,
               wire_load=args.wire_load, jobs=args.jobs, dask=args.dask,
               progress=not args.no_progress, output=out)
    a = df.attrs
    r0 = df.iloc[0]
    print(f"{args.unit}: {a['points']} points ({a['computed']} computed, "
          f"{a['points'] - a['computed']} from the cache) on {a['engine']} in {a['seconds']:.1f} s "
          f"({a['run_seconds']:.1f} s running the points"
          + (f", Dask tasks {a['task_seconds']:.1f} s in all" if a["task_seconds"] is not None else "")
          + "); "
          f"library {r0['library']} ({r0['corner']}), stimulus {r0['stimulus']}, "
          + (f"clock target {r0['clock_ns']} ns" if r0["clock_target"] else "as configured"))
    swept = list(params)
    if args.clock_ns is not None and "pipeline" not in swept:
        swept.append("pipeline")
    cols = swept + ["area_um2", "delay_ps", "energy_pj_per_op", "energy_zero_delay_pj_per_op",
                    "glitch_pct", "power_mw"] + (["verify_vectors", "verify_mismatches"]
                                                  if args.verify else [])
    width = {c: max(8, len(c)) for c in cols}
    print("  ".join(f"{c:>{width[c]}}" for c in cols))
    for r in df.to_dict("records"):
        print("  ".join(f"{fmt(r[c]):>{width[c]}}" for c in cols))
    fits = exponents(df)
    if fits:
        print("fitted growth exponents (least squares in log-log):")
        for f in fits:
            if f["figure"] in ("area_um2", "delay_ps", "energy_pj_per_op"):
                print(f"  {f['figure']:<18} vs {f['param']:<10} {f['exponent']:>7.3f}"
                      + (f"  ({f['series']})" if f["series"] else ""))
    print(f"wrote {', '.join(Path(p).name for p in a['files'])} in {out}/")
    if args.verify and int(df["verify_mismatches"].sum()):
        bad = df[df["verify_mismatches"] > 0]
        print(f"qrtl: RTL does not match the golden model at {len(bad)} point(s)", file=sys.stderr)
        return 1
    return 0


def cmd_bench_sweep(args) -> int:
    from qrtl.reports.sweep import BENCH_SWEEP, sweep_bench
    unit = args.unit or BENCH_SWEEP[0]
    params = _sweep_params(args.param) if args.param else (None if not args.unit else {})
    if args.unit and not args.param:
        raise QrtlError("bench --sweep UNIT needs the swept parameters (-p NAME=VALUES)")
    rows = sweep_bench(unit, params, workers=args.workers, progress=not args.no_progress)
    shown = params if params is not None else BENCH_SWEEP[1]
    print(f"sweep bench: {unit} " + " ".join(f"{k}={v}" for k, v in shown.items())
          + f" ({rows[0]['points']} points), cold cache each, one fresh qrtl process each")
    print(f"  {'path':<34} {'wall s':>8} {'sweep s':>8} {'run s':>8} {'points/min':>11}  same sweep.csv")
    for r in rows:
        print(f"  {r['path']:<34} {r['seconds']:>8.1f} {r['sweep_seconds'] or float('nan'):>8.1f} "
              f"{r['run_seconds'] or float('nan'):>8.1f} "
              f"{r['points_per_min']:>11.1f}  "
              f"{'yes' if r['same_csv'] else 'NO'}"
              + (f"  (cluster start {r['cluster_start_s']:.1f} s, not counted)"
                 if r["cluster_start_s"] is not None else ""))
    j2 = next((r for r in rows if r["path"] == "-j 2"), None)
    d = rows[-1]
    if j2 is not None:
        print(f"  Dask minus -j 2 (both {args.workers} processes), per point: "
              f"{(d['run_seconds'] - j2['run_seconds']) / d['points']:+.2f} s")
    idle = (args.workers * d["run_seconds"] - d["task_seconds"]) / d["points"]
    print(f"  Dask overhead per point: {idle:.2f} s of worker time outside the tasks "
          f"({args.workers} x {d['run_seconds']:.1f} s running - {d['task_seconds']:.1f} s in the "
          f"tasks, over {d['points']} points: connecting, scheduling, results, idle tail)")
    print("  points/min from the wall time of each qrtl process (start-up included); sweep s: "
          "the sweep's own time; run s: running the points (pool, or Dask client to last result)")
    return 0 if all(r["same_csv"] for r in rows) else 1


# --- networks --------------------------------------------------------------------------

def _net_params(name: str, args) -> dict:
    from qrtl.golden import nets
    return nets.resolve_params(name, _params(args))


#: Above this many unit operations, ``qrtl net --qonnx --rtl`` replays a sample of output
#: pixels unless --samples is given.
QONNX_FULL_REPLAY_OPS = 2_000_000
QONNX_DEFAULT_SAMPLES = 4


def _qonnx_input(net, args):
    import numpy as np
    from qrtl.golden.nets.qonnx import read_tensor
    if args.input:
        return read_tensor(args.input), args.input
    rng = np.random.default_rng(args.seed)
    return rng.random(net.input_shape, dtype=np.float32), f"uniform [0, 1) seed {args.seed}"


def cmd_net_qonnx(args):
    import numpy as np
    from qrtl import nets as api_nets
    for flag, value in (("--images", args.images), ("NAME", args.name),
                        ("--export-qonnx", args.export_qonnx)):
        if value is not None:
            raise QrtlError(f"{flag} cannot be used with --qonnx")
    out = _output_file(args.output)
    if args.liberty is not None and not args.cost:
        raise QrtlError("--liberty needs --cost")
    if args.cost_dir is not None and not args.cost:
        raise QrtlError("--cost-dir needs --cost")
    liberty = _liberty(args.liberty)
    net = api_nets.load_qonnx(args.qonnx, **_params(args))
    x, source = _qonnx_input(net, args)
    t0 = time.perf_counter()
    gold = net.run(x)
    golden_s = time.perf_counter() - t0
    agree = api_nets.agreement(net, x)
    full_ops = sum(r["ops"] for r in net.op_counts())
    rep = None
    if args.rtl:
        samples = args.samples
        if samples is None and full_ops > QONNX_FULL_REPLAY_OPS:
            samples = QONNX_DEFAULT_SAMPLES
        rep = api_nets.replay_qonnx(net, x, samples=samples, seed=args.seed,
                                    progress=not args.no_progress)
    cost = None
    if args.cost:
        cost = api_nets.qonnx_cost(net, x, liberty=liberty, jobs=args.jobs,
                                   progress=not args.no_progress)
        if args.cost_dir is not None:
            cost_files = cost.write(args.cost_dir)
    if out is not None:
        from qrtl.golden.cache import atomic_output
        with atomic_output(out, "wb") as fh:
            np.save(fh, gold["output"])
    if args.json:
        _print_json({"model": args.qonnx, "params": net.params, "input": source,
                     "input_shape": list(net.input_shape),
                     "output_shape": list(gold["output"].shape), "notes": net.notes,
                     "lowering": net.lowering(), "ops_per_inference": full_ops,
                     "golden_seconds": golden_s, "agreement": agree.as_dict(),
                     "rtl": rep.as_dict() if rep is not None else None,
                     "cost": cost.as_dict() if cost is not None else None})
        return 0 if rep is None or rep.bit_exact else 1
    print(f"{args.qonnx}: input {net.input_name} {list(net.input_shape)} ({source}), output "
          f"{net.output_name} {list(gold['output'].shape)}")
    for note in net.notes:
        print(f"note: {note}")
    print("lowering (stage: ONNX nodes -> units; what):")
    for r in net.lowering():
        units = " + ".join(r["units"]) if r["units"] else "NumPy"
        print(f"  {r['stage']}: {', '.join(r['nodes']) or '-'} -> {units}; {r['summary']}")
    print(f"golden inference: {golden_s:.2f} s, {full_ops:,} unit operations per inference")
    a = agree
    if a.identical:
        print(f"qonnx executor: identical ({a.outputs:,} outputs)")
    else:
        hist = ", ".join(f"{k} {a.unit}: {v:,}" for k, v in a.histogram.items())
        print(f"qonnx executor: {a.differing:,} of {a.outputs:,} outputs differ "
              f"({100 * a.share:.2f}%), at most {a.max_diff} {a.unit} ({hist})")
        print(f"  why: {a.why}")
    for L in a.layers:
        print(f"  {L['stage']} ({L['tensor']}): {L['differing']:,} of {L['outputs']:,} differ "
              f"(max {L['max_lsb']} LSB); on the executor's inputs {L['local_differing']:,} "
              f"(max {L['local_max_lsb']} LSB, all within {L['local_max_tie_distance']:.3g} LSB "
              f"of a tie; bias rounding {L['bias_rounding_lsb']:.3g} + multiplier "
              f"{L['multiplier_rounding_lsb']:.3g} LSB)")
    if out is not None:
        print(f"wrote {out} (float32 {list(gold['output'].shape)})", file=sys.stderr)
    if cost is not None:
        print(f"cost per inference ({cost.library['name']}, clock {cost.clock_ns:g} ns; energy "
              f"per operation on each layer's own operand stream, {cost.vectors} vectors):")
        for r in cost.layers:
            print(f"  {r['stage']} {r['unit']}: {r['ops_per_inference']:,} ops x "
                  f"{r['energy_pj_per_op']:.4g} pJ = {r['energy_nj_per_inference']:.4g} nJ "
                  f"({r['share_pct']:.1f}%)")
        for u in cost.units:
            print(f"  area of one {u['config']}: {u['area_um2']:.1f} um^2")
        print(f"  total: {cost.energy_nj_per_inference:.4g} nJ per inference, "
              f"{cost.ops_per_inference:,} operations, {cost.area_um2:.1f} um^2 of units")
        print(f"  scope: {cost.scope}")
        if args.cost_dir is not None:
            print(f"wrote {', '.join(str(f) for f in cost_files)}", file=sys.stderr)
    if rep is None:
        return 0
    what = "every operation" if rep.samples is None else f"{rep.samples} sampled output pixels"
    per_unit = ", ".join(f"{u} {c:,}" for u, c in rep.ops.items())
    print(f"RTL replay on Verilator ({what}): {rep.total_ops:,} operations ({per_unit}) in "
          f"{rep.calls} simulator calls, {rep.total_mismatches} mismatch(es), "
          f"{rep.seconds:.1f} s; outputs {'identical' if rep.outputs_identical else 'DIFFER'}")
    if rep.first_mismatch:
        m = rep.first_mismatch
        print(f"first mismatch: {m['layer']} on {m['unit']}, operation {m['index']}: "
              f"inputs {m['inputs']}, expected {m['expected']}, actual {m['actual']}")
    return 0 if rep.bit_exact else 1


def _export_qonnx(args, params, images, label):
    from qrtl.golden.nets.qonnx_export import round_trip
    if args.rtl:
        raise QrtlError("--rtl cannot be used with --export-qonnx (replay the exported model "
                        "with qrtl net --qonnx FILE --rtl)")
    out = _output_file(args.export_qonnx)
    if out is None:
        raise QrtlError("--export-qonnx needs a file name (not -)")
    r = round_trip(args.name, params, images=images, path=out)
    if args.json:
        _print_json(r)
        return 0
    extra = " ".join(f"-p {k}={v}" for k, v in r["import_params"].items())
    print(f"{label}: wrote {r['path']} (QONNX; import with qrtl net --qonnx {r['path']}"
          f"{' ' + extra if extra else ''})")
    print(f"imported back: {' | '.join(' + '.join(u) for u in r['lowering'])}; predictions "
          f"{'identical' if r['predictions_identical'] else 'DIFFER'} on {r['images']} test "
          f"images ({r['differing_predictions']} differ; accuracy {100 * r['accuracy']:.2f}% "
          f"-> {100 * r['imported_accuracy']:.2f}%); operations of the first {r['op_images']} "
          f"images: {r['ops']:,}, {r['ops_differing']:,} with other operands")
    return 0 if r["predictions_identical"] else 1


def cmd_net(args):
    from qrtl import nets as api_nets
    from qrtl.golden import nets
    if args.qonnx:
        return cmd_net_qonnx(args)
    if args.name is None:
        raise QrtlError("qrtl net: give a network NAME or --qonnx MODEL.onnx")
    for flag, value in (("--input", args.input), ("-o", args.output),
                        ("--samples", args.samples), ("--cost", args.cost or None),
                        ("--liberty", args.liberty), ("--cost-dir", args.cost_dir)):
        if value is not None:
            raise QrtlError(f"{flag} needs --qonnx")
    params = _net_params(args.name, args)
    images = _test_images(args.images)
    label = nets.config_label(args.name, params)
    if args.export_qonnx:
        return _export_qonnx(args, params, images, label)
    if not args.rtl:
        r = nets.run(args.name, params, images)
        n = len(r["labels"])
        if args.json:
            _print_json({"network": args.name, "params": params, "images": n,
                         "accuracy": r["accuracy"], "float32_accuracy": r["float32_accuracy"]})
            return 0
        print(f"{label}: golden test accuracy {100 * r['accuracy']:.2f}% "
              f"({int(round(r['accuracy'] * n))}/{n} images); float32 reference "
              f"{100 * r['float32_accuracy']:.2f}%")
        return 0
    s = api_nets.replay(args.name, images=images, progress=not args.no_progress, **params)
    if args.json:
        _print_json(s.as_dict())
        return 0 if s.bit_exact else 1
    n = s.images
    print(f"{label}: golden test accuracy {100 * s.accuracy:.2f}% "
          f"({int(round(s.accuracy * n))}/{n} images); float32 reference "
          f"{100 * s.float32_accuracy:.2f}%")
    per_unit = ", ".join(f"{u} {c:,}" for u, c in s.ops.items())
    print(f"RTL replay on Verilator: {s.total_ops:,} operations ({per_unit}) in "
          f"{s.calls} simulator calls, {s.total_mismatches} mismatch(es), {s.seconds:.1f} s")
    print(f"integer tensors {'identical' if s.tensors_identical else 'DIFFER'}; "
          f"predictions {'identical' if s.predictions_identical else 'DIFFER'} "
          f"({n} images, RTL accuracy {100 * s.rtl_accuracy:.2f}%)")
    if s.first_mismatch:
        m = s.first_mismatch
        print(f"first mismatch: {m['layer']} on {m['unit']}, operation {m['index']}: "
              f"inputs {m['inputs']}, expected {m['expected']}, actual {m['actual']}")
    return 0 if s.bit_exact else 1


def cmd_train(args):
    from qrtl.golden.cache import build_root
    from qrtl.golden.nets.train import TRAINERS, save
    if args.name not in TRAINERS:
        raise QrtlError(f"unknown network {args.name!r} to train (allowed: {', '.join(TRAINERS)})")
    folder = _output_folder(args.output or str(build_root() / "params"))  # fail before training
    params = TRAINERS[args.name](seed=args.seed)
    path = save(args.name, params, folder)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


def _list_arg(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _int_list_arg(flag: str, text: str) -> list[int]:
    try:
        return [int(x) for x in _list_arg(text)]
    except ValueError:
        raise QrtlError(f"{flag}={text!r} is not a comma-separated list of integers") from None


class _StepBar:
    """A progress bar over ``total`` steps, made at the first step (so that bad input is
    refused before any output); ``bar(step)`` advances it, ``bar.close()`` ends it."""

    def __init__(self, total: int, desc: str, disable: bool):
        self.total, self.desc, self.disable, self.bar = total, desc, disable, None

    def __call__(self, step: str) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, desc=self.desc, unit="run", disable=self.disable,
                            file=sys.stderr)
        self.bar.set_postfix_str(step)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_fp8_accuracy(args) -> int:
    import pandas as pd

    from qrtl.reports.fp8_accuracy import METHODS, fp8_accuracy, pivot
    lengths = _int_list_arg("--lengths", args.lengths)
    out = _output_file(args.output, make_parents=True)
    fmts, data = _list_arg(args.fmt), _list_arg(args.data)
    progress = _StepBar(len(fmts) * len(METHODS), "fp8-accuracy", args.no_progress)
    try:
        df = fp8_accuracy(lengths, fmts=fmts, data=data, trials=args.trials, rbits=args.rbits,
                          seed=args.seed, progress=progress)
    finally:
        progress.close()
    _write_text(out, df.to_csv(index=False))
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", "{:.2e}".format):
        print(f"relative error (RMS over {args.trials} trials) of FP8 dot products, by length:")
        print(pivot(df).to_string())
    print(f"wrote {out}")
    return 0


def cmd_norm_accuracy(args) -> int:
    import pandas as pd

    from qrtl.reports.norm_accuracy import COLUMNS, norm_accuracy, summary
    scales = _int_list_arg("--scales", args.scales)
    out = _output_file(args.output, make_parents=True)
    fmts, norms = _list_arg(args.fmt), _list_arg(args.norm)
    progress = _StepBar(len(fmts) * len(norms), "norm-accuracy", args.no_progress or args.json)
    try:
        df = norm_accuracy(scales, fmts=fmts, norms=norms, m=args.m, channels=args.channels,
                           int_frac_bits=args.int_frac_bits, seed=args.seed, progress=progress)
    finally:
        progress.close()
    if out is not None:
        _write_text(out, df.to_csv(index=False))
    if args.json:
        _print_json({"rows": df.to_dict(orient="records"), "summary": summary(df)})
        return 0
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", "{:.2e}".format):
        print(f"bn_norm against float64: m={args.m}, {args.channels} channels per scale, inputs "
              f"N(s, s^2) with s = 2^log2_std (int16: {args.int_frac_bits} fraction bits)")
        print(df.set_index(["fmt", "norm", "log2_std"])[list(COLUMNS)].to_string())
    for line in summary(df):
        print(line)
    if out is not None:
        print(f"wrote {out}")
    return 0


def cmd_mx_accuracy(args) -> int:
    import pandas as pd

    from qrtl.reports.mx_accuracy import mlp_accuracy, mx_accuracy
    schemes, data = _list_arg(args.schemes), _list_arg(args.data)
    out = _output_file(args.output, make_parents=True)
    steps = len(schemes) * (len(data) + (0 if args.no_mlp else 1))
    progress = _StepBar(steps, "mx-accuracy", args.no_progress or args.json)
    try:
        df = mx_accuracy(schemes, data, length=args.length, trials=args.trials,
                         images=args.images, seed=args.seed, progress=progress)
        mlp = None if args.no_mlp else mlp_accuracy(schemes, progress=progress)
    finally:
        progress.close()
    if out is not None:
        _write_text(out, df.to_csv(index=False))
        if mlp is not None:
            _write_text(out.with_name(out.stem + "_mlp.csv"), mlp.to_csv(index=False))
    if args.json:
        _print_json({"rows": df.to_dict(orient="records"),
                     "mlp": None if mlp is None else mlp.to_dict(orient="records")})
        return 0
    with pd.option_context("display.width", 200, "display.max_rows", 500,
                           "display.float_format", "{:.3g}".format):
        print(f"MX / per-tensor formats against float64 (synthetic: {args.trials} dot products "
              f"of length {args.length}; digits: {args.images} test images)")
        print(df.set_index(["data", "scheme"])[["bits_per_element", "qsnr_a_db", "qsnr_b_db",
                                                "dot_rel_err_rms", "dot_rel_err_median",
                                                "nonfinite", "overflow"]].to_string())
        if mlp is not None:
            print("digits MLP, weights and activations in each format:")
            print(mlp.set_index("scheme")[["accuracy_pct", "images"]].to_string())
    if out is not None:
        print(f"wrote {out}" + ("" if mlp is None else f" and {out.with_name(out.stem + '_mlp.csv')}"))
    return 0


def cmd_fp8_train(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from qrtl.golden.nets.data import load_split
    from qrtl.golden.nets.fp8train import CONFIGS, Hyper
    from qrtl.reports.fp8_train import fp8_train, pivot, summary
    configs = _list_arg(args.configs)
    for c in configs:  # refused before any training
        if c not in CONFIGS:
            raise QrtlError(f"--configs: {c!r} is not one of {', '.join(CONFIGS)}")
    hp = Hyper(epochs=args.epochs, batch=args.batch, lr=args.lr, momentum=args.momentum,
               loss_scale=args.loss_scale, acc=args.acc, train_images=args.train_images,
               seed=args.seed).checked()
    if args.rtl and not any(CONFIGS[c].fp8 for c in configs):
        raise QrtlError("--rtl needs an FP8 configuration in --configs")
    out = _output_file(args.output, make_parents=True)
    ntrain = hp.train_images or len(load_split().y_train)
    steps = -(-ntrain // hp.batch)
    t0 = time.perf_counter()
    with tqdm(total=len(configs) * hp.epochs * steps, desc="fp8-train", unit="step",
              disable=args.no_progress, file=sys.stderr, dynamic_ncols=True) as bar:
        def progress(config: str, epoch: int, step: int) -> None:
            bar.set_postfix_str(f"{config} epoch {epoch}")
            bar.update()
        df = fp8_train(configs, hp, progress)
    train_seconds = time.perf_counter() - t0
    replays = []
    if args.rtl:
        from qrtl.sim.fp8_train import replay_step
        replays = [replay_step(c, hp, args.rtl, progress=not args.no_progress)
                   for c in configs if CONFIGS[c].fp8]
    _write_text(out, df.to_csv(index=False))
    bad = any(not r.bit_exact for r in replays)
    if args.json:
        _print_json({"hyper": {k: v for k, v in vars(hp).items()}, "seconds": train_seconds,
                     "epochs": df.to_dict(orient="records"),
                     "summary": summary(df).to_dict(orient="records"),
                     "rtl": [r.as_dict() for r in replays], "csv": str(out)})
        return 1 if bad else 0
    print(f"test accuracy (%) after each epoch: MLP 64-128-64-10 on digits, {ntrain} training "
          f"images, batch {hp.batch}, SGD lr {hp.lr:g} momentum {hp.momentum:g}, seed {hp.seed}; "
          f"FP8 configurations: e5m2 GEMM operands, {hp.acc} accumulation and weights, "
          f"loss scale {hp.loss_scale:g}")
    with pd.option_context("display.width", 200, "display.max_columns", 100,
                           "display.float_format", "{:.2f}".format):
        print((100 * pivot(df)).to_string())
    s = summary(df).set_index("config")
    table = pd.DataFrame({
        "final %": s["final_accuracy"].map(lambda v: f"{100 * v:.2f}"),
        "best %": s["best_accuracy"].map(lambda v: f"{100 * v:.2f}"),
        "vs fp32 (pp)": s["gap_to_fp32_pp"].map(lambda v: f"{v:+.2f}"),
        **{f"{k} GEMM error": s[f"{k}_err"].map(lambda v: f"{v:.2e}")
           for k in ("fwd", "bwd", "wgrad")},
        "lost updates %": s["lost_updates"].map(lambda v: f"{100 * v:.1f}"),
        "s/epoch": s["seconds_per_epoch"].map(lambda v: f"{v:.1f}")})
    print("final accuracy; relative accumulation error of the training GEMMs (RMS over "
          "epochs, against the exact sum of the same FP8 products); nonzero weight updates "
          "that left the 16-bit weight unchanged:")
    print(table.to_string())
    print(f"trained in {train_seconds:.0f} s")
    for r in replays:
        per = ", ".join(f"{g['layer']} {g['dot_products']}x{g['length']}" for g in r.gemms)
        print(f"RTL replay of one training step of {r.config} on fp8_dot "
              f"(chunk={r.params['chunk']}, acc=outer={r.params['acc']}): {r.total_ops:,} "
              f"products in {r.calls} simulator calls ({per} dot products x length), "
              f"{r.total_mismatches} mismatch(es), {r.seconds:.1f} s")
        if r.first_mismatch:
            print(f"first mismatch: {r.first_mismatch}")
    print(f"wrote {out}")
    return 1 if bad else 0


# --- the report ------------------------------------------------------------------------

def cmd_report(args):
    import csv

    from qrtl.api import report
    liberty = _liberty(args.liberty)
    images = _test_images(args.images)
    out = _output_folder(args.output)
    t0 = time.perf_counter()
    written = report(out, liberty=liberty, jobs=args.jobs, images=images)
    print(f"wrote {len(written)} files under {out}/ in {time.perf_counter() - t0:.0f} s:")
    for p in written:
        if p.parent == out:
            print(f"  {p.relative_to(out)}")
    print(f"  verilog/ ({sum(1 for p in written if p.parent.name == 'verilog')} files)")
    print(f"start with {out / 'report.md'}")
    with open(out / "verification.csv", newline="") as fh:
        bad = [r["unit"] for r in csv.DictReader(fh) if r["mismatches"] != "0"]
    with open(out / "networks.csv", newline="") as fh:
        bad += [r["network"] for r in csv.DictReader(fh) if r["rtl_bit_exact"] == "no"]
    if bad:
        print(f"qrtl: RTL does not match the golden model for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


# --- the parser ------------------------------------------------------------------------

_SEED = _int("--seed", 0, 2**63 - 1)
_JOBS = _int("-j/--jobs", 1, 256)


def _unit_commands(sub) -> None:
    """list, describe, verilog, sim, bench."""
    from qrtl.sim.runner import MAX_VECTORS

    sub.add_parser("list", help="every unit, its parameters and defaults").set_defaults(func=cmd_list)

    p = sub.add_parser("describe", help="a unit's Verilog contract")
    _add_unit(p, optional=True)
    _add_verilog(p, "its ports as qrtl reads them")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("verilog", help="generate the Verilog of a unit")
    _add_unit(p)
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("sim", help="verify a unit on Verilator against its golden model")
    _add_unit(p, optional=True)
    p.add_argument("--vectors", type=_int("--vectors", 1, MAX_VECTORS), default=100_000,
                   help="random vectors when the input space is too big to be exhaustive")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--stimulus", metavar="FILE.npz", default=None,
                   help="run exactly these vectors (one array per input port) instead")
    p.add_argument("--exhaustive", action="store_true",
                   help="every input vector of the configuration (at most 2^34), generated "
                        "inside the simulator")
    p.add_argument("-j", "--jobs", type=_JOBS, default=1,
                   help="simulator processes, each over a slice of the vectors")
    p.add_argument("--record", metavar="FILE.csv", default=None,
                   help="--exhaustive: append the result (unit, params, vectors, mismatches, "
                        "seconds, date, commit) to this CSV (the report lists "
                        "reports/data/exhaustive.csv)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_verilog(p, "verified against --golden")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("bench", help="throughput of the verification paths (--sweep: of sweeps)")
    _add_unit(p, optional=True)
    p.add_argument("--vectors", type=_int("--vectors", 1, MAX_VECTORS), default=4_000_000)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("-j", "--jobs", type=_JOBS, default=2,
                   help="simulator processes of the product path's first row (the second: 1)")
    p.add_argument("--sweep", action="store_true",
                   help="sweep throughput in points/min: -j 1, -j 2 and a LocalCluster of "
                        "--workers Dask workers, cold cache each (default sweep: xnor_popcount "
                        "n=16..128 pipeline=0,1 threshold=0,1, 16 points)")
    p.add_argument("--workers", type=_int("--workers", 1, 64), default=2,
                   help="--sweep: Dask workers of the LocalCluster")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench)


def _cost_commands(sub) -> None:
    """cost, report."""
    from qrtl.reports.cost import DEFAULT_CLOCK_NS, DEFAULT_VECTORS, MAX_CLOCK_NS, MAX_VECTORS

    p = sub.add_parser("cost", help="area, delay and energy per operation (Yosys + ABC + activity)")
    _add_unit(p, optional=True)
    p.add_argument("--liberty", metavar="FILE",
                   help="Liberty library, plain or .gz (default: the shipped SKY130 HD subset)")
    p.add_argument("--stimulus", default="random",
                   help="random (uniform codes), a named stream registered for the unit, or "
                        "FILE.npz (one array per input port, in order)")
    p.add_argument("--vectors", type=_int("--vectors", 2, MAX_VECTORS),
                   default=DEFAULT_VECTORS, help="vectors simulated")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the random stimulus")
    p.add_argument("--clock-ns", type=_float("--clock-ns", 0.0, MAX_CLOCK_NS), default=None,
                   help="clock target: the fewest pipeline stages that meet it are chosen "
                        f"(default: no target; leakage and power at {DEFAULT_CLOCK_NS} ns)")
    p.add_argument("--wire-load", default="default", metavar="none|NAME",
                   help="wire-load model added to every net in timing and energy: the library's "
                        "default_wire_load (default), none, or a model name (e.g. Medium)")
    p.add_argument("--json", action="store_true", help="one JSON object per unit (per line)")
    p.add_argument("--all", action="store_true", help="every registered unit, default parameters")
    p.add_argument("-j", "--jobs", type=_JOBS, default=min(2, os.cpu_count() or 1),
                   help="parallel jobs for --all / --compare")
    p.add_argument("--compare", choices=["quant", "lean"],
                   help="quant: the headline comparison of the quantization operations; lean: "
                   "narrower baselines (m0_width, scale_fmt) with their accuracy cost")
    p.add_argument("--configs", type=_list_arg, default=None, metavar="LABEL,...",
                   help="--compare lean: only these configurations (e.g. 'quant_fixedpoint "
                   "m0_width=16,quant_float scale_fmt=bf16'; default: all)")
    _add_verilog(p, "costed with the same flow (--clock-ns: its clock; no stages are added)")
    p.set_defaults(func=cmd_cost)

    from qrtl.golden.params import RANGE_SYNTAX
    p = sub.add_parser(
        "sweep", help="cost (and verify) every point of a grid of parameters; CSV, scaling and "
                      "Pareto plots", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="-p NAME=VALUES: " + RANGE_SYNTAX + ". Examples:\n"
               "  qrtl sweep xnor_popcount -p n=16..4096 -p pipeline=0,1 -o build/sweeps/xnor\n"
               "  qrtl sweep int_mac -p a_width=4..32 -p b_width=4..32 --zip --verify 1000\n"
               "  qrtl sweep quant_shift -p in_width=16..48:8 --clock-ns 5 --dask tcp://HOST:8786")
    p.add_argument("unit", help="unit name (see qrtl list)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUES",
                   help="a swept parameter and its values: V1,V2,..., A..B (doubling) or "
                        "A..B:S (linear); repeatable; others keep their defaults")
    p.add_argument("--zip", action="store_true",
                   help="pair the value lists element-wise (equal lengths) instead of their "
                        "Cartesian product")
    p.add_argument("--liberty", metavar="FILE",
                   help="Liberty library, plain or .gz (default: the shipped SKY130 HD subset)")
    p.add_argument("--clock-ns", type=_float("--clock-ns", 0.0, MAX_CLOCK_NS), default=None,
                   help="clock target: each point gets the fewest pipeline stages that meet it")
    p.add_argument("--stimulus", default="random",
                   help="random (uniform codes) or a named stream registered for the unit")
    p.add_argument("--verify", type=_int("--verify", 0, 50_000_000), default=0, metavar="N",
                   help="also verify every point on Verilator with N random vectors (plus its "
                        "corners; exhaustive where the input space is small)")
    p.add_argument("--vectors", type=_int("--vectors", 2, MAX_VECTORS), default=DEFAULT_VECTORS,
                   help="vectors simulated on the gate netlist per point")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the stimulus and the vectors")
    p.add_argument("--wire-load", default="default", metavar="none|NAME",
                   help="wire-load model (as for qrtl cost)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: build/sweeps/UNIT)")
    p.add_argument("-j", "--jobs", type=_JOBS, default=os.cpu_count() or 1,
                   help="local processes (default: every core)")
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="a running Dask scheduler (e.g. tcp://HOST:8786; default: "
                        "$DASK_SCHEDULER_ADDRESS if set): one task per point")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="generate, verify and cost every unit; write the report")
    p.add_argument("-o", "--output", default="build/reports", help="output folder")
    p.add_argument("-j", "--jobs", type=_JOBS, default=1, help="parallel jobs")
    p.add_argument("--liberty", help="Liberty file (plain or .gz); default: the built-in library")
    p.add_argument("--images", type=_int("--images", 1, 10**6), default=None,
                   help="test images for the networks (default: the whole test split)")
    p.set_defaults(func=cmd_report)


def _network_commands(sub) -> None:
    """net, train, fp8-accuracy, norm-accuracy, mx-accuracy, fp8-train."""
    from qrtl.golden import nets
    from qrtl.golden.fp8 import RBITS_MAX
    from qrtl.reports.fp8_accuracy import DATASETS, DEFAULT_LENGTHS

    p = sub.add_parser("net", help="test accuracy of a network, or import a QONNX model "
                                   "(--qonnx); --rtl replays it on the RTL")
    p.add_argument("name", nargs="?", help="network: " + ", ".join(nets.NETWORKS)
                   + " (not with --qonnx)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="network parameter, e.g. scheme=fixedpoint (int8), fmt=e5m2 acc=fp32 "
                        "chunk=1 (fp8); with --qonnx: scheme=fixedpoint|float, variant=double|single, "
                        "acc=fp32|fp16, chunk=N, input_bits=N")
    p.add_argument("--qonnx", metavar="MODEL.onnx",
                   help="import a QONNX model: its lowering onto the units, agreement with "
                        "qonnx's reference executor, --rtl replay")
    p.add_argument("--input", metavar="X.npy|X.pb",
                   help="--qonnx: the input tensor (default: uniform random in [0, 1))")
    p.add_argument("-o", "--output", metavar="Y.npy",
                   help="--qonnx: write the output tensor (float32, as the executor gives it)")
    p.add_argument("--samples", type=_int("--samples", 1, 10**6), default=None,
                   help="--qonnx --rtl: replay the operations of N seeded output pixels "
                        f"(default: every operation up to {QONNX_FULL_REPLAY_OPS:,}, else "
                        f"{QONNX_DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=_SEED, default=0,
                   help="--qonnx: seed of the sampled pixels and of the random input")
    p.add_argument("--export-qonnx", metavar="FILE.onnx",
                   help="NAME (bnn, int8, fp8): write the network as a QONNX model, import it "
                        "back and compare the predictions")
    p.add_argument("--cost", action="store_true",
                   help="--qonnx: operations, energy and area per inference, by layer and unit "
                        "(energy per op measured on each layer's own operand stream)")
    p.add_argument("--liberty", metavar="FILE",
                   help="--qonnx --cost: Liberty file (plain or .gz); default: the built-in library")
    p.add_argument("--cost-dir", metavar="DIR",
                   help="--qonnx --cost: write the per-layer table (CSV, Markdown) and bar plot "
                        "(PNG, SVG) there")
    p.add_argument("-j", "--jobs", type=_JOBS, default=1, help="--cost: parallel measurements")
    p.add_argument("--images", type=_int("--images", 1, 10**6), default=None,
                   help="first N test images (default: the whole test split, 450)")
    p.add_argument("--rtl", action="store_true",
                   help="execute every operation on the generated units (Verilator)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_net)

    p = sub.add_parser("train", help="train a network's parameters (float | bnn), reproducibly")
    p.add_argument("name", help="float (the MLP int8/fp8 quantize) or bnn")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: build/params/; the committed parameters are "
                        "never overwritten)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("fp8-accuracy", help="accumulation error of FP8 dot products "
                                            "(fp16 chunked / stochastic vs fp32)")
    p.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)),
                   help="comma-separated dot-product lengths")
    p.add_argument("--trials", type=_int("--trials", 1, 10_000), default=32,
                   help="dot products per length")
    p.add_argument("--fmt", default="e4m3,e5m2", help="FP8 formats, comma-separated")
    p.add_argument("--data", default=",".join(DATASETS), help="data sets: " + ", ".join(DATASETS))
    p.add_argument("--rbits", type=_int("--rbits", 1, RBITS_MAX), default=16,
                   help="random bits of stochastic rounding")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("-o", "--output", default="build/reports/fp8_accuracy.csv", help="CSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fp8_accuracy)

    from qrtl.golden.norm import NORMS
    from qrtl.reports.norm_accuracy import DEFAULT_SCALES, FORMATS
    p = sub.add_parser("norm-accuracy", help="error and overflow of L2 / L1 / L-inf normalization "
                                             "(bn_norm) in fp16 and int16 vs float64")
    p.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                   help="log2 of the input standard deviations, comma-separated")
    p.add_argument("--m", type=_int("--m", 2, 64), default=64, help="values per channel (power of two)")
    p.add_argument("--channels", type=_int("--channels", 1, 100_000), default=512,
                   help="channels per scale")
    p.add_argument("--fmt", default=",".join(FORMATS), help="formats: " + ", ".join(FORMATS))
    p.add_argument("--norm", default=",".join(NORMS), help="norms: " + ", ".join(NORMS))
    p.add_argument("--int-frac-bits", type=_int("--int-frac-bits", 0, 15), default=8,
                   help="fraction bits of the int16 inputs")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("-o", "--output", default="build/reports/norm_accuracy.csv",
                   help="CSV file ('-': none)")
    p.add_argument("--json", action="store_true", help="one JSON object (rows and summary)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_norm_accuracy)

    from qrtl.reports.mx_accuracy import DATASETS as MX_DATASETS, SCHEMES as MX_SCHEMES
    p = sub.add_parser("mx-accuracy", help="quantization and dot-product error of MX block formats, "
                                           "NVFP4 and per-tensor FP8/INT vs float64; digits MLP")
    p.add_argument("--schemes", default=",".join(MX_SCHEMES),
                   help="comma-separated: " + ", ".join(MX_SCHEMES))
    p.add_argument("--data", default=",".join(MX_DATASETS), help="data sets: " + ", ".join(MX_DATASETS))
    p.add_argument("--length", type=_int("--length", 32, 1 << 16), default=1024,
                   help="dot-product length of the synthetic data sets (a multiple of 32)")
    p.add_argument("--trials", type=_int("--trials", 1, 100_000), default=256,
                   help="dot products per synthetic data set")
    p.add_argument("--images", type=_int("--images", 1, 10_000), default=100,
                   help="test images whose dot products form the digits data set")
    p.add_argument("--no-mlp", action="store_true", help="skip the digits MLP accuracy")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("-o", "--output", default="build/reports/mx_accuracy.csv",
                   help="CSV file ('-': none; the MLP table goes to <stem>_mlp.csv)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_mx_accuracy)

    from qrtl.golden.nets.fp8train import ACCS, DEFAULT_CONFIGS, Hyper
    hp = Hyper()
    p = sub.add_parser("fp8-train", help="FP8 training emulation (e5m2 GEMMs, chunked 16-bit "
                                         "accumulation, stochastic rounding) vs float32")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help="comma-separated configurations (default: all)")
    p.add_argument("--epochs", type=_int("--epochs", 1, 1000), default=hp.epochs)
    p.add_argument("--batch", type=_int("--batch", 1, 1347), default=hp.batch,
                   help="images per SGD step (K of the weight-gradient GEMM)")
    p.add_argument("--lr", type=_float("--lr", 0.0, 10.0), default=hp.lr, help="learning rate")
    p.add_argument("--momentum", type=float, default=hp.momentum, help="SGD momentum")
    p.add_argument("--loss-scale", type=_float("--loss-scale", 0.0, 2.0 ** 24),
                   default=hp.loss_scale, help="loss scale (a power of two; FP8 configurations)")
    p.add_argument("--acc", choices=ACCS, default=hp.acc,
                   help="16-bit format of accumulation, weights and velocity (e6m9 = the "
                        "paper's (1,6,9); fp16 = IEEE binary16)")
    p.add_argument("--train-images", type=_int("--train-images", 1, 1347), default=None,
                   help="first N training images (default: all 1,347)")
    p.add_argument("--seed", type=_SEED, default=hp.seed)
    p.add_argument("--rtl", type=_int("--rtl", 1, 4096), default=0, metavar="N",
                   help="replay N dot products of every GEMM of one training step of each FP8 "
                        "configuration on the RTL fp8_dot (Verilator)")
    p.add_argument("-o", "--output", default="build/reports/fp8_train.csv", help="CSV file")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fp8_train)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (each sets ``func``, returning an exit status)."""
    ap = _Parser(prog="qrtl", description="Generate, verify and cost low-precision NN arithmetic units.")
    ap.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _unit_commands(sub)
    _cost_commands(sub)
    _network_commands(sub)
    return ap


def _stop(signum, frame):
    """SIGTERM / SIGHUP end qrtl like Ctrl-C: children are killed, partial files removed."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 fine, 1 a mismatch or an internal
    error, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            signal.signal(sig, _stop)
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return status
    except QrtlError as exc:
        if debug:
            raise
        print(f"qrtl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrtl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``qrtl list | head -1``): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file or folder the command needed could not be used
        if debug:
            raise
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"qrtl: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, and how to see more
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"qrtl: internal error: {type(exc).__name__}: {first} (run with --debug for the "
              f"traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
