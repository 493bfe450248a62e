"""``qrtl bench``: throughput of the verification paths, measured side by side, and the
ceiling they are measured against (a plain C++ loop around the Verilated unit)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np

from qrtl.golden.errors import QrtlError

from qrtl.golden.params import check_int
from qrtl.hw.registry import Unit

from .harness import harness_shape
from .layout import Layout
from .runner import BATCH_VECTORS, MAX_VECTORS, _harness_build, simulate

__all__ = ["bench", "amaranth_pysim", "cpp_loop", "golden_seconds"]


def amaranth_pysim(inst: Unit, inputs: dict) -> tuple[int, float]:
    """Amaranth's Python simulator, one vector per step; returns (mismatches, seconds)."""
    from amaranth.sim import Simulator

    comp = inst.spec.build(inst.params)
    n = len(next(iter(inputs.values())))
    expected = inst.golden(inputs)
    from .check import normalise
    ins = [(getattr(comp, p.name), [int.from_bytes(bytes(r), "little") if p.width > 64 else int(r)
                                    for r in normalise(inputs[p.name], p)]) for p in inst.inputs]
    outs = [(getattr(comp, p.name), [int(v) for v in normalise(expected[p.name], p)])
            for p in inst.outputs if p.width <= 64]
    bad = 0

    async def testbench(ctx):
        nonlocal bad
        for i in range(n):
            for sig, col in ins:
                ctx.set(sig, col[i])
            if inst.clocked:
                for _ in range(inst.latency):
                    await ctx.tick()
            else:
                await ctx.delay(1e-9)
            for sig, col in outs:
                if ctx.get(sig) != col[i]:
                    bad += 1

    sim = Simulator(comp)
    if inst.clocked:
        sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    t0 = time.perf_counter()
    sim.run()
    return bad, time.perf_counter() - t0


