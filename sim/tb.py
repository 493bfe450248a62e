"""cocotb testbench module (runs inside the Verilator process).

``stream``: the product's verification path. Drives the streaming harness (see
``sim/harness.py``) batch by batch, then checks every output against the golden model
with NumPy. ``naive``: the textbook loop (drive one vector, wait, read, compare), kept
only as the benchmark's baseline. The job (unit, parameters, files) comes from the JSON
file named by ``$QRTL_JOB``; results go back as JSON.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from qrtl.hw.foreign import VerilogUnit
from qrtl.hw.units import configure
from qrtl.sim import hexio
from qrtl.sim.check import describe_vector, mismatch_mask, normalise
from qrtl.sim.layout import Layout

__all__: list[str] = []


def _job() -> dict:
    return json.loads(Path(os.environ["QRTL_JOB"]).read_text())


def _instance(job):
    """The unit of the job: a registered unit's configuration, or a foreign module's
    contract (ports and timing; its expected outputs come with the job)."""
    if job.get("contract"):
        return VerilogUnit.from_contract(job["contract"])
    return configure(job["unit"], job["params"])


def _expected(job, inst, inputs) -> dict:
    if job.get("expected"):  # outputs supplied by the caller (a network replay, a foreign golden)
        with np.load(job["expected"]) as data:
            return {p.name: data[p.name] for p in inst.outputs}
    return inst.golden(inputs)


def _load_inputs(job, inst) -> dict:
    with np.load(job["inputs"]) as data:
        return {p.name: data[p.name] for p in inst.inputs}


def _finish(job, inst, inputs, actual, seconds, started):
    result = {"vectors": int(len(next(iter(actual.values())))), "seconds": seconds,
              "mismatches": 0, "first_mismatch": None}
    if job.get("check", True):
        expected = _expected(job, inst, inputs)
        bad = mismatch_mask(inst.outputs, expected, actual)
        result["mismatches"] = int(bad.sum())
        if result["mismatches"]:
            i = int(np.flatnonzero(bad)[0])
            result["first_mismatch"] = describe_vector(i, inst.inputs, inst.outputs,
                                                       inputs, expected, actual)
    result["check_seconds"] = time.perf_counter() - started - seconds
    if job.get("outputs"):
        np.savez(job["outputs"], **actual)
    Path(job["result"]).write_text(json.dumps(result))
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatches, first: {result['first_mismatch']}"


@cocotb.test()
async def stream(dut):
    """Batch the vectors through the harness memories; check with NumPy."""
    job = _job()
    inst = _instance(job)
    layout = Layout(inst)
    depth, lanes = int(job["depth"]), int(job["lanes"])
    inputs = _load_inputs(job, inst)
    total = len(next(iter(inputs.values())))
    per_batch = depth * lanes
    infile, outfile = Path(job["in_file"]), Path(job["out_file"])
    dut.start.value = 0
    dut.count.value = 1
    await RisingEdge(dut.clk)
    started = time.perf_counter()
    chunks = []
    for lo in range(0, total, per_batch):
        hi = min(total, lo + per_batch)
        vecs = layout.pack_inputs({k: v[lo:hi] for k, v in inputs.items()})
        nwords = -(-(hi - lo) // lanes)
        # lane j of word i carries vector i*lanes + j (zero padding in the last word)
        words = np.zeros((nwords * lanes, layout.in_bytes), np.uint8)
        words[:hi - lo] = vecs
        words = words.reshape(nwords, lanes * layout.in_bytes)
        infile.write_bytes(words[:, ::-1].tobytes())  # $fread takes words MSB first
        dut.count.value = nwords
        dut.start.value = 1
        await RisingEdge(dut.done)
        dut.start.value = 0
        await FallingEdge(dut.done)
        out = hexio.decode(outfile.read_bytes(), nwords, lanes * layout.out_bytes)
        chunks.append(out.reshape(nwords * lanes, layout.out_bytes)[:hi - lo])
    words = np.concatenate(chunks) if chunks else np.zeros((0, layout.out_bytes), np.uint8)
    actual = layout.unpack_outputs(words)
    _finish(job, inst, inputs, actual, time.perf_counter() - started, started)


def _to_int(v, port) -> int:
    if port.width > 64:
        return int.from_bytes(bytes(np.asarray(v, np.uint8)), "little")
    return int(v) & ((1 << port.width) - 1)


@cocotb.test()
async def naive(dut):
    """Benchmark baseline: one vector per await, checked one by one in Python."""
    job = _job()
    inst = _instance(job)
    inputs = _load_inputs(job, inst)
    total = len(next(iter(inputs.values())))
    cols = {p.name: [_to_int(v, p) for v in normalise(inputs[p.name], p)] for p in inst.inputs}
    expected = _expected(job, inst, inputs)
    exp_cols = {p.name: [_to_int(v, p) for v in normalise(expected[p.name], p)] for p in inst.outputs}
    handles_in = [(getattr(dut, p.name), cols[p.name]) for p in inst.inputs]
    handles_out = [(getattr(dut, p.name), exp_cols[p.name], p.name) for p in inst.outputs]
    if inst.clocked:
        Clock(dut.clk, 10, "ns").start()
        dut.rst.value = 0
    started = time.perf_counter()
    mismatches = 0
    for i in range(total):
        for h, col in handles_in:
            h.value = col[i]
        if inst.clocked:
            for _ in range(inst.latency):
                await RisingEdge(dut.clk)
            await Timer(1, "ns")
        else:
            await Timer(1, "ns")
        for h, col, _name in handles_out:
            if h.value.to_unsigned() != col[i]:
                mismatches += 1
    seconds = time.perf_counter() - started
    Path(job["result"]).write_text(json.dumps({"vectors": total, "seconds": seconds,
                                               "mismatches": mismatches, "first_mismatch": None}))
    assert mismatches == 0
