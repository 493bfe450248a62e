"""``qrtl bench``: throughput of the verification paths, measured side by side."""

from __future__ import annotations

import time

import numpy as np

from qrtl.golden.params import check_int
from qrtl.hw.registry import Unit

from .runner import MAX_VECTORS, simulate

__all__ = ["bench", "amaranth_pysim"]


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


def bench(inst: Unit, vectors: int = 1_000_000, naive_vectors: int = 20_000,
          pysim_vectors: int = 5_000, seed: int = 0) -> list[dict]:
    """Vectors per second of (a) the product path, (b) a naive cocotb loop, (c) Amaranth's
    Python simulator, (d) the golden model alone; all on the same unit and stimulus."""
    vectors = check_int("vectors", vectors, 1, MAX_VECTORS)
    naive_vectors, pysim_vectors = min(naive_vectors, vectors), min(pysim_vectors, vectors)
    rng = np.random.default_rng(check_int("seed", seed, 0, 2**63 - 1))
    x = inst.stimulus(vectors, rng)
    sub = lambda k: {n: v[:k] for n, v in x.items()}  # noqa: E731
    rows = []
    simulate(inst, sub(min(1000, vectors)))  # builds (or finds) the simulator: builds are not timed
    r = simulate(inst, x)
    rows.append({"path": "(a) qrtl cocotb/Verilator streaming harness", "vectors": r.vectors,
                 "seconds": r.seconds, "mismatches": r.mismatches})
    simulate(inst, sub(min(10, vectors)), testcase="naive")
    r = simulate(inst, sub(naive_vectors), testcase="naive")
    rows.append({"path": "(b) naive cocotb loop, one vector per await", "vectors": r.vectors,
                 "seconds": r.seconds, "mismatches": r.mismatches})
    bad, secs = amaranth_pysim(inst, sub(pysim_vectors))
    rows.append({"path": "(c) Amaranth Python simulator, one vector per step",
                 "vectors": pysim_vectors, "seconds": secs, "mismatches": bad})
    t0 = time.perf_counter()
    inst.golden(x)
    secs = time.perf_counter() - t0
    rows.append({"path": "(d) golden model alone (NumPy)", "vectors": vectors, "seconds": secs,
                 "mismatches": None})  # nothing to compare it with: it is the reference
    for row in rows:
        row["vectors_per_s"] = row["vectors"] / row["seconds"] if row["seconds"] else float("inf")
    return rows