def _cpp_main(inst: Unit) -> str:
    """C++ ``main`` that drives the Verilated unit with xorshift64 random inputs, one
    ``eval()`` per vector (two, a clock cycle, for a clocked unit), and prints
    ``vectors seconds`` for the loop (the outputs are folded into a checksum so that
    nothing is optimised away)."""
    sets = []
    for p in inst.inputs:
        if p.width <= 64:
            sets.append(f"        top->{p.name} = next() & 0x{(1 << p.width) - 1:x}ULL;")
        else:
            for k in range(-(-p.width // 32)):
                bits = min(32, p.width - 32 * k)
                sets.append(f"        top->{p.name}[{k}] = static_cast<uint32_t>(next()) & 0x{(1 << bits) - 1:x}U;")
    sums = [f"        sink ^= static_cast<uint64_t>(top->{p.name}{'[0]' if p.width > 64 else ''});"
            for p in inst.outputs]
    step = ("        top->clk = 0; top->eval(); top->clk = 1; top->eval();" if inst.clocked
            else "        top->eval();")
    reset = "    top->rst = 0;" if inst.clocked else ""
    return f"""// qrtl bench: plain C++ loop around the Verilated unit (generated; do not edit)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include "Vunit.h"
#include "verilated.h"

static uint64_t s = 88172645463325252ULL;
static inline uint64_t next() {{ s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }}

int main(int argc, char** argv) {{
    const long n = argc > 1 ? std::atol(argv[1]) : 1000000;
    VerilatedContext ctx;
    Vunit* top = new Vunit{{&ctx}};
{reset}
    uint64_t sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) {{
{chr(10).join(sets)}
{step}
{chr(10).join(sums)}
    }}
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%ld %.6f %llu\\n", n, secs, static_cast<unsigned long long>(sink));
    delete top;
    return 0;
}}
"""


CPP_ARGS = ("--cc", "--exe", "--build", "-O3", "-Wno-fatal", "-Wno-lint", "-Wno-style",
            "--prefix", "Vunit", "-o", "bench")


def cpp_loop(inst: Unit, vectors: int) -> tuple[int, float]:
    """The ceiling of any Verilator testbench on one core: a plain C++ loop around the
    unit (``verilator --cc --exe --build -O3``, random inputs, one ``eval()`` per vector;
    build cached). Returns ``(vectors, seconds)`` of the loop."""
    from .runner import SIM_CACHE, _build_env, _versions
    from .toolchain import setup_verilator
    root = setup_verilator()
    sources = {"unit.v": inst.verilog(), "main.cpp": _cpp_main(inst)}
    key = SIM_CACHE.key("cpp-loop", sorted(sources.items()), CPP_ARGS, _versions())

    def make(bdir: Path) -> list[str]:
        for name, text in sources.items():
            (bdir / name).write_text(text)
        cmd = [str(root / "bin" / "verilator"), *CPP_ARGS, "-j", str(os.cpu_count() or 1),
               "--top-module", inst.module, "-Mdir", str(bdir), "unit.v", "main.cpp"]
        with open(bdir / "build.log", "w") as log:
            r = subprocess.run(cmd, cwd=bdir, stdout=log, stderr=subprocess.STDOUT, env=_build_env())
        if r.returncode:
            raise QrtlError(f"the C++ loop did not build (exit {r.returncode}); see {bdir / 'build.log'}")
        return ["bench"]

    bdir = SIM_CACHE.folder(key, make)
    out = subprocess.run([str(bdir / "bench"), str(vectors)], capture_output=True, text=True, check=True)
    n, secs, _ = out.stdout.split()
    return int(n), float(secs)


def golden_seconds(inst: Unit, inputs: dict) -> float:
    """Seconds the golden model takes on ``inputs`` in batches of the streaming path's
    size (:data:`qrtl.sim.runner.BATCH_VECTORS`; the whole stream at once for a stateful
    unit), as the testbench runs it."""
    n = len(next(iter(inputs.values())))
    step = n if inst.spec.stream else BATCH_VECTORS
    t0 = time.perf_counter()
    for lo in range(0, n, step):
        inst.golden({k: v[lo:lo + step] for k, v in inputs.items()})
    return time.perf_counter() - t0


def bench(inst: Unit, vectors: int = 4_000_000, jobs: int = 2, legacy_vectors: int = 1_000_000,
          naive_vectors: int = 20_000, pysim_vectors: int = 5_000, seed: int = 0) -> list[dict]:
    """Vectors per second of the verification paths on the same unit and stimulus, side by
    side: the product path with ``jobs`` processes and with one, the previous streaming
    path, a naive cocotb loop, Amaranth's Python simulator, the golden model alone, and
    the ceiling: a plain C++ loop around the Verilated unit on one core (its own uniform
    random inputs). Each row: ``path``, ``vectors``, ``seconds``, ``mismatches``,
    ``vectors_per_s`` and ``share`` (of the C++ loop's rate times the processes used)."""
    vectors = check_int("vectors", vectors, 1, MAX_VECTORS)
    jobs = check_int("jobs", jobs, 1, 256)
    legacy_vectors = min(legacy_vectors, vectors)
    naive_vectors, pysim_vectors = min(naive_vectors, vectors), min(pysim_vectors, vectors)
    rng = np.random.default_rng(check_int("seed", seed, 0, 2**63 - 1))
    x = inst.stimulus(vectors, rng)
    sub = lambda k: {n: v[:k] for n, v in x.items()}  # noqa: E731
    rows = []

    def row(path, r_vectors, seconds, mismatches, procs=None):
        rows.append({"path": path, "vectors": r_vectors, "seconds": seconds,
                     "mismatches": mismatches, "processes": procs})

    # builds (or cache look-ups) first: no build is timed
    _harness_build(inst, harness_shape(inst, Layout(inst), vectors))
    simulate(inst, sub(min(1000, vectors)), testcase="legacy")
    simulate(inst, sub(min(10, vectors)), testcase="naive")
    cpp_loop(inst, 1000)
    for j in sorted({jobs, 1}, reverse=True):
        r = simulate(inst, x, jobs=j)
        row(f"(a) qrtl streaming harness, -j {j}", r.vectors, r.seconds, r.mismatches, j)
    r = simulate(inst, sub(legacy_vectors), testcase="legacy")
    row("(b) previous harness (hex text, <= 8 lanes)", r.vectors, r.seconds, r.mismatches, 1)
    r = simulate(inst, sub(naive_vectors), testcase="naive")
    row("(c) naive cocotb loop, one vector per await", r.vectors, r.seconds, r.mismatches, 1)
    bad, secs = amaranth_pysim(inst, sub(pysim_vectors))
    row("(d) Amaranth Python simulator, one vector per step", pysim_vectors, secs, bad, 1)
    row("(e) golden model alone (NumPy, batches as in (a))", vectors, golden_seconds(inst, x),
        None, 1)  # nothing to compare it with: it is the reference
    n, secs = cpp_loop(inst, max(vectors, 10_000_000))
    row("(f) plain C++ loop, verilator -O3, 1 core (ceiling)", n, secs, None, 1)
    ceiling = n / secs
    for r in rows:
        r["vectors_per_s"] = r["vectors"] / r["seconds"] if r["seconds"] else float("inf")
        r["share"] = r["vectors_per_s"] / (ceiling * (r["processes"] or 1))
    return rows
