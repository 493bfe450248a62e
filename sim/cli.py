"""The ``qrtl`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from hw.errors import QrtlError
from hw.params import parse_assignments
from hw.registry import all_units, instance

__all__ = ["main", "add_unit_args", "unit_params", "EXTENSIONS"]


#: Modules that add subcommands: each has ``register_cli(sub)``, which calls
#: ``sub.add_parser(...)`` and sets ``func`` (returning an exit status; raise QrtlError for
#: bad input). Use :func:`add_unit_args` for the usual ``UNIT -p NAME=VALUE`` arguments.
EXTENSIONS: tuple[str, ...] = ("reports.train", "reports.net", "reports.cost", "reports.fp8_accuracy")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2 (argparse's own convention)
        raise QrtlError(f"{self.prog}: {message}")


def unit_params(args) -> dict:
    """The ``-p NAME=VALUE`` arguments as a dict."""
    return parse_assignments(args.param)


def add_unit_args(p):
    p.add_argument("unit", help="unit name (see qrtl list)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="set a unit parameter (repeatable)")


def cmd_list(args):
    for spec in all_units():
        print(f"{spec.name}: {spec.summary}")
        for p in spec.params:
            print(f"    {p.name:<14} default {str(p.default):<10} {p.describe_range():<24} {p.doc}")


def cmd_describe(args):
    inst = instance(args.unit, unit_params(args))
    d = inst.describe()
    if args.json:
        print(json.dumps(d))
        return
    print(f"unit     {d['unit']}")
    print(f"module   {d['module']}")
    print("params   " + ", ".join(f"{k}={v}" for k, v in d["params"].items()))
    print(f"latency  {d['latency']} cycle(s)" + (" (combinational)" if d["latency"] == 0 else ""))
    print(f"clock    {d['clock']}\nreset    {d['reset']}")
    print("ports")
    for p in d["ports"]:
        print(f"    {p['direction']:<4} {p['name']:<10} {p['width']:>5} bits  "
              f"{'signed' if p['signed'] else 'unsigned'}")


def _open_out(path: str | None):
    if path is None or path == "-":
        return None
    try:
        return open(path, "w")
    except OSError as exc:
        raise QrtlError(f"cannot write output file {path!r}: {exc.strerror}") from None


def cmd_verilog(args):
    inst = instance(args.unit, unit_params(args))
    fh = _open_out(args.output)
    text = inst.verilog()
    if fh is None:
        sys.stdout.write(text)
    else:
        with fh:
            fh.write(text)
        print(f"wrote {args.output} (module {inst.module})", file=sys.stderr)


def cmd_sim(args):
    from sim.runner import verify
    inst = instance(args.unit, unit_params(args))
    res = verify(inst, vectors=args.vectors, seed=args.seed)
    print(f"{inst.spec.name} ({inst.module}): {res.vectors:,} vectors checked on Verilator "
          f"against the golden model, {res.mismatches} mismatch(es), "
          f"{res.vectors_per_second:,.0f} vectors/s ({res.seconds:.2f} s in the testbench, "
          f"{res.wall_seconds:.2f} s wall)")
    if res.mismatches:
        m = res.first_mismatch
        print(f"first mismatch at vector {m['index']}:")
        for kind in ("inputs", "expected", "actual"):
            print(f"  {kind:<8} " + ", ".join(f"{k}={v}" for k, v in m[kind].items()))
        return 1
    return 0


def cmd_bench(args):
    from sim.bench import bench
    inst = instance(args.unit, unit_params(args))
    rows = bench(inst, vectors=args.vectors, seed=args.seed)
    print(f"bench {inst.spec.name} ({inst.module}), same stimulus for every path:")
    for r in rows:
        print(f"  {r['path']:<52} {r['vectors']:>10,} vectors {r['seconds']:8.3f} s "
              f"{r['vectors_per_s']:>14,.0f} vectors/s  mismatches "
              f"{'n/a' if r['mismatches'] is None else r['mismatches']}")
    a, b, c = rows[0]["vectors_per_s"], rows[1]["vectors_per_s"], rows[2]["vectors_per_s"]
    print(f"  (a)/(b) = {a / b:.1f}x   (a)/(c) = {a / c:.1f}x")
    return 1 if any(r["mismatches"] for r in rows) else 0


def cmd_report(args):
    from reports.report import run_report
    if args.jobs < 1:
        raise QrtlError(f"-j/--jobs={args.jobs} must be at least 1")
    if args.liberty is not None and not Path(args.liberty).is_file():
        raise QrtlError(f"--liberty {args.liberty!r} does not exist")
    from sim.toolchain import writable_folder
    out = writable_folder(args.output)
    if args.images is not None:
        from golden.nets.data import load_split
        total = len(load_split().y_test)
        if not 1 <= args.images <= total:
            raise QrtlError(f"--images={args.images} is out of range (the test split has {total} images)")
    import csv
    import time
    t0 = time.perf_counter()
    written = run_report(out, liberty=args.liberty, jobs=args.jobs, images=args.images)
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


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="qrtl", description="Generate, verify and cost low-precision NN arithmetic units.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="every unit, its parameters and defaults").set_defaults(func=cmd_list)
    p = sub.add_parser("describe", help="a unit's Verilog contract")
    add_unit_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser("verilog", help="generate the Verilog of a unit")
    add_unit_args(p)
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(func=cmd_verilog)
    p = sub.add_parser("sim", help="verify a unit on Verilator against its golden model")
    add_unit_args(p)
    p.add_argument("--vectors", type=int, default=100_000,
                   help="random vectors when the input space is too big to be exhaustive")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sim)
    p = sub.add_parser("bench", help="throughput of the verification paths")
    add_unit_args(p)
    p.add_argument("--vectors", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench)
    for module in EXTENSIONS:
        importlib.import_module(module).register_cli(sub)
    p = sub.add_parser("report", help="generate, verify and cost every unit; write the report")
    p.add_argument("-o", "--output", default="build/reports", help="output folder")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel jobs")
    p.add_argument("--liberty", help="Liberty file (plain or .gz); default: the built-in library")
    p.add_argument("--images", type=int, default=None,
                   help="test images for the networks (default: the whole test split)")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "vectors", 1) is not None and getattr(args, "vectors", 1) < 1:
            raise QrtlError(f"--vectors={args.vectors} must be at least 1")
        if getattr(args, "seed", 0) is not None and getattr(args, "seed", 0) < 0:
            raise QrtlError(f"--seed={args.seed} must be a non-negative integer")
        return args.func(args) or 0
    except QrtlError as exc:
        print(f"qrtl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrtl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
