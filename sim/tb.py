"""cocotb testbench module (runs inside the Verilator process).

``stream``: the product's verification path. Drives the streaming harness (see
``sim/harness.py``) batch by batch and checks each batch's outputs against the reference
(the golden model, or outputs supplied by the caller) in one NumPy pass. ``naive``: the
textbook loop (drive one vector, wait, read, compare), kept only as the benchmark's
baseline. The job (unit, parameters, files, the slice of vectors) comes from the JSON file
named by ``$QRTL_JOB``; the result goes back as JSON, and the vectors done so far to the
job's progress file after every batch.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from qrtl.hw.foreign import VerilogUnit
from qrtl.hw.units import configure
from qrtl.sim.check import describe_vector, mismatch_mask, normalise
from qrtl.sim.harness import counter_inputs, in_word_bytes, out_word_bytes
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


def _supplied(job, inst):
    """Outputs supplied by the caller (a network replay, a foreign golden), or None."""
    if not job.get("expected"):
        return None
    with np.load(job["expected"]) as data:
        return {p.name: data[p.name] for p in inst.outputs}


class _Checker:
    """Compares the batches of one run with the reference and keeps the counts and the
    first mismatch (its index counted from ``job["first"]``, the run's first vector).

    The reference of a batch is the caller's expected outputs if given, else the golden
    model of the batch (of the whole run at once for a stateful stream unit). Outputs are
    compared as the harness wrote them, bytes of byte-aligned port fields, against the
    reference packed the same way (each port's value modulo ``2^width``).
    """

    def __init__(self, job, inst, layout: Layout, all_inputs=None):
        self.job, self.inst, self.layout = job, inst, layout
        self.vectors, self.mismatches, self.first_mismatch = 0, 0, None
        self.outputs: list[dict] = []
        self.expected = _supplied(job, inst)
        if self.expected is None and inst.spec.stream and job.get("check", True):
            self.expected = inst.golden(all_inputs())

    def batch(self, lo: int, inputs: dict, out: np.ndarray) -> None:
        """Check vectors ``lo ..`` of this run: ``inputs`` of the batch, ``out`` its
        output bytes (one row per vector)."""
        n = len(out)
        if self.job.get("check", True):
            if self.expected is not None:
                expected = {k: v[lo:lo + n] for k, v in self.expected.items()}
            else:
                expected = self.inst.golden(inputs)
            bad = _rows_differ(self.layout.pack(expected, self.layout.outputs), out)
            nbad = int(np.count_nonzero(bad))
            if nbad and self.first_mismatch is None:
                i = int(np.flatnonzero(bad)[0])
                self.first_mismatch = describe_vector(i, self.inst.inputs, self.inst.outputs, inputs,
                                                      expected, self.layout.unpack_outputs(out))
                self.first_mismatch["index"] = int(self.job.get("first", 0)) + lo + i
            self.mismatches += nbad
        if self.job.get("outputs"):
            self.outputs.append(self.layout.unpack_outputs(out))
        self.vectors += n
        if self.job.get("progress"):
            Path(self.job["progress"]).write_text(str(self.vectors))

    def finish(self, seconds: float) -> None:
        result = {"vectors": self.vectors, "seconds": seconds, "mismatches": self.mismatches,
                  "first_mismatch": self.first_mismatch}
        if self.job.get("outputs"):
            np.savez(self.job["outputs"], **{p.name: np.concatenate([o[p.name] for o in self.outputs])
                                             for p in self.inst.outputs})
        Path(self.job["result"]).write_text(json.dumps(result))
        assert self.mismatches == 0, f"{self.mismatches} mismatches, first: {self.first_mismatch}"


def _rows_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row of two ``(n, k)`` byte matrices: whether they differ."""
    k = a.shape[1]
    if k in (1, 2, 4, 8):  # one integer per row
        return a.view(f"<u{k}")[:, 0] != np.ascontiguousarray(b).view(f"<u{k}")[:, 0]
    return np.any(a != b, axis=1)


@cocotb.test()
async def stream(dut):
    """Run the job's vectors through the harness in batches; check each with NumPy.

    File mode (``job["vectors"]``): the parent packed the inputs into the harness's input
    file; each batch's inputs are unpacked from the same bytes for the golden model.
    Counter mode (``job["lo"]``, ``job["hi"]``): vectors ``lo .. hi - 1`` of the input
    space, generated by the harness and, for the golden model, by ``counter_inputs``.
    A batch is checked in a second thread while the simulator runs the next one.
    """
    job = _job()
    inst = _instance(job)
    layout = Layout(inst)
    lanes, batch_words = int(job["lanes"]), int(job["batch_words"])
    owb = out_word_bytes(layout, lanes)
    counter = "lo" in job
    total = int(job["hi"]) - int(job["lo"]) if counter else int(job["vectors"])
    first = int(job.get("first", 0))
    if not counter:
        words_in = np.memmap(job["in_file"], np.uint8, "r").reshape(-1, in_word_bytes(layout, lanes))

    def inputs_of(lo: int, hi: int) -> dict:
        if counter:
            return counter_inputs(inst, first + lo, first + hi)
        w0, w1 = lo // lanes, -(-hi // lanes)
        vecs = words_in[w0:w1, :lanes * layout.in_bytes].reshape(-1, layout.in_bytes)
        return layout.unpack(vecs[lo - w0 * lanes:hi - w0 * lanes], layout.inputs)

    def check_batch(lo: int, hi: int, out: np.ndarray) -> None:
        out = out[:, :lanes * layout.out_bytes].reshape(-1, layout.out_bytes)[:hi - lo]
        check.batch(lo, inputs_of(lo, hi), out)

    check = _Checker(job, inst, layout, lambda: inputs_of(0, total))
    nwords_total = -(-total // lanes)
    dut.start.value = 0
    dut.count.value = 1
    dut.counter.value = int(counter)
    await RisingEdge(dut.clk)
    started = time.perf_counter()
    pending = None
    with open(job["out_file"], "rb") as fout, ThreadPoolExecutor(1) as pool:
        for w0 in range(0, nwords_total, batch_words):
            nwords = min(batch_words, nwords_total - w0)
            lo, hi = w0 * lanes, min(total, (w0 + nwords) * lanes)
            dut.count.value = nwords
            dut.base.value = first + lo
            dut.start.value = 1
            await RisingEdge(dut.done)
            dut.start.value = 0
            out = np.frombuffer(fout.read(nwords * owb), np.uint8).reshape(nwords, owb)
            if pending is not None:
                pending.result()  # one batch in the checker at a time (memory stays bounded)
            pending = pool.submit(check_batch, lo, hi, out)
            await FallingEdge(dut.done)
        if pending is not None:
            pending.result()
    check.finish(time.perf_counter() - started)


def _load_inputs(job, inst) -> dict:
    with np.load(job["inputs"]) as data:
        return {p.name: data[p.name] for p in inst.inputs}




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
    expected = _supplied(job, inst)
    if expected is None:
        expected = inst.golden(inputs)
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


@cocotb.test()
async def legacy(dut):
    """Benchmark baseline: the previous streaming path (:mod:`qrtl.sim.legacy`): batches
    packed in Python, ``$fread`` into a memory, ``$writememh`` hex text back."""
    from qrtl.sim.legacy import decode_hex
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
        words = np.zeros((nwords * lanes, layout.in_bytes), np.uint8)
        words[:hi - lo] = vecs
        words = words.reshape(nwords, lanes * layout.in_bytes)
        infile.write_bytes(words[:, ::-1].tobytes())  # $fread takes words MSB first
        dut.count.value = nwords
        dut.start.value = 1
        await RisingEdge(dut.done)
        dut.start.value = 0
        await FallingEdge(dut.done)
        out = decode_hex(outfile.read_bytes(), nwords, lanes * layout.out_bytes)
        chunks.append(out.reshape(nwords * lanes, layout.out_bytes)[:hi - lo])
    actual = layout.unpack_outputs(np.concatenate(chunks))
    expected = _supplied(job, inst)
    if expected is None:
        expected = inst.golden(inputs)
    mismatches = int(mismatch_mask(inst.outputs, expected, actual).sum())
    Path(job["result"]).write_text(json.dumps({
        "vectors": total, "seconds": time.perf_counter() - started, "mismatches": mismatches,
        "first_mismatch": None}))
    assert mismatches == 0
